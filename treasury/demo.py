"""``make demo``: the whole story on fresh local devnets, printed step by step.

It runs on embedded defaults (a SQLite database in a fresh folder under ``var/demo/``), prints
what happened, checks the books and the audit log at the end, says how to look at what it made,
and leaves no node behind. ``treasury demo --serve`` instead keeps the devnets, the officers'
console and the site running with spends waiting for approval (``treasury.story.explore``). Every
approval is a statement signed with an officer's key file, and each spend shows whose signatures
the custody signer itself verified before it signed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from custody.authority import SignedStatement, VerifiedAuthorization
from custody.devnet import DevnetStack, find_binaries, install_signal_handlers
from custody.ethereum import EthChain
from custody.ethereum.dev_token import token_balance
from reporting.site import PublishedSite
from treasury import audit, ledger
from treasury.authority.statements import coin_units, human_summary
from treasury.authority.store import statements_for
from treasury.ledger import PendingState
from treasury.proposals import ProposalView, SpendPosting
from treasury.reconcile import eth_scope, holdings_account
from treasury.story import SATS_PER_BTC, WEI_PER_ETH, Reserve
from treasury.story.airgap import sign_through_files
from treasury.story.cast import KGST, SAFE_VAULT, TOKEN_SYMBOL, WEI_PER_BNB
from treasury.story.delay_window import open_window_registry, vetoed_spend, waited_spend
from treasury.story.explore import explore
from treasury.story.proofs import TRUST_FILE_NAME
from treasury.story.recovery import recovery_vault_story
from treasury.story.relayers import open_relayers, show_relayers
from treasury.story.rotation import fee_bump, rotation_drill
from treasury.story.second_chain import open_second_chain
from treasury.story.units import token_units

Echo = Callable[[str], None]

DEMO_ROOT = Path("var") / "demo"
BTC_DEPOSITS_SATS = (60_000_000, 30_000_000, 10_000_000)
ETH_DEPOSIT_WEI = 20 * WEI_PER_ETH
TOKEN_DEPOSIT = 250_000 * 10**18
ALLOCATIONS = {"BTC": 70_000_000, "ETH": 15 * WEI_PER_ETH}
"""What parliament allocates to the National Reserve Fund: less than the vaults hold after the
spends, so the attestation shows the reserve covering it."""
BTC_SPEND_SATS = SATS_PER_BTC // 4
ETH_SPEND_WEI = 3 * WEI_PER_ETH // 2
KGST_SPEND = 12_500 * KGST
"""A KGST payment, under the policy's KGST veto threshold (no public window needed)."""
BNB_SPEND_WEI = 3 * WEI_PER_BNB // 2
"""A small BNB payment on the second chain, under the policy's BNB veto threshold."""
BTC_BUMP_SATS = 30 * SATS_PER_BTC // 100
"""The stuck spend that is bumped; it leaves the rotation's sweep below the policy's 0.5 BTC
threshold, so the sweep needs no public window of its own."""
SUMMARY_LINE_MAX_CHARS = 110
"""Vault id lines longer than this are shown abridged in the middle."""
VAULT_ID_LINE = "vault id:"
"""The statement line that may be abridged (a Bitcoin vault id is the whole descriptor)."""
ABRIDGED_MARK = " ... "


def _forever() -> None:
    """Wait until interrupted (Ctrl-C raises ``KeyboardInterrupt``; SIGTERM stops the nodes)."""
    while True:
        time.sleep(3600)


def run_demo(
    echo: Echo,
    *,
    serve: bool = False,
    until: Callable[[], None] = _forever,
    root: Path = DEMO_ROOT,
) -> None:
    """Run the story: ceremonies, vaults, deposits, a spend on each chain, an attestation;
    with ``serve``, then leave it running to explore until ``until`` returns."""
    started = time.monotonic()
    install_signal_handlers()
    workdir = root / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    echo(f"== National reserve demo; everything it writes is in {workdir}")
    echo("== 1. Devnets")
    binaries = find_binaries(install=True, log=echo)
    for binary in (binaries.bitcoind, binaries.anvil):
        echo(f"   {binary.name}: {binary.version()} ({binary.source})")
    with DevnetStack(binaries) as stack:
        stack.start(lambda line: echo(f"   {line}"))
        echo(f"   bitcoin: regtest, height {stack.bitcoin.rpc.call('getblockcount')}")
        for label, node in (
            ("reserve", stack.reserve),
            ("services", stack.services),
            ("BNB", stack.bnb),
        ):
            echo(
                f"   {label} chain: chain id {node.rpc.chain_id()}, "
                f"height {node.rpc.block_number()}"
            )
        pids = [pid for node in (stack.bitcoin, *stack.evm_nodes) if (pid := node.pid)]
        reserve = Reserve(workdir, stack.bitcoin, stack.reserve)
        site = _story(reserve, stack, echo)
        echo(f"== Story told in {time.monotonic() - started:.1f} s")
        if serve:
            try:
                explore(reserve, site, echo, until=until)
            except KeyboardInterrupt:
                echo("== Stopping")
        reserve.engine.dispose()
    echo(f"== Done; {_exited(pids)}")
    _how_to_look(reserve, site, echo, served=serve)


def _story(reserve: Reserve, stack: DevnetStack, echo: Echo) -> PublishedSite:
    echo("== 2. Key ceremonies: each institution's seed split 2-of-3 (SLIP-39) among its officers")
    reserve.hold_ceremonies(echo)
    echo("== 3. Vaults: 2-of-3 across the three institutions on both chains")
    reserve.open_vaults(echo)
    echo(
        "== 3b. The second EVM reserve chain (BNB Chain; on the devnet chain id 31339, which no "
        "real chain uses): Safe v1.4.1 at its canonical addresses and a Safe of its own"
    )
    reserve.second_chain = open_second_chain(reserve, stack.bnb, echo)
    echo("== 4. Deposits, then a reconciliation run books them into the state ledger")
    reserve.deposit(echo, BTC_DEPOSITS_SATS, ETH_DEPOSIT_WEI, TOKEN_DEPOSIT)
    stack.reserve.rpc.call("evm_mine")
    reserve.reconcile(echo)
    echo("== 4b. Gas: each EVM chain's own relayer, funded, its float in the ledger")
    relayers = open_relayers(reserve, echo)
    echo(
        "== 5. Governance: officers and roles, the written policy, a decree, officers' keys and "
        "the signed roster, the allowlist"
    )
    token, second = reserve.token_code, reserve.second_chain
    if token is None or second is None:
        raise RuntimeError("The story token and the second chain are made in steps 3 and 3b.")
    bnb = second.settings.native_asset
    payees = {
        "BTC": stack.bitcoin.rpc.wallet("miner").call("getnewaddress", "", "bech32"),
        "ETH": stack.reserve.dev_accounts()[9],
        token: stack.reserve.dev_accounts()[8],
        bnb: stack.bnb.dev_accounts()[9],
    }
    reserve.govern(echo, payees)
    echo("== 6. Allocation of the reserve to the National Reserve Fund")
    reserve.allocate(echo, ALLOCATIONS)
    echo(
        "== 7. Spends: proposed under the decree, approved with NBKR's and ACH's officer keys, "
        "verified and signed by their share holders"
    )
    for asset, amount in (("BTC", BTC_SPEND_SATS), ("ETH", ETH_SPEND_WEI)):
        _spend(reserve, asset, amount, payees[asset], echo, through_files=asset == "BTC")
    echo(
        f"   {TOKEN_SYMBOL}, the ERC-20 the Safe holds, goes the same way: the Safe calls "
        f"transfer(to, amount) on the {TOKEN_SYMBOL} contract, and the signers decode that call "
        "and compare it with the statements before they sign"
    )
    _spend(reserve, token, KGST_SPEND, payees[token], echo)
    echo(
        f"   {bnb} on the second chain goes the same way, from the Safe on chain "
        f"{second.safe.chain_id}, relayed through that chain's node"
    )
    _spend(reserve, bnb, BNB_SPEND_WEI, payees[bnb], echo)
    reserve.reconcile(echo)
    show_relayers(reserve, relayers, echo)
    _echo_agreement(reserve, echo)
    echo("== 8. Proof of reserves: snapshot, proofs of control, signatures, anchors")
    result = reserve.attest(echo, stack.services)
    echo("== 9. The auditor's independent verifier, against the live nodes")
    if result.path is None:
        raise RuntimeError("The attestation was not written to a file.")
    report = reserve.verify(result.path, stack.services)
    failed = report.failed()
    echo(
        f"   {len(report.checks)} checks, {len(failed)} failed: "
        f"{'VERIFIED' if report.passed() else 'NOT VERIFIED'}"
    )
    for check in failed:
        echo(f"   FAILED {check.name}: {check.reason}")
    echo(
        f"   re-run it yourself: .venv/bin/reserve-verify {result.path} --offline "
        f"--trust {reserve.workdir / TRUST_FILE_NAME} "
        "(the auditor's standalone verifier; `treasury verify` is the same; node checks need "
        "--bitcoin-rpc, --evm-rpc CHAIN_ID=URL per EVM chain and --services-rpc, and the "
        "devnets stop at the end)"
    )
    account = "fund:national-reserve:BTC"
    echo(
        f"== 9b. An account holder's own proof: {account} in attestation 1, issued from what the "
        "database kept (not this process's memory)"
    )
    held = reserve.holder_proof(result.path, 1, account)
    inclusion = next(check for check in held.report.checks if check.name.startswith("inclusion"))
    echo(f"   package: {held.path} (only this account's leaf and its proof path)")
    echo(f"   verifier: {inclusion.status.value}: {inclusion.reason}")
    echo(
        f"   the holder's code for the site's check page: {held.code} "
        f"(also: treasury proofs issue {account} --attestation 1)"
    )
    echo(
        "== 9c. A public window before large spends: announced on the services chain, where the "
        "signers read it themselves; one waits its window out, an institution vetoes the other"
    )
    window = open_window_registry(stack.services, echo)
    waited_spend(reserve, window, payees["ETH"], echo)
    vetoed_spend(reserve, window, payees["BTC"], echo)
    reserve.reconcile(echo)
    echo("== 9d. A stuck spend replaced by fee (RBF), approved by the officers under a fee ceiling")
    fee_bump(reserve, echo, BTC_BUMP_SATS)
    echo(
        "== 9e. A compromised-cosigner drill: a new ceremony, a new vault, every coin swept to it "
        "through the approvals, the old vault retired"
    )
    rotation_drill(reserve, echo)
    reserve.reconcile(echo)
    echo("== 10. The parliament site (static, no network needed, Kyrgyz / Russian / English)")
    echo("   key health checks: each institution's holders show their shares still recombine")
    reserve.check_key_health(echo)
    translated = reserve.translate()
    echo(
        f"   {translated} records' names entered in Kyrgyz and Russian by the treasury admin "
        "(treasury translations list), so the data reads in each language too"
    )
    site = reserve.publish(stack.services)
    echo(
        f"   {site.attestations} attestation(s), {site.spends} spend(s) published to {site.folder}"
    )
    echo(f"   open {site.entry} in a browser, or run: treasury serve {site.folder}")
    echo(
        "== 10b. A vault with a recovery path: recovery bodies' keys, the refresh alarm, a refresh"
    )
    recovery_vault_story(reserve, echo)
    reserve.translate()  # the purposes of the proposals made since, in Kyrgyz and Russian
    with reserve.sessions() as session:
        balanced = all(totals.balanced for totals in ledger.trial_balance(session))
        verdict = audit.verify(session)
        head = audit.head(session)
    echo(
        f"== Books: trial balance {'zero per asset' if balanced else 'UNBALANCED'}; audit log "
        f"{'intact' if verdict.ok else 'BROKEN'} ({head.sequence} events, head {head.hash[:16]}...)"
    )
    return site


def _how_to_look(reserve: Reserve, site: PublishedSite, echo: Echo, *, served: bool) -> None:
    """What a newcomer can open or run next, with the exact paths of this run."""
    echo("== Look at what it made")
    echo(f"   the parliament site: open {site.entry.resolve()} (or: treasury serve {site.folder})")
    echo("   the books, with the CLI (the nodes have stopped; reading needs none):")
    echo(f"     export TREASURY_DATABASE_URL=sqlite:///{reserve.database_path.resolve()}")
    echo("     treasury ledger balances; treasury ledger entries; treasury audit verify")
    if not served:
        echo(
            "   the officers' console with spends waiting for you: make demo-serve "
            "(treasury demo --serve), which prints a login for each officer"
        )


def _spend(
    reserve: Reserve,
    asset: str,
    amount: int,
    payee: str,
    echo: Echo,
    *,
    through_files: bool = False,
) -> ProposalView:
    wf = reserve.workflow()
    view = reserve.propose_and_approve(wf, asset, amount, payee)
    echo(
        f"   proposal {view.id}: {_units(reserve, asset, amount)} to {payee}; approved by "
        f"{', '.join(sorted(a.institution for a in view.approvals))} for tx {view.tx_hash}"
    )
    with reserve.sessions() as session:
        statements = statements_for(session, view.id)
    _echo_statement(reserve, statements, echo)
    if through_files:
        echo(
            "   signed through files: each institution's request exported "
            "(treasury airgap export), signed by `custody-sign` in its own process with no "
            "treasury and no database, imported (treasury airgap import)"
        )
        view = sign_through_files(reserve, wf, view.id, asset, echo)
    else:
        view = reserve.sign(wf, view.id, asset)
        verifications = reserve.verified_for(view.id)
        if not verifications:
            echo("   WARNING: the signers were shown no officers' signatures to verify.")
        for verification in verifications:
            echo(
                f"   {verification.institution}'s signer verified the signatures of "
                f"{_approvers(verification.authorization)}, then signed"
            )
    view = wf.broadcast(view.id, reserve.spenders()[asset])
    with reserve.sessions() as session:
        entry = ledger.find_entry(session, SpendPosting.key_for(view.id))
        state = ledger.pending_state(session, entry.id) if entry else None
    echo(f"   signed by {', '.join(view.signed_by)}; broadcast as {view.txid}; ledger {state}")
    view = reserve.confirm(wf, view.id, asset)
    with reserve.sessions() as session:
        posted = (
            entry is not None and ledger.pending_state(session, entry.id) is PendingState.POSTED
        )
    echo(f"   {view.state.value}; ledger entry {'posted' if posted else 'NOT posted'}")
    return view


def _units(reserve: Reserve, asset: str, amount: int) -> str:
    """``amount`` of ``asset`` in coin units with its symbol: the story token as ``KGST``, the
    second chain's native coin with its 18 decimals, bitcoin and ether as the statements show
    them."""
    if asset == reserve.token_code:
        return token_units(amount)
    second = reserve.second_chain
    if second is not None and asset == second.settings.native_asset:
        return coin_units(asset, amount, f"eip155:{second.safe.chain_id}")
    return coin_units(asset, amount)


def _echo_agreement(reserve: Reserve, echo: Echo) -> None:
    """The story token's and the second chain's Safe balances, read from each chain and from the
    ledger after the reconciliation run: what the spends left, in both places."""
    rows: list[tuple[str, str, int, int]] = []
    with reserve.sessions() as session:
        if reserve.token is not None and reserve.token_code is not None:
            safe = reserve.safes.vault(SAFE_VAULT)
            held = token_balance(reserve.chain, reserve.token, safe.address)
            scope = eth_scope(safe.chain_id, safe.name)
            booked = ledger.balance(session, holdings_account(scope, reserve.token_code)).posted
            rows.append((TOKEN_SYMBOL, reserve.token_code, held, booked))
        second = reserve.second_chain
        if second is not None:
            native = second.settings.native_asset
            held = EthChain(second.node.rpc).balance(second.safe.address)
            scope = eth_scope(second.safe.chain_id, second.safe.name)
            booked = ledger.balance(session, holdings_account(scope, native)).posted
            rows.append((native, native, held, booked))
    for label, code, held, booked in rows:
        verdict = "they agree" if held == booked else "MISMATCH"
        echo(
            f"   {label} left in its Safe: {_units(reserve, code, held)} on chain, "
            f"{_units(reserve, code, booked)} in the ledger: {verdict}"
        )


def _echo_statement(reserve: Reserve, statements: tuple[SignedStatement, ...], echo: Echo) -> None:
    """The statement the approvers signed, shown once (theirs differ only in signer and expiry)."""
    if not statements:
        echo("   WARNING: the approvals carry no signed statements.")
        return
    names = {str(officer.id): name for name, officer in reserve.officers.items()}
    first = statements[0].statement
    echo(
        f"   {len(statements)} approvals, each a statement signed with the approver's officer key; "
        f"{names.get(first.officer_id, first.officer_id)}'s reads:"
    )
    for line in human_summary(first).splitlines():
        echo(f"     {_abridged(line) if line.lstrip().startswith(VAULT_ID_LINE) else line}")
    if first.asset == reserve.token_code:  # a token's decimals are its contract's, not stated
        coins = _units(reserve, first.asset, first.amount).split(" (")[0]
        echo(
            f"     ({first.asset} is {TOKEN_SYMBOL}'s contract; {first.amount} of its base units "
            f"are {coins})"
        )


def _abridged(line: str) -> str:
    """A summary line cut in the middle if it is longer than a screen line (a Bitcoin vault id
    is the whole descriptor, already printed in step 3); the officer signs the whole of it."""
    if len(line) <= SUMMARY_LINE_MAX_CHARS:
        return line
    keep = (SUMMARY_LINE_MAX_CHARS - len(ABRIDGED_MARK)) // 2
    return line[:keep] + ABRIDGED_MARK + line[-keep:]


def _approvers(authorization: VerifiedAuthorization) -> str:
    """``Elmira Asanova (NBKR) and Ilyas Omurov (ACH)``: each name with its institution once."""
    people = []
    for approver in authorization.approvers:
        suffix = f"({approver.institution})"
        people.append(
            approver.name if approver.name.endswith(suffix) else f"{approver.name} {suffix}"
        )
    if len(people) < 2:
        return "".join(people)
    return f"{', '.join(people[:-1])} and {people[-1]}"


def _exited(pids: list[int]) -> str:
    """Prove the stop: signal 0 to each pid must find no process."""
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
            alive.append(pid)
        except ProcessLookupError:
            pass
    if alive:
        return f"WARNING: nodes {alive} are still running."
    return f"nodes {', '.join(map(str, pids))} have exited."

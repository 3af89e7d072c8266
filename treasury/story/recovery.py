"""The demo's recovery vault: recovery bodies' ceremonies, the vault, the refresh alarm, a refresh.

Three recovery bodies hold their own SLIP-39 ceremonies; a vault over the institutions' keys with
a recovery path for two of the three bodies after ``DELAY_BLOCKS`` blocks is stored and watched
by bitcoind from its export; the refresh address is allowlisted (in the treasury and, by two
admins, in the roster chain) while the vault is still empty, since the allowlist's delay is
counted in story time and blocks keep coming. Then the vault is funded, blocks are mined until
the reconciler's refresh alarm opens at ``ALARM_PERCENT_LEFT`` percent of ``N`` left, and the
refresh goes through the workflow like any spend (proposed under the decree, approved with the
approvers' signed statements, signed by two institutions through the recovery vault's gated
signer, broadcast, confirmed); it is booked as an internal movement, only the fee leaving the
vault's holdings, and the next reconciliation clears the alarm.

The functions take the story's ``Reserve``; ``treasury.demo`` calls ``recovery_vault_story``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from custody.bitcoin.rpc import sats_to_btc
from custody.ceremony import CeremonyPlan, ShareFiles, read_share_file, run_ceremony
from treasury import ledger
from treasury.authority import changes
from treasury.authority.statements import coin_units
from treasury.custody_health import run_health_check
from treasury.policy import approve_destination, current_policy, request_destination
from treasury.proposals import LedgerSpendHook, ProposalState, SpendAccounts, Workflow
from treasury.reconcile import approved_outflows_account, btc_scope, holdings_account
from treasury.reconcile.accounts import fees_account
from treasury.reconcile.refresh import DEFAULT_REFRESH_ALARM_PERCENT_LEFT, list_refresh_alarms
from treasury.recovery_spending import RecoveryVaultSpender, RefreshLedgerHook
from treasury.recovery_vaults import StoredRecoveryVault, create_recovery_vault, issue_address
from treasury.story.cast import (
    ADMINS,
    ALLOWLIST_DELAY,
    APPROVERS,
    DECREE,
    INSTITUTIONS,
    MAX_FEE_SATS,
    POLICY_SIGNERS,
    PROPOSER,
    SHARE_THRESHOLD,
    VAULT_THRESHOLD,
)
from treasury.story.reserve import Reserve
from treasury.wiring import TokenReconcileGate
from treasury.workflow_exceptions import ProposalTransitionError

__all__ = [
    "ALARM_PERCENT_LEFT",
    "DELAY_BLOCKS",
    "RECOVERY_BODIES",
    "RecoveryStory",
    "recovery_vault_story",
]

Echo = Callable[[str], None]

RECOVERY_BODIES = ("Constitutional Court", "Ombudsman", "State Audit Chamber")
"""The bodies that hold the recovery keys: none of them holds an institution's key."""
RECOVERY_HOLDERS = ("Judge", "Deputy", "Clerk")
DELAY_BLOCKS = 20
"""``N``: a coin unmoved for this many blocks opens to the recovery bodies."""
ALARM_PERCENT_LEFT = DEFAULT_REFRESH_ALARM_PERCENT_LEFT
FUNDING_SATS = 30_000_000
REFRESH_SATS = 20_000_000
"""Under the policy's veto threshold, so the refresh needs no veto window."""
FEE_RATE_SAT_VB = 2
VAULT_NAME = "reserve-btc-recovery"


@dataclass(frozen=True)
class RecoveryStory:
    """What the story did: the vault, the blocks left when the alarm opened, the refresh."""

    vault: StoredRecoveryVault
    alarm_blocks_left: int
    refresh_proposal_id: int
    refresh_txid: str
    fee_sats: int
    holdings_after: int


def hold_recovery_ceremonies(reserve: Reserve, echo: Echo) -> dict[str, list[str]]:
    """Each recovery body's seed, split 2-of-3 among its own holders; returns their share words."""
    words: dict[str, list[str]] = {}
    for number, body in enumerate(RECOVERY_BODIES):
        delivery = ShareFiles(reserve.workdir / "shares" / f"recovery-{number}")
        plan = CeremonyPlan(body, RECOVERY_HOLDERS, SHARE_THRESHOLD, witnesses=("State auditor",))
        with reserve.sessions.begin() as session:
            transcript = run_ceremony(session, plan, delivery, "", clock=reserve.clock)
        words[body] = [read_share_file(path) for path in delivery.written]
        echo(f"   recovery body {body}: fingerprint {transcript.fingerprint}, 2-of-3 shares")
    return words


def check_recovery_bodies(reserve: Reserve, words: dict[str, list[str]], echo: Echo) -> None:
    """Each body's quorum signs a fresh challenge with both keys (its key health check)."""
    for body in RECOVERY_BODIES:
        with reserve.sessions.begin() as session:
            check = run_health_check(
                session,
                body,
                words[body][:SHARE_THRESHOLD],
                "",
                actor="story",
                now=reserve.clock(),
            )
        proof = (
            f"signed the challenge (BIP-322 by {check.proof.bitcoin_address})"
            if check.proof is not None
            else check.reason
        )
        echo(f"   {body}: {check.outcome.value}; {proof}")


def open_recovery_vault(
    reserve: Reserve, echo: Echo, name: str = VAULT_NAME
) -> StoredRecoveryVault:
    with reserve.sessions.begin() as session:
        vault = create_recovery_vault(
            session,
            reserve.bitcoin.rpc,
            name,
            primary=[i.name for i in INSTITUTIONS],
            primary_threshold=VAULT_THRESHOLD,
            recovery=RECOVERY_BODIES,
            recovery_threshold=2,
            recovery_delay_blocks=DELAY_BLOCKS,
            actor="story",
            clock=reserve.clock,
        )
    echo(f"   recovery vault {vault.name!r}: {vault.policy.multipath_text()}")
    return vault


def _allowlist(reserve: Reserve, address: str, label: str) -> None:
    """``address`` allowlisted for BTC in the treasury and, signed by two admins, in the roster."""
    now = reserve.clock()
    with reserve.sessions.begin() as session:
        entry = request_destination(
            session, reserve.officers[PROPOSER], "BTC", address, label, now=now
        )
        for approver in APPROVERS.values():
            approve_destination(
                session, reserve.officers[approver], entry.id, current_policy(session), now=now
            )
    with reserve.sessions() as session:
        record = changes.draft_allowlist_added(session, "BTC", address, label)
        for code in POLICY_SIGNERS:
            key = reserve.officer_keys[ADMINS[code]]
            passphrase = key.passphrase_file.read_text(encoding="utf-8")
            record = changes.sign_record(session, record, key.key_file, passphrase)
    with reserve.sessions.begin() as session:
        changes.commit_record(session, record, clock=reserve.clock)


def _workflow(reserve: Reserve, vault: StoredRecoveryVault) -> Workflow:
    """The workflow booking into the recovery vault's own accounts; a refresh holds only its fee."""
    holdings = holdings_account(btc_scope(vault.name), "BTC")
    accounts = {
        "BTC": SpendAccounts(holdings, approved_outflows_account("BTC"), fees_account("BTC"))
    }
    hook = RefreshLedgerHook(
        LedgerSpendHook(accounts, clock=reserve.clock),
        accounts,
        {vault.name: holdings},
        clock=reserve.clock,
    )
    return Workflow(
        reserve.sessions, hook, clock=reserve.clock, reconciliation=TokenReconcileGate()
    )


def _spender(reserve: Reserve, vault: StoredRecoveryVault) -> RecoveryVaultSpender:
    return RecoveryVaultSpender(
        reserve.sessions,
        reserve.bitcoin.rpc,
        vault.name,
        reserve.institutions,
        fee_rate_sat_vb=FEE_RATE_SAT_VB,
        max_fee_sats=MAX_FEE_SATS,
        clock=reserve.clock,
    )


def _blocks_left(reserve: Reserve, vault: StoredRecoveryVault) -> int:
    coins = reserve.bitcoin.rpc.wallet(vault.wallet_name).call("listunspent", 1)
    return max(0, DELAY_BLOCKS - min(int(c["confirmations"]) for c in coins))


def recovery_vault_story(
    reserve: Reserve, echo: Echo, *, vault_name: str = VAULT_NAME
) -> RecoveryStory:
    """The whole act: ceremonies, vault, funding, the alarm, the refresh, the cleared alarm."""
    words = hold_recovery_ceremonies(reserve, echo)
    check_recovery_bodies(reserve, words, echo)
    vault = open_recovery_vault(reserve, echo, vault_name)
    with reserve.sessions.begin() as session:
        _, refresh_address = issue_address(session, vault.name, clock=reserve.clock)
    _allowlist(reserve, refresh_address, f"Vault {vault.name} (refresh)")
    echo(f"   its refresh address {refresh_address} is allowlisted by NBKR and ACH")
    reserve.pass_time(ALLOWLIST_DELAY + timedelta(hours=1), echo)

    with reserve.sessions.begin() as session:
        _, deposit = issue_address(session, vault.name, clock=reserve.clock)
    rpc = reserve.bitcoin.rpc
    rpc.wallet("miner").call("sendtoaddress", deposit, sats_to_btc(FUNDING_SATS))
    reserve.bitcoin.mine(1)
    reserve.reconcile(lambda _line: None)
    threshold = DELAY_BLOCKS * ALARM_PERCENT_LEFT // 100
    echo(
        f"   funded with {coin_units('BTC', FUNDING_SATS)}: {_blocks_left(reserve, vault)} blocks "
        f"before the recovery path opens; the alarm is set at {ALARM_PERCENT_LEFT}% "
        f"({threshold} blocks)"
    )
    reserve.bitcoin.mine(_blocks_left(reserve, vault) - threshold)
    reserve.reconcile(lambda _line: None)
    with reserve.sessions() as session:
        alarms = list_refresh_alarms(session, only_open=True)
    if not alarms:
        raise ProposalTransitionError("The refresh alarm did not open at its threshold.")
    echo(f"   refresh alarm {alarms[0].id}: {alarms[0].detail}")

    wf = _workflow(reserve, vault)
    spender = _spender(reserve, vault)
    proposer = reserve.officers[PROPOSER]
    view = wf.propose(
        proposer,
        asset="BTC",
        amount=REFRESH_SATS,
        destination=refresh_address,
        purpose=f"Refresh of recovery vault {vault.name} before its recovery path opens",
        legal_basis=DECREE,
    )
    view = wf.prepare(proposer, view.id, spender)
    if view.tx_hash is None:
        raise ProposalTransitionError(f"Refresh proposal {view.id} names no transaction.")
    for approver in APPROVERS.values():
        officer = reserve.officers[approver]
        signed = reserve.officer_keys[approver].sign_statement(wf.statement(officer, view.id))
        view = wf.approve(officer, view.id, view.tx_hash, signed=signed)
    for code, approver in APPROVERS.items():
        shares, passphrase = reserve.shares_of(code)
        view = wf.sign(reserve.officers[approver], view.id, spender, shares, passphrase)
    view = wf.broadcast(view.id, spender)
    reserve.bitcoin.mine(1)
    view = wf.refresh(view.id, spender)
    if view.state is not ProposalState.CONFIRMED or view.txid is None:
        raise ProposalTransitionError(f"Refresh proposal {view.id} is {view.state.value}.")
    reserve.reconcile(lambda _line: None)
    with reserve.sessions() as session:
        still_open = list_refresh_alarms(session, only_open=True)
        holdings = ledger.balance(session, holdings_account(btc_scope(vault.name), "BTC")).posted
    fee = FUNDING_SATS - holdings
    echo(
        f"   refresh proposal {view.id}: approved, signed by two institutions, txid {view.txid}; "
        f"booked as an internal movement (fee {fee} sat); "
        f"{'alarm STILL OPEN' if still_open else 'the alarm is cleared'}, "
        f"{_blocks_left(reserve, vault)} blocks before the recovery path opens again"
    )
    return RecoveryStory(vault, threshold, view.id, view.txid, fee, holdings)

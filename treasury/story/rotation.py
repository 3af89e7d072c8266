"""The compromised-cosigner drill: a new ceremony, a new vault, the sweep through the officers.

One institution's Bitcoin cosigner is taken to be compromised. Its share holders hold a new
ceremony (the institution's new key, under a new ceremony name), an admin starts a rotation to a
new vault over the new key set (``treasury.rotation``), the officers allowlist the new vault's
sweep address (in the treasury and, signed by two institutions' admins, in the roster chain the
signers replay), and the sweep of every coin goes through the workflow like any spend: proposed
under the decree, approved with the approvers' signed statements, held for oversight's veto
window, signed by two institutions whose keys are in both vaults, broadcast and confirmed. The
ledger books it as an internal transfer; then the old vault is retired and the story spends from
the new one.

``rotation_drill`` takes the story's ``Reserve`` and leaves it spending from the new vault.
``fee_bump`` is the other rehearsed flow: a spend stuck at a low fee rate is replaced by a bump
proposal that the officers approve under a fee ceiling (``treasury.fee_bumps``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from custody.ceremony import CeremonyPlan, ShareFiles, run_ceremony
from treasury import ledger
from treasury.authority import changes
from treasury.authority.statements import coin_units
from treasury.fee_bumps import BumpSpender, propose_bump
from treasury.policy import approve_destination, current_policy, request_destination
from treasury.proposals import ProposalState, ProposalView
from treasury.proposals.rotations import Rotation
from treasury.reconcile import btc_scope, holdings_account
from treasury.rotation import record_sweep, retire, start_rotation, sweep_purpose, sweep_quote_for
from treasury.story.cast import (
    ADMINS,
    ALLOWLIST_DELAY,
    APPROVERS,
    DECREE,
    FEE_RATE_SAT_VB,
    INSTITUTIONS,
    POLICY,
    POLICY_SIGNERS,
    PROPOSER,
    SHARE_THRESHOLD,
    TREASURY_ADMIN,
    VAULT_THRESHOLD,
)
from treasury.story.reserve import Reserve
from treasury.workflow_exceptions import ProposalTransitionError

__all__ = ["COMPROMISED", "FeeBump", "RotationDrill", "fee_bump", "rotation_drill"]

Echo = Callable[[str], None]

COMPROMISED = "MOF"
"""The institution whose cosigner the drill replaces: not one of the story's signing
institutions, so the sweep is signed by the two whose keys are in both vaults."""


@dataclass(frozen=True)
class RotationDrill:
    """What the drill did: the rotation, its sweep, and the reserve's BTC before and after."""

    rotation: Rotation
    sweep: ProposalView
    fee_sats: int
    amount_sats: int
    holdings_before: int
    """The old vault's ledger holdings before the sweep (all the reserve's BTC)."""
    holdings_after: int
    """The new vault's ledger holdings after it (the old one's is zero)."""


def _new_ceremony(reserve: Reserve, code: str, name: str, echo: Echo) -> None:
    """``code``'s share holders generate and split a fresh cosigner seed, recorded as ``name``."""
    inst = next(i for i in INSTITUTIONS if i.code == code)
    delivery = ShareFiles(reserve.workdir / "shares" / f"{code.lower()}-rotated")
    plan = CeremonyPlan(name, inst.holders, SHARE_THRESHOLD, witnesses=("State auditor",))
    with reserve.sessions.begin() as session:
        transcript = run_ceremony(session, plan, delivery, inst.passphrase, clock=reserve.clock)
    echo(
        f"   {inst.name}: new ceremony {name!r}, fingerprint {transcript.fingerprint} "
        f"({SHARE_THRESHOLD}-of-{len(inst.holders)} shares to the same holders)"
    )


def _allowlist(reserve: Reserve, address: str, label: str) -> None:
    """The officers allowlist ``address`` for BTC: in the treasury (requested by the proposer,
    approved by two institutions) and in the roster chain (signed in by two admins)."""
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


def _holdings(reserve: Reserve, vault: str) -> int:
    with reserve.sessions() as session:
        return ledger.balance(session, holdings_account(btc_scope(vault), "BTC")).posted


def _propose_sweep(reserve: Reserve, rotation: Rotation, amount: int) -> ProposalView:
    """The proposer proposes the sweep under the decree; both approvers sign its statement."""
    wf = reserve.workflow()
    proposer = reserve.officers[PROPOSER]
    view = wf.propose(
        proposer,
        asset="BTC",
        amount=amount,
        destination=rotation.sweep_address,
        purpose=sweep_purpose(rotation),
        legal_basis=DECREE,
    )
    with reserve.sessions.begin() as session:
        record_sweep(session, rotation.id, view.id)
    view = wf.prepare(proposer, view.id, reserve.spenders()["BTC"])
    if view.tx_hash is None:
        raise ProposalTransitionError(f"Sweep proposal {view.id} was prepared but names no tx.")
    for approver in APPROVERS.values():
        officer = reserve.officers[approver]
        signed = reserve.officer_keys[approver].sign_statement(wf.statement(officer, view.id))
        view = wf.approve(officer, view.id, view.tx_hash, signed=signed)
    return view


def rotation_drill(
    reserve: Reserve, echo: Echo, *, compromised: str = COMPROMISED
) -> RotationDrill:
    """Replace ``compromised``'s cosigner: new ceremony, new vault, sweep, retirement."""
    old_vault = reserve.btc_vault
    inst = next(i for i in INSTITUTIONS if i.code == compromised)
    new_name = f"{inst.name} (key of {reserve.clock().year}, rotated)"
    _new_ceremony(reserve, compromised, new_name, echo)
    cosigners = [new_name if i.code == compromised else i.name for i in INSTITUTIONS]
    rpc = reserve.bitcoin.rpc
    with reserve.sessions.begin() as session:
        rotation = start_rotation(
            session,
            rpc,
            reserve.officers[TREASURY_ADMIN],
            old_vault=old_vault,
            new_vault=f"{old_vault}-rotated",
            threshold=VAULT_THRESHOLD,
            institutions=cosigners,
            reason=f"the {inst.name} cosigner key is presumed compromised",
            clock=reserve.clock,
        )
    echo(
        f"   rotation {rotation.id}: vault {rotation.new_vault!r} over {', '.join(cosigners)}; "
        f"sweep address {rotation.sweep_address}"
    )
    _allowlist(reserve, rotation.sweep_address, f"Vault {rotation.new_vault} (rotation)")
    echo("   the sweep address is allowlisted by NBKR and ACH, and signed into the roster chain")
    reserve.pass_time(ALLOWLIST_DELAY + timedelta(hours=1), echo)
    before = _holdings(reserve, old_vault)
    with reserve.sessions() as session:
        quote = sweep_quote_for(session, rpc, rotation.id, FEE_RATE_SAT_VB)
    view = _propose_sweep(reserve, rotation, quote.amount_sats)
    echo(
        f"   sweep proposal {view.id}: {quote.inputs} coins, {coin_units('BTC', quote.total_sats)}"
        f" less a fee of {quote.fee_sats} sat; approved by both approvers' signed statements"
    )
    if view.amount > POLICY["assets"]["BTC"]["veto_threshold"]:
        window = timedelta(seconds=POLICY["veto_window_seconds"])
        reserve.pass_time(window + timedelta(hours=1), echo)
    wf = reserve.workflow()
    reserve.sign(wf, view.id, "BTC")
    spender = reserve.spenders()["BTC"]
    view = wf.broadcast(view.id, spender)
    reserve.bitcoin.mine(1)
    view = wf.refresh(view.id, spender)
    if view.state is not ProposalState.CONFIRMED:
        raise ProposalTransitionError(f"Sweep proposal {view.id} is {view.state.value}.")
    echo(f"   sweep confirmed: txid {view.txid}; booked as an internal transfer")
    with reserve.sessions.begin() as session:
        rotation = retire(
            session, rpc, rotation.id, reserve.officers[TREASURY_ADMIN], clock=reserve.clock
        )
    reserve.btc_vault = rotation.new_vault
    after = _holdings(reserve, rotation.new_vault)
    echo(
        f"   vault {rotation.old_vault!r} retired (a deposit to it raises an alarm); spends now "
        f"come from {rotation.new_vault!r}, holding {coin_units('BTC', after)}"
    )
    return RotationDrill(rotation, view, quote.fee_sats, quote.amount_sats, before, after)


BUMP_FEE_RATE_SAT_VB = Decimal(12)
"""The bump's fee rate: six times the story's 2 sat/vB."""
BUMP_FEE_CEILING_SATS = 20_000
"""The most fee the approvers accept for the bump (their statements name it)."""


@dataclass(frozen=True)
class FeeBump:
    """A stuck spend and the bump that replaced it, both after the bump confirmed."""

    stuck: ProposalView
    bump: ProposalView


def fee_bump(reserve: Reserve, echo: Echo, amount_sats: int) -> FeeBump:
    """Pay ``amount_sats`` to the BTC payee, let it stick in the mempool, and replace it by fee
    through the officers: a bump proposal, approved under a ceiling, signed, sent, confirmed."""
    wf = reserve.workflow()
    spender = reserve.spenders()["BTC"]
    proposer = reserve.officers[PROPOSER]
    stuck = reserve.propose_and_approve(wf, "BTC", amount_sats, reserve.payees["BTC"])
    stuck = wf.broadcast(reserve.sign(wf, stuck.id, "BTC").id, spender)
    echo(
        f"   proposal {stuck.id}: {coin_units('BTC', amount_sats)} sent at {FEE_RATE_SAT_VB} "
        f"sat/vB (fee {stuck.fee} sat), txid {stuck.txid}, waiting in the mempool"
    )
    view = propose_bump(
        wf,
        reserve.sessions,
        proposer,
        stuck.id,
        fee_rate_sat_vb=BUMP_FEE_RATE_SAT_VB,
        fee_ceiling_sats=BUMP_FEE_CEILING_SATS,
        clock=reserve.clock,
    )
    bumper = BumpSpender(reserve.sessions, reserve.bitcoin.rpc, spender)
    view = wf.prepare(proposer, view.id, bumper)
    if view.tx_hash is None:
        raise ProposalTransitionError(f"Bump proposal {view.id} was prepared but names no tx.")
    for approver in APPROVERS.values():
        officer = reserve.officers[approver]
        signed = reserve.officer_keys[approver].sign_statement(wf.statement(officer, view.id))
        view = wf.approve(officer, view.id, view.tx_hash, signed=signed)
    echo(
        f"   bump proposal {view.id}: the same payment at {BUMP_FEE_RATE_SAT_VB} sat/vB (fee "
        f"{view.fee} sat), approved by NBKR and ACH with a fee ceiling of "
        f"{BUMP_FEE_CEILING_SATS} sat in their statements"
    )
    view = wf.broadcast(reserve.sign(wf, view.id, "BTC").id, bumper)
    reserve.bitcoin.mine(1)
    view = wf.refresh(view.id, bumper)
    stuck = wf.refresh(stuck.id, spender)
    echo(
        f"   the replacement {view.txid} is {view.state.value}; proposal {stuck.id} is "
        f"{stuck.state.value} and its pending entry voided: the payment and the final fee are "
        "each booked once"
    )
    return FeeBump(stuck, view)

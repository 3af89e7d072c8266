"""The signer's last question: do the officers' own signatures authorise exactly this spend?

The signer decodes the transaction itself (``SpendUnderReview``) and replays the roster chain
(``RosterState``); the statements come from wherever (database, API, file) and are trusted for
nothing until each one checks out here:

- signed by an active key of an active officer of the roster, of the institution it names;
- an approval is by an approver, a veto by an approver or oversight officer;
- it names this spend, field by field (chain, vault, asset, amount, destination, transaction
  hash, Safe nonce), with a fee at most its ``max_fee``, and the policy hash in force;
- it has not expired;
- the legal basis it cites is a decree signed into the roster chain, not expired at the signer's
  clock, whose ceiling for the asset the amount does not exceed.

And the spend itself must pay a destination the chain's allowlist lists for its asset: the
treasury's own allowlist table is a database row, so only the signed ALLOWLIST_ADDED records
count. (The decree's ceiling is checked per spend: a signer sees one transaction, not the running
total the treasury's policy also enforces.)

Any statement that fails is an error of its own class (a signer refuses loudly rather than
counting around a bad statement), a valid veto refuses the spend, and the approvals must come
from ``rules.approval_institutions`` distinct institutions -- two officers of one institution
count once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from custody.authority.errors import (
    AboveDecreeCeilingError,
    AuthorizationError,
    DestinationNotAllowlistedError,
    ExpiredStatementError,
    FeeAboveMaximumError,
    InsufficientApprovalsError,
    LegalBasisExpiredError,
    MissingRoleError,
    PolicyMismatchError,
    SignatureError,
    StatementMismatchError,
    UnknownLegalBasisError,
    UnknownSignerError,
    VetoedError,
)
from custody.authority.roster_bodies import OfficerRole
from custody.authority.roster_state import RosterState
from custody.authority.signature import OfficerSignature, verify_signature
from custody.authority.statement import ApprovalStatement, StatementKind

__all__ = [
    "SignedStatement",
    "SpendUnderReview",
    "VerifiedApprover",
    "VerifiedAuthorization",
    "verify_authorization",
    "verify_signer",
    "verify_veto",
]

_VETO_ROLES = frozenset({OfficerRole.APPROVER, OfficerRole.OVERSIGHT})


@dataclass(frozen=True)
class SpendUnderReview:
    """What the signer decoded from the transaction it is asked to sign -- not what it was told."""

    chain: str
    vault_id: str
    asset: str
    amount: int
    destination: str
    tx_hash: str
    fee: int | None
    """Bitcoin: the fee in sats the PSBT pays; EVM: ``None`` (the SafeTx pays no gas refund)."""
    safe_nonce: int | None


@dataclass(frozen=True)
class SignedStatement:
    """A statement with the signature of one of its officer's keys."""

    statement: ApprovalStatement
    key_id: str
    signature: OfficerSignature


@dataclass(frozen=True)
class VerifiedApprover:
    """Whose approval the signer verified, for the share holders' screen and the audit log."""

    officer_id: str
    name: str
    institution: str
    key_id: str


@dataclass(frozen=True)
class VerifiedAuthorization:
    """The approvals that authorise the spend (one or more per institution), and what they rest on."""

    proposal_id: str
    approvers: tuple[VerifiedApprover, ...]
    institutions: tuple[str, ...]
    policy_hash: str
    roster_head: bytes


def verify_signer(
    state: RosterState, signed: SignedStatement, *, require_user_verification: bool = True
) -> VerifiedApprover:
    """Who signed ``signed``, if an active key of the active roster officer it names did, and
    that officer holds the role its kind needs; otherwise the specific error.

    The check a server makes before it stores a statement. Whether the statement names the spend
    being signed, and whether it has expired, are the signer's questions (``verify_authorization``).
    """
    return _verify_one(state, signed, None, require_user_verification)


def verify_veto(
    state: RosterState, signed: SignedStatement, *, require_user_verification: bool = True
) -> VerifiedApprover:
    """Who vetoed, if ``signed`` is a genuine VETO statement of an active approver or oversight
    officer; otherwise the specific error. A veto is honoured whatever its fields or expiry say
    (it stops a spend, it never authorises one), so only its signer and signature are checked.
    """
    if signed.statement.kind is not StatementKind.VETO:
        raise StatementMismatchError(
            f"The statement of {signed.statement.officer_id} is an approval, not a veto."
        )
    return _verify_one(state, signed, None, require_user_verification)


def _verify_one(
    state: RosterState,
    signed: SignedStatement,
    now: datetime | None,
    require_user_verification: bool,
) -> VerifiedApprover:
    """Verify signer, role and signature; and expiry unless ``now`` is ``None`` (vetoes)."""
    statement = signed.statement
    officer = state.officers.get(statement.officer_id)
    if officer is None or not officer.active:
        raise UnknownSignerError(
            f"The {statement.kind.value} statement names officer {statement.officer_id!r}, who "
            "is not an active officer of the roster."
        )
    if officer.institution != statement.institution:
        raise UnknownSignerError(
            f"The statement says officer {officer.officer_id} is of {statement.institution}, "
            f"but the roster has them at {officer.institution}."
        )
    key = officer.keys.get(signed.key_id)
    if key is None:
        raise UnknownSignerError(
            f"The statement of {officer.officer_id} is signed with key {signed.key_id!r}, which "
            "is not one of their active keys (revoked or never registered)."
        )
    needed = _VETO_ROLES if statement.kind is StatementKind.VETO else {OfficerRole.APPROVER}
    if not officer.roles & needed:
        raise MissingRoleError(
            f"Officer {officer.officer_id} may not sign a {statement.kind.value} statement: "
            f"that needs one of {sorted(r.value for r in needed)}."
        )
    try:
        verify_signature(
            key,
            statement.digest(),
            signed.signature,
            require_user_verification=require_user_verification,
        )
    except SignatureError as exc:
        raise type(exc)(  # keep the specific class (high S, WebAuthn, mismatch...)
            f"The {statement.kind.value} statement of {officer.officer_id} is not signed by "
            f"their key {signed.key_id}: {exc}"
        ) from exc
    if now is not None and now >= statement.expires_at:
        raise ExpiredStatementError(
            f"The {statement.kind.value} statement of {officer.officer_id} expired at "
            f"{statement.expires_at.isoformat()}."
        )
    return VerifiedApprover(officer.officer_id, officer.name, officer.institution, key.key_id)


def _compare(statement: ApprovalStatement, spend: SpendUnderReview, state: RosterState) -> None:
    for name in ("chain", "vault_id", "asset", "amount", "destination", "tx_hash", "safe_nonce"):
        stated, actual = getattr(statement, name), getattr(spend, name)
        if stated != actual:
            raise StatementMismatchError(
                f"The approval of {statement.officer_id} names {name} {stated!r}, but the "
                f"transaction under review has {actual!r}."
            )
    if (statement.max_fee is None) != (spend.fee is None):
        raise StatementMismatchError(
            f"The approval of {statement.officer_id} and the transaction disagree on whether "
            "a fee is paid (max_fee vs fee)."
        )
    if statement.max_fee is not None and spend.fee is not None and spend.fee > statement.max_fee:
        raise FeeAboveMaximumError(
            f"The transaction pays a fee of {spend.fee}, above the {statement.max_fee} that "
            f"{statement.officer_id} approved."
        )
    if statement.policy_hash != state.policy_hash:
        raise PolicyMismatchError(
            f"The approval of {statement.officer_id} names policy {statement.policy_hash}, but "
            f"the policy in force in the roster chain is {state.policy_hash}."
        )


def _check_destination(state: RosterState, spend: SpendUnderReview) -> None:
    if not state.allows_destination(spend.asset, spend.destination):
        raise DestinationNotAllowlistedError(
            f"The transaction pays {spend.destination} in {spend.asset}, which no signed "
            "allowlist record of the roster chain lists for that asset; a destination counts "
            "only once admins of the required institutions signed it into the chain."
        )


def _check_legal_basis(
    statement: ApprovalStatement, spend: SpendUnderReview, state: RosterState, now: datetime
) -> None:
    decree = state.decrees.get(statement.legal_basis)
    if decree is None:
        raise UnknownLegalBasisError(
            f"The approval of {statement.officer_id} cites legal basis "
            f"{statement.legal_basis!r}, which no signed decree record of the roster chain holds."
        )
    if now >= decree.expires_at:
        raise LegalBasisExpiredError(
            f"The decree {decree.reference!r} cited by {statement.officer_id} expired at "
            f"{decree.expires_at.isoformat()}; it authorises nothing any more."
        )
    ceiling = decree.ceilings.get(spend.asset)
    if ceiling is None:
        raise AboveDecreeCeilingError(
            f"The decree {decree.reference!r} sets no ceiling for {spend.asset}: it authorises "
            "no spend of that asset."
        )
    if spend.amount > ceiling:
        raise AboveDecreeCeilingError(
            f"The spend of {spend.amount} base units of {spend.asset} exceeds the ceiling of "
            f"{ceiling} that decree {decree.reference!r} sets."
        )


def verify_authorization(
    state: RosterState,
    signed_statements: list[SignedStatement] | tuple[SignedStatement, ...],
    spend: SpendUnderReview,
    now: datetime,
    *,
    require_user_verification: bool = True,
) -> VerifiedAuthorization:
    """Return who authorised ``spend`` if the statements are a valid quorum; otherwise raise.

    ``now`` is the signer's clock (timezone-aware). Every statement must be for one proposal.
    """
    if now.tzinfo is None:
        raise AuthorizationError("The signer's clock must be timezone-aware (UTC).")
    if state.policy_hash is None:
        raise PolicyMismatchError("The roster chain sets no policy yet: nothing can be approved.")
    if not signed_statements:
        raise InsufficientApprovalsError("No approval statements were presented for this spend.")
    proposal_ids = {s.statement.proposal_id for s in signed_statements}
    if len(proposal_ids) != 1:
        raise StatementMismatchError(
            f"The statements name several proposals ({sorted(proposal_ids)}); one spend is "
            "authorised by the statements of one proposal."
        )
    vetoes = [s for s in signed_statements if s.statement.kind is StatementKind.VETO]
    for veto in vetoes:
        # A veto is honoured whatever its fields or expiry say: it only needs to be genuine.
        who = _verify_one(state, veto, None, require_user_verification)
        raise VetoedError(
            f"Officer {who.name} ({who.officer_id}, {who.institution}) vetoed proposal "
            f"{veto.statement.proposal_id}: nothing is signed."
        )
    approvers: dict[str, VerifiedApprover] = {}
    for signed in signed_statements:
        _compare(signed.statement, spend, state)
        approver = _verify_one(state, signed, now, require_user_verification)
        _check_legal_basis(signed.statement, spend, state, now)
        approvers.setdefault(approver.officer_id, approver)
    _check_destination(state, spend)
    by_institution: dict[str, VerifiedApprover] = {}
    for approver in approvers.values():
        by_institution.setdefault(approver.institution, approver)
    needed = state.rules.approval_institutions
    if len(by_institution) < needed:
        raise InsufficientApprovalsError(
            f"Approvals come from {len(by_institution)} institution(s) "
            f"({sorted(by_institution)}); the roster's rules need {needed} distinct institutions."
        )
    return VerifiedAuthorization(
        proposal_id=proposal_ids.pop(),
        approvers=tuple(approvers.values()),
        institutions=tuple(sorted(by_institution)),
        policy_hash=state.policy_hash,
        roster_head=state.head_hash,
    )

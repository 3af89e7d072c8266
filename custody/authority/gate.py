"""The gate a signer passes through between recombining its seed and making any signature.

The signers (``custody.bitcoin.signer``, ``custody.ethereum.signer``) decode the transaction
they are asked to sign into a ``SpendUnderReview`` and hand it here with the evidence they were
given -- the roster chain and the officers' signed statements, read from a database, an API or a
file, and trusted for nothing. ``check_before_signing`` then:

1. checks that the roster genesis is anchored in THIS institution's seed (``verify_genesis_for``
   with the root just recombined from the shares): a genesis built around other ceremony keys,
   however well signed, is refused, so a database writer cannot invent the officers;
2. replays the chain from that genesis (``replay``): every officer, key, role and policy change
   must carry the signatures the rules require;
3. checks the quorum of statements against the decoded spend (``verify_authorization``);
4. applies the public delay window (``delay.check_delay_window``): a spend at or above the signed
   policy's veto threshold must be announced on the services chain, its window passed by that
   chain's block time, and no genuine veto submitted there. The signer reads the services chain
   through the reader it was configured with (``AuthorityEvidence.services``), never through the
   database.

Any failure raises the library's typed error and the signer signs nothing. The result names the
approvers, so the share holders and the logs see whose signatures were verified.

Every signer takes its authority as ``Authority``: either the evidence above or ``BreakGlass``,
the share holders' own, explicit choice to sign without statements in an emergency. There is no
third way (no ``None``): a caller that has neither cannot reach a signature. Break-glass skips the
statement check only; the signer still checks the transaction against its vault, logs a warning,
and says so in its result. A break-glass spend is complete only with every institution's
signature (``IncompleteBreakGlassError`` otherwise), so one institution's emergency cannot move
money with the multisig threshold alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from embit.bip32 import HDKey

from custody.authority.delay import SpendWindowReader, check_delay_window
from custody.authority.errors import AuthorizationError, GenesisError
from custody.authority.quorum import (
    SignedStatement,
    SpendUnderReview,
    VerifiedAuthorization,
    verify_authorization,
)
from custody.authority.roster import replay, verify_genesis_for
from custody.authority.roster_record import RosterRecord

__all__ = [
    "Authority",
    "AuthorityEvidence",
    "BreakGlass",
    "IncompleteBreakGlassError",
    "approvers_line",
    "check_before_signing",
]

log = logging.getLogger(__name__)

BREAK_GLASS_REASON_MAX = 500


@dataclass(frozen=True)
class AuthorityEvidence:
    """What a signer is shown as the officers' authority: the roster chain and the statements.

    Public data only (public keys, signatures, statements); it proves nothing until
    ``check_before_signing`` has checked it against the signer's own seed and transaction.
    """

    records: tuple[RosterRecord, ...]
    """The roster and policy chain, genesis first."""
    statements: tuple[SignedStatement, ...]
    """The signed approval (and veto) statements of one proposal."""
    services: SpendWindowReader | None = None
    """Where the signer reads announcements, vetoes and the time: the services chain it was
    configured with at the signing machine (RPC URL, registry address), not a database row.
    Without it, a spend the signed policy puts under a window is refused."""

    def __post_init__(self) -> None:
        # Accept any sequence but keep the value immutable (a list could change after checking).
        object.__setattr__(self, "records", tuple(self.records))
        object.__setattr__(self, "statements", tuple(self.statements))


@dataclass(frozen=True)
class BreakGlass:
    """The share holders' explicit choice to sign WITHOUT the officers' statements, and why.

    Only a quorum of share holders at the signing machine can produce it (the CLI's
    ``--break-glass --reason``); a server or database cannot. Every institution's quorum must make
    this choice for a break-glass spend to be complete; each one is audited and raises an alarm.
    """

    reason: str

    def __post_init__(self) -> None:
        reason = self.reason.strip()
        if not reason or len(reason) > BREAK_GLASS_REASON_MAX:
            raise ValueError(
                f"A break-glass signature needs a reason of 1 to {BREAK_GLASS_REASON_MAX} "
                "characters."
            )
        object.__setattr__(self, "reason", reason)


Authority = AuthorityEvidence | BreakGlass
"""What every custody signing entry point requires: the officers' evidence, or break-glass."""


class IncompleteBreakGlassError(AuthorizationError):
    """A break-glass spend lacks some institution's signature: it is not broadcast or executed.

    Under break-glass no officer vouched for the transaction, so the authority is the share
    holders of EVERY institution, not the multisig threshold. ``missing`` names the institutions
    whose signature is still needed.
    """

    def __init__(self, message: str, missing: tuple[str, ...]) -> None:
        super().__init__(message)
        self.missing = missing


def check_before_signing(
    root: HDKey,
    evidence: AuthorityEvidence,
    spend: SpendUnderReview,
    now: datetime,
    *,
    require_user_verification: bool = True,
) -> VerifiedAuthorization:
    """Return who authorised ``spend`` if the evidence holds for this seed; otherwise raise.

    ``root`` is the institution's freshly recombined (and fingerprint-checked) BIP-32 root;
    ``spend`` is what the signer decoded from the transaction itself; ``now`` is the signer's
    timezone-aware clock.
    """
    if not evidence.records:
        raise GenesisError(
            "No roster chain was presented: the signer cannot know who the officers are."
        )
    verify_genesis_for(root, evidence.records[0])
    state = replay(evidence.records)
    authorization = verify_authorization(
        state,
        evidence.statements,
        spend,
        now,
        require_user_verification=require_user_verification,
    )
    window = check_delay_window(
        state,
        spend,
        authorization.proposal_id,
        evidence.services,
        require_user_verification=require_user_verification,
    )
    if window is not None:
        log.info(
            "delay window passed with no veto",
            extra={
                "proposal_id": authorization.proposal_id,
                "announced_at": window.announced_at.isoformat(),
                "opened_at": window.opens_at.isoformat(),
                "services_block": window.block_number,
            },
        )
    return authorization


def approvers_line(authorization: VerifiedAuthorization) -> str:
    """``Alice (CB), Carol (MOF)``: whose signatures the signer verified, for screens and logs
    (a name that already ends with its institution, ``Carol (MOF)``, is not given it twice)."""
    return ", ".join(
        a.name if a.name.endswith(f"({a.institution})") else f"{a.name} ({a.institution})"
        for a in authorization.approvers
    )

"""The public delay window: a large spend is signed only after it was announced and not vetoed.

A rule kept in the treasury's database (``veto_window_end``) protects nothing against whoever
writes that database, and nobody outside the treasury sees a large spend coming. So the signer
enforces the window itself, from facts a database writer cannot change:

- **the rule** -- the veto threshold per asset and the window's length -- is read from the
  policy document signed into the roster chain (the last ``POLICY_SET``; admins of two
  institutions sign it), the same chain the signer already replays from its own seed;
- **the announcement** -- the spend's canonical ``SpendAnnouncement`` -- must be in the window
  registry on the services chain, which the signer reads itself through a ``SpendWindowReader``
  configured at the signing machine (an RPC URL and a registry address, never a database row);
- **the time** is the services chain's latest block time, not the treasury's clock: the window
  is over when that chain says so;
- **a veto** is an officer's signed VETO statement that anyone may submit to the registry; the
  signer verifies each one against the roster and honours the first genuine one, for good.

``check_delay_window`` runs inside ``gate.check_before_signing``, after the approvals verified,
so both signers (Bitcoin and Safe) apply it without code of their own.

A policy document that is not the treasury's JSON policy, or that carries no
``veto_window_seconds``, sets no window (the roster chains of older tests). One that does set a
window applies it to every asset it names at or above that asset's ``veto_threshold``, and to
every amount of an asset it does not name: an unknown asset fails closed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Protocol

from custody.authority import canonical
from custody.authority.errors import (
    AuthorityError,
    AuthorizationError,
    EncodingError,
    VetoedError,
)
from custody.authority.quorum import SignedStatement, SpendUnderReview, verify_veto
from custody.authority.roster_state import RosterState
from custody.authority.signature import signature_from_json
from custody.authority.statement import ApprovalStatement, StatementKind

__all__ = [
    "ANNOUNCEMENT_FORMAT",
    "AnnouncementMismatchError",
    "DelayRule",
    "DelayWindowError",
    "NotAnnouncedError",
    "ServicesChainRequiredError",
    "SpendAnnouncement",
    "SpendWindowReader",
    "VetoedOnChainError",
    "WindowObservation",
    "WindowOpenError",
    "WindowVerdict",
    "check_delay_window",
    "decode_veto",
    "delay_rule",
    "encode_veto",
    "proposal_key",
    "utc_from_timestamp",
]

log = logging.getLogger(__name__)

ANNOUNCEMENT_FORMAT = "national-reserve/spend-announcement/1"
"""The ``format`` field of every announcement of this version (it also separates the digest)."""
PROPOSAL_KEY_TAG = b"national-reserve/proposal/v1\x00"
"""Prefixed to a proposal id before hashing it into the registry's indexed ``proposal`` topic."""


class DelayWindowError(AuthorizationError):
    """The public delay window forbids signing this spend now (or for good)."""


class ServicesChainRequiredError(DelayWindowError):
    """The signed policy puts this spend under a window, but the signer has no services chain."""


class NotAnnouncedError(DelayWindowError):
    """The spend is not announced in the window registry the signer reads."""


class AnnouncementMismatchError(DelayWindowError):
    """An announcement was given that does not describe the transaction under review."""


class WindowOpenError(DelayWindowError):
    """The window has not passed yet; ``opens_at`` says when the spend can be signed."""

    def __init__(self, message: str, opens_at: datetime) -> None:
        super().__init__(message)
        self.opens_at = opens_at


class VetoedOnChainError(VetoedError, DelayWindowError):
    """A genuine officer's veto of the proposal is on the services chain: nothing is ever signed."""


def proposal_key(proposal_id: str) -> bytes:
    """The 32 bytes the registry indexes a proposal's announcements and vetoes by."""
    return hashlib.sha256(PROPOSAL_KEY_TAG + proposal_id.encode("utf-8")).digest()


@dataclass(frozen=True)
class SpendAnnouncement:
    """What the services chain is told before a large spend: exactly the spend, nothing more.

    The signer builds it from the transaction it decoded (``for_spend``) and looks for its
    digest in the registry, so an announcement of some other amount or destination counts for
    nothing.
    """

    proposal_id: str
    chain: str
    vault_id: str
    asset: str
    amount: int
    destination: str
    tx_hash: str
    safe_nonce: int | None

    @classmethod
    def for_spend(cls, proposal_id: str, spend: SpendUnderReview) -> SpendAnnouncement:
        return cls(
            proposal_id=proposal_id,
            chain=spend.chain,
            vault_id=spend.vault_id,
            asset=spend.asset,
            amount=spend.amount,
            destination=spend.destination,
            tx_hash=spend.tx_hash,
            safe_nonce=spend.safe_nonce,
        )

    @classmethod
    def for_statement(cls, statement: ApprovalStatement) -> SpendAnnouncement:
        """The announcement of the spend an approval statement names (the treasury's side)."""
        return cls(
            proposal_id=statement.proposal_id,
            chain=statement.chain,
            vault_id=statement.vault_id,
            asset=statement.asset,
            amount=statement.amount,
            destination=statement.destination,
            tx_hash=statement.tx_hash,
            safe_nonce=statement.safe_nonce,
        )

    def to_json(self) -> dict[str, str | None]:
        return {
            "format": ANNOUNCEMENT_FORMAT,
            "proposal_id": self.proposal_id,
            "chain": self.chain,
            "vault_id": self.vault_id,
            "asset": self.asset,
            "amount": canonical.encode_uint(self.amount, "amount"),
            "destination": self.destination,
            "tx_hash": self.tx_hash,
            "safe_nonce": None
            if self.safe_nonce is None
            else canonical.encode_uint(self.safe_nonce, "safe_nonce"),
        }

    def encode(self) -> bytes:
        """The canonical bytes the registry logs in full."""
        return canonical.encode(self.to_json())

    def digest(self) -> bytes:
        """SHA-256 of ``encode()``: the registry's key (its ``format`` field separates domains)."""
        return hashlib.sha256(self.encode()).digest()

    @classmethod
    def parse(cls, data: bytes) -> SpendAnnouncement:
        """Decode the canonical bytes strictly (for readers of the registry's events)."""
        obj = canonical.parse(data)
        names = {
            "format",
            "proposal_id",
            "chain",
            "vault_id",
            "asset",
            "amount",
            "destination",
            "tx_hash",
            "safe_nonce",
        }
        if not isinstance(obj, dict) or set(obj) != names:
            raise EncodingError(f"An announcement has exactly the fields {sorted(names)}.")
        if obj["format"] != ANNOUNCEMENT_FORMAT:
            raise EncodingError(f"Unknown announcement format {obj['format']!r}.")
        for name in names - {"safe_nonce"}:
            if not isinstance(obj[name], str) or not obj[name]:
                raise EncodingError(f"The announcement field {name} must be a non-empty string.")
        nonce = obj["safe_nonce"]
        return cls(
            proposal_id=obj["proposal_id"],
            chain=obj["chain"],
            vault_id=obj["vault_id"],
            asset=obj["asset"],
            amount=canonical.decode_uint(obj["amount"], "amount"),
            destination=obj["destination"],
            tx_hash=obj["tx_hash"],
            safe_nonce=None if nonce is None else canonical.decode_uint(nonce, "safe_nonce"),
        )


def encode_veto(signed: SignedStatement) -> bytes:
    """A signed VETO statement as the canonical bytes submitted to the registry."""
    if signed.statement.kind is not StatementKind.VETO:
        raise EncodingError("Only a VETO statement is submitted to the window registry.")
    return canonical.encode(
        {
            "statement": signed.statement.to_json(),
            "key_id": signed.key_id,
            "signature": signed.signature.to_json(),
        }
    )


def decode_veto(data: bytes) -> SignedStatement:
    """The inverse of ``encode_veto``; anything else is an ``EncodingError``."""
    obj = canonical.parse(data)
    if not isinstance(obj, dict) or set(obj) != {"statement", "key_id", "signature"}:
        raise EncodingError("A submitted veto has exactly statement, key_id and signature.")
    if not isinstance(obj["key_id"], str) or not obj["key_id"]:
        raise EncodingError("A submitted veto's key_id must be a non-empty string.")
    statement = ApprovalStatement.from_json(obj["statement"])
    if statement.kind is not StatementKind.VETO:
        raise EncodingError("A submitted veto must be a VETO statement.")
    return SignedStatement(statement, obj["key_id"], signature_from_json(obj["signature"]))


@dataclass(frozen=True)
class DelayRule:
    """The signed policy's window: its length and, per asset, the amount from which it applies."""

    window_seconds: int
    thresholds: Mapping[str, int]
    """Asset code to base units; an asset not listed is under the window at any amount."""

    def applies(self, asset: str, amount: int) -> bool:
        threshold = self.thresholds.get(asset)
        return threshold is None or amount >= threshold


def _count(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DelayWindowError(
            f"The signed policy's {where} must be a non-negative integer, got {value!r}; the "
            "signer cannot tell which spends wait out a window."
        )
    return value


def delay_rule(document: str | None) -> DelayRule | None:
    """The window the signed policy document sets, or ``None`` if it sets none.

    A document that is not a JSON object, or has no ``veto_window_seconds``, sets none. One
    that has it must state it and every asset's ``veto_threshold`` as integers: a malformed
    rule is refused rather than read as 'no window'.
    """
    if document is None:
        return None
    try:
        data = json.loads(document)
    except ValueError:
        return None
    if not isinstance(data, dict) or "veto_window_seconds" not in data:
        return None
    window = _count(data["veto_window_seconds"], "veto_window_seconds")
    assets = data.get("assets")
    if not isinstance(assets, dict):
        raise DelayWindowError("The signed policy sets a veto window but no per-asset limits.")
    thresholds: dict[str, int] = {}
    for code, limits in assets.items():
        if not isinstance(limits, dict) or "veto_threshold" not in limits:
            raise DelayWindowError(f"The signed policy gives {code} no veto_threshold.")
        thresholds[code] = _count(limits["veto_threshold"], f"assets.{code}.veto_threshold")
    return DelayRule(window, MappingProxyType(thresholds))


@dataclass(frozen=True)
class WindowObservation:
    """What the services chain says at one block about one announcement and one proposal."""

    chain_id: int
    registry: str
    block_number: int
    block_time: datetime
    """The block's own timestamp (UTC): the clock the window is judged by."""
    announced_at: datetime | None
    """When the announcement was recorded, or ``None`` if it is not in the registry."""
    vetoes: tuple[bytes, ...]
    """Every veto submitted for the proposal, raw, as logged; the signer verifies each."""


class SpendWindowReader(Protocol):
    """The services chain as the signer reads it (``custody.ethereum.announcements``)."""

    def observe(self, announcement_digest: bytes, proposal: bytes) -> WindowObservation:
        """Read the announcement's time and the proposal's vetoes at the latest block."""
        ...


@dataclass(frozen=True)
class WindowVerdict:
    """A window that has passed with no veto: what the signer saw, for screens and logs."""

    announcement_digest: str
    announced_at: datetime
    opens_at: datetime
    block_number: int
    block_time: datetime
    registry: str


def _genuine_veto(
    state: RosterState, raw: bytes, proposal_id: str, require_user_verification: bool
) -> SignedStatement | None:
    """The veto in ``raw`` if it is a genuine officer's veto of this proposal; else ``None``."""
    try:
        signed = decode_veto(raw)
        if signed.statement.proposal_id != proposal_id:
            return None
        verify_veto(state, signed, require_user_verification=require_user_verification)
    except AuthorityError as exc:
        log.warning(
            "ignored a submitted veto that does not verify",
            extra={"proposal_id": proposal_id, "reason": str(exc)},
        )
        return None
    return signed


def check_delay_window(
    state: RosterState,
    spend: SpendUnderReview,
    proposal_id: str,
    reader: SpendWindowReader | None,
    *,
    require_user_verification: bool = True,
) -> WindowVerdict | None:
    """Refuse unless the signed policy's window for ``spend`` is announced, over and unvetoed.

    Returns ``None`` when the policy puts the spend under no window (and no genuine veto is
    on chain, if a reader is given); the verdict otherwise. Raises ``VetoedOnChainError``,
    ``NotAnnouncedError``, ``WindowOpenError`` (with ``opens_at``) or
    ``ServicesChainRequiredError``.
    """
    rule = delay_rule(state.policy_document)
    required = rule is not None and rule.applies(spend.asset, spend.amount)
    if reader is None:
        if required:
            raise ServicesChainRequiredError(
                f"The signed policy puts this spend of {spend.amount} {spend.asset} under a "
                "public delay window, but this signer has no services chain to read it from; "
                "configure the services chain RPC and window registry."
            )
        return None
    announcement = SpendAnnouncement.for_spend(proposal_id, spend)
    seen = reader.observe(announcement.digest(), proposal_key(proposal_id))
    for raw in seen.vetoes:
        veto = _genuine_veto(state, raw, proposal_id, require_user_verification)
        if veto is not None:
            statement = veto.statement
            raise VetoedOnChainError(
                f"Officer {statement.officer_id} ({statement.institution}) vetoed proposal "
                f"{proposal_id} on the services chain (registry {seen.registry}); a veto is "
                "final: nothing is signed."
            )
    if rule is None or not required:
        return None
    if seen.announced_at is None:
        raise NotAnnouncedError(
            f"The spend of {spend.amount} {spend.asset} to {spend.destination} (proposal "
            f"{proposal_id}, transaction {spend.tx_hash}) is at or above the signed policy's "
            f"veto threshold but is not announced in the window registry {seen.registry} on "
            f"chain {seen.chain_id}; announce it and wait {rule.window_seconds} s."
        )
    opens_at = seen.announced_at + timedelta(seconds=rule.window_seconds)
    if seen.block_time < opens_at:
        raise WindowOpenError(
            f"The veto window of proposal {proposal_id} runs until {opens_at.isoformat()} "
            f"(services chain time; it is {seen.block_time.isoformat()} at block "
            f"{seen.block_number}); the spend can be signed from then on if no one vetoes it.",
            opens_at,
        )
    return WindowVerdict(
        announcement_digest=announcement.digest().hex(),
        announced_at=seen.announced_at,
        opens_at=opens_at,
        block_number=seen.block_number,
        block_time=seen.block_time,
        registry=seen.registry,
    )


def utc_from_timestamp(seconds: int) -> datetime:
    """A block's Unix timestamp as an aware UTC time."""
    return datetime.fromtimestamp(seconds, UTC)

"""The signer checks what it signs: decode the SafeTx, compare it with the approval, then sign.

An institution's officers approve an *action* they can read (send 1.5 ETH to X; send 100 tokens
of Y to Z; replace owner A by B) together with its SafeTx hash. The signer refuses anything it
cannot decode into such an action (DELEGATECALL, calls to contracts off its allowlist, gas
refunds paid by the vault) and anything that differs, field by field, from what was approved.
Only then does it recombine the institution's seed from shares, check its fingerprint, sign the
hash and wipe the seed.

The approval it compares with is still a database row, though. So the signer also requires the
officers' authority (``AuthorityEvidence``: the roster chain and the signed statements) and
checks, after recombining the seed and before signing, that the roster genesis is its own
ceremony's, that the chain replays, and that a quorum of statements names exactly the transfer it
decoded from the SafeTx (``spend_under_review``): chain id, Safe, asset, amount, recipient,
SafeTx hash and nonce.

The one other way to a signature is ``BreakGlass``: the share holders' explicit emergency choice,
with a reason. The statement check is skipped (so it is also how an owner rotation, which no
payment statement covers, is signed), a warning is logged and the result says so; executing a
break-glass SafeTx needs every owner's signature (``SafeVaults.execute``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime

from eth_abi.abi import decode
from eth_abi.exceptions import DecodingError
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address

from custody.authority.errors import AuthorizationError, StatementMismatchError
from custody.authority.gate import (
    Authority,
    AuthorityEvidence,
    BreakGlass,
    approvers_line,
    check_before_signing,
)
from custody.authority.quorum import SpendUnderReview, VerifiedAuthorization
from custody.authority.statement import EVM_CHAIN_PREFIX
from custody.clock import Clock, utc_now
from custody.ethereum.erc20 import TokenNotInRegistryError, decode_token_call
from custody.ethereum.safe_signature import OwnerSignature, sign_safe_tx_hash
from custody.ethereum.safe_tx import ZERO_ADDRESS, Operation, SafeTx, checksum_address
from custody.exceptions import (
    ApprovalMismatchError,
    DelegateCallRefusedError,
    NotAnOwnerError,
    UnsupportedActionError,
    WrongChainError,
)
from custody.keys import signing_keys
from custody.shamir import ShareMnemonic, combine_shares

log = logging.getLogger(__name__)

SWAP_OWNER_SELECTOR = function_signature_to_4byte_selector("swapOwner(address,address,address)")
SWAP_OWNER_CALLDATA_BYTES = 4 + 3 * 32
WEI_PER_ETHER = 10**18
ETHER_ASSET = "ETH"
"""The asset code statements name for ether (amounts in wei)."""
ERC20_ASSET_PREFIX = "ERC20:"
"""Statements name a token ``ERC20:<EIP-55 checksummed contract>`` -- the treasury ledger's code."""


@dataclass(frozen=True)
class EtherTransfer:
    """A transfer of the chain's native coin (ether, or BNB on BNB Chain; 18 decimals)."""

    to: str
    amount_wei: int
    asset: str = ETHER_ASSET
    """The asset code statements name for the chain's native coin (``SigningPolicy``)."""

    def describe(self) -> str:
        whole, frac = divmod(self.amount_wei, WEI_PER_ETHER)
        ether = f"{whole}.{frac:018d}".rstrip("0").rstrip(".")
        return f"send {ether} {self.asset} ({self.amount_wei} wei) to {self.to}"


@dataclass(frozen=True)
class TokenTransfer:
    token: str
    to: str
    amount: int
    """In the token's base units."""

    def describe(self) -> str:
        return f"send {self.amount} base units of token {self.token} to {self.to}"


@dataclass(frozen=True)
class OwnerSwap:
    prev_owner: str
    old_owner: str
    new_owner: str

    def describe(self) -> str:
        return f"replace Safe owner {self.old_owner} by {self.new_owner}"


Action = EtherTransfer | TokenTransfer | OwnerSwap


@dataclass(frozen=True)
class SigningPolicy:
    """What a signer may sign beyond plain ether transfers and its own Safe's owner swaps.

    The token registry is handed in as data by whoever builds the signer (the treasury's wiring
    passes the tokens it tracks on the Safe's chain), never looked up by the signer itself. It
    only narrows what may be signed: a registered token's transfer is still signed only when a
    quorum of the officers' statements names that contract (asset ``ERC20:<contract>``),
    recipient and amount.
    """

    allowed_tokens: frozenset[str] = frozenset()
    """The token registry: ERC-20 contracts whose ``transfer(to, amount)`` may be signed."""
    chain_id: int | None = None
    """The chain this signer signs for; a SafeTx made for another chain id is refused before
    anything is decoded (``None``: the SafeTx's own, as before chains were more than one)."""
    native_asset: str = ETHER_ASSET
    """The asset code statements name for the chain's native coin (``ETH``; ``BNB`` on BNB
    Chain), so the policy's ceiling, allowlist and veto threshold of that coin apply to it."""

    def __post_init__(self) -> None:
        normalised = frozenset(checksum_address(a, "allowed_tokens") for a in self.allowed_tokens)
        object.__setattr__(self, "allowed_tokens", normalised)


def _refuse_gas_refunds(safe_tx: SafeTx) -> None:
    """The relayer pays gas; a refund from the vault is a payment nobody reviewed."""
    for name in ("safe_tx_gas", "base_gas", "gas_price"):
        if getattr(safe_tx, name) != 0:
            raise UnsupportedActionError(
                f"The SafeTx field '{name}' is {getattr(safe_tx, name)}; the signer only signs "
                "transactions whose gas is paid by the relayer (all gas fields 0)."
            )
    for name in ("gas_token", "refund_receiver"):
        if getattr(safe_tx, name) != ZERO_ADDRESS:
            raise UnsupportedActionError(
                f"The SafeTx field '{name}' is {getattr(safe_tx, name)}; the signer does not sign "
                "gas refunds paid by the vault."
            )


def _decode_swap_owner(data: bytes) -> OwnerSwap | None:
    if len(data) != SWAP_OWNER_CALLDATA_BYTES or data[:4] != SWAP_OWNER_SELECTOR:
        return None
    try:
        prev, old, new = decode(["address", "address", "address"], data[4:], strict=True)
    except DecodingError:
        return None
    return OwnerSwap(to_checksum_address(prev), to_checksum_address(old), to_checksum_address(new))


def decode_action(safe_tx: SafeTx, policy: SigningPolicy) -> Action:
    """The reviewed action ``safe_tx`` performs, or the specific refusal."""
    if safe_tx.operation is not Operation.CALL:
        raise DelegateCallRefusedError(
            f"The SafeTx field 'operation' is DELEGATECALL to {safe_tx.to}: it would run that "
            "code with the Safe's own storage and funds, so the signer never signs it."
        )
    if policy.chain_id is not None and safe_tx.chain_id != policy.chain_id:
        raise WrongChainError(
            f"The SafeTx field 'chain_id' is {safe_tx.chain_id}, but this signer signs for chain "
            f"{policy.chain_id} ({policy.native_asset}); refusing to sign."
        )
    _refuse_gas_refunds(safe_tx)
    if not safe_tx.data:
        return EtherTransfer(to=safe_tx.to, amount_wei=safe_tx.value, asset=policy.native_asset)
    if safe_tx.to == safe_tx.safe:
        swap = _decode_swap_owner(safe_tx.data)
        if swap is None or safe_tx.value != 0:
            raise UnsupportedActionError(
                "The SafeTx calls the Safe itself with something other than swapOwner(prevOwner, "
                "oldOwner, newOwner) and zero value; the signer does not sign other settings changes."
            )
        return swap
    if safe_tx.to not in policy.allowed_tokens:
        raise TokenNotInRegistryError(
            f"The SafeTx field 'to' is {safe_tx.to}, a call with data to a contract that is not "
            "in the signer's token registry; only transfer calls to a registered token are signed."
        )
    transfer = decode_token_call(safe_tx.to, safe_tx.value, safe_tx.data)
    return TokenTransfer(token=safe_tx.to, to=transfer[0], amount=transfer[1])


@dataclass(frozen=True)
class Approval:
    """What the institution's officers reviewed: the SafeTx, its hash and the decoded action."""

    safe_tx: SafeTx
    safe_tx_hash: bytes
    action: Action

    def describe(self) -> str:
        return (
            f"{self.action.describe()} from Safe {self.safe_tx.safe} on chain "
            f"{self.safe_tx.chain_id} (nonce {self.safe_tx.nonce}); SafeTx hash "
            f"0x{self.safe_tx_hash.hex()}"
        )


def approve(safe_tx: SafeTx, policy: SigningPolicy) -> Approval:
    """Decode ``safe_tx`` for review; refusals happen here already, before anyone is asked."""
    return Approval(
        safe_tx=safe_tx, safe_tx_hash=safe_tx.hash, action=decode_action(safe_tx, policy)
    )


def check_against_approval(safe_tx: SafeTx, approval: Approval, policy: SigningPolicy) -> Action:
    """Refuse unless ``safe_tx`` is, field by field and by hash, what was approved."""
    for spec in fields(SafeTx):
        if not spec.compare:
            continue
        approved, actual = getattr(approval.safe_tx, spec.name), getattr(safe_tx, spec.name)
        if approved != actual:
            raise ApprovalMismatchError(
                f"The SafeTx field '{spec.name}' differs from what was approved "
                f"({actual!r} instead of {approved!r}); refusing to sign."
            )
    if safe_tx.hash != approval.safe_tx_hash:
        raise ApprovalMismatchError(
            f"The SafeTx hash is {safe_tx.hash_hex}, but 0x{approval.safe_tx_hash.hex()} was "
            "approved; refusing to sign."
        )
    action = decode_action(safe_tx, policy)
    if action != approval.action:
        raise ApprovalMismatchError(
            f"The SafeTx decodes to '{action.describe()}', but '{approval.action.describe()}' "
            "was approved; refusing to sign."
        )
    return action


class KeyQuorum:
    """An institution's share holders at the signing table: shares, passphrase, expected fingerprint.

    Holds secrets only for the duration of one signing; it never prints or pickles them.
    """

    __slots__ = ("_passphrase", "_shares", "fingerprint", "institution")

    def __init__(
        self, institution: str, shares: Sequence[ShareMnemonic], passphrase: str, fingerprint: str
    ) -> None:
        self.institution = institution
        self.fingerprint = fingerprint.lower()
        self._shares = tuple(shares)
        self._passphrase = passphrase

    def __repr__(self) -> str:
        return (
            f"KeyQuorum(institution={self.institution!r}, fingerprint={self.fingerprint!r}, "
            f"shares=<{len(self._shares)} redacted>, passphrase=<redacted>)"
        )

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("Key quorums are not picklable: they hold share words.")

    def sign_hash(self, safe_tx_hash: bytes, expected_owner: str) -> OwnerSignature:
        """Recombine the seed, check its fingerprint and owner address, sign, wipe."""
        return self._sign(safe_tx_hash, expected_owner, None)[0]

    def sign_hash_authorized(
        self,
        safe_tx_hash: bytes,
        expected_owner: str,
        authority: AuthorityEvidence,
        spend: SpendUnderReview,
        now: datetime,
    ) -> tuple[OwnerSignature, VerifiedAuthorization]:
        """As ``sign_hash``, but verify the officers' authority for ``spend`` before signing.

        The check needs the recombined root (the genesis must carry this seed's ceremony key),
        so it runs inside the one window where the seed exists, after the fingerprint and owner
        checks and before the signature.
        """
        signature, authorization = self._sign(safe_tx_hash, expected_owner, (authority, spend, now))
        if authorization is None:  # _sign returns one whenever it is given evidence
            raise AuthorizationError("The officers' authority was not checked.")
        return signature, authorization

    def _sign(
        self,
        safe_tx_hash: bytes,
        expected_owner: str,
        gate: tuple[AuthorityEvidence, SpendUnderReview, datetime] | None,
    ) -> tuple[OwnerSignature, VerifiedAuthorization | None]:
        seed = combine_shares(self._shares, self._passphrase)
        with signing_keys(seed, self.fingerprint) as keys:
            address = keys.eth_key.public_key.to_checksum_address()
            if address != expected_owner:
                raise NotAnOwnerError(
                    f"The key of institution {self.institution!r} (fingerprint "
                    f"{self.fingerprint}) is {address}, not the roster's owner {expected_owner}."
                )
            authorization = None
            if gate is not None:
                authority, spend, now = gate
                authorization = check_before_signing(keys.bitcoin_root, authority, spend, now)
            return sign_safe_tx_hash(keys.eth_key, safe_tx_hash), authorization


def spend_under_review(safe_tx: SafeTx, action: Action) -> SpendUnderReview:
    """What ``safe_tx`` does, as statements name it: decoded from the SafeTx, never from a row.

    ``action`` must be ``decode_action(safe_tx, ...)``. Ether: asset ``ETH``, amount in wei, the
    call's ``to``; a token: asset ``ERC20:<checksummed contract>``, the ``transfer`` recipient
    and amount. An owner swap is not a payment and no approval statement covers it.
    """
    if isinstance(action, EtherTransfer):
        asset, amount, destination = action.asset, action.amount_wei, action.to
    elif isinstance(action, TokenTransfer):
        asset, amount, destination = ERC20_ASSET_PREFIX + action.token, action.amount, action.to
    else:
        raise StatementMismatchError(
            f"The SafeTx would {action.describe()}; approval statements authorise payments "
            "only, so this action cannot be signed on their authority."
        )
    return SpendUnderReview(
        chain=f"{EVM_CHAIN_PREFIX}{safe_tx.chain_id}",
        vault_id=safe_tx.safe,
        asset=asset,
        amount=amount,
        destination=destination,
        tx_hash=safe_tx.hash_hex,
        fee=None,
        safe_nonce=safe_tx.nonce,
    )


@dataclass(frozen=True)
class SignedSafeTx:
    """One institution's signing call's outcome: its owner signature, the action it signed, and
    on whose authority: the verified approvers, or the holders' break-glass reason."""

    signature: OwnerSignature
    action: Action
    authorization: VerifiedAuthorization | None
    """Whose statements the signer verified; ``None`` exactly when it signed under break-glass."""
    break_glass: str | None = None
    """The share holders' reason when they signed under break-glass (no statements checked)."""


def cosign_safe_tx(
    safe_tx: SafeTx,
    approval: Approval,
    policy: SigningPolicy,
    quorum: KeyQuorum,
    expected_owner: str,
    *,
    authority: Authority,
    clock: Clock = utc_now,
) -> SignedSafeTx:
    """Sign ``safe_tx`` if it is exactly what ``approval`` shows (and what the officers signed).

    The order: the SafeTx against the approval (``check_against_approval``), then the seed is
    recombined and its fingerprint and owner address checked, then the authority, and only then
    the hash is signed. Any failure raises before the signature.

    ``authority`` is required. ``AuthorityEvidence`` is checked against the transfer decoded
    from the SafeTx (``check_before_signing`` with this seed's root and ``clock()``); the result
    names the approvers. ``BreakGlass`` skips that check: the signer logs a warning naming the
    Safe, SafeTx hash, fingerprint and reason and returns ``authorization=None,
    break_glass=reason``.
    """
    action = check_against_approval(safe_tx, approval, policy)
    authorization = None
    break_glass = None
    if isinstance(authority, BreakGlass):
        break_glass = authority.reason
        signature = quorum.sign_hash(safe_tx.hash, expected_owner)
        log.warning(
            "BREAK-GLASS signature without the officers' statements: safe=%s safe_tx_hash=%s "
            "institution=%s fingerprint=%s reason=%s",
            safe_tx.safe,
            safe_tx.hash_hex,
            quorum.institution,
            quorum.fingerprint,
            break_glass,
            extra={"safe_tx_hash": safe_tx.hash_hex, "institution": quorum.institution},
        )
    elif isinstance(authority, AuthorityEvidence):
        spend = spend_under_review(safe_tx, action)
        signature, authorization = quorum.sign_hash_authorized(
            safe_tx.hash, expected_owner, authority, spend, clock()
        )
        log.info(
            "SafeTx authorised",
            extra={
                "safe_tx_hash": safe_tx.hash_hex,
                "institution": quorum.institution,
                "proposal_id": authorization.proposal_id,
                "approvers": approvers_line(authorization),
            },
        )
    else:
        raise TypeError(
            "The signer needs the officers' AuthorityEvidence or an explicit BreakGlass, not "
            f"{type(authority).__name__}."
        )
    log.info(
        "signed SafeTx",
        extra={
            "safe_tx_hash": safe_tx.hash_hex,
            "institution": quorum.institution,
            "action": action.describe(),
        },
    )
    return SignedSafeTx(signature, action, authorization, break_glass)


def sign_approved(
    safe_tx: SafeTx,
    approval: Approval,
    policy: SigningPolicy,
    quorum: KeyQuorum,
    expected_owner: str,
    *,
    authority: Authority,
    clock: Clock = utc_now,
) -> OwnerSignature:
    """Sign ``safe_tx`` for ``quorum``'s institution if it is exactly what ``approval`` shows.

    ``authority`` (required: the officers' evidence, or an explicit ``BreakGlass``) is handled
    as ``cosign_safe_tx`` describes; ``cosign_safe_tx`` also returns whose approvals were
    verified.
    """
    return cosign_safe_tx(
        safe_tx, approval, policy, quorum, expected_owner, authority=authority, clock=clock
    ).signature

"""The offline signer: review a signing request, then sign it with the holders' shares.

It is custody's own signer, run on a file: ``review`` decodes the transaction from its bytes with
the signer's checks (``check_psbt`` against the vault; ``approve`` of the SafeTx), replays the
roster chain and checks the statements against what it decoded, all before any share is read, so
the holders see in coin units what they would sign and whose approvals authorise it -- or a
refusal. ``sign_request`` then recombines the seed and calls the chain's signer
(``cosign_psbt``, ``cosign_safe_tx``), which checks everything again with the seed's root (the
roster genesis must be this institution's ceremony's) and only then signs.

No break-glass here: a file carries the officers' statements or it is not signed off-line. No
services chain either (the machine has no network): a spend the signed policy puts under a
public delay window is refused (``ServicesChainRequiredError``); sign those on-line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from custody.airgap.psbt_files import psbt_base64
from custody.airgap.request import BitcoinPart, SafePart, SigningRequest
from custody.authority.gate import approvers_line
from custody.authority.quorum import SpendUnderReview, VerifiedAuthorization, verify_authorization
from custody.authority.roster import replay
from custody.bitcoin.approval import FeePolicy
from custody.bitcoin.signer import check_psbt, cosign_psbt
from custody.bitcoin.signer import spend_under_review as bitcoin_spend
from custody.clock import Clock, utc_now
from custody.ethereum.safe_signature import OwnerSignature
from custody.ethereum.signer import (
    KeyQuorum,
    approve,
    cosign_safe_tx,
)
from custody.ethereum.signer import spend_under_review as safe_spend
from custody.exceptions import FingerprintMismatchError, NotACosignerError, NotAnOwnerError
from custody.keys import signing_keys
from custody.shamir import ShareMnemonic, combine_shares

SATS_PER_BTC = 100_000_000


def btc_units(sats: int) -> str:
    """``0.10000000 BTC (10000000 sat)``: coin units for people, base units for exactness."""
    return f"{Decimal(sats) / SATS_PER_BTC:.8f} BTC ({sats} sat)"


@dataclass(frozen=True)
class Review:
    """What the holders are shown before they give their shares."""

    spend: SpendUnderReview
    authorization: VerifiedAuthorization
    lines: tuple[str, ...]


def _bitcoin_lines(
    request: SigningRequest, part: BitcoinPart
) -> tuple[SpendUnderReview, list[str]]:
    checked = check_psbt(part.psbt, part.descriptor, part.approval, FeePolicy())
    spend = bitcoin_spend(part.psbt, part.descriptor)
    if request.signer.fingerprint not in part.descriptor.fingerprints:
        raise NotACosignerError(
            f"The request is for the key {request.signer.fingerprint}, which is not a cosigner of "
            f"vault {part.vault_name!r}."
        )
    return spend, [
        f"Bitcoin spend from vault {part.vault_name} on {spend.chain}",
        f"  pay {btc_units(spend.amount)} to {spend.destination}",
        f"  change back to the vault: {btc_units(checked.change_sats)}",
        f"  fee: {btc_units(checked.fee_sats)} (about {checked.fee_rate_sat_vb:.1f} sat/vB)",
        f"  inputs: {checked.input_count}; unsigned txid: {checked.unsigned_txid}",
    ]


def _safe_lines(part: SafePart) -> tuple[SpendUnderReview, list[str]]:
    policy = part.policy()
    approval = approve(part.safe_tx, policy)
    spend = safe_spend(part.safe_tx, approval.action)
    return spend, [
        f"Safe transaction from vault {part.vault_name} on {spend.chain}",
        f"  {approval.describe()}",
        f"  signing owner: {part.owner}",
    ]


def review(request: SigningRequest, *, clock: Clock = utc_now) -> Review:
    """Decode and check the request as the signer will, before any share is read.

    Raises the signer's typed refusal (a foreign input or output, an absurd fee, an unsupported
    Safe call, statements that do not authorise exactly this spend) and reads no share.
    """
    part = request.transaction
    spend, lines = (
        _bitcoin_lines(request, part) if isinstance(part, BitcoinPart) else _safe_lines(part)
    )
    authorization = verify_authorization(
        replay(request.evidence.records), request.evidence.statements, spend, clock()
    )
    lines += [
        f"  proposal {authorization.proposal_id}, approved by {approvers_line(authorization)}",
        f"  signing for {request.signer.institution} (seed fingerprint {request.signer.fingerprint})",
    ]
    return Review(spend, authorization, tuple(lines))


@dataclass(frozen=True)
class Signed:
    """The offline signer's result: what to write, and whose approvals it verified."""

    authorization: VerifiedAuthorization
    psbt_text: str | None = None
    """Bitcoin: the PSBT with this institution's signatures (base64)."""
    signature: OwnerSignature | None = None
    """Safe: this institution's owner signature of the SafeTx hash."""


def _check_fingerprint(request: SigningRequest, expected: str | None) -> None:
    if expected is not None and expected.lower() != request.signer.fingerprint:
        raise FingerprintMismatchError(
            f"The request asks for the key with fingerprint {request.signer.fingerprint}, but "
            f"the holders expect their institution's key {expected.lower()}; refusing it."
        )


def sign_request(
    request: SigningRequest,
    shares: Sequence[ShareMnemonic],
    passphrase: str,
    *,
    expected_fingerprint: str | None = None,
    clock: Clock = utc_now,
) -> Signed:
    """Sign ``request`` with the holders' shares, through custody's own signers.

    The order: the holders' expected fingerprint (if given), then the chain's signer -- the
    transaction against the vault, the seed recombined and its fingerprint checked, the roster
    anchored in it, the statements -- and only then the signature. Anything wrong raises before
    a signature exists. A Bitcoin request's PSBT may carry other institutions' signatures
    already; they stay in the signed PSBT, so the file shows the spend's progress (``analyzepsbt``)
    and the coordinator keeps only this institution's (``merge_signatures``).
    """
    _check_fingerprint(request, expected_fingerprint)
    part = request.transaction
    if isinstance(part, BitcoinPart):
        seed = combine_shares(shares, passphrase)
        with signing_keys(seed, request.signer.fingerprint, part.descriptor.network) as keys:
            signed = cosign_psbt(
                psbt_base64(part.psbt),
                part.descriptor,
                part.approval,
                keys,
                authority=request.evidence,
                clock=clock,
            )
        if signed.authorization is None:  # evidence always yields one; never break-glass here
            raise NotACosignerError("The signer did not verify the officers' statements.")
        return Signed(signed.authorization, psbt_text=signed.psbt)
    quorum = KeyQuorum(request.signer.institution, shares, passphrase, request.signer.fingerprint)
    policy = part.policy()
    result = cosign_safe_tx(
        part.safe_tx,
        approve(part.safe_tx, policy),
        policy,
        quorum,
        part.owner,
        authority=request.evidence,
        clock=clock,
    )
    if result.authorization is None:
        raise NotAnOwnerError("The signer did not verify the officers' statements.")
    return Signed(result.authorization, signature=result.signature)

"""Checks that the bundle is whole and signed: digest, both signatures, separate roles, chain.

Each check returns its ok reason or raises with the failure reason.
"""

from __future__ import annotations

from eth_keys.datatypes import Signature
from eth_keys.exceptions import BadSignature
from eth_utils.exceptions import ValidationError

from reserve_verifier.bundle import BUNDLE_FORMAT, GENESIS_DIGEST_HEX, Bundle, BundleLike
from reserve_verifier.context import Context
from reserve_verifier.exceptions import VerifierError
from reserve_verifier.fields import signature_bytes

ROLES = ("treasury", "auditor")
"""The two signers of every bundle, in report order."""


def check_digest(ctx: Context) -> str:
    """The body is an attestation, and the stated digest (if any) is its SHA-256."""
    if ctx.body.get("format") != BUNDLE_FORMAT:
        raise VerifierError("The body is not a national-reserve attestation.")
    stated = ctx.bundle.stated_digest
    if stated is not None and stated != ctx.digest.hex():
        raise VerifierError(
            f"The bundle states digest {stated} but its body hashes to {ctx.digest.hex()}."
        )
    return f"SHA-256 of the canonical body is {ctx.digest.hex()}"


def check_signature(ctx: Context, role: str) -> str:
    """``role``'s signature of the digest recovers the public key the body lists for it."""
    listed = ctx.body["signers"][role]
    text = ctx.bundle.signatures.get(role)
    if not text:
        raise VerifierError(f"The {role} signature is missing.")
    try:
        signature = Signature(signature_bytes(text, f"{role} signature"))
        recovered = signature.recover_public_key_from_msg_hash(ctx.digest)
    except (BadSignature, ValidationError) as error:
        raise VerifierError(f"The {role} signature is malformed ({error}).") from None
    if recovered.to_bytes().hex() != listed["public_key"]:
        raise VerifierError(
            f"The {role} signature is by {recovered.to_checksum_address()}, not the listed {role} key {listed['address']}."
        )
    if recovered.to_checksum_address() != listed["address"]:
        raise VerifierError(f"The listed {role} address does not match its public key.")
    return f"signed by {listed['address']}"


def check_roles(ctx: Context) -> str:
    """The treasury and the audit office sign with two different keys."""
    signers = ctx.body["signers"]
    if signers["treasury"]["public_key"] == signers["auditor"]["public_key"]:
        raise VerifierError("The treasury and the audit office list the same key.")
    return "treasury and audit office sign with separate keys"


def check_chain(ctx: Context, previous: BundleLike | None) -> str:
    """The sequence and previous digest are consistent, and follow ``previous`` if given."""
    sequence = ctx.body["sequence"]
    previous_digest = ctx.body["previous_digest"]
    if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 1:
        raise VerifierError(f"The sequence {sequence!r} is not a positive integer.")
    if (sequence == 1) != (previous_digest == GENESIS_DIGEST_HEX):
        raise VerifierError(
            f"Attestation chain gap: attestation {sequence} names previous digest {previous_digest}; only the first may name none."
        )
    if previous is None:
        return (
            f"attestation {sequence}, previous {previous_digest}: not compared with a previous "
            "bundle (pass --previous)"
        )
    earlier = Bundle.of(previous)
    if earlier.digest.hex() != previous_digest:
        raise VerifierError(
            f"Attestation chain gap: the previous bundle's digest is {earlier.digest.hex()}, but this one names {previous_digest}."
        )
    if earlier.sequence + 1 != sequence:
        raise VerifierError(
            f"Attestation chain gap: the previous bundle is number {earlier.sequence}, this one is {sequence}."
        )
    return f"attestation {sequence} follows {previous_digest}"

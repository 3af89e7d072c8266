"""Proof of control for Safe vaults: the owners' EIP-1271 signature of a 32-byte digest.

Safe v1.4.1 with the ``CompatibilityFallbackHandler`` answers ``isValidSignature(bytes32 hash,
bytes signature)`` by checking the owners' signatures over the EIP-712 ``SafeMessage`` hash of
``abi.encode(hash)`` (``getMessageHash``). This module computes that SafeMessage hash with our
own EIP-712 encoder, compares it with the Safe's own, lets each institution's share quorum sign
it, and checks that the Safe accepts the packed signatures.

Custody signs the digest it is given. A signature of a message is as powerful as the message
lets it be: a 32-byte hash may be a token permit or an exchange order. So the digest must come
from a caller that derived it itself from a document it checked: for attestations,
``treasury.attest.proofs`` derives it from the attestation body (``reporting.bundle``) and checks
that the body asks this Safe for a proof of control; nothing else calls this module.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from eth_abi.abi import decode, encode
from eth_utils.abi import function_signature_to_4byte_selector

from custody.ethereum.eip712 import StructTypes, hash_struct, typed_data_digest
from custody.ethereum.safe_signature import OwnerSignature, pack_signatures
from custody.ethereum.safe_tx import checksum_address
from custody.ethereum.safe_vaults import SafeVaults
from custody.ethereum.signer import KeyQuorum
from custody.exceptions import (
    MissingSignaturesError,
    NotAnOwnerError,
    SafeMessageError,
    SafeMessageHashMismatchError,
)

log = logging.getLogger(__name__)

SAFE_MESSAGE_TYPES: StructTypes = {
    "EIP712Domain": [("chainId", "uint256"), ("verifyingContract", "address")],
    "SafeMessage": [("message", "bytes")],
}
"""The Safe's EIP-712 types for off-chain messages (``SAFE_MSG_TYPEHASH``)."""
EIP1271_MAGIC_VALUE = bytes.fromhex("1626ba7e")
"""``isValidSignature(bytes32,bytes)``'s answer for a valid signature (EIP-1271)."""
DIGEST_BYTES = 32
"""``isValidSignature``'s ``bytes32 hash``."""
_GET_MESSAGE_HASH = function_signature_to_4byte_selector("getMessageHash(bytes)")
_IS_VALID_SIGNATURE = function_signature_to_4byte_selector("isValidSignature(bytes32,bytes)")


def digest_message(digest: bytes) -> bytes:
    """The SafeMessage the handler checks for ``isValidSignature(digest, ...)``: ``abi.encode(digest)``."""
    if len(digest) != DIGEST_BYTES:
        raise SafeMessageError(f"An EIP-1271 digest is {DIGEST_BYTES} bytes, not {len(digest)}.")
    return encode(["bytes32"], [digest])


def safe_message_hash(chain_id: int, safe: str, message: bytes) -> bytes:
    """Our own EIP-712 hash of ``SafeMessage(message)`` for the Safe at ``safe`` on ``chain_id``."""
    domain = hash_struct(
        "EIP712Domain",
        SAFE_MESSAGE_TYPES,
        {"chainId": chain_id, "verifyingContract": checksum_address(safe, "safe")},
    )
    return typed_data_digest(
        domain, hash_struct("SafeMessage", SAFE_MESSAGE_TYPES, {"message": message})
    )


def sign_digest(
    vaults: SafeVaults, vault_name: str, digest: bytes, quorums: Sequence[KeyQuorum]
) -> bytes:
    """The Safe's EIP-1271 signature of ``digest``, from a threshold of owner quorums.

    Checks the Safe's owners and threshold on chain against the database, our SafeMessage hash
    against the Safe's ``getMessageHash``, and at the end that ``isValidSignature`` accepts the
    packed signatures. Each quorum recombines its institution's seed, checks the fingerprint and
    owner address, signs and wipes (``KeyQuorum.sign_hash``).
    """
    vault = vaults.vault(vault_name)
    vaults.verify(vault)
    message = digest_message(digest)
    ours = safe_message_hash(vault.chain_id, vault.address, message)
    chain = vaults.chain
    (theirs,) = decode(
        ["bytes32"],
        chain.call(
            vault.address,
            _GET_MESSAGE_HASH + encode(["bytes"], [message]),
            action="compute the Safe's message hash",
        ),
    )
    if bytes(theirs) != ours:
        raise SafeMessageHashMismatchError(
            f"Our SafeMessage hash 0x{ours.hex()} differs from the Safe's 0x{bytes(theirs).hex()}; "
            "is its fallback handler the CompatibilityFallbackHandler? Refusing to sign."
        )
    signatures: list[OwnerSignature] = []
    for quorum in quorums:
        owner = vault.owner(quorum.institution)
        if quorum.fingerprint != owner.fingerprint:
            raise NotAnOwnerError(
                f"The key with fingerprint {quorum.fingerprint} is not {quorum.institution!r}'s "
                f"owner key on vault {vault.name!r} (the roster has {owner.fingerprint})."
            )
        if any(signature.owner == owner.address for signature in signatures):
            continue
        signatures.append(quorum.sign_hash(ours, owner.address))
        if len(signatures) == vault.threshold:
            break
    if len(signatures) < vault.threshold:
        raise MissingSignaturesError(
            f"{len(signatures)} institution(s) signed the digest for vault {vault.name!r}, "
            f"which needs {vault.threshold}."
        )
    packed = pack_signatures(signatures)
    answer = chain.call(
        vault.address,
        _IS_VALID_SIGNATURE + encode(["bytes32", "bytes"], [digest, packed]),
        action="check the Safe's EIP-1271 signature",
    )
    if answer[:4] != EIP1271_MAGIC_VALUE:
        raise SafeMessageError(
            f"The Safe {vault.address} does not accept the owners' signature of the digest "
            f"(isValidSignature returned 0x{answer[:4].hex()})."
        )
    log.info(
        "signed Safe message: vault=%s safe=%s digest=%s institutions=%s",
        vault.name,
        vault.address,
        digest.hex(),
        ",".join(vault.owner_at(signature.owner).institution for signature in signatures),
    )
    return packed

"""Proofs of control for an attestation: the bytes custody signs, derived from the body here.

Custody signs the bytes it is given (``custody.bitcoin.reserve_proof``: a BIP-127 commitment
message and the coins it covers; ``custody.ethereum.safe_message``: an EIP-1271 digest). What
those bytes are for an attestation is the bundle format's business (``reporting.bundle``,
``reporting.attestation``): this module reads the attestation body, refuses anything that is
not one, derives the digest and the commitment message itself (never taking a bare hash from
its caller), and only then hands them to custody. The refusals are custody's own error types,
as the signers raised them before the format knowledge moved up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from custody.bitcoin import reserve_proof
from custody.bitcoin.descriptor import VaultDescriptor
from custody.bitcoin.reserve_proof import ProvenCoin, ReserveClaim, VaultCoin
from custody.ethereum.safe_message import sign_digest
from custody.ethereum.safe_vaults import SafeVaults
from custody.ethereum.signer import KeyQuorum
from custody.exceptions import ReserveProofError, SafeMessageError
from custody.shamir import ShareMnemonic
from reporting.attestation import reserve_commitment_message
from reporting.bundle import BUNDLE_FORMAT, body_digest


def reserve_claim(body: Mapping[str, Any]) -> ReserveClaim:
    """The reserve claim of an attestation body: its commitment message and snapshot coins."""
    if body.get("format") != BUNDLE_FORMAT:
        raise ReserveProofError(
            f"The document to prove reserves for is not a {BUNDLE_FORMAT} body; only attestation "
            "digests are signed through this path."
        )
    try:
        utxos = body["snapshot"]["bitcoin"]["utxos"]
        coins = {
            (str(u["txid"]), int(u["vout"])): (int(u["amount"]), bytes.fromhex(u["script_pubkey"]))
            for u in utxos
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise ReserveProofError(
            f"The attestation body's snapshot.bitcoin.utxos is malformed ({type(exc).__name__})."
        ) from None
    if not coins:
        raise ReserveProofError(
            "The attestation lists no Bitcoin UTXOs: there is nothing to prove."
        )
    message = reserve_commitment_message(body_digest(body)).encode()
    proven = tuple(ProvenCoin(t, v, amount, script) for (t, v), (amount, script) in coins.items())
    return ReserveClaim(message, proven)


def build_reserve_proof(
    body: Mapping[str, Any], coins: Sequence[VaultCoin], vaults: Mapping[str, VaultDescriptor]
) -> str:
    """The unsigned BIP-127 reserve-proof PSBT (base64) of an attestation body."""
    return reserve_proof.build_reserve_proof(reserve_claim(body), coins, vaults)


def sign_reserve_proof_with_shares(
    psbt_text: str,
    body: Mapping[str, Any],
    vaults: Mapping[str, VaultDescriptor],
    shares: Sequence[ShareMnemonic],
    passphrase: str,
    fingerprint: str,
) -> str:
    """One institution's signatures on the attestation's reserve proof (checked before signing)."""
    return reserve_proof.sign_reserve_proof_with_shares(
        psbt_text, reserve_claim(body), vaults, shares, passphrase, fingerprint
    )


def finalize_reserve_proof(
    signed_psbts: Sequence[str], body: Mapping[str, Any], vaults: Mapping[str, VaultDescriptor]
) -> str:
    """The institutions' signatures merged and every vault input finalised (base64 PSBT)."""
    return reserve_proof.finalize_reserve_proof(signed_psbts, reserve_claim(body), vaults)


def _asks_safe(body: Mapping[str, Any], chain_id: int, safe: str) -> bool:
    slots = body.get("proofs_of_control", {}).get("eip1271", [])
    return any(
        slot.get("chain_id") == chain_id
        and str(slot.get("safe_address", "")).lower() == safe.lower()
        for slot in slots
    )


def sign_attestation(
    vaults: SafeVaults, vault_name: str, body: Mapping[str, Any], quorums: Sequence[KeyQuorum]
) -> bytes:
    """The Safe's EIP-1271 signature of the attestation digest, from a threshold of owner quorums.

    Refuses a document that is not an attestation body, and one that does not ask this Safe for
    an EIP-1271 proof, before any seed is recombined.
    """
    if body.get("format") != BUNDLE_FORMAT:
        raise SafeMessageError(
            f"The document is not a {BUNDLE_FORMAT} body; Safe owners sign only attestation digests "
            "through this path."
        )
    vault = vaults.vault(vault_name)
    if not _asks_safe(body, vault.chain_id, vault.address):
        raise SafeMessageError(
            f"The attestation does not ask the Safe {vault.address} on chain {vault.chain_id} "
            "for an EIP-1271 proof."
        )
    return sign_digest(vaults, vault_name, body_digest(body), quorums)

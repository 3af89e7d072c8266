"""The narrow proof-of-control signers: the BIP-127 reserve-proof signer refuses anything that
could be broadcast or that spends a foreign coin; the Safe message signer signs only attestations."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from attest_support import INSTITUTIONS, PASSPHRASES, Reserve, reserve_fixture
from embit.psbt import PSBT
from embit.script import Script
from embit.transaction import TransactionInput, TransactionOutput
from registry_support import asset_registry, snapshot_vaults
from reserve_verifier import VerifierError, check_reserve_psbt
from reserve_verifier.evm import EIP1271_MAGIC, eip1271_call
from sqlalchemy.orm import sessionmaker
from web3 import Web3

from custody.bitcoin.reserve_proof import VaultCoin
from custody.ceremony import load_transcript
from custody.ethereum.safe_message import safe_message_hash
from custody.ethereum.safe_vaults import SafeVaults
from custody.exceptions import (
    BroadcastableReserveProofError,
    ForeignInputError,
    MissingSignaturesError,
    ReserveProofError,
    ReserveProofMismatchError,
    SafeMessageError,
)
from reporting.attestation import AttestationInputs, AuditHead, RegistryRef, build_attestation
from reporting.bundle import GENESIS_DIGEST_HEX, Bundle
from reporting.sumtree import LiabilityTree
from treasury.attest.proofs import (
    build_reserve_proof,
    finalize_reserve_proof,
    sign_attestation,
    sign_reserve_proof_with_shares,
)
from treasury.attest.snapshot import bitcoin_snapshot, evm_snapshot

reserve = reserve_fixture("proofs")


@pytest.fixture(scope="module")
def unsigned(reserve: Reserve) -> tuple[Bundle, list[VaultCoin], dict[str, Any], str]:
    """An unsigned attestation body of the reserve, its coins, the vault map and the proof PSBT."""
    snapshot, coins = bitcoin_snapshot(reserve.bitcoin_node.rpc, [reserve.vault])
    evm = evm_snapshot(reserve.chain, [reserve.safe], {})
    bundle = build_attestation(
        AttestationInputs(
            sequence=1, previous_digest=GENESIS_DIGEST_HEX, as_of=datetime(2026, 1, 1, tzinfo=UTC),
            bitcoin=snapshot, evm=(evm,),
            liabilities=LiabilityTree.from_rows(("BTC",), [("fund", (1,))], bytes(32)),
            ledger_totals={"BTC": 1}, audit_head=AuditHead(0, "00" * 32),
            registry=RegistryRef(1, "0x" + "11" * 20, "0x" + "22" * 20),
            treasury=reserve.treasury, auditor=reserve.auditor,
            assets=asset_registry(evm.chain_id), vaults=snapshot_vaults(snapshot, (evm,)),
        )
    )  # fmt: skip
    vaults = {reserve.vault.name: reserve.vault.descriptor}
    return bundle, list(coins), vaults, build_reserve_proof(bundle.body, coins, vaults)


def sign(
    reserve: Reserve, institution: str, psbt: str, bundle: Bundle, vaults: dict[str, Any]
) -> str:
    with reserve.sessions() as session:
        fingerprint = load_transcript(session, institution).fingerprint
    return sign_reserve_proof_with_shares(
        psbt,
        bundle.body,
        vaults,
        reserve.shares(institution),
        PASSPHRASES.get(institution, ""),
        fingerprint,
    )


def test_quorum_signed_reserve_proof_is_unbroadcastable(reserve: Reserve, unsigned: Any) -> None:
    """Two institutions' signatures finalise a P2WSH proof the verifier accepts and bitcoind refuses."""
    bundle, _, vaults, psbt = unsigned
    signed = [sign(reserve, name, psbt, bundle, vaults) for name in INSTITUTIONS[:2]]
    final = finalize_reserve_proof(signed, bundle.body, vaults)
    utxos = [(u["txid"], u["vout"], int(u["amount"]), bytes.fromhex(u["script_pubkey"]))
             for u in bundle.body["snapshot"]["bitcoin"]["utxos"]]  # fmt: skip
    raw = check_reserve_psbt(base64.b64decode(final), bundle.digest, utxos, "regtest")
    verdict = reserve.bitcoin_node.rpc.call("testmempoolaccept", [raw.hex()])[0]
    assert verdict["allowed"] is False
    assert verdict["reject-reason"] == "missing-inputs"


def test_one_signature_does_not_finalise(reserve: Reserve, unsigned: Any) -> None:
    """A single institution's signatures are below the vault's 2-of-3 threshold."""
    bundle, _, vaults, psbt = unsigned
    with pytest.raises(ReserveProofError, match="needs 2"):
        finalize_reserve_proof(
            [sign(reserve, INSTITUTIONS[0], psbt, bundle, vaults)], bundle.body, vaults
        )


def test_psbt_without_the_commitment_input_is_refused(reserve: Reserve, unsigned: Any) -> None:
    """Dropping the commitment input leaves a broadcastable spend: the signer refuses to sign it."""
    bundle, _, vaults, psbt = unsigned
    spendable = PSBT.from_string(psbt)
    spendable.tx.vin.pop(0)
    spendable.inputs.pop(0)
    with pytest.raises(BroadcastableReserveProofError, match="could be broadcast"):
        sign(reserve, INSTITUTIONS[0], spendable.to_string(), bundle, vaults)


def test_commitment_of_another_digest_is_refused(reserve: Reserve, unsigned: Any) -> None:
    """A proof built for one attestation is refused for another (its commitment input differs)."""
    bundle, _, vaults, psbt = unsigned
    other = {**bundle.body, "sequence": 2}
    with pytest.raises(BroadcastableReserveProofError):
        sign_reserve_proof_with_shares(psbt, other, vaults, [], "", "00000000")


def test_foreign_input_is_refused(reserve: Reserve, unsigned: Any) -> None:
    """An extra input spending a coin of another wallet is refused before any signature."""
    bundle, _, vaults, psbt = unsigned
    miner = reserve.bitcoin_node.rpc.wallet("miner")
    coin = miner.call("listunspent", 1)[0]
    tampered = PSBT.from_string(psbt)
    tampered.tx.vin.append(TransactionInput(bytes.fromhex(coin["txid"]), coin["vout"]))
    tampered.inputs.append(type(tampered.inputs[0])(vin=tampered.tx.vin[-1]))
    tampered.inputs[-1].witness_utxo = TransactionOutput(
        int(Decimal(coin["amount"]) * 10**8), Script(bytes.fromhex(coin["scriptPubKey"]))
    )
    with pytest.raises(ForeignInputError, match="not a coin of the vaults proven"):
        sign(reserve, INSTITUTIONS[0], tampered.to_string(), bundle, vaults)


def test_missing_coin_and_foreign_output_are_refused(reserve: Reserve, unsigned: Any) -> None:
    """A proof leaving out an attested coin, or paying anywhere but the vault, is refused."""
    bundle, _, vaults, psbt = unsigned
    partial = PSBT.from_string(psbt)
    partial.tx.vin.pop()
    partial.inputs.pop()
    with pytest.raises(ReserveProofMismatchError, match="missing"):
        sign(reserve, INSTITUTIONS[0], partial.to_string(), bundle, vaults)
    elsewhere = PSBT.from_string(psbt)
    miner_address = reserve.bitcoin_node.miner_address()
    elsewhere.outputs[0].script_pubkey = Script(
        bytes.fromhex(
            reserve.bitcoin_node.rpc.call("validateaddress", miner_address)["scriptPubKey"]
        )
    )
    with pytest.raises(ReserveProofMismatchError, match="pays something else"):
        sign(reserve, INSTITUTIONS[0], elsewhere.to_string(), bundle, vaults)


def test_coins_not_in_the_snapshot_cannot_be_built(reserve: Reserve, unsigned: Any) -> None:
    """Building from coins that differ from the attested snapshot is refused."""
    bundle, coins, vaults, _ = unsigned
    with pytest.raises(ReserveProofMismatchError):
        build_reserve_proof(bundle.body, coins[:-1], vaults)


def test_safe_signs_only_attestations_that_name_it(reserve: Reserve, unsigned: Any) -> None:
    """The Safe message signer refuses a non-attestation body, a body not naming the Safe, and a
    lone institution; a threshold of quorums yields a signature of our own SafeMessage hash."""
    bundle, _, _, _ = unsigned
    vaults = SafeVaults(reserve.chain, sessionmaker(bind=reserve.engine))
    with reserve.sessions() as session:
        quorums = [
            shares.quorum(load_transcript(session, shares.institution).fingerprint)
            for shares in reserve.institutions()
        ]
    name = reserve.safe.name
    with pytest.raises(SafeMessageError, match="not a national-reserve-attestation body"):
        sign_attestation(vaults, name, {"format": "permit", "digest": "00"}, quorums)
    unlisted = {**bundle.body, "proofs_of_control": {"eip1271": []}}
    with pytest.raises(SafeMessageError, match="does not ask the Safe"):
        sign_attestation(vaults, name, unlisted, quorums)
    with pytest.raises(MissingSignaturesError):
        sign_attestation(vaults, name, bundle.body, quorums[:1])
    packed = sign_attestation(vaults, name, bundle.body, quorums)
    assert len(packed) == 2 * 65
    w3 = Web3(Web3.HTTPProvider(reserve.evm_node.rpc_url))
    latest = w3.eth.block_number
    assert eip1271_call(w3, reserve.safe.address, bundle.digest, packed, latest) == EIP1271_MAGIC
    with pytest.raises(VerifierError, match="GS026"):
        eip1271_call(w3, reserve.safe.address, bytes(32), packed, latest)


def test_our_safe_message_hash_matches_the_eip712_definition() -> None:
    """The SafeMessage hash follows EIP-712 with the Safe's domain (chain id, verifying contract)."""
    from eth_abi.abi import encode
    from eth_utils.crypto import keccak

    safe, digest = "0x" + "ab" * 20, bytes(range(32))
    domain = keccak(
        keccak(text="EIP712Domain(uint256 chainId,address verifyingContract)")
        + encode(["uint256", "address"], [31337, safe])
    )
    struct = keccak(keccak(text="SafeMessage(bytes message)") + keccak(digest))
    assert safe_message_hash(31337, safe, digest) == keccak(b"\x19\x01" + domain + struct)

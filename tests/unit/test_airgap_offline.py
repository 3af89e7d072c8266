"""The offline signer on request files: it signs exactly what a quorum of statements authorises,
through custody's own signer, and refuses a tampered file, insufficient statements, a roster not
anchored in its seed, and wrong shares -- each with its own error, before any signature exists."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from authority_support import NOW, Deployment
from embit.bip32 import HDKey
from embit.psbt import PSBT
from embit.script import Script
from embit.transaction import Transaction, TransactionInput, TransactionOutput
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak

from custody.airgap import cli
from custody.airgap.errors import RequestFileError, TamperedRequestError
from custody.airgap.offline import review, sign_request
from custody.airgap.psbt_files import (
    merge_signatures,
    psbt_from_bytes,
    read_psbt_file,
    write_psbt_files,
)
from custody.airgap.request import (
    SafePart,
    SafeSignatureFile,
    Signer,
    SigningRequest,
    read_request,
    write_request,
)
from custody.airgap.typed_data import safe_tx_from_typed_data, safe_tx_typed_data
from custody.authority.errors import (
    GenesisError,
    InsufficientApprovalsError,
    StatementMismatchError,
)
from custody.ethereum.safe_signature import OwnerSignature, sign_safe_tx_hash
from custody.ethereum.safe_tx import Operation, SafeTx
from custody.ethereum.signer import SigningPolicy, approve, spend_under_review
from custody.exceptions import FingerprintMismatchError, MixedSharesError
from custody.keys import cosigner_keys, signing_keys
from custody.secret import SecretBytes
from custody.shamir import ShareMnemonic, ShareScheme, combine_shares, split_seed

SAFE = "0x" + "5a" * 20
PAYEE = "0x" + "a1" * 20
SEED = bytes(range(32))
OTHER_SEED = bytes(range(1, 33))
PASSPHRASE = "unit-test-passphrase"
AMOUNT_WEI = 10**18


def _clock() -> Any:
    return NOW


def _safe_tx(**changes: Any) -> SafeTx:
    fields: dict[str, Any] = {
        "chain_id": 31337,
        "safe": SAFE,
        "to": PAYEE,
        "value": AMOUNT_WEI,
        "data": b"",
        "operation": Operation.CALL,
        "nonce": 4,
    }
    return SafeTx(**(fields | changes))


def _deployment(seed: bytes) -> Deployment:
    d = Deployment.build(roots={"CB": HDKey.from_seed(seed)}, names={"CB": "Central Bank"})
    d.authorise({"ETH": 10**24}, [("ETH", PAYEE)])
    return d


def _request(d: Deployment, *approvers: str, tx: SafeTx | None = None) -> SigningRequest:
    tx = tx or _safe_tx()
    spend = spend_under_review(tx, approve(tx, SigningPolicy()).action)
    statements = [d.statement_for(o, spend, vault="reserve-eth") for o in approvers]
    keys = cosigner_keys(SecretBytes(SEED))
    return SigningRequest(
        "17",
        Signer("Central Bank", keys.fingerprint, 2, True),
        d.evidence(*statements),
        SafePart("reserve-eth", tx, keys.eth_address, frozenset()),
    )


def _shares(seed: bytes = SEED) -> list[ShareMnemonic]:
    return split_seed(SecretBytes(seed), ShareScheme(2, 3), PASSPHRASE)[:2]


def test_a_safe_request_survives_its_file_and_is_signed_by_the_owner_key(tmp_path: Path) -> None:
    """Written and read back, the request reviews in ether with its approvers and is signed by
    the institution's owner key; its typed data hashes (eth-account's EIP-712) to the SafeTx hash."""
    request = _request(_deployment(SEED), "cb-alice", "mof-carol")
    request_path, typed_path = write_request(request, tmp_path)
    read = read_request(request_path)
    assert read == request
    shown = review(read, clock=_clock)
    assert "send 1 ETH (1000000000000000000 wei) to " + _safe_tx().to in "\n".join(shown.lines)
    assert [a.officer_id for a in shown.authorization.approvers] == ["cb-alice", "mof-carol"]
    signed = sign_request(read, _shares(), PASSPHRASE, clock=_clock)
    assert signed.signature is not None
    assert signed.signature.owner == cosigner_keys(SecretBytes(SEED)).eth_address
    assert OwnerSignature.decode(_safe_tx().hash, signed.signature.encode()) == signed.signature
    typed = json.loads(typed_path.read_text())
    message = encode_typed_data(full_message=typed)
    digest = keccak(b"\x19" + message.version + message.header + message.body)
    assert digest == _safe_tx().hash
    assert safe_tx_from_typed_data(typed) == _safe_tx()


def test_a_bnb_chain_request_is_reviewed_and_signed_as_bnb(tmp_path: Path) -> None:
    """A Safe spend on BNB Chain's devnet id goes through files like ether's: the file names the
    chain's coin, the signer is bound to the chain id its typed data commits to, reviews the
    spend as BNB and signs under the statements that name BNB. The coin renamed in the file
    (to make BNB pass under ether's limits) no longer matches those statements and is refused."""
    tx = _safe_tx(chain_id=31339)
    d = Deployment.build(roots={"CB": HDKey.from_seed(SEED)}, names={"CB": "Central Bank"})
    d.authorise({"BNB": 10**24}, [("BNB", PAYEE)])
    spend = spend_under_review(tx, approve(tx, SigningPolicy(native_asset="BNB")).action)
    assert spend.asset == "BNB"
    statements = [d.statement_for(o, spend, vault="reserve-bnb") for o in ("cb-alice", "mof-carol")]
    keys = cosigner_keys(SecretBytes(SEED))
    request = SigningRequest(
        "18",
        Signer("Central Bank", keys.fingerprint, 2, True),
        d.evidence(*statements),
        SafePart("reserve-bnb", tx, keys.eth_address, frozenset(), native_asset="BNB"),
    )
    request_path, _ = write_request(request, tmp_path)
    read = read_request(request_path)
    assert read == request
    assert "send 1 BNB (1000000000000000000 wei)" in "\n".join(review(read, clock=_clock).lines)
    signed = sign_request(read, _shares(), PASSPHRASE, clock=_clock)
    assert signed.signature is not None
    assert signed.signature.owner == keys.eth_address
    body = json.loads(request_path.read_text())
    body["safe"]["native_asset"] = "ETH"
    request_path.write_text(json.dumps(body))
    with pytest.raises(StatementMismatchError):
        sign_request(read_request(request_path), _shares(), PASSPHRASE, clock=_clock)
    body["safe"]["native_asset"] = "bnb; drop"
    request_path.write_text(json.dumps(body))
    with pytest.raises(RequestFileError, match="native_asset"):
        read_request(request_path)


def test_typed_data_changed_in_the_file_is_refused(tmp_path: Path) -> None:
    """A value raised in the typed data no longer hashes to the request's hash; with the hash
    changed too, the officers' statements no longer name the transaction."""
    request_path, _ = write_request(_request(_deployment(SEED), "cb-alice", "mof-carol"), tmp_path)
    body = json.loads(request_path.read_text())
    body["safe"]["typed_data"]["message"]["value"] = str(2 * AMOUNT_WEI)
    request_path.write_text(json.dumps(body))
    with pytest.raises(TamperedRequestError, match="altered after it was exported"):
        read_request(request_path)
    body["tx_hash"] = _safe_tx(value=2 * AMOUNT_WEI).hash_hex
    request_path.write_text(json.dumps(body))
    with pytest.raises(StatementMismatchError, match="names amount"):
        review(read_request(request_path), clock=_clock)


def test_statements_that_do_not_authorise_are_refused_before_and_at_signing() -> None:
    """One institution's approval is not a quorum: the review refuses, and so does the signer
    even when handed the shares."""
    request = _request(_deployment(SEED), "cb-alice", "cb-bob")
    with pytest.raises(InsufficientApprovalsError, match="1 institution"):
        review(request, clock=_clock)
    with pytest.raises(InsufficientApprovalsError):
        sign_request(request, _shares(), PASSPHRASE, clock=_clock)


def test_a_roster_not_anchored_in_the_seed_is_refused_at_signing() -> None:
    """A roster built around other ceremony keys reviews as well-signed, but the signer, holding
    the recombined seed, refuses its genesis: a coordinator cannot invent the officers."""
    request = _request(_deployment(OTHER_SEED), "cb-alice", "mof-carol")
    review(request, clock=_clock)  # well-formed and signed, just not ours
    with pytest.raises(GenesisError):
        sign_request(request, _shares(), PASSPHRASE, clock=_clock)


def test_wrong_shares_are_refused() -> None:
    """Another seed's shares, a wrong passphrase, shares of two splits, or a request for another
    key than the holders expect: each its own error, no signature."""
    request = _request(_deployment(SEED), "cb-alice", "mof-carol")
    with pytest.raises(FingerprintMismatchError, match="master fingerprint"):
        sign_request(request, _shares(OTHER_SEED), PASSPHRASE, clock=_clock)
    with pytest.raises(FingerprintMismatchError, match="master fingerprint"):
        sign_request(request, _shares(), "not the passphrase", clock=_clock)
    with pytest.raises(MixedSharesError):
        sign_request(request, [_shares()[0], _shares(OTHER_SEED)[1]], PASSPHRASE, clock=_clock)
    with pytest.raises(FingerprintMismatchError, match="holders expect"):
        sign_request(request, _shares(), PASSPHRASE, expected_fingerprint="00000000", clock=_clock)


def test_typed_data_of_anything_but_a_safe_tx_is_refused() -> None:
    """Extra fields, another primary type or a non-integer amount are refused, never ignored."""
    typed = safe_tx_typed_data(_safe_tx())
    for change in (
        {"primaryType": "Mail"},
        {"message": typed["message"] | {"extra": "1"}},
        {"message": typed["message"] | {"value": "1e18"}},
        {"domain": typed["domain"] | {"name": "Safe"}},
    ):
        with pytest.raises(RequestFileError):
            safe_tx_from_typed_data(typed | change)


def test_a_signature_file_for_another_owner_is_refused(tmp_path: Path) -> None:
    """A signature file whose signature recovers to another key than the owner it names."""
    keys = cosigner_keys(SecretBytes(SEED))
    other = cosigner_keys(SecretBytes(OTHER_SEED))
    with signing_keys(combine_shares(_shares(OTHER_SEED), PASSPHRASE), other.fingerprint) as k:
        signature = sign_safe_tx_hash(k.eth_key, _safe_tx().hash)
    path = SafeSignatureFile("17", "Central Bank", _safe_tx(), signature).write(tmp_path / "s.json")
    body = json.loads(path.read_text())
    body["owner"] = keys.eth_address
    path.write_text(json.dumps(body))
    with pytest.raises(TamperedRequestError, match="recovers to"):
        SafeSignatureFile.read(path)


def _psbt(amount: int) -> PSBT:
    tx = Transaction(
        vin=[TransactionInput(bytes(32), 0)],
        vout=[TransactionOutput(amount, Script(b"\x00\x14" + bytes(20)))],
    )
    return PSBT(tx)


def test_psbt_files_read_binary_and_base64_and_merge_only_the_same_transaction(
    tmp_path: Path,
) -> None:
    """Both encodings read back to the same PSBT; signatures of another transaction are refused;
    bytes that are not a PSBT are a ``RequestFileError``."""
    binary, text = write_psbt_files(_psbt(1_000), tmp_path / "spend.psbt")
    assert binary.read_bytes().startswith(b"psbt\xff")
    assert base64.b64decode(text.read_text()) == binary.read_bytes()
    assert read_psbt_file(binary).serialize() == read_psbt_file(text).serialize()
    with pytest.raises(TamperedRequestError, match="cannot be merged"):
        merge_signatures(_psbt(1_000), _psbt(2_000))
    assert merge_signatures(_psbt(1_000), _psbt(1_000)) == 0
    with pytest.raises(RequestFileError):
        psbt_from_bytes(b"not a psbt at all", "The test bytes")


def test_the_command_refuses_a_bad_file_in_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`custody-sign sign` on a file that is not a signing request: exit 1, one `error:` line,
    no file written."""
    path = tmp_path / "proposal.request.json"
    path.write_text(json.dumps({"format": "something-else"}))
    assert cli.main(["sign", str(path), "--yes"]) == cli.EXIT_REFUSED
    err = capsys.readouterr().err
    assert err.startswith("error: This is not a signing request")
    assert err.count("\n") == 1
    assert [p.name for p in tmp_path.iterdir()] == [path.name]

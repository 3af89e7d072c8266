"""The verifier reads bundle files strictly: one spelling per value, no unknown or repeated
fields, low-S signatures, EIP-55 addresses, and the offline consistency rules of the snapshot
and anchors. Each tamper of a real (built and signed) bundle is refused offline with its own
reason; byte-different but equivalent spellings (key order, whitespace) still verify.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from bundle_support import failed
from eth_utils.address import to_checksum_address
from reserve_verifier import Bundle as VerifierBundle
from reserve_verifier import CheckStatus, verify_bundle
from reserve_verifier.fields import SECP256K1_ORDER
from test_attestation_tamper import SAFE, TOKEN, inputs, signed

from reporting.attestation import BlockRef, EvmSnapshot, build_attestation
from reporting.bundle import Bundle
from reporting.holdings import SafeBalanceHolding

CHECKSUM_SAFE = str(to_checksum_address(SAFE))
"""The Safe in EIP-55 form (it has letters, so its case is checked)."""


@pytest.fixture(scope="module")
def honest() -> Bundle:
    """A real bundle with a checksummed Safe, signed by both roles, with its reserve proof."""
    evm = EvmSnapshot(
        31337,
        BlockRef(50, "0x" + "77" * 32),
        (
            SafeBalanceHolding(31337, CHECKSUM_SAFE, "ETH", None, 4 * 10**18),
            SafeBalanceHolding(31337, CHECKSUM_SAFE, "USDX", TOKEN, 10**7),
        ),
    )
    return signed(build_attestation(inputs(evm=(evm,))))


def _anchored(bundle: Bundle) -> dict[str, Any]:
    """The bundle file with anchors as the producer records them (consistent with the body)."""
    data = copy.deepcopy(bundle.to_dict())
    data["anchors"] = {
        "bitcoin": {"txid": "ab" * 32, "vout": 0, "block_hash": "cd" * 32, "height": 111},
        "services": {
            "chain_id": 31338,
            "registry": "0x" + "11" * 20,
            "tx_hash": "0x" + "ef" * 32,
            "block_number": 7,
            "block_hash": "0x" + "12" * 32,
            "log_index": 0,
            "sequence": 1,
        },
    }
    return data


def _format_reason(data: dict[str, Any] | str) -> str:
    """The verifier's reason for refusing the file (it must refuse it as a bundle)."""
    text = data if isinstance(data, str) else json.dumps(data)
    found = failed(verify_bundle(text.encode()))
    assert "bundle format" in found, found
    reason: str = found["bundle format"]
    return reason


def test_honest_file_and_equivalent_spellings_verify(honest: Bundle) -> None:
    """The file as written, with keys in reverse order, and indented, all verify offline."""
    data = _anchored(honest)

    def reverse(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: reverse(value[key]) for key in reversed(list(value))}
        if isinstance(value, list):
            return [reverse(item) for item in value]
        return value

    for text in (
        json.dumps(data),
        json.dumps(reverse(data)),
        json.dumps(data, indent=3),
        json.dumps(data, separators=(" ,\n", " :\t")),
    ):
        report = verify_bundle(text.encode())
        assert not report.failed(), report.render()
        assert report.status_of("reserve proof (BIP-127)") is CheckStatus.OK
        assert report.digest == honest.digest.hex()


def _utxos(data: dict[str, Any]) -> list[dict[str, Any]]:
    utxos: list[dict[str, Any]] = data["body"]["snapshot"]["bitcoin"]["utxos"]
    return utxos


def _set_amount(value: str) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        _utxos(data)[0]["amount"] = value

    return edit


def _note(data: dict[str, Any]) -> None:
    data["audited_by"] = "the minister"


def _nested_note(data: dict[str, Any]) -> None:
    _utxos(data)[1]["label"] = "cold wallet"


def _listing_note(data: dict[str, Any]) -> None:
    data["body"]["liabilities"]["public_listing"][0]["proof"]["siblings"][0]["note"] = "x"


def _anchor_note(data: dict[str, Any]) -> None:
    data["anchors"]["services"]["confirmed"] = True


def _lowercase_signer(data: dict[str, Any]) -> None:
    signer = data["body"]["signers"]["treasury"]
    signer["address"] = signer["address"][:2] + signer["address"][2:].upper()


def _swapped_case_safe(data: dict[str, Any]) -> None:
    data["body"]["snapshot"]["evm"][0]["balances"][0]["safe_address"] = (
        "0x" + CHECKSUM_SAFE[2:].swapcase()
    )


def _anchor_below(data: dict[str, Any]) -> None:
    data["anchors"]["bitcoin"]["height"] = 109


def _registry_sequence(data: dict[str, Any]) -> None:
    data["anchors"]["services"]["sequence"] = 2


def _unsorted(data: dict[str, Any]) -> None:
    utxos = _utxos(data)
    utxos[0], utxos[1] = utxos[1], utxos[0]


def _duplicated(data: dict[str, Any]) -> None:
    utxos = _utxos(data)
    utxos.insert(1, {**utxos[0], "amount": "500000000"})


def _created_after(data: dict[str, Any]) -> None:
    _utxos(data)[0]["created_height"] = 111


def _upper_hex(data: dict[str, Any]) -> None:
    data["body"]["previous_digest"] = "AB" * 32


def _high_s(data: dict[str, Any]) -> None:
    raw = bytes.fromhex(data["signatures"]["auditor"])
    s = SECP256K1_ORDER - int.from_bytes(raw[32:64], "big")
    data["signatures"]["auditor"] = (raw[:32] + s.to_bytes(32, "big") + bytes([1 - raw[64]])).hex()


TAMPERS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "leading zero": (_set_amount("015000"), "not a canonical decimal string"),
    "plus sign": (_set_amount("+15000"), "not a canonical decimal string"),
    "minus zero": (_set_amount("-0"), "not a canonical decimal string"),
    "padding": (_set_amount(" 15000"), "not a canonical decimal string"),
    "underscore": (_set_amount("15_000"), "not a canonical decimal string"),
    "arabic-indic digits": (
        _set_amount("\u0661\u0665\u0660\u0660\u0660"),
        "not a canonical decimal string",
    ),
    "unknown top-level field": (_note, "unknown field 'audited_by'"),
    "unknown field in a UTXO": (_nested_note, "unknown field 'label'"),
    "unknown field in a proof sibling": (_listing_note, "unknown field 'note'"),
    "unknown field in an anchor": (_anchor_note, "unknown field 'confirmed'"),
    "signer address not EIP-55": (_lowercase_signer, "not in EIP-55 checksum form"),
    "Safe address with swapped case": (_swapped_case_safe, "not in EIP-55 checksum form"),
    "anchor below the snapshot": (_anchor_below, "below the snapshot height 110"),
    "registry sequence differs": (
        _registry_sequence,
        "records sequence 2, but this is attestation 1",
    ),
    "UTXOs unsorted": (_unsorted, "not sorted by (txid, vout)"),
    "outpoint twice": (_duplicated, "twice"),
    "UTXO created after the snapshot": (_created_after, "above the snapshot height 110"),
    "uppercase hex": (_upper_hex, "lowercase hex"),
    "high-S signature": (_high_s, "high S value"),
}


@pytest.mark.parametrize("name", sorted(TAMPERS))
def test_tamper_is_refused_with_its_reason(honest: Bundle, name: str) -> None:
    """Each tamper of the real file is refused offline, naming what is wrong."""
    edit, reason = TAMPERS[name]
    data = _anchored(honest)
    edit(data)
    assert reason in _format_reason(data)


def test_duplicate_key_is_refused_at_any_level(honest: Bundle) -> None:
    """A key named twice, at the top or deep inside, is refused (readers differ on which wins)."""
    text = json.dumps(_anchored(honest))
    top = text[:-1] + ', "anchors": {}}'
    amount = _utxos(_anchored(honest))[0]["amount"]
    deep = text.replace(f'"amount": "{amount}"', f'"amount": "{amount}", "amount": "1"', 1)
    assert deep != text
    for variant in (top, deep):
        assert "repeats the key" in _format_reason(variant)


def test_high_s_signature_is_refused_from_a_bundle_object(honest: Bundle) -> None:
    """The malleated signature recovers the same key, yet a bundle object carrying it is refused
    as a file would be (objects get the file grammar too)."""
    data = _anchored(honest)
    _high_s(data)
    bundle = VerifierBundle(honest.body, data["signatures"], honest.proofs_of_control)
    found = failed(verify_bundle(bundle))
    assert "high S value" in found["bundle format"]
    assert "auditor" in found["bundle format"]

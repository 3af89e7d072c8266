"""The signer decodes what it signs, refuses what it cannot vouch for, and signs in Safe format."""

from __future__ import annotations

import dataclasses
import pickle

import pytest
from eth_abi.abi import encode
from eth_keys.datatypes import PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from custody.authority.gate import BreakGlass
from custody.ethereum.erc20 import transfer_calldata
from custody.ethereum.safe_signature import OwnerSignature, pack_signatures, sign_safe_tx_hash
from custody.ethereum.safe_tx import Operation, SafeTx
from custody.ethereum.signer import (
    SWAP_OWNER_SELECTOR,
    EtherTransfer,
    KeyQuorum,
    OwnerSwap,
    SigningPolicy,
    TokenTransfer,
    approve,
    check_against_approval,
    decode_action,
    sign_approved,
    spend_under_review,
)
from custody.exceptions import (
    ApprovalMismatchError,
    DelegateCallRefusedError,
    NotAnOwnerError,
    SafeTxError,
    UnknownContractError,
    UnsupportedActionError,
    WrongChainError,
)
from custody.keys import cosigner_keys
from custody.secret import SecretBytes
from custody.shamir import ShareScheme, split_seed

SAFE = "0x" + "5a" * 20
TOKEN = "0x" + "70" * 20
ALICE = "0x" + "a1" * 20
POLICY = SigningPolicy(frozenset({TOKEN}))
SEED = bytes(range(32))
PASSPHRASE = "unit-test-passphrase"


def safe_tx(**changes: object) -> SafeTx:
    fields: dict[str, object] = {
        "chain_id": 31337,
        "safe": SAFE,
        "to": ALICE,
        "value": 10**18,
        "data": b"",
        "operation": Operation.CALL,
        "nonce": 3,
    }
    fields.update(changes)
    return SafeTx(**fields)  # type: ignore[arg-type]


def test_decodes_ether_token_and_owner_swap() -> None:
    """Plain value, an allowlisted token's transfer and a self-call swapOwner decode to actions."""
    assert decode_action(safe_tx(), POLICY) == EtherTransfer(safe_tx().to, 10**18)
    token_tx = safe_tx(to=TOKEN, value=0, data=transfer_calldata(ALICE, 7))
    assert decode_action(token_tx, POLICY) == TokenTransfer(safe_tx(to=TOKEN).to, safe_tx().to, 7)
    owners = ["0x" + "00" * 19 + "01", "0x" + "b0" * 20, "0x" + "c0" * 20]
    swap = safe_tx(to=SAFE, value=0, data=SWAP_OWNER_SELECTOR + encode(["address"] * 3, owners))
    action = decode_action(swap, POLICY)
    assert isinstance(action, OwnerSwap)
    assert action.old_owner.lower() == owners[1]
    assert action.new_owner.lower() == owners[2]


def test_a_signer_of_one_chain_refuses_another_chains_safe_tx() -> None:
    """A signer set for BNB Chain's devnet id refuses a SafeTx made for the ether chain (its
    signature would be a valid owner signature there), before decoding anything."""
    bnb = SigningPolicy(frozenset({TOKEN}), chain_id=31339, native_asset="BNB")
    with pytest.raises(WrongChainError, match=r"'chain_id' is 31337.*chain 31339"):
        approve(safe_tx(), bnb)
    with pytest.raises(WrongChainError):
        decode_action(safe_tx(operation=Operation.CALL, data=b"", chain_id=1), bnb)
    assert decode_action(safe_tx(chain_id=31339), bnb) == EtherTransfer(safe_tx().to, 10**18, "BNB")


def test_the_native_coin_is_named_as_the_chains_policy_says() -> None:
    """A plain value transfer on BNB Chain is reviewed as BNB, so the statements, ceiling and
    window threshold of BNB apply to it, never ether's."""
    bnb = SigningPolicy(chain_id=31339, native_asset="BNB")
    tx = safe_tx(chain_id=31339, value=3 * 10**18 // 2)
    action = decode_action(tx, bnb)
    assert action.describe().startswith("send 1.5 BNB (1500000000000000000 wei)")
    assert spend_under_review(tx, action).asset == "BNB"
    assert spend_under_review(safe_tx(), decode_action(safe_tx(), POLICY)).asset == "ETH"


@pytest.mark.parametrize(
    ("changes", "error", "field"),
    [
        ({"operation": Operation.DELEGATECALL}, DelegateCallRefusedError, "operation"),
        ({"to": "0x" + "99" * 20, "value": 0, "data": transfer_calldata(ALICE, 1)}, UnknownContractError, "'to'"),
        ({"to": TOKEN, "value": 0, "data": b"\x09\x5e\xa7\xb3" + bytes(64)}, UnsupportedActionError, "selector"),
        ({"to": TOKEN, "value": 1, "data": transfer_calldata(ALICE, 1)}, UnsupportedActionError, "value"),
        ({"to": SAFE, "value": 0, "data": b"\x69\x4e\x80\xc3" + bytes(32)}, UnsupportedActionError, "swapOwner"),
        ({"gas_price": 1}, UnsupportedActionError, "gas_price"),
        ({"safe_tx_gas": 50_000}, UnsupportedActionError, "safe_tx_gas"),
        ({"refund_receiver": ALICE}, UnsupportedActionError, "refund_receiver"),
    ],
)  # fmt: skip
def test_refuses_what_it_cannot_vouch_for(
    changes: dict[str, object], error: type[Exception], field: str
) -> None:
    """DELEGATECALL, unknown contracts, other calls, token value and gas refunds are refused."""
    with pytest.raises(error, match=field):
        approve(safe_tx(**changes), POLICY)


@given(
    field=st.sampled_from(
        ["chain_id", "safe", "to", "value", "data", "nonce", "operation", "gas_token"]
    )
)
def test_any_field_changed_after_approval_is_refused(field: str) -> None:
    """Changing any single field after approval makes the signer refuse, naming that field."""
    approval = approve(safe_tx(), POLICY)
    altered = {
        "chain_id": 1,
        "safe": "0x" + "77" * 20,
        "to": "0x" + "88" * 20,
        "value": 10**18 + 1,
        "data": b"\x00",
        "nonce": 4,
        "operation": Operation.DELEGATECALL,
        "gas_token": TOKEN,
    }[field]
    with pytest.raises(ApprovalMismatchError, match=f"'{field}'"):
        check_against_approval(dataclasses.replace(safe_tx(), **{field: altered}), approval, POLICY)


def test_forged_approval_hash_is_refused() -> None:
    """An approval whose hash is not the SafeTx's is refused even when every field matches."""
    approval = dataclasses.replace(approve(safe_tx(), POLICY), safe_tx_hash=b"\x01" * 32)
    with pytest.raises(ApprovalMismatchError, match="hash"):
        check_against_approval(safe_tx(), approval, POLICY)


def test_quorum_signs_with_the_owner_key_and_hides_its_secrets() -> None:
    """A quorum of shares signs as the cosigner's owner address; its repr shows no secret.

    (Signed under an explicit break-glass: this is about the key mechanics, no roster exists.)
    """
    keys = cosigner_keys(SecretBytes(SEED))
    shares = split_seed(SecretBytes(SEED), ShareScheme(2, 3), PASSPHRASE)
    quorum = KeyQuorum("Central Bank", shares[1:], PASSPHRASE, keys.fingerprint)
    tx = safe_tx()
    mechanics = BreakGlass("unit test of the owner-key mechanics; no roster exists here")
    signature = sign_approved(
        tx, approve(tx, POLICY), POLICY, quorum, keys.eth_address, authority=mechanics
    )
    assert signature.owner == keys.eth_address
    assert OwnerSignature.decode(tx.hash, signature.encode()) == signature
    assert signature.v in (27, 28)
    with pytest.raises(NotAnOwnerError, match="not the roster's owner"):
        quorum.sign_hash(tx.hash, "0x" + "12" * 20)
    shown = repr(quorum)
    assert PASSPHRASE not in shown
    assert all(share.reveal().split()[5] not in shown for share in shares)
    with pytest.raises(TypeError):
        pickle.dumps(quorum)


SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
private_keys = st.integers(min_value=1, max_value=SECP256K1_ORDER - 1).map(
    lambda k: k.to_bytes(32, "big")
)


@given(keys=st.lists(private_keys, min_size=1, max_size=5, unique=True))
def test_signatures_are_packed_in_ascending_owner_order(keys: list[bytes]) -> None:
    """Packed signatures are 65 bytes each, ordered by owner address, each recovering its owner."""
    digest = b"\x42" * 32
    signatures = [sign_safe_tx_hash(PrivateKey(k), digest) for k in keys]
    packed = pack_signatures(reversed(signatures))
    assert len(packed) == 65 * len(keys)
    owners = [
        OwnerSignature.decode(digest, packed[i : i + 65]).owner for i in range(0, len(packed), 65)
    ]
    assert owners == sorted((s.owner for s in signatures), key=lambda a: int(a, 16))


def test_same_owner_twice_is_refused() -> None:
    """One owner's signature cannot count twice."""
    signature = sign_safe_tx_hash(PrivateKey(b"\x07" * 32), b"\x01" * 32)
    with pytest.raises(NotAnOwnerError, match="twice"):
        pack_signatures([signature, signature])


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"value": -1}, "value"),
        ({"to": "0x1234"}, "to"),
        ({"nonce": 2**256}, "nonce"),
        ({"operation": 2}, "operation"),
    ],
)
def test_malformed_safe_tx_names_the_field(changes: dict[str, object], field: str) -> None:
    """A SafeTx with a negative, oversized or malformed field is refused, naming it."""
    with pytest.raises(SafeTxError, match=f"'{field}'"):
        safe_tx(**changes)

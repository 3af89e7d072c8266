"""The signer decodes a token call before signing: only ``transfer`` to a registered token, exact.

Every other way a Safe's tokens can leave (an allowance, a ``transferFrom``, an unknown call, a
token outside the registry, ether on the call, a DELEGATECALL) is refused with its own error, and
no signature is made, not even under break-glass.
"""

from __future__ import annotations

import pytest
from eth_abi.abi import encode
from eth_utils.address import to_checksum_address
from hypothesis import given
from hypothesis import strategies as st

from custody.authority.gate import BreakGlass
from custody.ethereum.erc20 import (
    APPROVE_SELECTOR,
    INCREASE_ALLOWANCE_SELECTOR,
    TRANSFER_FROM_SELECTOR,
    TRANSFER_SELECTOR,
    MalformedTokenTransferError,
    TokenApproveRefusedError,
    TokenCallRefusedError,
    TokenIncreaseAllowanceRefusedError,
    TokenNotInRegistryError,
    TokenTransferFromRefusedError,
    TokenValueRefusedError,
    UnknownTokenSelectorError,
    decode_token_call,
    transfer_calldata,
)
from custody.ethereum.safe_signature import OwnerSignature
from custody.ethereum.safe_tx import Operation, SafeTx
from custody.ethereum.signer import (
    Approval,
    KeyQuorum,
    SigningPolicy,
    TokenTransfer,
    approve,
    cosign_safe_tx,
    decode_action,
    spend_under_review,
)
from custody.exceptions import (
    ApprovalMismatchError,
    CustodyError,
    DelegateCallRefusedError,
    SigningRefusedError,
)
from custody.keys import cosigner_keys
from custody.secret import SecretBytes
from custody.shamir import ShareScheme, split_seed

SAFE = "0x" + "5a" * 20
TOKEN = "0x" + "70" * 20
OTHER_TOKEN = "0x" + "71" * 20
PAYEE = "0x" + "a1" * 20
THIEF = "0x" + "e6" * 20
REGISTRY = SigningPolicy(frozenset({TOKEN}))
AMOUNT = 1_250 * 10**18
SEED = bytes(range(32))
PASSPHRASE = "unit-test-passphrase"


def token_tx(data: bytes, *, to: str = TOKEN, value: int = 0, **changes: object) -> SafeTx:
    fields: dict[str, object] = {
        "chain_id": 31337,
        "safe": SAFE,
        "to": to,
        "value": value,
        "data": data,
        "operation": Operation.CALL,
        "nonce": 5,
    }
    fields.update(changes)
    return SafeTx(**fields)  # type: ignore[arg-type]


def _call(selector: bytes, types: list[str], values: list[object]) -> bytes:
    return selector + encode(types, values)


REFUSALS: list[tuple[str, SafeTx, type[CustodyError], str]] = [
    (
        "approve",
        token_tx(_call(APPROVE_SELECTOR, ["address", "uint256"], [THIEF, 2**256 - 1])),
        TokenApproveRefusedError,
        "approve",
    ),
    (
        "transferFrom",
        token_tx(
            _call(TRANSFER_FROM_SELECTOR, ["address", "address", "uint256"], [SAFE, THIEF, 1])
        ),
        TokenTransferFromRefusedError,
        "transferFrom",
    ),
    (
        "increaseAllowance",
        token_tx(_call(INCREASE_ALLOWANCE_SELECTOR, ["address", "uint256"], [THIEF, AMOUNT])),
        TokenIncreaseAllowanceRefusedError,
        "increaseAllowance",
    ),
    (
        "unknown selector",
        token_tx(bytes.fromhex("deadbeef") + encode(["address", "uint256"], [THIEF, 1])),
        UnknownTokenSelectorError,
        "0xdeadbeef",
    ),
    (
        "token outside the registry",
        token_tx(transfer_calldata(PAYEE, AMOUNT), to=OTHER_TOKEN),
        TokenNotInRegistryError,
        "registry",
    ),
    (
        "ether value on the transfer",
        token_tx(transfer_calldata(PAYEE, AMOUNT), value=1),
        TokenValueRefusedError,
        "'value' is 1 wei",
    ),
    (
        "bytes trailing the transfer",
        token_tx(transfer_calldata(PAYEE, AMOUNT) + b"\x00"),
        MalformedTokenTransferError,
        "69 bytes",
    ),
    (
        "a transfer missing its amount",
        token_tx(TRANSFER_SELECTOR + encode(["address"], [PAYEE])),
        MalformedTokenTransferError,
        "36 bytes",
    ),
    (
        "delegatecall to the token",
        token_tx(transfer_calldata(PAYEE, AMOUNT), operation=Operation.DELEGATECALL),
        DelegateCallRefusedError,
        "DELEGATECALL",
    ),
]


def test_a_registered_tokens_transfer_decodes_to_its_recipient_and_amount() -> None:
    """``transfer(payee, amount)`` to a registered token is the reviewed action, named as the
    statements name it: asset ``ERC20:<contract>``, the payee (not the contract), the amount."""
    tx = token_tx(transfer_calldata(PAYEE, AMOUNT))
    action = decode_action(tx, REGISTRY)
    assert action == TokenTransfer(token=tx.to, to=to_checksum_address(PAYEE), amount=AMOUNT)
    spend = spend_under_review(tx, action)
    assert spend.asset == f"ERC20:{tx.to}"
    assert spend.destination.lower() == PAYEE
    assert spend.amount == AMOUNT


@pytest.mark.parametrize(
    ("tx", "error", "says"), [pytest.param(*case[1:], id=case[0]) for case in REFUSALS]
)
def test_each_foreign_token_call_is_refused_with_its_own_error(
    tx: SafeTx, error: type[CustodyError], says: str
) -> None:
    """approve, transferFrom, increaseAllowance, an unknown selector, an unregistered token,
    ether on the call, a malformed transfer and a DELEGATECALL each raise their own error."""
    with pytest.raises(error, match=says) as raised:
        approve(tx, REGISTRY)
    assert type(raised.value) is error
    assert isinstance(raised.value, SigningRefusedError)


def test_the_refusal_errors_are_distinct_classes() -> None:
    """Each kind of refusal has its own class (a malformed transfer is one kind, met two ways),
    so a caller and an audit can tell them apart; all are the signer's refusals."""
    kinds = {case[2] for case in REFUSALS}
    assert len(kinds) == len(REFUSALS) - 1
    outside_the_call = {TokenNotInRegistryError, DelegateCallRefusedError}
    assert all(issubclass(kind, TokenCallRefusedError) for kind in kinds - outside_the_call)


class CountingQuorum(KeyQuorum):
    """A real key quorum that counts how often it was asked to sign."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.calls = 0

    def sign_hash(self, safe_tx_hash: bytes, expected_owner: str) -> OwnerSignature:
        self.calls += 1
        return super().sign_hash(safe_tx_hash, expected_owner)


def _quorum() -> tuple[CountingQuorum, str]:
    keys = cosigner_keys(SecretBytes(SEED))
    shares = split_seed(SecretBytes(SEED), ShareScheme(2, 3), PASSPHRASE)
    return CountingQuorum(
        "Central Bank", shares[1:], PASSPHRASE, keys.fingerprint
    ), keys.eth_address


@pytest.mark.parametrize(("tx", "error"), [pytest.param(c[1], c[2], id=c[0]) for c in REFUSALS])
def test_no_signature_is_made_for_a_refused_call_even_under_break_glass(
    tx: SafeTx, error: type[CustodyError]
) -> None:
    """An approval forged to claim a plain transfer does not get the call signed: the signer
    decodes the SafeTx itself and refuses before the seed is recombined."""
    forged = Approval(tx, tx.hash, TokenTransfer(token=tx.to, to=PAYEE, amount=AMOUNT))
    quorum, owner = _quorum()
    emergency = BreakGlass("unit test: break-glass must not bypass decoding")
    with pytest.raises(error):
        cosign_safe_tx(tx, forged, REGISTRY, quorum, owner, authority=emergency)
    assert quorum.calls == 0


def test_a_registered_transfer_is_signed_and_another_recipient_is_not() -> None:
    """The approved transfer is signed; the same call to another recipient is refused unsigned."""
    quorum, owner = _quorum()
    approved_tx = token_tx(transfer_calldata(PAYEE, AMOUNT))
    approval = approve(approved_tx, REGISTRY)
    emergency = BreakGlass("unit test of the token transfer mechanics; no roster exists here")
    signed = cosign_safe_tx(approved_tx, approval, REGISTRY, quorum, owner, authority=emergency)
    assert signed.signature.owner == owner
    assert signed.action == approval.action
    redirected = token_tx(transfer_calldata(THIEF, AMOUNT))
    with pytest.raises(ApprovalMismatchError, match="'data'"):
        cosign_safe_tx(redirected, approval, REGISTRY, quorum, owner, authority=emergency)
    assert quorum.calls == 1


@given(
    selector=st.binary(min_size=4, max_size=4).filter(lambda s: s != TRANSFER_SELECTOR),
    rest=st.binary(max_size=100),
)
def test_any_selector_but_transfer_is_refused(selector: bytes, rest: bytes) -> None:
    """Whatever four bytes start the call, only ``transfer``'s selector can be accepted."""
    with pytest.raises(TokenCallRefusedError):
        decode_token_call(TOKEN, 0, selector + rest)


@given(amount=st.integers(min_value=0, max_value=2**256 - 1), extra=st.binary(min_size=1))
def test_a_transfer_with_anything_trailing_is_refused(amount: int, extra: bytes) -> None:
    """Any bytes after ``transfer(to, amount)`` make it malformed, whatever the amount."""
    with pytest.raises(MalformedTokenTransferError):
        decode_token_call(TOKEN, 0, transfer_calldata(PAYEE, amount) + extra)

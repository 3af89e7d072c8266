"""The Safe's GS0xx revert codes map to specific exceptions in one table."""

from __future__ import annotations

import pytest

from custody.ethereum.errors import GS_REVERT_CODES, revert_error
from custody.exceptions import (
    ContractRevertError,
    CustodyError,
    SafeCallFailedError,
    SafeHashNotApprovedError,
    SafeInvalidOwnerError,
    SafeOwnerManagementError,
    SafeRevertError,
    SafeSignaturesTooShortError,
)


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("GS013", SafeCallFailedError),
        ("GS020", SafeSignaturesTooShortError),
        ("GS025", SafeHashNotApprovedError),
        ("GS026", SafeInvalidOwnerError),
        ("GS205", SafeOwnerManagementError),
    ],
)
def test_named_codes_raise_their_specific_exception(
    code: str, error: type[SafeRevertError]
) -> None:
    """The codes the vault meets most map to the exceptions callers catch."""
    raised = revert_error(code, "execute SafeTx 0xabc")
    assert type(raised) is error
    assert raised.code == code
    assert str(raised).startswith("The Safe refused to execute SafeTx 0xabc: " + code)


def test_every_code_maps_into_the_custody_tree() -> None:
    """Every table entry is a SafeRevertError subclass with a message that names the code."""
    for code, (error, meaning) in GS_REVERT_CODES.items():
        raised = revert_error(f"execution reverted: {code}", "act")
        assert isinstance(raised, error)
        assert isinstance(raised, CustodyError)
        assert code in str(raised)
        assert meaning in str(raised)


def test_other_reverts_stay_generic() -> None:
    """A non-Safe revert reason is a plain ContractRevertError carrying the reason."""
    raised = revert_error("ERC20: insufficient balance", "transfer")
    assert type(raised) is ContractRevertError
    assert raised.reason == "ERC20: insufficient balance"
    assert type(revert_error("GS999", "act")) is ContractRevertError

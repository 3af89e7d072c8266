"""The one table from the Safe's ``GS0xx`` revert codes to our typed exceptions.

Safe v1.4.1 reverts with short codes instead of sentences (``docs/error_codes.md`` in the
contracts' repository); this table turns each into a specific exception with a readable message.
"""

from __future__ import annotations

import re

from custody.exceptions import (
    ContractRevertError,
    SafeAccessError,
    SafeCallFailedError,
    SafeConfigurationError,
    SafeContractSignatureError,
    SafeGasPaymentError,
    SafeHashNotApprovedError,
    SafeInvalidOwnerError,
    SafeModuleError,
    SafeOwnerManagementError,
    SafeRevertError,
    SafeSetupError,
    SafeSignaturesTooShortError,
)

GS_REVERT_CODES: dict[str, tuple[type[SafeRevertError], str]] = {
    "GS000": (SafeSetupError, "could not finish initialization"),
    "GS001": (SafeSetupError, "the threshold needs to be defined"),
    "GS002": (SafeSetupError, "a module setup call went to an address that is not a contract"),
    "GS010": (SafeGasPaymentError, "not enough gas to execute the Safe transaction"),
    "GS011": (SafeGasPaymentError, "could not pay gas costs with ether"),
    "GS012": (SafeGasPaymentError, "could not pay gas costs with the token"),
    "GS013": (SafeCallFailedError, "the transaction's call failed (safeTxGas and gasPrice were 0)"),
    "GS020": (SafeSignaturesTooShortError, "the signatures are too short for the threshold"),
    "GS021": (SafeContractSignatureError, "a contract signature points inside the static part"),
    "GS022": (SafeContractSignatureError, "a contract signature's length is not present"),
    "GS023": (SafeContractSignatureError, "a contract signature's data is not complete"),
    "GS024": (SafeContractSignatureError, "an invalid contract signature was provided"),
    "GS025": (SafeHashNotApprovedError, "the hash has not been approved by that owner"),
    "GS026": (SafeInvalidOwnerError, "a signature is not by an owner, or not in owner order"),
    "GS030": (SafeInvalidOwnerError, "only owners can approve a hash"),
    "GS031": (SafeAccessError, "the method can only be called by the Safe itself"),
    "GS100": (SafeModuleError, "modules have already been initialized"),
    "GS101": (SafeModuleError, "an invalid module address was provided"),
    "GS102": (SafeModuleError, "the module has already been added"),
    "GS103": (SafeModuleError, "an invalid prevModule, module pair was provided"),
    "GS104": (SafeAccessError, "the method can only be called from an enabled module"),
    "GS105": (SafeModuleError, "an invalid starting point for paginating modules"),
    "GS106": (SafeModuleError, "an invalid page size for paginating modules"),
    "GS200": (SafeOwnerManagementError, "owners have already been set up"),
    "GS201": (SafeOwnerManagementError, "the threshold cannot exceed the owner count"),
    "GS202": (SafeOwnerManagementError, "the threshold needs to be greater than 0"),
    "GS203": (SafeOwnerManagementError, "an invalid owner address was provided"),
    "GS204": (SafeOwnerManagementError, "the address is already an owner"),
    "GS205": (SafeOwnerManagementError, "an invalid prevOwner, owner pair was provided"),
    "GS300": (SafeConfigurationError, "the guard does not implement IERC165"),
    "GS400": (SafeConfigurationError, "the fallback handler cannot be set to the Safe itself"),
}
"""Safe v1.4.1 revert code -> (exception class, what it means)."""

_GS_CODE = re.compile(r"\bGS\d{3}\b")


def revert_error(reason: str | None, action: str) -> ContractRevertError:
    """The specific exception for a revert ``reason`` met while doing ``action``."""
    found = _GS_CODE.search(reason or "")
    if found and found.group(0) in GS_REVERT_CODES:
        code = found.group(0)
        error, meaning = GS_REVERT_CODES[code]
        return error(f"The Safe refused to {action}: {code}, {meaning}.", code)
    shown = reason or "no reason given"
    return ContractRevertError(f"The contract reverted while trying to {action} ({shown}).", reason)

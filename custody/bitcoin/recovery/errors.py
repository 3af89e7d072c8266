"""The errors of recovery vaults, as branches of custody's own tree (``custody.exceptions``).

::

    VaultConfigError
    └── RecoveryPolicyError        an impossible key set, threshold, timelock or alarm share
    VaultError
    └── RecoveryWindowError        a coin's confirmations that cannot be (negative, not integers)
    SpendError
    └── UnsatisfiableInputError    an input lacks the signatures of either spending path
        └── RecoveryTimelockError  the recovery path is asked for before its timelock allows it

Callers catch ``CustodyError`` (or the two parents) as for every other vault; messages name the
input or field at fault and never carry key material.
"""

from __future__ import annotations

from custody.exceptions import SpendError, VaultConfigError, VaultError


class RecoveryPolicyError(VaultConfigError):
    """The recovery vault's keys, thresholds or timelock cannot make a valid policy."""


class RecoveryWindowError(VaultError, ValueError):
    """A coin's confirmation count from which no recovery window can be computed."""


class UnsatisfiableInputError(SpendError, ValueError):
    """An input cannot be finalised: neither spending path has the signatures it needs."""


class RecoveryTimelockError(UnsatisfiableInputError):
    """The transaction does not commit to the relative timelock the recovery path requires."""

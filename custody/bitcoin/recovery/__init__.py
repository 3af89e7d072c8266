"""Bitcoin vaults with a timelocked recovery path, described in miniscript.

``policy`` is the descriptor (addresses, witness scripts, the export with checksums),
``timelock`` the blocks left before a coin's recovery path opens, ``spending`` builds and signs
PSBTs with embit, ``satisfier`` finalises them for either path. The plain ``wsh(sortedmulti)``
vaults (``custody.bitcoin.vault``) are unchanged; wiring these into the treasury is separate.
"""

from custody.bitcoin.recovery.errors import (
    RecoveryPolicyError,
    RecoveryTimelockError,
    RecoveryWindowError,
    UnsatisfiableInputError,
)
from custody.bitcoin.recovery.policy import (
    RecoveryVaultPolicy,
    SpendPath,
    bsms_record,
    descriptor_export,
)
from custody.bitcoin.recovery.satisfier import (
    InputSatisfaction,
    extract_transaction,
    finalize_psbt,
    satisfy_input,
)
from custody.bitcoin.recovery.spending import (
    VaultCoin,
    build_psbt,
    estimate_vsize,
    sign_vault_psbt,
)
from custody.bitcoin.recovery.timelock import (
    CoinRecoveryWindow,
    blocks_until_recovery,
    coin_windows,
    refresh_due,
)

__all__ = [
    "CoinRecoveryWindow",
    "InputSatisfaction",
    "RecoveryPolicyError",
    "RecoveryTimelockError",
    "RecoveryVaultPolicy",
    "RecoveryWindowError",
    "SpendPath",
    "UnsatisfiableInputError",
    "VaultCoin",
    "blocks_until_recovery",
    "bsms_record",
    "build_psbt",
    "coin_windows",
    "descriptor_export",
    "estimate_vsize",
    "extract_transaction",
    "finalize_psbt",
    "refresh_due",
    "satisfy_input",
    "sign_vault_psbt",
]

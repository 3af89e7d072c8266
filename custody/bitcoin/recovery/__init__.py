"""Bitcoin vaults with a timelocked recovery path, described in miniscript.

``policy`` is the descriptor (addresses, witness scripts, the export with checksums),
``timelock`` the blocks left before a coin's recovery path opens, ``spending`` builds and signs
PSBTs with embit, ``satisfier`` finalises them for either path, and ``cosign`` is the gated
signer the treasury's workflow uses (the approval, the vault's coins and change, the officers'
statements, then the signature). The plain ``wsh(sortedmulti)`` vaults (``custody.bitcoin.vault``)
are unchanged; the treasury stores these in ``treasury.recovery_vaults``.
"""

from custody.bitcoin.recovery.cosign import (
    CheckedRecoverySpend,
    SignedRecoveryPsbt,
    check_recovery_psbt,
    cosign_recovery_psbt,
    recovery_vault_id,
    spend_under_review,
)
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
    "CheckedRecoverySpend",
    "CoinRecoveryWindow",
    "InputSatisfaction",
    "RecoveryPolicyError",
    "RecoveryTimelockError",
    "RecoveryVaultPolicy",
    "RecoveryWindowError",
    "SignedRecoveryPsbt",
    "SpendPath",
    "UnsatisfiableInputError",
    "VaultCoin",
    "blocks_until_recovery",
    "bsms_record",
    "build_psbt",
    "check_recovery_psbt",
    "coin_windows",
    "cosign_recovery_psbt",
    "descriptor_export",
    "estimate_vsize",
    "extract_transaction",
    "finalize_psbt",
    "recovery_vault_id",
    "refresh_due",
    "satisfy_input",
    "sign_vault_psbt",
    "spend_under_review",
]

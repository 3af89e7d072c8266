"""Every error the custody package raises.

Callers catch ``CustodyError`` to handle all of them; the tree::

    CustodyError
    ├── KeyMaterialError         shares, seeds and keys
    │   ├── ShareSchemeError     an impossible threshold/count or passphrase
    │   ├── InvalidShareError    a share with an unknown word, a bad checksum, or a bad length
    │   ├── MixedSharesError     shares from different splits
    │   ├── InsufficientSharesError  fewer distinct shares than the threshold
    │   ├── ShareFileError       a share file that cannot be read or holds no share words
    │   ├── FingerprintMismatchError the recovered seed is not the transcript's (wrong passphrase)
    │   └── SecretWipedError     a wiped secret was used again
    ├── CeremonyError            key ceremonies and their transcripts
    │   ├── CeremonyPlanError    bad holder names, witnesses or institution name
    │   ├── CeremonyExistsError  the institution already has a transcript
    │   ├── UnknownCeremonyError no transcript for that institution
    │   ├── QuorumCheckError     a quorum did not recombine to the split seed
    │   └── ShareMismatchError   a share does not match its institution's transcript
    ├── VaultError               Bitcoin multisig vaults
    │   ├── VaultConfigError     bad threshold, cosigners or name
    │   ├── UnknownVaultError    no vault of that name
    │   └── AddressMismatchError two implementations derived different addresses
    ├── SpendError               building, signing and broadcasting vault spends
    │   ├── MalformedPSBTError   the PSBT text does not decode
    │   ├── InvalidPaymentError  a destination address or amount is unusable
    │   ├── SpendApprovalMismatchError the PSBT is not the one that was approved
    │   ├── ForeignInputError    an input is not the vault's
    │   ├── ForeignChangeError   an output is neither approved nor the vault's change
    │   ├── AbsurdFeeError       the fee exceeds the approval or the policy caps
    │   ├── NotACosignerError    the institution holds no key of this vault
    │   ├── UnknownSpendError    no spend with that id
    │   ├── SpendStateError      the spend is not in a state that allows the step
    │   ├── SighashError         a BIP-143 digest asked for a missing input or a non-standard type
    │   └── ReserveProofError    a BIP-127 reserve proof the signer will not build, sign or finalise
    │       ├── BroadcastableReserveProofError  its first input is not the commitment input
    │       └── ReserveProofMismatchError       other coins or outputs than the snapshot's
    ├── AuthorityError           the officers' authority does not hold (custody.authority.errors:
    │                            statements, officer keys, the roster chain, the quorum)
    ├── ProvisioningError        a node binary could not be found or fetched
    └── DevnetError              a devnet process misbehaved
        ├── NodeStartError       it died or never answered while starting
        └── RPCError             a node answered a call with an error (subclasses per chain)
            ├── BitcoinRPCError
            └── EvmRPCError
    EthereumError                the Safe vaults on the Ethereum chain (branch of CustodyError)
    ├── SafeDeploymentError      Safe v1.4.1 contracts missing, or other code at their addresses
    ├── VaultNotFoundError       no such vault, proposal or institution in the database
    ├── VaultSetupError          an impossible threshold, duplicate owners, a name already taken
    ├── VaultStateMismatchError  owners, threshold or nonce on chain differ from the database
    ├── SafeTxError              a SafeTx that cannot be proposed or executed as given
    │   ├── WrongChainError          it was made for another chain id
    │   ├── WrongSafeError           it was made for another Safe
    │   ├── SafeTxHashMismatchError  our EIP-712 hash differs from the contract's
    │   ├── StaleSafeTxError         already executed, or its nonce is not the Safe's
    │   ├── NotAnOwnerError          a signer that is not on the vault's roster
    │   └── MissingSignaturesError   fewer owner signatures than the threshold
    ├── SafeMessageError         an EIP-1271 attestation signature that cannot be made
    │   └── SafeMessageHashMismatchError  our SafeMessage hash differs from the Safe's
    ├── SigningRefusedError      the signer will not sign what it was shown
    │   ├── DelegateCallRefusedError  a DELEGATECALL (could rewrite the Safe's storage)
    │   ├── UnknownContractError      a call to a contract that is not allowlisted
    │   ├── UnsupportedActionError    a call, value or gas refund the signer cannot vouch for
    │   └── ApprovalMismatchError     the hash or a field differs from what was approved
    └── ContractRevertError      a contract call reverted
        └── SafeRevertError      the Safe reverted with a GS0xx code (one table: custody.ethereum.errors)
            ├── SafeSetupError, SafeGasPaymentError, SafeCallFailedError (GS013)
            ├── SafeSignaturesTooShortError (GS020), SafeContractSignatureError (GS021-24)
            ├── SafeHashNotApprovedError (GS025), SafeInvalidOwnerError (GS026, GS030)
            └── SafeAccessError, SafeModuleError, SafeOwnerManagementError, SafeConfigurationError

Messages are full sentences that name what failed and what to do; they never carry key material.
"""

from __future__ import annotations


class CustodyError(Exception):
    """Root of every error raised by the custody package."""


class KeyMaterialError(CustodyError):
    """Shares, seeds or keys are unusable; the message never contains any of their content."""


class ShareSchemeError(KeyMaterialError, ValueError):
    """A split was asked for with an impossible threshold/count or an invalid passphrase."""


class InvalidShareError(KeyMaterialError, ValueError):
    """A share does not parse: an unknown word, a failed checksum, or a wrong length."""


class MixedSharesError(KeyMaterialError, ValueError):
    """The shares given belong to different splits (different seeds)."""


class InsufficientSharesError(KeyMaterialError, ValueError):
    """Fewer distinct shares than the split's threshold were given."""


class ShareFileError(KeyMaterialError, OSError):
    """A holder's share file cannot be read or holds no share words (also an ``OSError``)."""


class FingerprintMismatchError(KeyMaterialError, ValueError):
    """The recombined seed's master fingerprint differs from the ceremony transcript's.

    SLIP-39 cannot detect a wrong passphrase (it yields another valid seed by design); this check
    against the recorded fingerprint is what catches it.
    """


class SecretWipedError(KeyMaterialError):
    """A secret was used after it had been wiped."""


class CeremonyError(CustodyError):
    """A key ceremony could not be run or a transcript could not be used."""


class CeremonyPlanError(CeremonyError, ValueError):
    """The ceremony plan is unusable: empty or duplicate holder names, or a blank institution."""


class CeremonyExistsError(CeremonyError):
    """The institution already has a transcript; a re-key needs a new institution name."""


class UnknownCeremonyError(CeremonyError, LookupError):
    """No ceremony transcript exists for the institution named."""


class QuorumCheckError(CeremonyError):
    """Right after the split, a quorum of shares did not recombine to the seed's fingerprint."""


class ShareMismatchError(CeremonyError, ValueError):
    """A well-formed share does not belong to the transcript it was checked against."""


class VaultError(CustodyError):
    """A Bitcoin multisig vault could not be created or used."""


class VaultConfigError(VaultError, ValueError):
    """The vault's threshold, cosigners or name are unusable."""


class UnknownVaultError(VaultError, LookupError):
    """No vault with that name exists."""


class AddressMismatchError(VaultError):
    """Independent implementations derived different addresses: nothing is shown or used."""


class SpendError(CustodyError):
    """A vault spend could not be built, signed or broadcast."""


class MalformedPSBTError(SpendError, ValueError):
    """The PSBT text is not a decodable base64 PSBT."""


class InvalidPaymentError(SpendError, ValueError):
    """A payment's address is not a regtest Bitcoin address, or its amount is not positive."""


class SpendApprovalMismatchError(SpendError, ValueError):
    """The PSBT differs from the approved spend (hash, destinations or amounts)."""


class ForeignInputError(SpendError, ValueError):
    """A PSBT input does not spend a coin of the vault's descriptors."""


class ForeignChangeError(SpendError, ValueError):
    """A PSBT output is neither an approved destination nor the vault's own change."""


class AbsurdFeeError(SpendError, ValueError):
    """The fee exceeds the approved maximum or the signer's fee-rate or absolute cap."""


class NotACosignerError(SpendError):
    """The institution's key is not one of the vault's cosigner keys."""


class UnknownSpendError(SpendError, LookupError):
    """No spend with that id exists."""


class SpendStateError(SpendError):
    """The spend's state does not allow this step (e.g. signing after broadcast)."""


class SighashError(SpendError, ValueError):
    """A BIP-143 digest was asked for an input the transaction lacks or for a non-standard
    sighash type (``custody.bitcoin.sighash``)."""


class ProvisioningError(CustodyError):
    """A node binary is missing, broken, or could not be fetched."""


class DevnetError(CustodyError):
    """A devnet node process failed."""


class NodeStartError(DevnetError):
    """A node died during start-up or its RPC never answered within the deadline."""


class RPCError(DevnetError):
    """A node answered an RPC call with an error or could not be reached."""

    def __init__(self, method: str, code: int | None, message: str) -> None:
        super().__init__(f"RPC {method} failed ({code}): {message}")
        self.method = method
        self.code = code
        self.message = message


class BitcoinRPCError(RPCError):
    """bitcoind answered with a JSON-RPC error."""


class EvmRPCError(RPCError):
    """An EVM node answered with a JSON-RPC error."""


# --- Ethereum: Safe vaults ----------------------------------------------------------------------


class EthereumError(CustodyError):
    """Root of the errors about Safe vaults on the Ethereum chain."""


class SafeDeploymentError(EthereumError):
    """The Safe v1.4.1 contracts are missing, or an address holds code that is not the audited build."""


class VaultNotFoundError(EthereumError, LookupError):
    """No vault, proposed SafeTx or roster institution matches what was asked for."""


class VaultSetupError(EthereumError, ValueError):
    """A vault asked for with an impossible threshold, duplicate owners or a name already taken."""


class VaultStateMismatchError(EthereumError):
    """The Safe's owners, threshold or nonce on chain differ from the database: refuse to operate."""


class SafeTxError(EthereumError, ValueError):
    """A SafeTx that cannot be proposed, signed or executed as given."""


class WrongChainError(SafeTxError):
    """The SafeTx names another chain id than the vault's (its hash is only valid there)."""


class WrongSafeError(SafeTxError):
    """The SafeTx names another Safe than the vault it was handed to."""


class SafeTxHashMismatchError(SafeTxError):
    """Our EIP-712 SafeTx hash differs from the Safe contract's ``getTransactionHash``."""


class StaleSafeTxError(SafeTxError):
    """The SafeTx was already executed, or its nonce is not the Safe's current nonce (a replay)."""


class NotAnOwnerError(SafeTxError):
    """A signature, key or institution that is not on the vault's owner roster."""


class MissingSignaturesError(SafeTxError):
    """Fewer distinct owner signatures than the vault's threshold."""


class SigningRefusedError(EthereumError, ValueError):
    """The signer refuses: what it would sign is not what a person reviewed and may approve."""


class DelegateCallRefusedError(SigningRefusedError):
    """A DELEGATECALL runs foreign code with the Safe's storage; the signer never signs one."""


class UnknownContractError(SigningRefusedError):
    """A call to a contract that is not on the signer's allowlist of token contracts."""


class UnsupportedActionError(SigningRefusedError):
    """A call, value or gas refund that the signer cannot decode into a reviewed action."""


class ApprovalMismatchError(SigningRefusedError):
    """The SafeTx's hash or one of its fields differs from what was approved."""


class ContractRevertError(EthereumError):
    """A contract call reverted; ``reason`` is the revert string when the contract gave one."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class SafeRevertError(ContractRevertError):
    """The Safe reverted with a ``GS0xx`` code; ``custody.ethereum.errors`` maps codes to classes."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message, reason=code)
        self.code = code


class SafeSetupError(SafeRevertError):
    """GS000-GS002: the Safe could not be initialised."""


class SafeGasPaymentError(SafeRevertError):
    """GS010-GS012: too little gas, or the gas refund could not be paid."""


class SafeCallFailedError(SafeRevertError):
    """GS013: the SafeTx's own call failed (with safeTxGas and gasPrice 0 the whole tx reverts)."""


class SafeSignaturesTooShortError(SafeRevertError):
    """GS020: fewer signature bytes than threshold * 65."""


class SafeContractSignatureError(SafeRevertError):
    """GS021-GS024: a contract (EIP-1271) signature is malformed or invalid."""


class SafeHashNotApprovedError(SafeRevertError):
    """GS025: an approved-hash signature for a hash the owner never approved on chain."""


class SafeInvalidOwnerError(SafeRevertError):
    """GS026/GS030: a signature recovers to a non-owner, or signatures are not in owner order."""


class SafeAccessError(SafeRevertError):
    """GS031/GS104: a method only the Safe itself or an enabled module may call."""


class SafeModuleError(SafeRevertError):
    """GS100-GS106: module management failed."""


class SafeOwnerManagementError(SafeRevertError):
    """GS200-GS205: an owner change with a bad owner, prevOwner pair or threshold."""


class SafeConfigurationError(SafeRevertError):
    """GS300/GS400: a guard or fallback handler that cannot be set."""


# --- Proofs of control for attestations (custody.bitcoin.reserve_proof, ethereum.safe_message) ---


class ReserveProofError(SpendError, ValueError):
    """A BIP-127 reserve-proof PSBT the signer will not build, sign or finalise."""


class BroadcastableReserveProofError(ReserveProofError):
    """The PSBT's first input is not the attestation's commitment input, so it could be broadcast."""


class ReserveProofMismatchError(ReserveProofError):
    """The PSBT spends other coins than the attested snapshot's, or pays another output."""


class SafeMessageError(EthereumError, ValueError):
    """A Safe EIP-1271 message signature that cannot be made, or that the Safe does not accept."""


class SafeMessageHashMismatchError(SafeMessageError):
    """Our EIP-712 SafeMessage hash differs from the Safe fallback handler's ``getMessageHash``."""

"""Every error the custody package raises.

Callers catch ``CustodyError`` to handle all of them; the tree::

    CustodyError
    ├── KeyMaterialError         shares, seeds and keys
    │   ├── ShareSchemeError     an impossible threshold/count or passphrase
    │   ├── InvalidShareError    a share with an unknown word, a bad checksum, or a bad length
    │   ├── MixedSharesError     shares from different splits
    │   ├── InsufficientSharesError  fewer distinct shares than the threshold
    │   ├── FingerprintMismatchError the recovered seed is not the transcript's (wrong passphrase)
    │   └── SecretWipedError     a wiped secret was used again
    ├── ProvisioningError        a node binary could not be found or fetched
    └── DevnetError              a devnet process misbehaved
        ├── NodeStartError       it died or never answered while starting
        └── RPCError             a node answered a call with an error (subclasses per chain)
            ├── BitcoinRPCError
            └── EvmRPCError

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


class FingerprintMismatchError(KeyMaterialError, ValueError):
    """The recombined seed's master fingerprint differs from the ceremony transcript's.

    SLIP-39 cannot detect a wrong passphrase (it yields another valid seed by design); this check
    against the recorded fingerprint is what catches it.
    """


class SecretWipedError(KeyMaterialError):
    """A secret was used after it had been wiped."""


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

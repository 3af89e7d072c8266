"""A vault with a timelocked recovery path, as one miniscript descriptor.

::

    wsh(or_d(multi(2,A,B,C),and_v(v:multi(2,R1,R2,R3),older(N))))

The institutions' quorum (``multi(2,A,B,C)``) spends at any time; the recovery bodies' quorum
(``multi(2,R1,R2,R3)``) only once the coin has ``N`` confirmations (``older(N)``: a BIP-68 relative
lock in blocks). Each key is a BIP-48 account key with its origin (``[fp/48h/1h/0h/2h]tpub...``),
followed by ``/0/*`` for receive addresses and ``/1/*`` for change, or ``/<0;1>/*`` in the
multipath form (BIP-389) that the export carries.

``multi`` (not ``sortedmulti``) is what miniscript offers inside a larger policy, so the key
order written here is the order of the keys in the script and of the signatures in a witness.
The compiled script (embit's miniscript) is::

    2 <A> <B> <C> 3 CHECKMULTISIG IFDUP NOTIF
        2 <R1> <R2> <R3> 3 CHECKMULTISIGVERIFY <N> CHECKSEQUENCEVERIFY
    ENDIF

Addresses and witness scripts are derived with embit here; the tests check every one of them
against bitcoind's ``deriveaddresses`` and the checksum against ``getdescriptorinfo``.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from functools import cached_property

from embit.descriptor import Descriptor
from embit.descriptor.checksum import add_checksum
from embit.psbt import DerivationPath
from embit.script import Script

from custody.bitcoin.descriptor import Branch
from custody.bitcoin.recovery.errors import RecoveryPolicyError
from custody.bitcoin.recovery.timelock import check_recovery_delay
from custody.bitcoin_network import BitcoinNetwork

MAX_KEYS_PER_QUORUM = 15
"""As for the plain vaults: a 15-key ``multi`` keeps the witness within P2WSH standardness."""
MAX_ADDRESS_INDEX = 2**31 - 1
"""Non-hardened BIP-32 child indices end here."""
MULTIPATH_SUFFIX = "/<0;1>/*"
"""BIP-389: one descriptor for both branches; its first path is receive, its second change."""

_KEY_ORIGIN = re.compile(r"^\[[0-9a-f]{8}(/[0-9]+h)+\][tx]pub[1-9A-HJ-NP-Za-km-z]{100,112}$")


class SpendPath(enum.Enum):
    """Which branch of ``or_d`` a spend satisfies."""

    PRIMARY = "primary"
    """The institutions' quorum: ``multi`` on the left, no timelock."""
    RECOVERY = "recovery"
    """The recovery bodies' quorum after ``N`` blocks: ``and_v(v:multi, older(N))``."""


def _check_quorum(name: str, threshold: int, key_origins: tuple[str, ...]) -> None:
    count = len(key_origins)
    if not 1 <= count <= MAX_KEYS_PER_QUORUM:
        raise RecoveryPolicyError(
            f"The {name} quorum needs between 1 and {MAX_KEYS_PER_QUORUM} keys; got {count}."
        )
    if isinstance(threshold, bool) or not isinstance(threshold, int):
        raise RecoveryPolicyError(f"The {name} threshold must be an integer.")
    if not 1 <= threshold <= count:
        raise RecoveryPolicyError(
            f"The {name} threshold must be between 1 and its {count} keys; got {threshold}."
        )
    for origin in key_origins:
        if not _KEY_ORIGIN.match(origin):
            raise RecoveryPolicyError(
                f"The {name} key {origin[:24]}... is not of the form [fingerprint/path]tpub...."
            )


@dataclass(frozen=True)
class RecoveryVaultPolicy:
    """``primary_threshold``-of-``primary_keys`` at any time, or ``recovery_threshold``-of-
    ``recovery_keys`` after ``recovery_delay_blocks`` confirmations. Keys are key origins
    (``[fp/48h/1h/0h/2h]tpub...``) in script order."""

    primary_threshold: int
    primary_keys: tuple[str, ...]
    recovery_threshold: int
    recovery_keys: tuple[str, ...]
    recovery_delay_blocks: int
    network: BitcoinNetwork = BitcoinNetwork.REGTEST
    """The network whose addresses ``address`` writes."""

    def __post_init__(self) -> None:
        _check_quorum("primary", self.primary_threshold, self.primary_keys)
        _check_quorum("recovery", self.recovery_threshold, self.recovery_keys)
        check_recovery_delay(self.recovery_delay_blocks)
        xpubs = [origin.split("]", 1)[-1] for origin in self.primary_keys + self.recovery_keys]
        if len(set(xpubs)) != len(xpubs):
            raise RecoveryPolicyError(
                "A key appears twice among the primary and recovery keys; miniscript requires "
                "every key once, and a recovery body must not hold an institution's key."
            )

    # --- descriptor text ----------------------------------------------------------------------

    def _text(self, suffix: str) -> str:
        primary = ",".join(f"{origin}{suffix}" for origin in self.primary_keys)
        recovery = ",".join(f"{origin}{suffix}" for origin in self.recovery_keys)
        return (
            f"wsh(or_d(multi({self.primary_threshold},{primary}),"
            f"and_v(v:multi({self.recovery_threshold},{recovery}),"
            f"older({self.recovery_delay_blocks}))))"
        )

    def text(self, branch: Branch) -> str:
        """The single-branch descriptor without checksum (keys end in ``/0/*`` or ``/1/*``)."""
        return self._text(f"/{int(branch)}/*")

    def text_with_checksum(self, branch: Branch) -> str:
        """The single-branch descriptor with its BIP-380 checksum: what a wallet imports."""
        return str(add_checksum(self.text(branch)))

    def multipath_text(self) -> str:
        """Both branches in one BIP-389 descriptor (``/<0;1>/*``), with its checksum."""
        return str(add_checksum(self._text(MULTIPATH_SUFFIX)))

    # --- derivation ---------------------------------------------------------------------------

    @cached_property
    def _parsed(self) -> Descriptor:
        """The multipath descriptor parsed once; embit selects a branch with ``branch_index``."""
        try:
            return Descriptor.from_string(self._text(MULTIPATH_SUFFIX))
        except Exception as exc:  # embit raises its own errors and ValueError
            raise RecoveryPolicyError(
                f"embit refuses the recovery vault's miniscript ({type(exc).__name__}: {exc})."
            ) from None

    def derived(self, branch: Branch, index: int) -> Descriptor:
        """The descriptor with every key derived at ``branch``/``index``."""
        if isinstance(index, bool) or not isinstance(index, int):
            raise RecoveryPolicyError("An address index must be an integer.")
        if not 0 <= index <= MAX_ADDRESS_INDEX:
            raise RecoveryPolicyError(
                f"Address index {index} is outside 0..{MAX_ADDRESS_INDEX} (non-hardened BIP-32)."
            )
        return self._parsed.derive(index, branch_index=int(branch))

    def witness_script(self, branch: Branch, index: int) -> Script:
        return self.derived(branch, index).witness_script()

    def script_pubkey(self, branch: Branch, index: int) -> Script:
        return self.derived(branch, index).script_pubkey()

    def address(self, branch: Branch, index: int) -> str:
        """The bech32 P2WSH address (``bcrt1q...`` on regtest) at ``branch``/``index``."""
        return str(self.script_pubkey(branch, index).address(self.network.params))

    def path_keys(self, path: SpendPath, branch: Branch, index: int) -> tuple[bytes, ...]:
        """One quorum's compressed public keys at ``branch``/``index``, in script order."""
        keys = [key.get_public_key().sec() for key in self.derived(branch, index).keys]
        count = len(self.primary_keys)
        return tuple(keys[:count] if path is SpendPath.PRIMARY else keys[count:])

    def threshold(self, path: SpendPath) -> int:
        return self.primary_threshold if path is SpendPath.PRIMARY else self.recovery_threshold

    def locate(self, derivation: DerivationPath) -> tuple[Branch, int] | None:
        """The branch and index a PSBT key derivation points to, if it is one of our keys."""
        found = self._parsed.check_derivation(derivation)
        if found is None:
            return None
        index, branch_index = found
        return Branch(int(branch_index)), int(index)

    @property
    def fingerprints(self) -> dict[SpendPath, tuple[str, ...]]:
        """Master fingerprints of each quorum's keys (safe to log)."""
        return {
            SpendPath.PRIMARY: tuple(origin[1:9] for origin in self.primary_keys),
            SpendPath.RECOVERY: tuple(origin[1:9] for origin in self.recovery_keys),
        }


def descriptor_export(policy: RecoveryVaultPolicy) -> str:
    """The watch-only export: the multipath descriptor, then receive and change, each with its
    checksum, one per line; every line carries the full miniscript, timelock included."""
    return "\n".join(
        (
            policy.multipath_text(),
            policy.text_with_checksum(Branch.RECEIVE),
            policy.text_with_checksum(Branch.CHANGE),
        )
    )


BSMS_VERSION = "BSMS 1.0"


def bsms_record(policy: RecoveryVaultPolicy) -> str:
    """A BIP-129 (BSMS) descriptor record: version, template (``/**``), allowed paths, first
    address. The template is the full miniscript, so a coordinator rebuilds the recovery path."""
    template = policy.text(Branch.RECEIVE).replace("/0/*", "/**")
    return "\n".join((BSMS_VERSION, template, "/0/*,/1/*", policy.address(Branch.RECEIVE, 0)))

"""A vault's output descriptors: ``wsh(sortedmulti(M, ...))`` over the cosigners' BIP-48 xpubs.

Receive addresses come from ``/0/*``, change from ``/1/*``. embit parses the descriptor and
derives each cosigner's branch key (``xpub/0``, ``xpub/1``) once; the last step, one BIP-32
public child per cosigner and index, and the ``sortedmulti`` script over those keys are made here
and kept per ``(branch, index)``, because a signer checks every input of a spend against them and
embit's ``Descriptor.derive`` costs two base58-encoding key derivations per cosigner each time.
The unit tests hold this to embit's own derivation, and the vault module cross-checks every
address against bitcoind and a second library before use.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, lru_cache

from embit.bip32 import HDKey
from embit.descriptor import Descriptor
from embit.descriptor.arguments import Key as DescriptorKey
from embit.descriptor.checksum import add_checksum
from embit.psbt import DerivationPath
from embit.script import Script
from embit.util import secp256k1

from custody.bitcoin_network import BitcoinNetwork
from custody.exceptions import VaultConfigError

MAX_COSIGNERS = 15
"""P2WSH multisig is standard up to 15 keys (``sortedmulti`` itself allows 20)."""
MAX_ADDRESS_INDEX = 2**31 - 1
"""Non-hardened BIP-32 child indices end here."""

DERIVED_CACHE_ENTRIES = 4096
"""How many ``(branch, index)`` derivations one descriptor keeps: more than the inputs of any
spend, bounded so that a long scan of addresses cannot grow it without end."""
OP_1 = 0x51
"""``OP_1`` .. ``OP_16`` push 1 .. 16: the threshold and the key count of the multisig script."""
OP_CHECKMULTISIG = 0xAE
COMPRESSED_PUBKEY_BYTES = 33
P2WSH_PROGRAM_PREFIX = b"\x00\x20"
"""A P2WSH output script: witness version 0, then a 32-byte push of the script's SHA-256."""

_KEY_ORIGIN = re.compile(r"^\[[0-9a-f]{8}(/[0-9]+h)+\][tx]pub[1-9A-HJ-NP-Za-km-z]{100,112}$")


class Branch(enum.IntEnum):
    """The BIP-32 child under each cosigner's account key: receive or change."""

    RECEIVE = 0
    CHANGE = 1


@dataclass(frozen=True)
class DerivedScripts:
    """The vault at one ``branch``/``index``: its cosigners' keys and its two scripts, as bytes."""

    public_keys: tuple[bytes, ...]
    """The cosigners' compressed public keys at this index, in cosigner order."""
    witness_script: bytes
    """``M <keys sorted> N OP_CHECKMULTISIG``: what ``sortedmulti`` writes."""
    script_pubkey: bytes
    """The P2WSH output script of ``witness_script``."""


@dataclass(frozen=True)
class _BranchKey:
    """A cosigner's public key at ``/branch``: what each index's child is derived from."""

    point: bytes
    """libsecp256k1's 64-byte internal form of the public key (``ec_pubkey_parse``)."""
    sec: bytes
    chain_code: bytes


def _public_child(parent: _BranchKey, index: int) -> bytes:
    """BIP-32 CKDpub for a non-hardened ``index``: the child's compressed public key.

    The same steps as embit's ``HDKey.child`` (HMAC-SHA512 of the parent key and index, the left
    half added to the parent point), without building an ``HDKey``, whose constructor
    base58-encodes the key it makes.
    """
    tweak = hmac.new(parent.chain_code, parent.sec + index.to_bytes(4, "big"), "sha512").digest()
    try:
        point = secp256k1.ec_pubkey_add(parent.point, tweak[:32])
    except ValueError as error:  # BIP-32: a tweak >= n or the point at infinity (p < 2^-127)
        raise VaultConfigError(
            f"Address index {index} has no BIP-32 child key (the BIP says skip it); use another."
        ) from error
    return bytes(secp256k1.ec_pubkey_serialize(point))


def _sortedmulti(threshold: int, keys: tuple[bytes, ...]) -> bytes:
    """The witness script ``sortedmulti(threshold, keys)`` stands for (BIP-383: keys sorted)."""
    pushes = b"".join(bytes([COMPRESSED_PUBKEY_BYTES]) + key for key in sorted(keys))
    return bytes([OP_1 - 1 + threshold]) + pushes + bytes([OP_1 - 1 + len(keys), OP_CHECKMULTISIG])


def _derivation_cache(
    threshold: int, branch_keys: dict[Branch, tuple[_BranchKey, ...]]
) -> Callable[[Branch, int], DerivedScripts]:
    """``derive(branch, index)`` over the cosigners' branch keys, remembered per argument.

    A closure over plain values rather than the descriptor, so the cache holds no reference back
    to the descriptor that owns it.
    """

    @lru_cache(maxsize=DERIVED_CACHE_ENTRIES)
    def derive(branch: Branch, index: int) -> DerivedScripts:
        keys = tuple(_public_child(parent, index) for parent in branch_keys[branch])
        witness_script = _sortedmulti(threshold, keys)
        script_pubkey = P2WSH_PROGRAM_PREFIX + hashlib.sha256(witness_script).digest()
        return DerivedScripts(keys, witness_script, script_pubkey)

    return derive


@dataclass(frozen=True)
class VaultDescriptor:
    """M-of-N over cosigner key origins (``[fp/48h/1h/0h/2h]tpub...``), in cosigner order."""

    threshold: int
    key_origins: tuple[str, ...]
    network: BitcoinNetwork = BitcoinNetwork.REGTEST
    """The network whose addresses ``address`` writes."""

    def __post_init__(self) -> None:
        count = len(self.key_origins)
        if not 1 <= count <= MAX_COSIGNERS:
            raise VaultConfigError(
                f"A vault needs between 1 and {MAX_COSIGNERS} cosigners; got {count}."
            )
        if not 1 <= self.threshold <= count:
            raise VaultConfigError(
                f"The vault threshold must be between 1 and the {count} cosigners; "
                f"got {self.threshold}."
            )
        xpubs = [origin.split("]", 1)[-1] for origin in self.key_origins]
        if len(set(xpubs)) != count:
            raise VaultConfigError(
                "Two cosigners share one xpub; every cosigner needs its own key."
            )
        for origin in self.key_origins:
            if not _KEY_ORIGIN.match(origin):
                raise VaultConfigError(
                    f"Cosigner key {origin[:24]}... is not of the form [fingerprint/path]tpub...."
                )

    def text(self, branch: Branch) -> str:
        """The descriptor without checksum, e.g. ``wsh(sortedmulti(2,[..]tpub../0/*,...))``."""
        keys = ",".join(f"{origin}/{int(branch)}/*" for origin in self.key_origins)
        return f"wsh(sortedmulti({self.threshold},{keys}))"

    def text_with_checksum(self, branch: Branch) -> str:
        """The descriptor with its BIP-380 checksum, computed by our own code."""
        return str(add_checksum(self.text(branch)))

    @cached_property
    def _parsed(self) -> dict[Branch, Descriptor]:
        return {branch: Descriptor.from_string(self.text(branch)) for branch in Branch}

    def parsed(self, branch: Branch) -> Descriptor:
        """embit's parsed descriptor for ``branch``."""
        return self._parsed[branch]

    @property
    def fingerprints(self) -> tuple[str, ...]:
        return tuple(origin[1:9] for origin in self.key_origins)

    def address(self, branch: Branch, index: int) -> str:
        """The bech32 address (``bcrt1q...`` on regtest) at ``branch``/``index``."""
        return str(self.script_pubkey(branch, index).address(self.network.params))

    @cached_property
    def _derive(self) -> Callable[[Branch, int], DerivedScripts]:
        branch_keys = {}
        for branch in Branch:
            parents = []
            for origin in self.key_origins:
                key = HDKey.from_base58(origin.split("]", 1)[1]).child(int(branch))
                sec = bytes(key.key.sec())
                parents.append(_BranchKey(secp256k1.ec_pubkey_parse(sec), sec, key.chain_code))
            branch_keys[branch] = tuple(parents)
        return _derivation_cache(self.threshold, branch_keys)

    def derived(self, branch: Branch, index: int) -> DerivedScripts:
        """The cosigners' keys and the scripts at ``branch``/``index``, derived once per index."""
        if not 0 <= index <= MAX_ADDRESS_INDEX:
            raise VaultConfigError(
                f"Address index {index} is outside 0..{MAX_ADDRESS_INDEX} (non-hardened BIP-32)."
            )
        return self._derive(Branch(branch), index)

    def script_pubkey(self, branch: Branch, index: int) -> Script:
        """The P2WSH output script at ``branch``/``index`` (a new ``Script`` on every call)."""
        return Script(self.derived(branch, index).script_pubkey)

    def witness_script(self, branch: Branch, index: int) -> Script:
        """The multisig witness script at ``branch``/``index`` (a new ``Script`` on every call)."""
        return Script(self.derived(branch, index).witness_script)

    @cached_property
    def _descriptor_keys(self) -> dict[Branch, tuple[DescriptorKey, ...]]:
        # embit's ``Descriptor.keys`` builds its list anew on every call; a signer asks per key.
        return {branch: tuple(self.parsed(branch).keys) for branch in Branch}

    def locate(self, derivation: DerivationPath) -> tuple[Branch, int] | None:
        """Which branch and index a PSBT key derivation points to, if it is one of our keys.

        embit's own test (``Descriptor.check_derivation``), key by key in cosigner order, except
        that a hardened last step, which embit accepts, is no key of the vault's: an xpub cannot
        derive it, so no address of the vault is there.
        """
        for branch, keys in self._descriptor_keys.items():
            for key in keys:
                found = key.check_derivation(derivation)
                if found is not None:
                    index = int(found[0])
                    return (branch, index) if index <= MAX_ADDRESS_INDEX else None
        return None

    def derived_public_keys(self, branch: Branch, index: int) -> frozenset[bytes]:
        """The cosigners' compressed public keys at ``branch``/``index``."""
        return frozenset(self.derived(branch, index).public_keys)

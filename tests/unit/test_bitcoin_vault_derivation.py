"""The vault descriptor's own last derivation step and ``sortedmulti`` script, held to embit's
``Descriptor.derive`` at every index asked; derived once per index; and ``locate`` reading a PSBT
key derivation exactly as embit's ``check_derivation`` does."""

from __future__ import annotations

import pytest
from embit.psbt import DerivationPath
from hypothesis import given, settings
from hypothesis import strategies as st

from custody.bitcoin.descriptor import MAX_ADDRESS_INDEX, Branch, VaultDescriptor
from custody.exceptions import VaultConfigError
from custody.keys import cosigner_keys
from custody.secret import SecretBytes

SEEDS = tuple(bytes([n]) * 32 for n in range(11, 26))
"""Fifteen fixed test seeds: enough cosigners for the largest standard vault."""
ORIGINS = tuple(cosigner_keys(SecretBytes(seed)).key_origin for seed in SEEDS)
SHAPES = [(1, 1), (2, 3), (3, 5), (11, 15)]
"""Threshold and cosigner count: the smallest vault, the usual one, and the largest (15 keys)."""
VAULTS = {shape: VaultDescriptor(shape[0], ORIGINS[: shape[1]]) for shape in SHAPES}


def _embit(vault: VaultDescriptor, branch: Branch, index: int) -> tuple[bytes, bytes, frozenset]:
    derived = vault.parsed(branch).derive(index)
    return (
        bytes(derived.script_pubkey().data),
        bytes(derived.witness_script().data),
        frozenset(key.get_public_key().sec() for key in derived.keys),
    )


def _ours(vault: VaultDescriptor, branch: Branch, index: int) -> tuple[bytes, bytes, frozenset]:
    return (
        bytes(vault.script_pubkey(branch, index).data),
        bytes(vault.witness_script(branch, index).data),
        vault.derived_public_keys(branch, index),
    )


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("branch", list(Branch))
@pytest.mark.parametrize("index", [0, 1, 2, 999, MAX_ADDRESS_INDEX])
def test_scripts_and_keys_equal_embits_derivation(
    shape: tuple[int, int], branch: Branch, index: int
) -> None:
    """The scriptPubKey, witness script and cosigner keys at the edges of the index range are
    embit's, byte for byte, for vaults of 1 to 15 keys."""
    vault = VAULTS[shape]
    assert _ours(vault, branch, index) == _embit(vault, branch, index)


@settings(max_examples=60, deadline=None)
@given(
    shape=st.sampled_from(SHAPES),
    branch=st.sampled_from(list(Branch)),
    index=st.integers(0, MAX_ADDRESS_INDEX),
)
def test_any_index_equals_embits_derivation(
    shape: tuple[int, int], branch: Branch, index: int
) -> None:
    """At any non-hardened index the derivation is embit's (and the address string too)."""
    vault = VAULTS[shape]
    assert _ours(vault, branch, index) == _embit(vault, branch, index)
    expected = vault.parsed(branch).derive(index).address(vault.network.params)
    assert vault.address(branch, index) == expected


def test_a_derivation_is_made_once_per_index_and_handed_out_as_new_scripts() -> None:
    """The second ask for one index reuses the first derivation; each call still returns its own
    ``Script``, so a caller that changes one cannot change what the next caller gets."""
    vault = VaultDescriptor(2, ORIGINS[:3])
    first = vault.derived(Branch.CHANGE, 42)
    assert vault.derived(Branch.CHANGE, 42) is first
    assert vault.derived(Branch.RECEIVE, 42) is not first
    handed = vault.witness_script(Branch.CHANGE, 42)
    handed.data = b"tampered"
    assert vault.witness_script(Branch.CHANGE, 42).data == first.witness_script
    assert vault.script_pubkey(Branch.CHANGE, 42) is not vault.script_pubkey(Branch.CHANGE, 42)


def test_equal_descriptors_stay_equal_and_hashable_with_their_caches() -> None:
    """The cache is no field: a descriptor that derived addresses equals (and hashes as) one that
    did not."""
    used, fresh = VaultDescriptor(2, ORIGINS[:3]), VaultDescriptor(2, ORIGINS[:3])
    used.derived(Branch.RECEIVE, 5)
    assert used == fresh
    assert hash(used) == hash(fresh)


@pytest.mark.parametrize("index", [-1, MAX_ADDRESS_INDEX + 1])
@pytest.mark.parametrize("method", ["script_pubkey", "witness_script", "derived_public_keys"])
def test_an_index_outside_the_non_hardened_range_is_refused(index: int, method: str) -> None:
    """Every derivation refuses an index BIP-32 cannot derive from an xpub, naming the range."""
    with pytest.raises(VaultConfigError, match=f"Address index {index} is outside 0.."):
        getattr(VAULTS[(2, 3)], method)(Branch.RECEIVE, index)


def _derivation(origin: str, *tail: int) -> DerivationPath:
    """A PSBT key derivation: ``origin``'s fingerprint and path, then ``tail``."""
    fingerprint, *path = origin[1:].split("]", 1)[0].split("/")
    hardened = [int(step.rstrip("h")) + 2**31 for step in path]
    return DerivationPath(bytes.fromhex(fingerprint), [*hardened, *tail])


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        ((0, 7), (Branch.RECEIVE, 7)),
        ((1, 0), (Branch.CHANGE, 0)),
        ((1, MAX_ADDRESS_INDEX), (Branch.CHANGE, MAX_ADDRESS_INDEX)),
        ((2, 7), None),
        ((0,), None),
        ((0, 7, 1), None),
        ((0, 2**31), None),
    ],
)
def test_locate_reads_a_derivation_as_embit_does(
    tail: tuple[int, ...], expected: tuple[Branch, int] | None
) -> None:
    """A cosigner's origin path then ``/branch/index`` is located; another branch, a short or long
    path or a hardened index is not; the answer is embit's ``check_derivation``, except that a
    hardened index (which embit accepts) is no address of the vault."""
    vault = VAULTS[(2, 3)]
    for origin in vault.key_origins:
        derivation = _derivation(origin, *tail)
        assert vault.locate(derivation) == expected
        embits = [vault.parsed(b).check_derivation(derivation) for b in Branch]
        found = [(b, int(i[0])) for b, i in zip(Branch, embits, strict=True) if i is not None]
        if tail[-1] <= MAX_ADDRESS_INDEX:
            assert (found[0] if found else None) == expected


def test_locate_ignores_a_foreign_fingerprint_or_origin_path() -> None:
    """The right path under another fingerprint, or another account under the right fingerprint,
    is not the vault's."""
    vault = VAULTS[(2, 3)]
    outsider = ORIGINS[5]
    assert vault.locate(_derivation(outsider, 0, 1)) is None
    mine = _derivation(vault.key_origins[0], 0, 1)
    other_account = DerivationPath(mine.fingerprint, [*mine.derivation[:-3], 2**31 + 3, 0, 1])
    assert vault.locate(other_account) is None

"""SLIP-39 through our wrappers: the official vectors as-is, and quorum properties."""

from __future__ import annotations

import dataclasses
import json
import random
from itertools import combinations, permutations
from pathlib import Path

import pytest
import shamir_mnemonic
from hypothesis import given, settings
from hypothesis import strategies as st

from custody.exceptions import InsufficientSharesError, InvalidShareError, KeyMaterialError
from custody.keys import cosigner_keys
from custody.secret import SecretBytes
from custody.shamir import ShareMnemonic, ShareScheme, combine_shares, parse_shares, split_seed

VECTORS_PATH = Path(__file__).parents[1] / "vectors" / "slip39_vectors.json"
VECTOR_PASSPHRASE = "TREZOR"
"""The passphrase every official SLIP-39 vector was generated with."""
VECTORS = json.loads(VECTORS_PATH.read_text())


@pytest.mark.parametrize(
    ("description", "mnemonics", "secret"), VECTORS, ids=[v[0].split(".")[0] for v in VECTORS]
)
def test_official_slip39_vectors(description: str, mnemonics: list[str], secret: str) -> None:
    """Each official vector recombines to its master secret, or fails with a key-material error."""
    if secret:
        recovered = combine_shares(parse_shares(mnemonics), VECTOR_PASSPHRASE)
        assert recovered.reveal().hex() == secret
    else:
        with pytest.raises(KeyMaterialError):
            combine_shares(parse_shares(mnemonics), VECTOR_PASSPHRASE)


def test_the_vectors_cover_valid_and_invalid_cases() -> None:
    """The committed vector file is the complete official set (40 cases, both kinds)."""
    assert len(VECTORS) == 40
    assert sum(1 for v in VECTORS if v[2]) == 10


@st.composite
def splits(draw: st.DrawFn) -> tuple[int, int, int]:
    count = draw(st.integers(min_value=2, max_value=5))
    threshold = draw(st.integers(min_value=2, max_value=count))
    return threshold, count, draw(st.integers(min_value=0, max_value=2**32 - 1))


@settings(max_examples=15, deadline=None)
@given(splits(), st.sampled_from(["", "officers' passphrase"]))
def test_any_quorum_recovers_the_fingerprint_and_fewer_never_do(
    split: tuple[int, int, int], passphrase: str
) -> None:
    """Every threshold-subset recovers the seed's fingerprint; every smaller subset is refused."""
    threshold, count, seed = split
    rng = random.Random(seed)  # noqa: S311 (hypothesis-driven, reproducible test randomness)
    secret = SecretBytes(rng.randbytes(32))
    fingerprint = cosigner_keys(secret).fingerprint
    shares = split_seed(
        secret, ShareScheme(threshold, count), passphrase, random_bytes=rng.randbytes
    )
    for subset in combinations(shares, threshold):
        with combine_shares(list(subset), passphrase) as recovered:
            assert cosigner_keys(recovered).fingerprint == fingerprint
    for subset in combinations(shares, threshold - 1):
        with pytest.raises(InsufficientSharesError, match=f"needs {threshold}"):
            combine_shares(list(subset), passphrase)


@settings(max_examples=10, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_a_quorum_with_the_wrong_passphrase_yields_another_fingerprint(seed: int) -> None:
    """SLIP-39 cannot tell a wrong passphrase; the fingerprint differs, which the signer checks."""
    rng = random.Random(seed)  # noqa: S311 (hypothesis-driven, reproducible test randomness)
    secret = SecretBytes(rng.randbytes(32))
    fingerprint = cosigner_keys(secret).fingerprint
    shares = split_seed(secret, ShareScheme(2, 3), "right", random_bytes=rng.randbytes)
    with combine_shares(shares[:2], "wrong") as other:
        assert cosigner_keys(other).fingerprint != fingerprint


def _altered(share: ShareMnemonic) -> ShareMnemonic:
    """``share`` with one byte of its value changed and its RS1024 checksum recomputed.

    Such a share parses (every word known, checksum valid): only recombination can catch it.
    """
    parsed = shamir_mnemonic.Share.from_mnemonic(share.reveal())
    value = bytes([parsed.value[0] ^ 0x01]) + parsed.value[1:]
    return ShareMnemonic(dataclasses.replace(parsed, value=value).mnemonic())


def _two_of_three(seed: int = 7) -> tuple[list[ShareMnemonic], str]:
    rng = random.Random(seed)  # noqa: S311 (reproducible test randomness)
    secret = SecretBytes(rng.randbytes(32))
    fingerprint = cosigner_keys(secret).fingerprint
    return split_seed(secret, ShareScheme(2, 3), random_bytes=rng.randbytes), fingerprint


def test_the_reference_library_alone_refuses_a_surplus_share() -> None:
    """The behaviour being fixed: shamir-mnemonic refuses all three shares of a 2-of-3 split."""
    shares, _ = _two_of_three()
    with pytest.raises(shamir_mnemonic.MnemonicError, match="Wrong number of mnemonics"):
        shamir_mnemonic.combine_mnemonics([share.reveal() for share in shares])


@pytest.mark.parametrize("order", list(permutations(range(3))), ids=str)
def test_all_three_valid_shares_of_a_2_of_3_split_recover_the_seed(
    order: tuple[int, ...],
) -> None:
    """Every holder of a 2-of-3 split at the table, in any order: the seed, not 'altered'."""
    shares, fingerprint = _two_of_three()
    with combine_shares([shares[i] for i in order]) as recovered:
        assert cosigner_keys(recovered).fingerprint == fingerprint


@settings(max_examples=15, deadline=None)
@given(splits(), st.data())
def test_any_set_of_at_least_threshold_distinct_shares_recovers_the_seed(
    split: tuple[int, int, int], data: st.DataObject
) -> None:
    """Any subset of size threshold..count, in any order, recovers the seed's fingerprint."""
    threshold, count, seed = split
    rng = random.Random(seed)  # noqa: S311 (hypothesis-driven, reproducible test randomness)
    secret = SecretBytes(rng.randbytes(32))
    fingerprint = cosigner_keys(secret).fingerprint
    shares = split_seed(secret, ShareScheme(threshold, count), random_bytes=rng.randbytes)
    chosen = data.draw(st.permutations(shares))[: data.draw(st.integers(threshold, count))]
    with combine_shares(chosen) as recovered:
        assert cosigner_keys(recovered).fingerprint == fingerprint


def test_a_share_given_twice_counts_once() -> None:
    """The same share typed twice is one holder: with its twin alone it is not a quorum."""
    shares, fingerprint = _two_of_three()
    with pytest.raises(InsufficientSharesError, match="1 distinct share"):
        combine_shares([shares[0], shares[0]])
    with combine_shares([shares[0], shares[0], shares[2]]) as recovered:
        assert cosigner_keys(recovered).fingerprint == fingerprint


def test_two_different_shares_with_one_member_index_are_named() -> None:
    """A valid share and an altered copy of it: both positions are named, nothing recombines."""
    shares, _ = _two_of_three()
    with pytest.raises(InvalidShareError, match="Shares 1 and 3 both carry member index"):
        combine_shares([shares[0], shares[1], _altered(shares[0])])


def test_an_altered_share_in_an_exact_quorum_still_says_altered() -> None:
    """Two shares, one altered with a valid checksum: refused as altered, as before the fix."""
    shares, _ = _two_of_three()
    forged = _altered(shares[1])
    with pytest.raises(InvalidShareError, match="altered"):
        combine_shares([shares[0], forged])


@pytest.mark.parametrize("position", [1, 2, 3])
def test_an_altered_share_among_three_is_refused_wherever_it_stands(position: int) -> None:
    """One altered share among three valid-looking ones is never outvoted or silently skipped."""
    shares, _ = _two_of_three()
    given = list(shares)
    given[position - 1] = _altered(shares[position - 1])
    with pytest.raises(InvalidShareError, match="altered") as refused:
        combine_shares(given)
    if position == 3:  # the surplus share is checked against the quorum and named
        assert "Share 3 (member index" in str(refused.value)
    for share in given:
        assert share.reveal() not in str(refused.value)


def test_shares_with_different_thresholds_are_refused_clearly() -> None:
    """Shares of two splits that share an identifier but not a threshold are not combined."""
    secret = SecretBytes(bytes(range(32)))
    # One seed twice, so both splits draw the same identifier (reproducible test randomness).
    first = random.Random(1)  # noqa: S311
    second = random.Random(1)  # noqa: S311
    two = split_seed(secret, ShareScheme(2, 3), random_bytes=first.randbytes)
    three = split_seed(secret, ShareScheme(3, 3), random_bytes=second.randbytes)
    assert two[0].info.identifier == three[0].info.identifier
    with pytest.raises(KeyMaterialError):
        combine_shares([two[0], three[1], three[2]])

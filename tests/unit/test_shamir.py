"""SLIP-39 through our wrappers: the official vectors as-is, and quorum properties."""

from __future__ import annotations

import json
import random
from itertools import combinations
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custody.exceptions import InsufficientSharesError, KeyMaterialError
from custody.keys import cosigner_keys
from custody.secret import SecretBytes
from custody.shamir import ShareScheme, combine_shares, parse_shares, split_seed

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

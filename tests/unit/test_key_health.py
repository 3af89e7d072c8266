"""Key health checks of an institution's shares: a quorum recombines to the recorded key, or the
check fails with a reason that names members and public keys, never share words."""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime

import pytest

from custody.ceremony import HolderEntry, Transcript
from custody.health import HealthOutcome, check_key_health
from custody.keys import cosigner_keys
from custody.secret import SecretBytes
from custody.shamir import ShareScheme, split_seed

PERFORMED_AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _ceremony(name: str, seed: int, passphrase: str = "") -> tuple[Transcript, list[str]]:
    """A 2-of-3 split of a deterministic seed and the transcript a ceremony would record."""
    rng = random.Random(seed)  # noqa: S311 (deterministic test randomness)
    with SecretBytes(rng.randbytes(32)) as secret:
        shares = split_seed(secret, ShareScheme(2, 3), passphrase, random_bytes=rng.randbytes)
        keys = cosigner_keys(secret)
    info = shares[0].info
    transcript = Transcript(
        institution=name,
        threshold=2,
        share_count=3,
        identifier=info.identifier,
        iteration_exponent=info.iteration_exponent,
        extendable=info.extendable,
        passphrase_protected=bool(passphrase),
        holders=tuple(
            HolderEntry(holder, share.info.member_index)
            for holder, share in zip(("Alice", "Bob", "Carol"), shares, strict=True)
        ),
        fingerprint=keys.fingerprint,
        account_path=keys.account_path,
        account_xpub=keys.account_xpub,
        eth_address=keys.eth_address,
        witnesses=(),
        performed_at=PERFORMED_AT,
    )
    return transcript, [share.reveal() for share in shares]


CB, CB_WORDS = _ceremony("Central Bank", 1, "cb-pass")
MOF, MOF_WORDS = _ceremony("Ministry of Finance", 2)


def _leaks(text: str, words: list[str]) -> bool:
    """Whether ``text`` carries any share's words (a run of four words is enough to leak)."""
    return any(" ".join(w.split()[i : i + 4]) in text for w in words for i in range(0, 16, 4))


def test_a_quorum_of_the_right_shares_passes_and_names_its_members() -> None:
    """Two of three shares with the passphrase recombine to the recorded fingerprint, xpub and address."""
    result = check_key_health(CB, [CB_WORDS[0], CB_WORDS[2]], "cb-pass")
    assert result.outcome is HealthOutcome.OK
    assert result.ok
    assert result.member_indexes == (0, 2)
    assert CB.fingerprint in result.reason
    assert CB.eth_address in result.reason


def test_all_shares_also_pass() -> None:
    """Every holder may come: three shares of a 2-of-3 split also pass."""
    assert check_key_health(MOF, MOF_WORDS).outcome is HealthOutcome.OK


def test_another_institutions_shares_fail_as_a_mismatch_without_leaking_words(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Shares of the Ministry's seed checked against the Central Bank's transcript fail clearly."""
    caplog.set_level(logging.DEBUG)
    result = check_key_health(CB, MOF_WORDS[:2], "cb-pass")
    assert result.outcome is HealthOutcome.MISMATCH
    assert not result.ok
    assert "identifier" in result.reason
    assert "another seed" in result.reason
    everything = result.reason + repr(result) + caplog.text
    assert not _leaks(everything, CB_WORDS + MOF_WORDS)


def test_a_wrong_passphrase_fails_as_a_mismatch_naming_both_fingerprints() -> None:
    """SLIP-39 yields another seed for a wrong passphrase; the recorded fingerprint catches it."""
    result = check_key_health(CB, CB_WORDS[:2], "not-the-pass")
    assert result.outcome is HealthOutcome.MISMATCH
    assert f"(recorded {CB.fingerprint})" in result.reason
    assert "not-the-pass" not in result.reason


def test_a_share_from_a_split_with_the_same_identifier_but_another_seed_fails() -> None:
    """A transcript whose recorded keys differ (a swapped seed) is caught after recombination."""
    forged = Transcript(**{**CB.__dict__, "fingerprint": MOF.fingerprint})
    result = check_key_health(forged, CB_WORDS[:2], "cb-pass")
    assert result.outcome is HealthOutcome.MISMATCH
    assert f"fingerprint {CB.fingerprint} (recorded {MOF.fingerprint})" in result.reason


def test_a_mistyped_share_or_too_few_shares_are_malformed() -> None:
    """A broken checksum and a lone share cannot be checked: malformed, with the position named."""
    words = CB_WORDS[1].split()
    words[5] = "academic" if words[5] != "academic" else "acid"
    mistyped = check_key_health(CB, [CB_WORDS[0], " ".join(words)], "cb-pass")
    assert mistyped.outcome is HealthOutcome.MALFORMED
    assert "Share 2" in mistyped.reason
    assert not _leaks(mistyped.reason, CB_WORDS)
    lone = check_key_health(CB, CB_WORDS[:1], "cb-pass")
    assert lone.outcome is HealthOutcome.MALFORMED
    assert "needs 2" in lone.reason

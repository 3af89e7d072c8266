"""The key ceremony: transcript, share files, quorum verification, share health checks."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from custody.ceremony import (
    CeremonyPlan,
    ShareFiles,
    Transcript,
    check_share,
    load_transcript,
    quorums_to_check,
    read_share_file,
    run_ceremony,
    verify_quorums,
)
from custody.exceptions import (
    CeremonyExistsError,
    CeremonyPlanError,
    InvalidShareError,
    QuorumCheckError,
    ShareMismatchError,
    ShareSchemeError,
    UnknownCeremonyError,
)
from custody.records import CeremonyRecord, ShareHolderRecord
from custody.shamir import ShareMnemonic, parse_shares
from treasury import migrate
from treasury.db import make_engine, session_factory

PERFORMED_AT = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
PLAN = CeremonyPlan("Ministry of Finance", ("Alice", "Bob", "Carol"), 2, ("Auditor Ivanova",))


def _rng(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 (deterministic test randomness)


@pytest.fixture
def session(sqlite_url: str) -> Iterator[Session]:
    migrate.upgrade(sqlite_url, "0002")
    engine = make_engine(sqlite_url)
    with session_factory(engine)() as session:
        yield session
    engine.dispose()


def _run(session: Session, folder: Path, plan: CeremonyPlan = PLAN, seed: int = 7) -> Transcript:
    transcript = run_ceremony(
        session,
        plan,
        ShareFiles(folder),
        random_bytes=_rng(seed).randbytes,
        rng=_rng(seed),
        clock=lambda: PERFORMED_AT,
    )
    session.commit()
    return transcript


def _shares(folder: Path) -> list[ShareMnemonic]:
    return parse_shares([read_share_file(p) for p in sorted(folder.glob("*.txt"))])


def test_ceremony_records_a_public_transcript_and_private_share_files(
    session: Session, tmp_path: Path
) -> None:
    """Each holder gets a 0600 file; the transcript holds public facts, never the words."""
    folder = tmp_path / "shares"
    transcript = _run(session, folder)
    files = sorted(folder.glob("*.txt"))
    assert [p.name for p in files] == [
        "ministry-of-finance-share-0-alice.txt",
        "ministry-of-finance-share-1-bob.txt",
        "ministry-of-finance-share-2-carol.txt",
    ]
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in files)
    assert folder.stat().st_mode & 0o777 == 0o700
    stored = load_transcript(session, PLAN.institution)
    assert stored == transcript
    assert [(h.holder, h.member_index) for h in stored.holders] == [
        ("Alice", 0),
        ("Bob", 1),
        ("Carol", 2),
    ]
    assert (stored.threshold, stored.share_count, stored.witnesses) == (2, 3, ("Auditor Ivanova",))
    assert stored.performed_at == PERFORMED_AT
    assert stored.account_xpub.startswith("tpub")
    assert stored.eth_address.startswith("0x")
    shares = _shares(folder)
    assert {s.info.identifier for s in shares} == {stored.identifier}
    dumped = repr(session.execute(select(CeremonyRecord)).all()) + repr(
        session.execute(select(ShareHolderRecord.holder_name)).all()
    )
    assert all(s.reveal() not in dumped for s in shares)


def test_the_same_randomness_gives_the_same_ceremony(session: Session, tmp_path: Path) -> None:
    """Injected randomness makes a ceremony reproducible (identifier, fingerprint, words)."""
    first = _run(session, tmp_path / "a")
    other = CeremonyPlan("Mirror", PLAN.holders, 2)
    second = _run(session, tmp_path / "b", other)
    assert (first.identifier, first.fingerprint) == (second.identifier, second.fingerprint)
    assert [s.reveal() for s in _shares(tmp_path / "a")] == [
        s.reveal() for s in _shares(tmp_path / "b")
    ]


def test_a_second_ceremony_for_an_institution_is_refused(session: Session, tmp_path: Path) -> None:
    """One transcript per institution: a repeat writes no file and records nothing."""
    _run(session, tmp_path / "first")
    with pytest.raises(CeremonyExistsError, match="already has a ceremony transcript"):
        _run(session, tmp_path / "second", seed=8)
    assert not (tmp_path / "second").exists()
    assert session.scalar(select(func.count()).select_from(CeremonyRecord)) == 1


def test_a_failed_delivery_removes_delivered_files_and_records_nothing(
    session: Session, tmp_path: Path
) -> None:
    """If a share file cannot be written, the earlier files are removed and no transcript exists."""
    folder = tmp_path / "shares"
    folder.mkdir()
    blocker = folder / "ministry-of-finance-share-1-bob.txt"
    blocker.write_text("someone else's file")
    with pytest.raises(CeremonyPlanError, match="already exists; choose an empty folder"):
        _run(session, folder)
    session.rollback()
    assert sorted(p.name for p in folder.iterdir()) == [blocker.name]
    with pytest.raises(UnknownCeremonyError):
        load_transcript(session, PLAN.institution)


@pytest.mark.parametrize(
    ("holders", "threshold", "error", "message"),
    [
        (("Alice", "Alice", "Bob"), 2, CeremonyPlanError, "Holder names repeat"),
        (("Alice", " ", "Bob"), 2, CeremonyPlanError, "name is empty"),
        (("Alice", "Bob", "Carol"), 1, ShareSchemeError, "threshold of 1 with several shares"),
        (("Alice", "Bob"), 3, ShareSchemeError, "threshold 3 of count 2"),
    ],
)
def test_impossible_plans_are_refused(
    holders: tuple[str, ...], threshold: int, error: type[Exception], message: str
) -> None:
    """Duplicate or empty holders and impossible thresholds are refused before any randomness."""
    with pytest.raises(error, match=message):
        CeremonyPlan("Ministry of Finance", holders, threshold)


def test_quorum_selection_is_exhaustive_when_small_and_sampled_when_large() -> None:
    """All subsets for 2-of-3 and 3-of-5; the first and one random subset for 8-of-16."""
    assert quorums_to_check(3, 2, _rng(1)) == [(0, 1), (0, 2), (1, 2)]
    assert len(quorums_to_check(5, 3, _rng(1))) == 10
    sampled = quorums_to_check(16, 8, _rng(1))
    assert sampled[0] == tuple(range(8))
    assert all(len(set(s)) == 8 for s in sampled)


def test_verification_refuses_shares_that_do_not_give_back_the_fingerprint(
    session: Session, tmp_path: Path
) -> None:
    """A quorum recombining to another fingerprint (e.g. a passphrase slip) stops the ceremony."""
    transcript = _run(session, tmp_path)
    shares = _shares(tmp_path)
    assert verify_quorums(shares, "", transcript.fingerprint, _rng(1)) == 3
    with pytest.raises(QuorumCheckError, match="recombine to fingerprint"):
        verify_quorums(shares, "", "00000000", _rng(1))


def test_share_health_check_accepts_its_own_share(session: Session, tmp_path: Path) -> None:
    """A holder's share passes against its transcript, naming the holder and member index."""
    transcript = _run(session, tmp_path)
    health = check_share(transcript, _shares(tmp_path)[1], "Bob")
    assert (health.holder, health.member_index) == ("Bob", 1)


def test_share_health_check_refuses_foreign_or_misattributed_shares(
    session: Session, tmp_path: Path
) -> None:
    """Another seed's share, or a share checked under the wrong holder, is refused by field."""
    transcript = _run(session, tmp_path / "a")
    _run(session, tmp_path / "b", CeremonyPlan("National Bank", ("Dan", "Erin"), 2), seed=99)
    foreign = _shares(tmp_path / "b")[0]
    with pytest.raises(ShareMismatchError, match="The share's identifier is"):
        check_share(transcript, foreign)
    with pytest.raises(ShareMismatchError, match="was issued to 'Alice', not to 'Bob'"):
        check_share(transcript, _shares(tmp_path / "a")[0], "Bob")


def test_a_transcribed_share_with_a_wrong_word_fails_its_checksum(
    session: Session, tmp_path: Path
) -> None:
    """A single wrong word is caught by the share checksum before any comparison."""
    _run(session, tmp_path)
    words = read_share_file(sorted(tmp_path.glob("*.txt"))[0]).split()
    words[-1] = "academic" if words[-1] != "academic" else "acid"
    with pytest.raises(InvalidShareError, match="checksum does not match"):
        ShareMnemonic(" ".join(words))

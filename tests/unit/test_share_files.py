"""Share files: every command reads them with the ceremony's own reader, headers and all."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from custody.ceremony import CeremonyPlan, ShareFiles, read_share_file, run_ceremony
from custody.exceptions import CustodyError, ShareFileError
from custody.keys import cosigner_keys
from custody.shamir import combine_shares, parse_shares
from treasury import migrate
from treasury.db import make_engine, session_factory


def test_the_files_a_ceremony_writes_read_back_and_recombine(
    sqlite_url: str, tmp_path: Path
) -> None:
    """`#` header lines are dropped; all three files of a 2-of-3 split give the seed."""
    migrate.upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    rng = random.Random(5)  # noqa: S311 (deterministic test randomness)
    delivery = ShareFiles(tmp_path / "shares")
    with session_factory(engine).begin() as session:
        transcript = run_ceremony(
            session,
            CeremonyPlan("National Bank", ("A", "B", "C"), 2),
            delivery,
            random_bytes=rng.randbytes,
            rng=rng,
        )
    engine.dispose()
    texts = [read_share_file(path) for path in delivery.written]
    assert all(path.read_text().startswith("# SLIP-39 share") for path in delivery.written)
    assert all("#" not in words for words in texts)
    with combine_shares(parse_shares(texts)) as seed:
        assert cosigner_keys(seed).fingerprint == transcript.fingerprint


def test_indented_comments_and_blank_lines_are_not_share_words(tmp_path: Path) -> None:
    """A holder who indents a note keeps a readable file."""
    path = tmp_path / "share.txt"
    path.write_text("  # my note\n\n  alpha beta  \n\tgamma\n")
    assert read_share_file(path) == "alpha beta gamma"


@pytest.mark.parametrize(
    "content", [None, "", "# only a header\n"], ids=["missing", "empty", "comments"]
)
def test_an_unusable_share_file_is_a_custody_error_naming_the_file(
    tmp_path: Path, content: str | None
) -> None:
    """One typed error (also an OSError, for callers that catch those) naming the file."""
    path = tmp_path / "share.txt"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ShareFileError, match=str(path)) as raised:
        read_share_file(path)
    assert isinstance(raised.value, CustodyError)
    assert isinstance(raised.value, OSError)

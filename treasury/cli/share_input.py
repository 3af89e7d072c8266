"""What share holders bring to a command that recombines a seed: their words and a passphrase.

Signing a spend, signing a roster record with a ceremony key, and a key health check all take a
quorum of SLIP-39 shares the same way: one ``--share-file`` per holder (without it, each holder
types their words unseen), and the ceremony's passphrase from ``--passphrase-file`` or a prompt,
asked only when the ceremony set one. The words go straight to custody; none is echoed or logged.
"""

from __future__ import annotations

from pathlib import Path

import typer

from custody.ceremony import read_share_file
from treasury.cli.context import fail

__all__ = ["share_words", "slip39_passphrase"]


def slip39_passphrase(path: Path | None, protected: bool, institution: str) -> str:
    """The ceremony's passphrase: read from ``path``, prompted, or empty when none was set."""
    if path is not None:
        if not protected:
            raise fail(
                f"--passphrase-file was given, but {institution}'s ceremony recorded no passphrase."
            )
        try:
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise fail(f"cannot read the passphrase file {path}: {exc.strerror}.") from None
    if not protected:
        return ""
    return str(typer.prompt(f"SLIP-39 passphrase of {institution}", hide_input=True))


def share_words(files: list[Path] | None, threshold: int) -> list[str]:
    """Each holder's words: from their share files, or typed without echo, ``threshold`` times."""
    if files:
        return [read_share_file(path) for path in files]
    return [
        str(typer.prompt(f"Share words of holder {n} of {threshold}", hide_input=True))
        for n in range(1, threshold + 1)
    ]

"""The CLI takes an API token only from a file or the environment, never from its arguments.

Tests that drive the CLI with several officers' tokens write each token to a private file once
and pass ``--token-file``: ``token_file(token)`` returns those two arguments.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

_DIRECTORY = Path(tempfile.mkdtemp(prefix="treasury-tokens-"))
atexit.register(shutil.rmtree, _DIRECTORY, ignore_errors=True)
_FILES: dict[str, Path] = {}


def token_file(token: str) -> tuple[str, str]:
    """``("--token-file", path)`` for a 0600 file holding ``token``."""
    path = _FILES.get(token)
    if path is None:
        path = _DIRECTORY / f"token-{len(_FILES)}"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(token + "\n")
        _FILES[token] = path
    return ("--token-file", str(path))

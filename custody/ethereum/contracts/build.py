"""Compile ``SpendWindowRegistry.vy`` into the committed ``SpendWindowRegistry.json`` artifact.

Run ``python -m custody.ethereum.contracts.build`` after editing the source; ``--check`` exits 1
if the committed artifact differs from a fresh compile (a unit test runs the same comparison).
The compiler is PyPI's ``vyper`` at the pinned version below, a development dependency: at run
time the signers and the treasury read only the JSON artifact.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import sys
from pathlib import Path
from typing import Any

VYPER_VERSION = "0.4.3"
"""The compiler version the artifact is built with; another version may emit other bytecode."""

CONTRACTS_DIR = Path(__file__).resolve().parent
SOURCE_PATH = CONTRACTS_DIR / "SpendWindowRegistry.vy"
ARTIFACT_PATH = CONTRACTS_DIR / "SpendWindowRegistry.json"


def compile_window_registry() -> dict[str, Any]:
    """Compile the source and return the artifact: ABI, init and runtime code, versions."""
    vyper: Any = importlib.import_module("vyper")
    if vyper.__version__ != VYPER_VERSION:
        raise RuntimeError(
            f"vyper {vyper.__version__} is installed; the artifact is built with {VYPER_VERSION}."
        )
    text = SOURCE_PATH.read_text(encoding="utf-8")
    compiled = vyper.compile_code(text, output_formats=["abi", "bytecode", "bytecode_runtime"])
    return {
        "contract": "SpendWindowRegistry",
        "compiler": {"name": "vyper", "version": VYPER_VERSION},
        "source_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "abi": compiled["abi"],
        "bytecode": compiled["bytecode"],
        "bytecode_runtime": compiled["bytecode_runtime"],
    }


def render(artifact: dict[str, Any]) -> str:
    """The artifact file's text: indented, sorted keys, one trailing newline."""
    return json.dumps(artifact, indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    """Write the artifact, or with ``--check`` compare it with a fresh compile."""
    fresh = render(compile_window_registry())
    if "--check" in argv:
        current = ARTIFACT_PATH.read_text(encoding="utf-8") if ARTIFACT_PATH.exists() else ""
        if current != fresh:
            print(f"{ARTIFACT_PATH.name} is stale: run python -m custody.ethereum.contracts.build")
            return 1
        print(f"{ARTIFACT_PATH.name} matches a fresh compile")
        return 0
    ARTIFACT_PATH.write_text(fresh, encoding="utf-8")
    print(f"wrote {ARTIFACT_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

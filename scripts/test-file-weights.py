#!/usr/bin/env python3
"""Write ``tests/file_weights.json`` from a JUnit XML report: the seconds each test file took.

``make test`` starts the longest files first (``tests/conftest.py``), so a long file does not run
alone at the end of the suite. Refresh the weights after a full run when files grow:

    .venv/bin/pytest -n auto --dist loadfile --junitxml=/tmp/suite.xml
    .venv/bin/python scripts/test-file-weights.py /tmp/suite.xml

Setup and teardown time (nodes, databases) counts: JUnit's per-test time includes the test's
fixtures, and that is what a worker spends on the file.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET  # our own pytest's report, not untrusted input
from collections import defaultdict
from pathlib import Path

WEIGHTS = Path(__file__).resolve().parent.parent / "tests" / "file_weights.json"


def file_weights(report: Path) -> dict[str, float]:
    """Seconds per test file (``tests/...py``), from the JUnit report's ``testcase`` times."""
    seconds: dict[str, float] = defaultdict(float)
    for case in ET.parse(report).iter("testcase"):  # noqa: S314
        module = case.get("classname", "")
        parts = module.split(".")
        while parts and not Path(*parts).with_suffix(".py").exists():
            parts.pop()  # drop class names: tests.unit.test_x.TestY -> tests/unit/test_x.py
        if parts:
            seconds[Path(*parts).with_suffix(".py").as_posix()] += float(case.get("time", 0))
    return {name: round(total, 1) for name, total in sorted(seconds.items())}


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    weights = file_weights(Path(sys.argv[1]))
    WEIGHTS.write_text(json.dumps(weights, indent=1) + "\n", encoding="utf-8")
    total = sum(weights.values())
    print(f"{len(weights)} files, {total / 60:.1f} min of test time, written to {WEIGHTS}")
    for name, weight in sorted(weights.items(), key=lambda item: -item[1])[:10]:
        print(f"  {weight:7.1f} s  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

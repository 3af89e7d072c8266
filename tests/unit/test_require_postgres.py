"""CI's switch: without PostgreSQL, the database tests' PostgreSQL half fails instead of skipping."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:1/test"
"""Port 1 on loopback: nothing listens there, so the server check fails at once."""
ONE_POSTGRES_TEST = "tests/integration/test_migrations.py::test_migrations_build_exactly_the_models_schema[postgresql]"


def _run_without_postgres(require: str | None) -> subprocess.CompletedProcess[str]:
    """Run one PostgreSQL test with no server to reach and no initdb/pg_ctl on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TREASURY_TEST_")}
    env["TREASURY_TEST_POSTGRES_URL"] = UNREACHABLE_POSTGRES
    env["PATH"] = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    if require is not None:
        env["TREASURY_TEST_REQUIRE_POSTGRES"] = require
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfs", ONE_POSTGRES_TEST],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.skipif(
    any(Path(d, "initdb").exists() for d in ("/usr/bin", "/bin")),
    reason="initdb is on the minimal PATH, so a throwaway cluster would start",
)
def test_missing_postgres_fails_when_required_and_skips_otherwise() -> None:
    """With TREASURY_TEST_REQUIRE_POSTGRES=1 a missing server is a failure; without it, a skip."""
    required = _run_without_postgres("1")
    assert required.returncode == 1, required.stdout + required.stderr
    assert "1 error" in required.stdout  # a fixture that fails is an error: the run fails
    assert "TREASURY_TEST_REQUIRE_POSTGRES=1 requires it" in required.stdout

    lenient = _run_without_postgres(None)
    assert lenient.returncode == 0, lenient.stdout + lenient.stderr
    assert "1 skipped" in lenient.stdout

"""The verifier's answer: one line per check (ok, failed or skipped, with a reason) and a verdict."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class CheckStatus(Enum):
    """The outcome of one check."""

    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    name: str
    status: CheckStatus
    reason: str


@dataclass(frozen=True)
class Report:
    """Every check made on one bundle, in order."""

    digest: str
    checks: tuple[Check, ...]

    def failed(self) -> tuple[Check, ...]:
        """The checks that failed."""
        return tuple(check for check in self.checks if check.status is CheckStatus.FAILED)

    def passed(self, *, allow_skipped: bool = False) -> bool:
        """True if nothing failed and nothing was skipped (unless skipping is allowed)."""
        return not any(
            check.status is CheckStatus.FAILED
            or (check.status is CheckStatus.SKIPPED and not allow_skipped)
            for check in self.checks
        )

    def status_of(self, name: str) -> CheckStatus:
        """The status of the check called ``name`` (KeyError if there is none)."""
        for check in self.checks:
            if check.name == name:
                return check.status
        raise KeyError(name)

    def render(self) -> str:
        """The itemised report as text, one check a line, and a closing verdict."""
        lines = [f"attestation {self.digest}"]
        lines += [f"{check.status.value:>7}  {check.name}: {check.reason}" for check in self.checks]
        counts = dict.fromkeys(CheckStatus, 0)
        for check in self.checks:
            counts[check.status] += 1
        lines.append(
            f"{counts[CheckStatus.OK]} ok, {counts[CheckStatus.FAILED]} failed, "
            f"{counts[CheckStatus.SKIPPED]} skipped"
        )
        return "\n".join(lines)

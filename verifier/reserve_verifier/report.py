"""The verifier's answer: what was checked against what, one line per check (ok, failed or
skipped, with a reason), and a verdict.

The scope comes first because an ``ok`` means little without it: a bundle checked offline and
against its own self-declared keys proves only that it is self-consistent.
"""

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


SELF_DECLARED_WARNING = (
    "keys and registry are self-declared by the bundle (no trust file): "
    "this proves self-consistency only"
)
"""The report's warning when no trust file pins the signers and the registry."""


@dataclass(frozen=True)
class Scope:
    """What the checks were made against: pins or the bundle's own claims, nodes or nothing."""

    pinned: str | None = None
    """What the trust file pins (None: no trust file, keys and registry are self-declared)."""
    bitcoin_node: bool = False
    evm_node: bool = False
    services_node: bool = False
    previous: bool = False

    @property
    def offline(self) -> bool:
        """No node was consulted at all."""
        return not (self.bitcoin_node or self.evm_node or self.services_node)

    def warning(self) -> str | None:
        """The prominent warning the report carries, if any."""
        return None if self.pinned is not None else SELF_DECLARED_WARNING

    def lines(self) -> tuple[str, ...]:
        """One line per dimension of what was and was not checked."""
        trust = (
            f"pinned by the auditor's trust file ({self.pinned})"
            if self.pinned is not None
            else "self-declared by the bundle (no --trust file)"
        )
        return (
            f"signing keys and registry: {trust}",
            "mode: " + ("offline (no node consulted)" if self.offline else "online"),
            "bitcoin: "
            + (
                "checked against your node"
                if self.bitcoin_node
                else "not checked against a node (no --bitcoin-rpc)"
            ),
            "safes' chain: "
            + (
                "checked against your node"
                if self.evm_node
                else "not checked against a node (no --evm-rpc)"
            ),
            "registry: "
            + (
                "consulted on the services chain"
                if self.services_node
                else "not consulted (no --services-rpc)"
            ),
            "previous attestation: "
            + (
                "compared with the file given"
                if self.previous
                else "not given (no --previous): the chain link is not checked"
            ),
        )


@dataclass(frozen=True)
class Report:
    """Every check made on one bundle, in order, and the scope they were made in."""

    digest: str
    checks: tuple[Check, ...]
    scope: Scope = Scope()

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
        warning = self.scope.warning()
        banner = [f"WARNING: {warning}"] if warning else []
        lines = [f"attestation {self.digest}", *banner, "checked:"]
        lines += [f"  {line}" for line in self.scope.lines()]
        lines += [f"{check.status.value:>7}  {check.name}: {check.reason}" for check in self.checks]
        counts = dict.fromkeys(CheckStatus, 0)
        for check in self.checks:
            counts[check.status] += 1
        lines += banner
        lines.append(
            f"{counts[CheckStatus.OK]} ok, {counts[CheckStatus.FAILED]} failed, "
            f"{counts[CheckStatus.SKIPPED]} skipped"
        )
        return "\n".join(lines)

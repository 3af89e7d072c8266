"""The written spend policy: its limits and quorums, parsed and validated, and its content hash.

Parsing is pure and names the field at fault, so an admin learns what to fix before anything is
stored; ``to_json`` is the one form that is stored and hashed, so a recorded decision can name the
exact policy it was judged under.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from treasury.workflow_exceptions import PolicyDocumentError


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AssetLimits:
    """Limits for one asset, all in its base units (satoshi, wei, token units)."""

    per_tx_limit: int
    daily_limit: int
    """Rolling 24 h total of committed spends (approved and later), this one included."""
    veto_threshold: int
    """Spends of at least this amount wait out the veto window after approval."""


@dataclass(frozen=True)
class PolicyDocument:
    """The written policy, parsed and validated; ``to_json`` is what is stored and hashed."""

    quorum_institutions: tuple[str, ...]
    quorum_required: int
    assets: Mapping[str, AssetLimits]
    veto_window_seconds: int
    allowlist_required: int
    allowlist_delay_seconds: int
    reconciliation_max_age_seconds: int
    proposal_ttl_seconds: int

    def to_json(self) -> dict[str, Any]:
        return {
            "quorum": {
                "institutions": list(self.quorum_institutions),
                "required": self.quorum_required,
            },
            "assets": {
                code: {
                    "per_tx_limit": limits.per_tx_limit,
                    "daily_limit": limits.daily_limit,
                    "veto_threshold": limits.veto_threshold,
                }
                for code, limits in sorted(self.assets.items())
            },
            "veto_window_seconds": self.veto_window_seconds,
            "allowlist": {
                "required": self.allowlist_required,
                "delay_seconds": self.allowlist_delay_seconds,
            },
            "reconciliation_max_age_seconds": self.reconciliation_max_age_seconds,
            "proposal_ttl_seconds": self.proposal_ttl_seconds,
        }


def _field(data: Mapping[str, Any], key: str, path: str) -> Any:
    if not isinstance(data, Mapping) or key not in data:
        raise PolicyDocumentError(f"The policy document lacks the field {path}{key}.")
    return data[key]


def _count(data: Mapping[str, Any], key: str, path: str, *, minimum: int = 0) -> int:
    value = _field(data, key, path)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise PolicyDocumentError(
            f"The policy field {path}{key} must be an integer of at least {minimum}; got {value!r}."
        )
    return value


def parse_policy(data: Mapping[str, Any]) -> PolicyDocument:
    """Validate a policy document (as JSON data) and return it; errors name the field."""
    quorum = _field(data, "quorum", "")
    institutions = _field(quorum, "institutions", "quorum.")
    if (
        not isinstance(institutions, list)
        or not institutions
        or not all(isinstance(code, str) and code for code in institutions)
        or len(set(institutions)) != len(institutions)
    ):
        raise PolicyDocumentError(
            "The policy field quorum.institutions must be a non-empty list of distinct institution codes."
        )
    required = _count(quorum, "required", "quorum.", minimum=1)
    if required > len(institutions):
        raise PolicyDocumentError(
            f"The policy field quorum.required ({required}) exceeds the {len(institutions)} institutions listed."
        )
    assets_data = _field(data, "assets", "")
    if not isinstance(assets_data, Mapping) or not assets_data:
        raise PolicyDocumentError("The policy field assets must map asset codes to their limits.")
    assets: dict[str, AssetLimits] = {}
    for code, limits in assets_data.items():
        path = f"assets.{code}."
        assets[code] = AssetLimits(
            per_tx_limit=_count(limits, "per_tx_limit", path, minimum=1),
            daily_limit=_count(limits, "daily_limit", path, minimum=1),
            veto_threshold=_count(limits, "veto_threshold", path, minimum=1),
        )
    allowlist = _field(data, "allowlist", "")
    allowlist_required = _count(allowlist, "required", "allowlist.", minimum=1)
    if allowlist_required > len(institutions):
        raise PolicyDocumentError(
            f"The policy field allowlist.required ({allowlist_required}) exceeds the {len(institutions)} institutions listed."
        )
    return PolicyDocument(
        quorum_institutions=tuple(institutions),
        quorum_required=required,
        assets=assets,
        veto_window_seconds=_count(data, "veto_window_seconds", ""),
        allowlist_required=allowlist_required,
        allowlist_delay_seconds=_count(allowlist, "delay_seconds", "allowlist."),
        reconciliation_max_age_seconds=_count(
            data, "reconciliation_max_age_seconds", "", minimum=1
        ),
        proposal_ttl_seconds=_count(data, "proposal_ttl_seconds", "", minimum=1),
    )


@dataclass(frozen=True)
class StoredPolicy:
    """One immutable stored version of the policy."""

    version: int
    content_hash: str
    """SHA-256 of the document's canonical JSON."""
    document: PolicyDocument

"""Canonical JSON for the treasury's hashes (audit events, ledger entries, policy documents).

One text per value: sorted keys, no spaces, UTF-8, and no floats (money is an integer). It is the
treasury's own encoding; attestation bundles use reporting's stricter one, which also refuses
integers too large for a JSON number, because outside verifiers parse them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from treasury.exceptions import InvalidAuditEventError

__all__ = ["canonical_json"]


def canonical_json(value: Any) -> str:
    """One text per value: sorted keys, no spaces, UTF-8; floats and NaN refused (money is int)."""
    _refuse_floats(value, "payload")
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _refuse_floats(value: Any, where: str) -> None:
    if isinstance(value, float):
        raise InvalidAuditEventError(
            f"The {where} holds the float {value!r}; encode amounts as integers or strings."
        )
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidAuditEventError(f"The {where} has the non-string key {key!r}.")
            _refuse_floats(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _refuse_floats(item, f"{where}[{index}]")
    elif not (value is None or isinstance(value, bool | int | str)):
        raise InvalidAuditEventError(
            f"The {where} holds a {type(value).__name__}, which has no canonical JSON form."
        )

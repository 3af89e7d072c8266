"""Who and what the story is about: the institutions, their officers, the policy, the decree.

Plain values, shared by the acts of the story (``treasury.story.reserve``) and by the tests that
drive it. Amounts are integers in base units.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from treasury.officers import Role

SATS_PER_BTC = 100_000_000
WEI_PER_ETH = 10**18
WEI_PER_BNB = 10**18
"""BNB, the second chain's native coin, has 18 decimals like ether."""
BTC_VAULT = "reserve"
SAFE_VAULT = "reserve"
TOKEN_SYMBOL = "KGST"  # noqa: S105 - an ERC-20 ticker, not a credential
TOKEN_DECIMALS = 18
KGST = 10**TOKEN_DECIMALS
"""One KGST in base units."""
DECREE = "Decree No. 112 of the Cabinet of Ministers"
FEE_RATE_SAT_VB = Decimal(2)
MAX_FEE_SATS = 50_000
ALLOWLIST_DELAY = timedelta(hours=48)
RECONCILE_EVERY = timedelta(hours=5)
"""How often the story's scheduler runs while days pass (within the 6-hour freshness rule)."""


@dataclass(frozen=True)
class Institution:
    """A cosigner institution: its code in the workflow, its name at the ceremony, its officers."""

    code: str
    name: str
    holders: tuple[str, ...]
    passphrase: str = ""


INSTITUTIONS = (
    Institution("MOF", "Ministry of Finance", ("Aida Sadykova", "Bakyt Usenov", "Chynara Abdieva")),
    Institution(
        "NBKR",
        "National Bank",
        ("Daniyar Toktogulov", "Elmira Asanova", "Farida Ismailova"),
        passphrase="nbkr-vault-passphrase",  # noqa: S106 - the devnet demo's own; ceremonies prompt
    ),
    Institution("ACH", "Accounts Chamber", ("Gulnara Bekova", "Ilyas Omurov", "Jyldyz Karimova")),
)
SHARE_THRESHOLD = 2
VAULT_THRESHOLD = 2

POLICY: dict[str, Any] = {
    "quorum": {"institutions": [i.code for i in INSTITUTIONS], "required": 2},
    "assets": {
        "BTC": {
            "per_tx_limit": 1 * SATS_PER_BTC,
            "daily_limit": 2 * SATS_PER_BTC,
            "veto_threshold": SATS_PER_BTC // 2,
        },
        "ETH": {
            "per_tx_limit": 10 * WEI_PER_ETH,
            "daily_limit": 20 * WEI_PER_ETH,
            "veto_threshold": 5 * WEI_PER_ETH,
        },
        "BNB": {
            "per_tx_limit": 10 * WEI_PER_BNB,
            "daily_limit": 20 * WEI_PER_BNB,
            "veto_threshold": 5 * WEI_PER_BNB,
        },
    },
    "veto_window_seconds": 24 * 3600,
    "allowlist": {"required": 2, "delay_seconds": int(ALLOWLIST_DELAY.total_seconds())},
    "reconciliation_max_age_seconds": 6 * 3600,
    "proposal_ttl_seconds": 7 * 24 * 3600,
}
"""The written policy: any 2 of the 3 institutions, limits per asset, allowlist after 48 h.

The story token's limits are added under its asset code once it is deployed (``story_policy``)."""

TOKEN_LIMITS = {
    "per_tx_limit": 50_000 * KGST,
    "daily_limit": 100_000 * KGST,
    "veto_threshold": 50_000 * KGST,
}
"""The policy's limits of the story token (KGST), in base units."""
DECREE_CEILINGS = {"BTC": 2 * SATS_PER_BTC, "ETH": 20 * WEI_PER_ETH, "BNB": 5 * WEI_PER_BNB}
"""What the decree authorises per native coin; the token's is ``TOKEN_CEILING``."""
TOKEN_CEILING = 100_000 * KGST


def story_policy(token_code: str | None) -> dict[str, Any]:
    """``POLICY`` with the story token's limits under its code ``ERC20:<contract>`` (the policy
    limits each asset by its code, and a token's code is known once it is deployed)."""
    if token_code is None:
        return POLICY
    return {**POLICY, "assets": {**POLICY["assets"], token_code: TOKEN_LIMITS}}


def decree_ceilings(token_code: str | None) -> dict[str, int]:
    """The decree's ceilings per asset code, the story token's included once it is deployed."""
    if token_code is None:
        return dict(DECREE_CEILINGS)
    return {**DECREE_CEILINGS, token_code: TOKEN_CEILING}


TREASURY_ADMIN = "Treasury administrator"
"""MOF's admin: sets the treasury's policy and decree."""
ADMINS = {"MOF": TREASURY_ADMIN, "NBKR": "NBKR administrator", "ACH": "ACH administrator"}
"""Each institution's admin: its first officer in the roster genesis, who signs in its officers."""
PROPOSER = "Asel Proposer (MOF)"
APPROVERS = {"NBKR": "Elmira Asanova (NBKR)", "ACH": "Ilyas Omurov (ACH)"}
"""The approvers who approve (and whose institutions sign) the story's spends."""
OVERSIGHT = "Oversight committee (ACH)"

OFFICERS: tuple[tuple[str, str, tuple[Role, ...]], ...] = (
    (ADMINS["MOF"], "MOF", (Role.ADMIN,)),
    (ADMINS["NBKR"], "NBKR", (Role.ADMIN,)),
    (ADMINS["ACH"], "ACH", (Role.ADMIN,)),
    (PROPOSER, "MOF", (Role.PROPOSER,)),
    ("Aida Sadykova (MOF)", "MOF", (Role.APPROVER,)),
    (APPROVERS["NBKR"], "NBKR", (Role.APPROVER,)),
    (APPROVERS["ACH"], "ACH", (Role.APPROVER,)),
    (OVERSIGHT, "ACH", (Role.OVERSIGHT,)),
    ("State auditor (ACH)", "ACH", (Role.AUDITOR,)),
)
"""Every officer: name, institution, roles (each institution's admin first: it adds the rest)."""

KEY_HOLDING_ROLES = frozenset({Role.ADMIN, Role.APPROVER, Role.OVERSIGHT})
"""Officers who sign (approve, veto, administer) hold an officer key and stand in the roster."""
POLICY_SIGNERS = ("NBKR", "ACH")
"""The institutions whose admins sign the policy into the roster chain (the rules need two)."""

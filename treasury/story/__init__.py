"""The reserve's whole story on live devnets, one step per method: what ``make demo`` runs.

A ``Reserve`` (``reserve.py``) holds a fresh working folder, the devnet nodes and a story clock;
each step is ordinary library code, so the end-to-end tests drive the same steps and assert
between them. The officers who approve, veto or administer sign with their own keys
(``officer_keys.py``), through a roster chain anchored in the institutions' key ceremonies
(``roster.py``), and the custody signers verify those signatures before they sign a spend.

- ``cast``: the institutions, officers, policy and decree of the story;
- ``clock``: the story clock (real time plus the days the story skips);
- ``officer_keys``: the officers' encrypted key files;
- ``roster``: the signed roster genesis, officers and policy;
- ``reserve``: the acts, from the key ceremonies to the spends;
- ``proofs``: proof of reserves, the auditor's verifier, the parliament site.

The story clock starts at the real time and is moved forward where the story skips days (the
allowlist's 48-hour delay); everything that judges time (workflow, policy, reconciliation) reads
it, so their checks agree.
"""

from treasury.story.cast import (
    APPROVERS,
    DECREE,
    INSTITUTIONS,
    OFFICERS,
    POLICY,
    SAFE_VAULT,
    SATS_PER_BTC,
    WEI_PER_ETH,
    Institution,
)
from treasury.story.clock import StoryClock
from treasury.story.officer_keys import OfficerKey, OfficerKeyring
from treasury.story.reserve import Reserve, Verification
from treasury.story.roster import RosterSummary

__all__ = [
    "APPROVERS",
    "DECREE",
    "INSTITUTIONS",
    "OFFICERS",
    "POLICY",
    "SAFE_VAULT",
    "SATS_PER_BTC",
    "WEI_PER_ETH",
    "Institution",
    "OfficerKey",
    "OfficerKeyring",
    "Reserve",
    "RosterSummary",
    "StoryClock",
    "Verification",
]

"""Producing proof-of-reserves attestations from custody and the ledger (``treasury attest``).

``reporting`` defines and checks the bundle; this package gathers what it states (vault coins,
Safe balances, fund accounts, the audit head), has the institutions prove control, and anchors,
records and writes the result.
"""

from custody.nodes import BitcoinEndpoint
from treasury.attest.errors import AttestError, LiabilityInputError, RoleKeyError, SnapshotError
from treasury.attest.job import run_daily_attestation
from treasury.attest.keys import generate_role_key, load_role_key, role_key
from treasury.attest.liabilities import (
    CsvLiabilities,
    FundBalance,
    fund_balances,
    ledger_totals,
    liability_tree,
    read_liabilities_csv,
)
from treasury.attest.records import ATTEST_TABLES, AttestationRecord, RegistryRecord
from treasury.attest.service import (
    AttestNodes,
    AttestOptions,
    AttestResult,
    InstitutionShares,
    attest,
    write_bundle,
)
from treasury.attest.snapshot import bitcoin_snapshot, evm_snapshot

__all__ = [
    "ATTEST_TABLES",
    "AttestError",
    "AttestNodes",
    "AttestOptions",
    "AttestResult",
    "AttestationRecord",
    "BitcoinEndpoint",
    "CsvLiabilities",
    "FundBalance",
    "InstitutionShares",
    "LiabilityInputError",
    "RegistryRecord",
    "RoleKeyError",
    "SnapshotError",
    "attest",
    "bitcoin_snapshot",
    "evm_snapshot",
    "fund_balances",
    "generate_role_key",
    "ledger_totals",
    "liability_tree",
    "load_role_key",
    "read_liabilities_csv",
    "role_key",
    "run_daily_attestation",
    "write_bundle",
]

"""Database rows of published attestations, the attestation registry, and each tree's secret.

``attestations`` and ``attestation_registries`` hold public data only: the bundle itself (what
auditors receive), its digest, chain link and anchors. The signing keys are never stored.

``liability_secrets`` is the one secret table of an attestation: the liability tree's snapshot
nonce and its leaf level (every account's leaf hash and amounts, in leaf order), kept so that
any account's proof package can be issued again at any later time (``treasury proofs issue``,
the holders' API route), and checked against the root the bundle published. Its bytes never go
to a log, an error or a ``repr``; only ``treasury.attest.account_proofs`` reads them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from treasury.db import Base, UtcDateTime

DIGEST_CHARS = 64
ADDRESS_CHARS = 42
EVM_HASH_CHARS = 66


class AttestationRecord(Base):
    """One anchored attestation: its place in the chain, where it is anchored, and the bundle."""

    __tablename__ = "attestations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sequence: Mapped[int] = mapped_column(Integer, unique=True)
    digest: Mapped[str] = mapped_column(String(DIGEST_CHARS), unique=True)
    previous_digest: Mapped[str] = mapped_column(String(DIGEST_CHARS))
    bitcoin_anchor_txid: Mapped[str] = mapped_column(String(DIGEST_CHARS))
    services_chain_id: Mapped[int] = mapped_column(Integer)
    services_anchor_tx: Mapped[str] = mapped_column(String(EVM_HASH_CHARS))
    anchors_json: Mapped[str] = mapped_column(Text)
    """The bundle's ``anchors`` part as canonical JSON (also inside ``bundle_json``)."""
    bundle_json: Mapped[str] = mapped_column(Text)
    """The whole bundle file, canonical JSON: what ``treasury verify`` checks."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class RegistryRecord(Base):
    """The attestation registry contract deployed on a services chain, and its only publisher."""

    __tablename__ = "attestation_registries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chain_id: Mapped[int] = mapped_column(Integer, unique=True)
    address: Mapped[str] = mapped_column(String(ADDRESS_CHARS))
    publisher: Mapped[str] = mapped_column(String(ADDRESS_CHARS))
    deployed_at: Mapped[datetime] = mapped_column(UtcDateTime())


class LiabilitySecretRecord(Base):
    """What rebuilds one attestation's liability tree: its nonce, asset list and leaf level."""

    __tablename__ = "liability_secrets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    attestation_id: Mapped[int] = mapped_column(ForeignKey("attestations.id"), unique=True)
    format_version: Mapped[int] = mapped_column(Integer)
    """The layout of ``leaf_records`` and ``salt_keys`` (1: ``reporting.sumtree`` v1 records)."""
    assets_json: Mapped[str] = mapped_column(Text)
    """The tree's canonical asset list, as a JSON array."""
    leaf_count: Mapped[int] = mapped_column(Integer)
    root_digest: Mapped[str] = mapped_column(String(DIGEST_CHARS))
    """The liability root digest the bundle states; a rebuilt tree must reproduce it."""
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    """The snapshot nonce every salt is derived from (secret)."""
    leaf_records: Mapped[bytes] = mapped_column(LargeBinary)
    """Each leaf's ``hash || sums`` record in leaf order (secret: every account's amounts)."""
    salt_keys: Mapped[bytes] = mapped_column(LargeBinary)
    """The first 8 bytes of each leaf's salt, in leaf order: finds an account's leaf."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    def __repr__(self) -> str:
        """Name the row by its attestation and root; never show the secret bytes."""
        return (
            f"LiabilitySecretRecord(attestation_id={self.attestation_id}, "
            f"leaf_count={self.leaf_count}, root_digest={self.root_digest})"
        )


ATTEST_TABLES = ("attestations", "attestation_registries", "liability_secrets")

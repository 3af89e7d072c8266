"""Database rows of published attestations and of the attestation registry on the services chain.

Only public data is stored: the bundle itself (what auditors receive), its digest, chain link and
anchors. The signing keys and the liability tree's nonce are never stored.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
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


ATTEST_TABLES = ("attestations", "attestation_registries")

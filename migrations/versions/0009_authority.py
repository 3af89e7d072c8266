"""The officers' signed authority: the roster chain and the approval statements, append-only.

``roster_records`` holds the hash-linked roster and policy chain exactly as signed (canonical body
text, signatures as JSON); ``approval_statements`` each officer's signed statement on a proposal.
Both get the ledger's protection: UPDATE and DELETE are refused by triggers on both databases,
TRUNCATE on PostgreSQL (SQLite has none; its DELETE without WHERE fires the triggers too). A
roster record is accepted only if it extends the stored head: sequence 0 with the zero link into
an empty table, or the next sequence linking to the last record's hash.

The triggers are a first fence, not the guarantee: a database owner can drop them, and the signers
replay the chain and verify every signature themselves (``custody.authority``).

This migration is a snapshot: it does not import application code that may change later.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)
IMMUTABLE_TABLES = ("roster_records", "approval_statements")
REFUSE_FUNCTION = "treasury_refuse_authority_change"
HEAD_FUNCTION = "roster_record_extends_head"
HEAD_TRIGGER = "roster_records_extend_head"
GENESIS_PREV_HASH = "0" * 64
"""The genesis record links to 32 zero bytes (``custody.authority.roster_record``)."""


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    """Create both tables, then make them append-only."""
    op.create_table(
        "roster_records",
        sa.Column("sequence", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("signatures", sa.Text(), nullable=False),
        sa.Column("recorded_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("sequence", name=op.f("pk_roster_records")),
        sa.UniqueConstraint("hash", name=op.f("uq_roster_records_hash")),
    )
    op.create_table(
        "approval_statements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=False),
        sa.Column("statement", sa.Text(), nullable=False),
        sa.Column("statement_digest", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("recorded_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["proposal_id"],
            ["spend_proposals.id"],
            name=op.f("fk_approval_statements_proposal_id_spend_proposals"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_statements")),
        sa.UniqueConstraint(
            "proposal_id",
            "statement_digest",
            name=op.f("uq_approval_statements_proposal_id"),
        ),
    )
    op.create_index(
        op.f("ix_approval_statements_proposal_id"), "approval_statements", ["proposal_id"]
    )
    for statement in _sqlite_triggers() if _sqlite() else _postgres_triggers():
        op.execute(statement)


def downgrade() -> None:
    """Drop the triggers and both tables."""
    if _sqlite():
        op.execute(f"DROP TRIGGER {HEAD_TRIGGER}")
        for table in IMMUTABLE_TABLES:
            op.execute(f"DROP TRIGGER {table}_immutable_update")
            op.execute(f"DROP TRIGGER {table}_immutable_delete")
    else:
        op.execute(f"DROP TRIGGER {HEAD_TRIGGER} ON roster_records")
        for table in IMMUTABLE_TABLES:
            op.execute(f"DROP TRIGGER {table}_immutable ON {table}")
            op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
        op.execute(f"DROP FUNCTION {HEAD_FUNCTION}()")
        op.execute(f"DROP FUNCTION {REFUSE_FUNCTION}()")
    op.drop_index(op.f("ix_approval_statements_proposal_id"), table_name="approval_statements")
    op.drop_table("approval_statements")
    op.drop_table("roster_records")


_EXTENDS_HEAD = f"""
    (NEW.sequence = 0 AND NEW.prev_hash = '{GENESIS_PREV_HASH}'
        AND NOT EXISTS (SELECT 1 FROM roster_records))
    OR (NEW.sequence = (SELECT max(sequence) FROM roster_records) + 1
        AND NEW.prev_hash = (SELECT hash FROM roster_records WHERE sequence = NEW.sequence - 1))
"""  # noqa: S608 - DDL built from this module's constants, no outside input


# --- PostgreSQL -------------------------------------------------------------------------------


def _postgres_triggers() -> list[str]:
    statements = [
        f"""
        CREATE FUNCTION {REFUSE_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% rows are immutable: % refused; append a new signed record instead',
                TG_TABLE_NAME, TG_OP USING ERRCODE = 'restrict_violation';
        END $$
        """,
        f"""
        CREATE FUNCTION {HEAD_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NOT ({_EXTENDS_HEAD}) THEN
                RAISE EXCEPTION 'roster record % does not extend the head of the chain',
                    NEW.sequence USING ERRCODE = 'check_violation';
            END IF;
            RETURN NEW;
        END $$
        """,
        f"""
        CREATE TRIGGER {HEAD_TRIGGER} BEFORE INSERT ON roster_records
            FOR EACH ROW EXECUTE FUNCTION {HEAD_FUNCTION}()
        """,
    ]
    for table in IMMUTABLE_TABLES:
        statements.append(
            f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {REFUSE_FUNCTION}()"
        )
        statements.append(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {REFUSE_FUNCTION}()"
        )
    return statements


# --- SQLite -----------------------------------------------------------------------------------


def _sqlite_triggers() -> list[str]:
    statements = [
        f"""
        CREATE TRIGGER {HEAD_TRIGGER} BEFORE INSERT ON roster_records
        BEGIN
            SELECT RAISE(ABORT, 'roster record does not extend the head of the chain')
            WHERE NOT ({_EXTENDS_HEAD});
        END
        """
    ]
    for table in IMMUTABLE_TABLES:
        for operation in ("UPDATE", "DELETE"):
            statements.append(
                f"CREATE TRIGGER {table}_immutable_{operation.lower()} BEFORE {operation} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} rows are immutable: {operation} refused; "
                "append a new signed record instead'); END"
            )
    return statements

"""The policy's state gets the ledger's protection: append-only rows the database will not change.

Policy versions, legal bases and their ceilings, allowlist entries and approvals, officer roles
and spend approvals become immutable: both databases refuse UPDATE and DELETE of their rows, and
PostgreSQL refuses TRUNCATE (SQLite has none; its DELETE without WHERE fires the triggers too).
The two things that used to be written by UPDATE become rows of their own first:

- an approval's void (``proposal_approvals.voided_at``/``void_reason``) moves to
  ``proposal_approval_voids``, one row per voided approval;
- an allowlist entry's activation (``allowlist_entries.active_from``) moves to
  ``allowlist_activations``, one row per activated entry.

"One standing approval per officer and per institution" was two partial unique indexes on
``voided_at IS NULL``; without that column, each approval gets ``attempt`` (the institution's
n-th approval of the proposal), the same-named indexes make ``attempt`` unique, and an insert
trigger accepts an approval only if it is the institution's next attempt, its officer belongs to
that institution, and no approval of the institution or the officer still stands. Two racing
approvals of one institution take the same attempt and collide on the index.

This migration is a snapshot: it does not import application code that may change later.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)
IMMUTABLE_TABLES = (
    "policy_versions",
    "legal_bases",
    "legal_basis_ceilings",
    "allowlist_entries",
    "allowlist_approvals",
    "allowlist_activations",
    "officer_roles",
    "proposal_approvals",
    "proposal_approval_voids",
)
STANDING_INDEXES = (
    ("uq_proposal_approvals_standing_officer", "officer_id"),
    ("uq_proposal_approvals_standing_institution", "institution_id"),
)
REFUSE_FUNCTION = "treasury_refuse_policy_change"
APPROVAL_FUNCTION = "proposal_approval_is_next_standing"
APPROVAL_TRIGGER = "proposal_approvals_next_standing"


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _drop_column(table: str, column: str) -> None:
    """Drop a column in place (SQLite >= 3.35 does it natively; no table rebuild, so the rows
    that reference ``table`` by foreign key are not disturbed)."""
    if _sqlite():
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    else:
        op.drop_column(table, column)


def upgrade() -> None:
    """Move voids and activations to their own tables, then make the policy's tables immutable."""
    _approval_voids_table()
    _allowlist_activations_table()
    statements = _sqlite_triggers() if _sqlite() else _postgres_triggers()
    for statement in statements:
        op.execute(statement)


def _approval_voids_table() -> None:
    bind = op.get_bind()
    voids = bind.execute(
        sa.text(
            "SELECT id, voided_at, void_reason FROM proposal_approvals "
            "WHERE voided_at IS NOT NULL ORDER BY id"
        )
    ).all()
    for name, _column in STANDING_INDEXES:
        op.drop_index(name, table_name="proposal_approvals")
    op.add_column("proposal_approvals", sa.Column("attempt", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE proposal_approvals SET attempt = (SELECT count(*) FROM proposal_approvals AS p "
        "WHERE p.proposal_id = proposal_approvals.proposal_id "
        "AND p.institution_id = proposal_approvals.institution_id "
        "AND p.id <= proposal_approvals.id)"
    )
    # On SQLite this rebuilds proposal_approvals (NOT NULL needs it); nothing references the
    # table yet, which is why the voids table is created only afterwards.
    with op.batch_alter_table("proposal_approvals") as batch:
        batch.alter_column("attempt", existing_type=sa.Integer(), nullable=False)
        batch.drop_column("voided_at")
        batch.drop_column("void_reason")
    for name, column in STANDING_INDEXES:
        op.create_index(name, "proposal_approvals", ["proposal_id", column, "attempt"], unique=True)
    op.create_table(
        "proposal_approval_voids",
        sa.Column("approval_id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("voided_at", WHEN, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["approval_id"],
            ["proposal_approvals.id"],
            name=op.f("fk_proposal_approval_voids_approval_id_proposal_approvals"),
        ),
        sa.PrimaryKeyConstraint("approval_id", name=op.f("pk_proposal_approval_voids")),
    )
    if voids:
        # Raw values as read above, so each database stores them exactly as before.
        bind.execute(
            sa.text(
                "INSERT INTO proposal_approval_voids (approval_id, voided_at, reason) "
                "VALUES (:approval_id, :voided_at, :reason)"
            ),
            [
                {"approval_id": row.id, "voided_at": row.voided_at, "reason": row.void_reason or ""}
                for row in voids
            ],
        )


def _allowlist_activations_table() -> None:
    op.create_table(
        "allowlist_activations",
        sa.Column("entry_id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("active_from", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["allowlist_entries.id"],
            name=op.f("fk_allowlist_activations_entry_id_allowlist_entries"),
        ),
        sa.PrimaryKeyConstraint("entry_id", name=op.f("pk_allowlist_activations")),
    )
    op.execute(
        "INSERT INTO allowlist_activations (entry_id, active_from) "
        "SELECT id, active_from FROM allowlist_entries WHERE active_from IS NOT NULL"
    )
    _drop_column("allowlist_entries", "active_from")


def downgrade() -> None:
    """Drop the triggers, put voids and activations back into their columns, drop the tables."""
    sqlite = _sqlite()
    for table in IMMUTABLE_TABLES:
        if sqlite:
            op.execute(f"DROP TRIGGER {table}_immutable_update")
            op.execute(f"DROP TRIGGER {table}_immutable_delete")
        else:
            op.execute(f"DROP TRIGGER {table}_immutable ON {table}")
            op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
    if sqlite:
        op.execute(f"DROP TRIGGER {APPROVAL_TRIGGER}")
    else:
        op.execute(f"DROP TRIGGER {APPROVAL_TRIGGER} ON proposal_approvals")
        op.execute(f"DROP FUNCTION {APPROVAL_FUNCTION}()")
        op.execute(f"DROP FUNCTION {REFUSE_FUNCTION}()")

    op.add_column("allowlist_entries", sa.Column("active_from", WHEN, nullable=True))
    op.execute(
        "UPDATE allowlist_entries SET active_from = (SELECT a.active_from FROM "
        "allowlist_activations AS a WHERE a.entry_id = allowlist_entries.id)"
    )
    op.drop_table("allowlist_activations")

    op.add_column("proposal_approvals", sa.Column("voided_at", WHEN, nullable=True))
    op.add_column("proposal_approvals", sa.Column("void_reason", sa.Text(), nullable=True))
    for column, source in (("voided_at", "voided_at"), ("void_reason", "reason")):
        op.execute(
            f"UPDATE proposal_approvals SET {column} = (SELECT v.{source} FROM "  # noqa: S608 - fixed names
            "proposal_approval_voids AS v WHERE v.approval_id = proposal_approvals.id)"
        )
    op.drop_table("proposal_approval_voids")
    for name, _column in STANDING_INDEXES:
        op.drop_index(name, table_name="proposal_approvals")
    _drop_column("proposal_approvals", "attempt")
    for name, column in STANDING_INDEXES:
        op.create_index(
            name,
            "proposal_approvals",
            ["proposal_id", column],
            unique=True,
            sqlite_where=sa.text("voided_at IS NULL"),
            postgresql_where=sa.text("voided_at IS NULL"),
        )


# --- The insert rule of approvals ---------------------------------------------------------------

_NOT_NEXT_ATTEMPT = """
    NEW.attempt <> 1 + (SELECT count(*) FROM proposal_approvals AS p
                        WHERE p.proposal_id = NEW.proposal_id
                          AND p.institution_id = NEW.institution_id)
"""
_FOREIGN_OFFICER = """
    NEW.institution_id <> coalesce(
        (SELECT o.institution_id FROM officers AS o WHERE o.id = NEW.officer_id), -1)
"""
_STILL_STANDING = """
    EXISTS (SELECT 1 FROM proposal_approvals AS p
            WHERE p.proposal_id = NEW.proposal_id
              AND (p.institution_id = NEW.institution_id OR p.officer_id = NEW.officer_id)
              AND NOT EXISTS (SELECT 1 FROM proposal_approval_voids AS v
                              WHERE v.approval_id = p.id))
"""
_MESSAGES = (
    (_NOT_NEXT_ATTEMPT, "proposal approval attempt is not the next one of its institution"),
    (_FOREIGN_OFFICER, "proposal approval names an institution the officer does not belong to"),
    (
        _STILL_STANDING,
        "proposal approval refused: the officer or institution already has a standing approval",
    ),
)


# --- PostgreSQL -------------------------------------------------------------------------------


def _postgres_triggers() -> list[str]:
    checks = "\n".join(
        f"IF {condition} THEN RAISE EXCEPTION '{message}' USING ERRCODE = 'check_violation'; END IF;"
        for condition, message in _MESSAGES
    )
    statements = [
        f"""
        CREATE FUNCTION {REFUSE_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% rows are immutable: % refused; record a new row instead',
                TG_TABLE_NAME, TG_OP USING ERRCODE = 'restrict_violation';
        END $$
        """,
        f"""
        CREATE FUNCTION {APPROVAL_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            {checks}
            RETURN NEW;
        END $$
        """,
        f"""
        CREATE TRIGGER {APPROVAL_TRIGGER} BEFORE INSERT ON proposal_approvals
            FOR EACH ROW EXECUTE FUNCTION {APPROVAL_FUNCTION}()
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
    checks = "\n".join(
        f"SELECT RAISE(ABORT, '{message}') WHERE {condition};" for condition, message in _MESSAGES
    )
    statements = [
        f"CREATE TRIGGER {APPROVAL_TRIGGER} BEFORE INSERT ON proposal_approvals BEGIN {checks} END"
    ]
    for table in IMMUTABLE_TABLES:
        for operation in ("UPDATE", "DELETE"):
            statements.append(
                f"CREATE TRIGGER {table}_immutable_{operation.lower()} BEFORE {operation} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} rows are immutable: {operation} refused; "
                "record a new row instead'); END"
            )
    return statements

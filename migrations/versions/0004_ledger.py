"""The state ledger and the hash-chained audit log, with the triggers that keep them honest.

Both databases refuse UPDATE and DELETE of every ledger and audit row, check that a pending
resolution or a reversal points at the right kind of entry, and refuse an audit event that does
not extend the chain's head. Balance and completeness of an entry are checked as follows:

- PostgreSQL: a deferred constraint trigger on each new entry checks at COMMIT that it has
  exactly ``posting_count`` postings and that they balance per asset (exact NUMERIC sums).
- SQLite has no deferred triggers, but it checks deferred foreign keys at COMMIT. Postings must
  arrive in position order (1, 2, ..., n); when the last one (position = ``posting_count``)
  arrives a trigger checks the balance per asset, and a deferred foreign key from
  ``(entry id, posting_count)`` to that last posting refuses to commit an entry whose postings
  never completed. Amounts are 78-digit text on SQLite (its NUMERIC keeps 15 significant digits
  beyond 64 bits), so the balance is summed exactly in 9-digit slices with carries.

This migration is a snapshot: it does not import application code that may change later.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AMOUNT_DIGITS = 78
SLICE_DIGITS = 9
GENESIS_HASH = "0" * 64
IMMUTABLE_TABLES = (
    "ledger_assets",
    "ledger_accounts",
    "ledger_entries",
    "ledger_postings",
    "audit_events",
)


def _id_type() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def upgrade() -> None:
    """Create the ledger and audit tables, then the triggers of the database in use."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.create_table(
        "ledger_assets",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sa.String(100), nullable=False, unique=True),
        sa.Column("chain", sa.String(64), nullable=False),
        sa.Column("unit_name", sa.String(32), nullable=False),
        sa.Column("decimals", sa.SmallInteger(), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("decimals BETWEEN 0 AND 77", name="decimals"),
    )
    op.create_table(
        "ledger_accounts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sa.String(100), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column(
            "type",
            _enum("account_type", "asset", "liability", "equity", "income", "expense"),
            nullable=False,
        ),
        sa.Column(
            "asset_id", sa.Integer(), sa.ForeignKey("ledger_assets.id"), nullable=False, index=True
        ),
        sa.Column("no_overdraft", sa.Boolean(), nullable=False),
        sa.Column("external_ref", sa.String(200), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("id", "asset_id", name="uq_ledger_accounts_id_asset_id"),
    )
    entry_constraints: list[sa.schema.SchemaItem] = [
        sa.CheckConstraint(
            "(pending_id IS NULL) = (kind NOT IN ('post_pending', 'void_pending'))",
            name="pending_id_iff_resolution",
        ),
        sa.CheckConstraint(
            "(posting_count IS NULL) = (kind = 'void_pending')", name="posting_count_iff_legs"
        ),
        sa.CheckConstraint("posting_count IS NULL OR posting_count >= 2", name="posting_count"),
        sa.CheckConstraint("reverses_id IS NULL OR kind = 'posted'", name="reversal_is_posted"),
    ]
    if sqlite:
        entry_constraints.append(
            sa.ForeignKeyConstraint(
                ["id", "posting_count"],
                ["ledger_postings.entry_id", "ledger_postings.position"],
                name="fk_ledger_entries_id_ledger_postings",
                deferrable=True,
                initially="DEFERRED",
            )
        )
    op.create_table(
        "ledger_entries",
        sa.Column("id", _id_type(), primary_key=True, autoincrement=True),
        sa.Column("idempotency_key", sa.String(128), nullable=False, unique=True),
        sa.Column(
            "kind",
            _enum("entry_kind", "posted", "pending", "post_pending", "void_pending"),
            nullable=False,
        ),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("payload_hash", sa.String(64), nullable=False),
        sa.Column("posting_count", sa.Integer(), nullable=True),
        sa.Column(
            "pending_id", _id_type(), sa.ForeignKey("ledger_entries.id"), nullable=True, unique=True
        ),
        sa.Column(
            "reverses_id",
            _id_type(),
            sa.ForeignKey("ledger_entries.id"),
            nullable=True,
            unique=True,
        ),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, index=True),
        *entry_constraints,
    )
    amount_check = (
        f"length(amount) = {AMOUNT_DIGITS} AND amount NOT GLOB '*[^0-9]*' "
        f"AND amount <> '{'0' * AMOUNT_DIGITS}'"
        if sqlite
        else "amount > 0"
    )
    op.create_table(
        "ledger_postings",
        sa.Column("entry_id", _id_type(), sa.ForeignKey("ledger_entries.id"), primary_key=True),
        sa.Column("position", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("asset_id", sa.Integer(), nullable=False),
        sa.Column("side", _enum("side", "debit", "credit"), nullable=False),
        sa.Column(
            "amount",
            sa.Numeric(AMOUNT_DIGITS, 0).with_variant(sa.String(AMOUNT_DIGITS), "sqlite"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["account_id", "asset_id"], ["ledger_accounts.id", "ledger_accounts.asset_id"]
        ),
        sa.CheckConstraint("position >= 1", name="position"),
        sa.CheckConstraint(amount_check, name="amount"),
        sa.Index("ix_ledger_postings_account_id_entry_id", "account_id", "entry_id"),
    )
    op.create_table(
        "audit_events",
        sa.Column("sequence", _id_type(), primary_key=True, autoincrement=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("refs", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
        sa.Column("hash_version", sa.SmallInteger(), nullable=False),
        sa.CheckConstraint("sequence >= 1", name="sequence"),
    )
    for statement in _sqlite_triggers() if sqlite else _postgres_triggers():
        op.execute(statement)


def downgrade() -> None:
    """Drop the tables (their triggers go with them), then PostgreSQL's trigger functions."""
    for table in reversed(IMMUTABLE_TABLES):
        op.drop_table(table)
    if op.get_bind().dialect.name != "sqlite":
        for function in (
            "treasury_refuse_change",
            "ledger_entry_complete_and_balanced",
            "ledger_entry_references",
            "ledger_posting_in_range",
            "audit_event_extends_head",
        ):
            op.execute(f"DROP FUNCTION {function}()")


# --- PostgreSQL -------------------------------------------------------------------------------


def _postgres_triggers() -> list[str]:
    statements = [
        """
        CREATE FUNCTION treasury_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% rows are immutable: % refused; correct the ledger with a new record',
                TG_TABLE_NAME, TG_OP USING ERRCODE = 'restrict_violation';
        END $$
        """,
        """
        CREATE FUNCTION ledger_entry_complete_and_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            actual integer;
            unbalanced integer;
        BEGIN
            SELECT count(*) INTO actual FROM ledger_postings WHERE entry_id = NEW.id;
            IF actual <> coalesce(NEW.posting_count, 0) THEN
                RAISE EXCEPTION 'ledger entry % declares % postings but has %',
                    NEW.id, coalesce(NEW.posting_count, 0), actual USING ERRCODE = 'check_violation';
            END IF;
            SELECT asset_id INTO unbalanced FROM ledger_postings WHERE entry_id = NEW.id
                GROUP BY asset_id
                HAVING sum(CASE WHEN side = 'debit' THEN amount ELSE -amount END) <> 0
                LIMIT 1;
            IF FOUND THEN
                RAISE EXCEPTION 'ledger entry % does not balance: debits differ from credits for asset id %',
                    NEW.id, unbalanced USING ERRCODE = 'check_violation';
            END IF;
            RETURN NULL;
        END $$
        """,
        """
        CREATE CONSTRAINT TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_entries
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
            EXECUTE FUNCTION ledger_entry_complete_and_balanced()
        """,
        """
        CREATE FUNCTION ledger_entry_references() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.pending_id IS NOT NULL AND coalesce(
                (SELECT kind FROM ledger_entries WHERE id = NEW.pending_id), '') <> 'pending' THEN
                RAISE EXCEPTION 'ledger entry pending_id % does not name a pending entry',
                    NEW.pending_id USING ERRCODE = 'check_violation';
            END IF;
            IF NEW.reverses_id IS NOT NULL AND coalesce(
                (SELECT kind FROM ledger_entries WHERE id = NEW.reverses_id), '')
                NOT IN ('posted', 'post_pending') THEN
                RAISE EXCEPTION 'ledger entry reverses_id % does not name a posted entry',
                    NEW.reverses_id USING ERRCODE = 'check_violation';
            END IF;
            RETURN NEW;
        END $$
        """,
        """
        CREATE TRIGGER ledger_entries_references BEFORE INSERT ON ledger_entries
            FOR EACH ROW EXECUTE FUNCTION ledger_entry_references()
        """,
        """
        CREATE FUNCTION ledger_posting_in_range() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            declared integer;
        BEGIN
            SELECT posting_count INTO declared FROM ledger_entries WHERE id = NEW.entry_id;
            IF declared IS NULL OR NEW.position > declared THEN
                RAISE EXCEPTION 'ledger posting position % is beyond the posting_count of entry %',
                    NEW.position, NEW.entry_id USING ERRCODE = 'check_violation';
            END IF;
            RETURN NEW;
        END $$
        """,
        """
        CREATE TRIGGER ledger_postings_in_range BEFORE INSERT ON ledger_postings
            FOR EACH ROW EXECUTE FUNCTION ledger_posting_in_range()
        """,
        f"""
        CREATE FUNCTION audit_event_extends_head() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NOT (
                (NEW.sequence = 1 AND NEW.prev_hash = '{GENESIS_HASH}'
                    AND NOT EXISTS (SELECT 1 FROM audit_events))
                OR (NEW.sequence = (SELECT max(sequence) FROM audit_events) + 1
                    AND NEW.prev_hash = (SELECT hash FROM audit_events
                                         WHERE sequence = NEW.sequence - 1))
            ) THEN
                RAISE EXCEPTION 'audit event % does not extend the head of the chain', NEW.sequence
                    USING ERRCODE = 'check_violation';
            END IF;
            RETURN NEW;
        END $$
        """,  # noqa: S608 - DDL built from this module's constants, no outside input
        """
        CREATE TRIGGER audit_events_extend_head BEFORE INSERT ON audit_events
            FOR EACH ROW EXECUTE FUNCTION audit_event_extends_head()
        """,
    ]
    for table in IMMUTABLE_TABLES:
        statements.append(
            f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION treasury_refuse_change()"
        )
        statements.append(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION treasury_refuse_change()"
        )
    return statements


# --- SQLite -----------------------------------------------------------------------------------


def _slices() -> list[tuple[int, int]]:
    """(1-based start, length) of each slice of the zero-padded amount text, high first."""
    slices: list[tuple[int, int]] = []
    end = AMOUNT_DIGITS
    while end > 0:
        start = max(0, end - SLICE_DIGITS)
        slices.append((start + 1, end - start))
        end = start
    return list(reversed(slices))


def _sqlite_balanced_condition() -> tuple[str, str]:
    """Signed slice sums per asset, and the condition that their total is exactly zero.

    With d_0 (highest) .. d_k (lowest) the signed slice sums, the total is zero iff, carrying
    from the lowest slice up, every partial carry is a multiple of 10**9 and the top one is zero.
    """
    slices = _slices()
    sums = ", ".join(
        f"SUM(CASE side WHEN 'debit' THEN 1 ELSE -1 END * CAST(substr(amount, {start}, {length}) AS INTEGER)) AS d{index}"
        for index, (start, length) in enumerate(slices)
    )
    base = 10**SLICE_DIGITS
    lowest = len(slices) - 1
    carry = f"d{lowest}"
    conditions = [f"({carry}) % {base} = 0"]
    for index in range(lowest - 1, -1, -1):
        carry = f"(d{index} + ({carry}) / {base})"
        conditions.append(f"{carry} = 0" if index == 0 else f"{carry} % {base} = 0")
    return sums, " AND ".join(conditions)


def _sqlite_triggers() -> list[str]:
    sums, balanced = _sqlite_balanced_condition()
    statements = [
        """
        CREATE TRIGGER ledger_postings_in_order BEFORE INSERT ON ledger_postings
        BEGIN
            SELECT RAISE(ABORT, 'ledger posting out of order: positions run 1..posting_count of its entry')
            WHERE NEW.position <> 1 + (SELECT count(*) FROM ledger_postings WHERE entry_id = NEW.entry_id)
               OR NEW.position > coalesce(
                   (SELECT posting_count FROM ledger_entries WHERE id = NEW.entry_id), 0);
        END
        """,
        f"""
        CREATE TRIGGER ledger_postings_balanced AFTER INSERT ON ledger_postings
        WHEN NEW.position = (SELECT posting_count FROM ledger_entries WHERE id = NEW.entry_id)
        BEGIN
            SELECT RAISE(ABORT, 'ledger entry does not balance: debits differ from credits for an asset')
            WHERE EXISTS (
                SELECT 1 FROM (
                    SELECT {sums} FROM ledger_postings WHERE entry_id = NEW.entry_id
                    GROUP BY asset_id
                ) WHERE NOT ({balanced})
            );
        END
        """,  # noqa: S608 - DDL built from this module's constants, no outside input
        """
        CREATE TRIGGER ledger_entries_references BEFORE INSERT ON ledger_entries
        BEGIN
            SELECT RAISE(ABORT, 'ledger entry pending_id does not name a pending entry')
            WHERE NEW.pending_id IS NOT NULL AND coalesce(
                (SELECT kind FROM ledger_entries WHERE id = NEW.pending_id), '') <> 'pending';
            SELECT RAISE(ABORT, 'ledger entry reverses_id does not name a posted entry')
            WHERE NEW.reverses_id IS NOT NULL AND coalesce(
                (SELECT kind FROM ledger_entries WHERE id = NEW.reverses_id), '')
                NOT IN ('posted', 'post_pending');
        END
        """,
        f"""
        CREATE TRIGGER audit_events_extend_head BEFORE INSERT ON audit_events
        BEGIN
            SELECT RAISE(ABORT, 'audit event does not extend the head of the chain')
            WHERE NOT (
                (NEW.sequence = 1 AND NEW.prev_hash = '{GENESIS_HASH}'
                    AND NOT EXISTS (SELECT 1 FROM audit_events))
                OR (NEW.sequence = (SELECT max(sequence) FROM audit_events) + 1
                    AND NEW.prev_hash = (SELECT hash FROM audit_events
                                         WHERE sequence = NEW.sequence - 1))
            );
        END
        """,  # noqa: S608 - DDL built from this module's constants, no outside input
    ]
    for table in IMMUTABLE_TABLES:
        for operation in ("UPDATE", "DELETE"):
            statements.append(
                f"CREATE TRIGGER {table}_immutable_{operation.lower()} BEFORE {operation} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} rows are immutable: {operation} refused; "
                "correct the ledger with a new record'); END"
            )
    return statements

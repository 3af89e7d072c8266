"""Cheaper ledger checks with the same verdicts (issue 18): SQLite's balance trigger, and
PostgreSQL's deferred completeness and balance check.

- SQLite ``ledger_postings_balanced`` summed nine 9-digit slices of every 78-digit amount, per
  asset with a GROUP BY (a sort), on the last posting of every entry. Most entries are of one
  asset with amounts below 10**18: their higher slices sum to zero, so the two lowest slices
  carry exactly, and a plain aggregate (no GROUP BY) over the entry's postings proves them
  balanced. Any entry it does not prove balanced (several assets, an amount of 10**18 or more,
  or unbalanced) gets 0004's full check, unchanged, which gives the verdict. In SQLite's
  virtual machine this is about a third of the instructions per two-leg entry.
- SQLite ``ledger_postings_in_order`` is kept: replacing its ``count(*)`` by primary-key probes
  ("position - 1 is stored, position is not") refuses the same rows but measured no cheaper on
  small entries (the count reads the same one or two index entries).
- ``ledger_entries_references`` (both databases) checks what ``pending_id`` and ``reverses_id``
  name, and accepts an entry with neither; it now fires only when one is set (a ``WHEN``
  clause), so an ordinary entry no longer runs it (on PostgreSQL: no PL/pgSQL call per entry,
  which cost about as much as the balance check).
- PostgreSQL ``ledger_entry_complete_and_balanced`` (deferred, once per entry at COMMIT) read
  the entry's postings twice (a count, then sums per asset); it reads them once and raises the
  same two refusals in the same order.

Downgrade puts back 0004's definitions.

This migration is a snapshot: it does not import application code that may change later.

Revision ID: 0024
Revises: 0023
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AMOUNT_DIGITS = 78
SLICE_DIGITS = 9
SMALL_DIGITS = 2 * SLICE_DIGITS
"""An amount below 10**18 has non-zero digits only in the two lowest 9-digit slices."""
SMALL_LIMIT_TEXT = f"{10**SMALL_DIGITS:0{AMOUNT_DIGITS}d}"
"""10**18 as stored 78-digit text: an amount is below 10**18 iff its text sorts below this."""
UNBALANCED = "ledger entry does not balance: debits differ from credits for an asset"
SIGN = "CASE side WHEN 'debit' THEN 1 ELSE -1 END"
REFERENCES_SET = "NEW.pending_id IS NOT NULL OR NEW.reverses_id IS NOT NULL"
"""When the references check has anything to check: it accepts an entry with neither."""


# --- SQLite -----------------------------------------------------------------------------------


def _slices() -> list[tuple[int, int]]:
    """(1-based start, length) of each slice of the zero-padded amount text, high first (0004)."""
    slices: list[tuple[int, int]] = []
    end = AMOUNT_DIGITS
    while end > 0:
        start = max(0, end - SLICE_DIGITS)
        slices.append((start + 1, end - start))
        end = start
    return list(reversed(slices))


def _full_balanced_condition() -> tuple[str, str]:
    """0004's signed slice sums per asset, and the condition that their total is exactly zero.

    With d_0 (highest) .. d_k (lowest) the signed slice sums, the total is zero iff, carrying
    from the lowest slice up, every partial carry is a multiple of 10**9 and the top one is zero.
    """
    slices = _slices()
    sums = ", ".join(
        f"SUM({SIGN} * CAST(substr(amount, {start}, {length}) AS INTEGER)) AS d{index}"
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


def _old_sqlite_balanced() -> str:
    sums, balanced = _full_balanced_condition()
    return f"""
        CREATE TRIGGER ledger_postings_balanced AFTER INSERT ON ledger_postings
        WHEN NEW.position = (SELECT posting_count FROM ledger_entries WHERE id = NEW.entry_id)
        BEGIN
            SELECT RAISE(ABORT, '{UNBALANCED}')
            WHERE EXISTS (
                SELECT 1 FROM (
                    SELECT {sums} FROM ledger_postings WHERE entry_id = NEW.entry_id
                    GROUP BY asset_id
                ) WHERE NOT ({balanced})
            );
        END
        """  # noqa: S608 - DDL built from this module's constants, no outside input


def _new_sqlite_balanced() -> str:
    """One statement: refuse when the fast test does not vouch for the entry and 0004's full
    nine-slice check finds an asset out of balance.

    The fast test vouches only for an entry whose postings are all of one asset and below
    10**18, where the two lowest slices carry exactly (every higher slice sums to zero): it is
    an aggregate over the entry's postings without GROUP BY. It never vouches for an unbalanced
    entry, so the verdict is always the full check's; the full check runs only when it does not
    vouch (several assets, an amount of 10**18 or more, or an unbalanced entry).
    """
    sums, balanced = _full_balanced_condition()
    base = 10**SLICE_DIGITS
    high, low = _slices()[-2:]
    return f"""
        CREATE TRIGGER ledger_postings_balanced AFTER INSERT ON ledger_postings
        WHEN NEW.position = (SELECT posting_count FROM ledger_entries WHERE id = NEW.entry_id)
        BEGIN
            SELECT RAISE(ABORT, '{UNBALANCED}')
            WHERE NOT EXISTS (
                SELECT 1 FROM (
                    SELECT min(asset_id) AS first_asset, max(asset_id) AS last_asset,
                        max(amount) AS largest,
                        SUM({SIGN} * CAST(substr(amount, {high[0]}, {high[1]}) AS INTEGER)) AS h,
                        SUM({SIGN} * CAST(substr(amount, {low[0]}, {low[1]}) AS INTEGER)) AS l
                    FROM ledger_postings WHERE entry_id = NEW.entry_id
                ) WHERE first_asset = last_asset AND largest < '{SMALL_LIMIT_TEXT}'
                    AND l % {base} = 0 AND h + l / {base} = 0
            ) AND EXISTS (
                SELECT 1 FROM (
                    SELECT {sums} FROM ledger_postings WHERE entry_id = NEW.entry_id
                    GROUP BY asset_id
                ) WHERE NOT ({balanced})
            );
        END
        """  # noqa: S608 - DDL built from this module's constants, no outside input


OLD_SQLITE_REFERENCES = """
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
        """
NEW_SQLITE_REFERENCES = OLD_SQLITE_REFERENCES.replace(
    "BEFORE INSERT ON ledger_entries\n",
    f"BEFORE INSERT ON ledger_entries\n        WHEN {REFERENCES_SET}\n",
)


def _sqlite(balanced: str, references: str) -> None:
    op.execute("DROP TRIGGER ledger_postings_balanced")
    op.execute(balanced)
    op.execute("DROP TRIGGER ledger_entries_references")
    op.execute(references)


# --- PostgreSQL -------------------------------------------------------------------------------

OLD_POSTGRES_COMPLETE_AND_BALANCED = """
        CREATE OR REPLACE FUNCTION ledger_entry_complete_and_balanced() RETURNS trigger
        LANGUAGE plpgsql AS $$
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
        """

NEW_POSTGRES_COMPLETE_AND_BALANCED = """
        CREATE OR REPLACE FUNCTION ledger_entry_complete_and_balanced() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            actual integer;
            unbalanced integer;
        BEGIN
            SELECT coalesce(sum(n), 0), min(asset_id) FILTER (WHERE net <> 0)
                INTO actual, unbalanced
                FROM (
                    SELECT asset_id, count(*) AS n,
                        sum(CASE WHEN side = 'debit' THEN amount ELSE -amount END) AS net
                    FROM ledger_postings WHERE entry_id = NEW.id GROUP BY asset_id
                ) AS per_asset;
            IF actual <> coalesce(NEW.posting_count, 0) THEN
                RAISE EXCEPTION 'ledger entry % declares % postings but has %',
                    NEW.id, coalesce(NEW.posting_count, 0), actual USING ERRCODE = 'check_violation';
            END IF;
            IF unbalanced IS NOT NULL THEN
                RAISE EXCEPTION 'ledger entry % does not balance: debits differ from credits for asset id %',
                    NEW.id, unbalanced USING ERRCODE = 'check_violation';
            END IF;
            RETURN NULL;
        END $$
        """


def _postgres_references(when: str) -> None:
    op.execute("DROP TRIGGER ledger_entries_references ON ledger_entries")
    op.execute(
        "CREATE TRIGGER ledger_entries_references BEFORE INSERT ON ledger_entries "
        f"FOR EACH ROW {when}EXECUTE FUNCTION ledger_entry_references()"
    )


def upgrade() -> None:
    """Replace the balance and references triggers; on PostgreSQL, the deferred check's function."""
    if op.get_bind().dialect.name == "sqlite":
        _sqlite(_new_sqlite_balanced(), NEW_SQLITE_REFERENCES)
    else:
        op.execute(NEW_POSTGRES_COMPLETE_AND_BALANCED)
        _postgres_references(f"WHEN ({REFERENCES_SET}) ")


def downgrade() -> None:
    """Put back 0004's definitions."""
    if op.get_bind().dialect.name == "sqlite":
        _sqlite(_old_sqlite_balanced(), OLD_SQLITE_REFERENCES)
    else:
        op.execute(OLD_POSTGRES_COMPLETE_AND_BALANCED)
        _postgres_references("")

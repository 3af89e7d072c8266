"""PostgreSQL ledger checks per statement (issue 18): the posting range check runs once per
INSERT or COPY instead of once per row, and the deferred balance check proves the common entry
with one plain aggregate. SQLite is untouched.

- ``ledger_postings_in_range`` was a BEFORE INSERT row trigger: one PL/pgSQL call and one
  lookup of the entry's ``posting_count`` per posting (about 4 us each). It is now an AFTER
  INSERT statement trigger over the statement's transition table (``REFERENCING NEW TABLE``),
  which INSERT, INSERT ... SELECT, multi-row VALUES, ON CONFLICT, MERGE and COPY all fill. One
  query per statement walks the new rows in insertion order, looks up each one's entry, and
  stops at the first refused row, which it names with 0004's message and SQLSTATE
  (``check_violation``), so the whole statement fails and nothing of it is stored, as before.
  An AFTER trigger reads the entries the statement can see once all its rows are in: those
  committed, those inserted earlier in the transaction, and those inserted by the same
  statement (a data-modifying ``WITH``); the row trigger, running before each row, saw the same
  entries, since entries are immutable.
  What changes is only which refusal a row with several faults reports first: the row trigger
  ran before the row's constraints, the statement trigger runs after them and after the row's
  foreign key checks. So a posting for an entry that does not exist is now refused by the
  foreign key ``ledger_postings_entry_id_fkey`` (``foreign_key_violation``) rather than by the
  range message, and a posting beyond ``posting_count`` that also breaks a CHECK, the primary
  key or the account foreign key reports that fault. Every row refused before is refused now,
  and no other.
- ``ledger_entry_complete_and_balanced`` (deferred, once per entry at COMMIT; 0024's form
  groups the entry's postings per asset, then aggregates the groups) first runs one plain
  aggregate over the entry's postings: when they number ``posting_count``, are all of one asset
  and net to zero, the entry is complete and balanced and the function returns. For anything
  else (several assets, a wrong count, an imbalance, a void with no postings) it runs 0024's
  check unchanged, which gives the verdict, the message and the order of the two refusals.
  The trigger stays a deferred constraint trigger per entry; nothing outside it records which
  entries were checked.

Downgrade puts back 0024's definitions (0004's range trigger, 0024's balance function).

This migration is a snapshot: it does not import application code that may change later.

Revision ID: 0025
Revises: 0024
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BEYOND = "ledger posting position % is beyond the posting_count of entry %"
"""0004's refusal of a posting, with the position and the entry id."""
NOT_COMPLETE = "ledger entry % declares % postings but has %"
UNBALANCED = "ledger entry % does not balance: debits differ from credits for asset id %"
SIGNED_AMOUNT = "CASE WHEN side = 'debit' THEN amount ELSE -amount END"

# --- 0004 and 0024's definitions (for downgrade) ----------------------------------------------

OLD_POSTING_IN_RANGE = f"""
        CREATE OR REPLACE FUNCTION ledger_posting_in_range() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            declared integer;
        BEGIN
            SELECT posting_count INTO declared FROM ledger_entries WHERE id = NEW.entry_id;
            IF declared IS NULL OR NEW.position > declared THEN
                RAISE EXCEPTION '{BEYOND}',
                    NEW.position, NEW.entry_id USING ERRCODE = 'check_violation';
            END IF;
            RETURN NEW;
        END $$
        """  # noqa: S608 - DDL built from this module's constants, no outside input
OLD_POSTINGS_IN_RANGE_TRIGGER = """
        CREATE TRIGGER ledger_postings_in_range BEFORE INSERT ON ledger_postings
            FOR EACH ROW EXECUTE FUNCTION ledger_posting_in_range()
        """

OLD_COMPLETE_AND_BALANCED = f"""
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
                        sum({SIGNED_AMOUNT}) AS net
                    FROM ledger_postings WHERE entry_id = NEW.id GROUP BY asset_id
                ) AS per_asset;
            IF actual <> coalesce(NEW.posting_count, 0) THEN
                RAISE EXCEPTION '{NOT_COMPLETE}',
                    NEW.id, coalesce(NEW.posting_count, 0), actual USING ERRCODE = 'check_violation';
            END IF;
            IF unbalanced IS NOT NULL THEN
                RAISE EXCEPTION '{UNBALANCED}',
                    NEW.id, unbalanced USING ERRCODE = 'check_violation';
            END IF;
            RETURN NULL;
        END $$
        """  # noqa: S608 - DDL built from this module's constants, no outside input

# --- 0025's definitions ------------------------------------------------------------------------

NEW_POSTING_IN_RANGE = f"""
        CREATE OR REPLACE FUNCTION ledger_posting_in_range() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            refused record;
        BEGIN
            SELECT posting.position, posting.entry_id INTO refused FROM new_postings AS posting
                WHERE posting.position > coalesce(
                    (SELECT posting_count FROM ledger_entries WHERE id = posting.entry_id), 0)
                LIMIT 1;
            IF NOT FOUND THEN
                RETURN NULL;
            END IF;
            RAISE EXCEPTION '{BEYOND}',
                refused.position, refused.entry_id USING ERRCODE = 'check_violation';
        END $$
        """  # noqa: S608 - DDL built from this module's constants, no outside input
"""Refuses the statement when any new posting's entry is missing, declares no postings, or
declares fewer than its position, naming the first such row in the statement's order (the
transition table is read in insertion order, and ``LIMIT 1`` stops there), as 0004's row trigger
did. ``position >= 1`` is a CHECK, enforced before this runs, so ``coalesce(..., 0)`` refuses
exactly the rows 0004 refused (a missing entry or a NULL count). Each row is one primary key
probe of ``ledger_entries``: a correlated subquery, which the planner keeps as such, so a large
ledger is never scanned whatever the statement's size. Grouping the rows by entry first (one
probe per entry) saved under 10 ms per 20,000 two-leg entries in batches, and doubled the cost
of a one-row statement (the ordinary path inserts one posting per statement)."""

NEW_POSTINGS_IN_RANGE_TRIGGER = """
        CREATE TRIGGER ledger_postings_in_range AFTER INSERT ON ledger_postings
            REFERENCING NEW TABLE AS new_postings
            FOR EACH STATEMENT EXECUTE FUNCTION ledger_posting_in_range()
        """

NEW_COMPLETE_AND_BALANCED = OLD_COMPLETE_AND_BALANCED.replace(
    """        DECLARE
            actual integer;
            unbalanced integer;
        BEGIN
""",
    f"""        DECLARE
            actual integer;
            unbalanced integer;
            lowest_asset integer;
            highest_asset integer;
            signed_total numeric;
        BEGIN
            SELECT count(*), min(asset_id), max(asset_id), sum({SIGNED_AMOUNT})
                INTO actual, lowest_asset, highest_asset, signed_total
                FROM ledger_postings WHERE entry_id = NEW.id;
            IF actual = NEW.posting_count AND lowest_asset = highest_asset AND signed_total = 0 THEN
                RETURN NULL;
            END IF;
""",  # noqa: S608 - DDL built from this module's constants, no outside input
)
"""0024's function behind a fast path that returns only for an entry it proves complete (as
many postings as declared) and balanced (one asset, netting to zero); every other entry gets
0024's check, whose verdict and message stand."""


def upgrade() -> None:
    """On PostgreSQL, the statement-level range trigger and the fast path of the deferred check."""
    if op.get_bind().dialect.name == "sqlite":
        return
    op.execute("DROP TRIGGER ledger_postings_in_range ON ledger_postings")
    op.execute(NEW_POSTING_IN_RANGE)
    op.execute(NEW_POSTINGS_IN_RANGE_TRIGGER)
    op.execute(NEW_COMPLETE_AND_BALANCED)


def downgrade() -> None:
    """Put back 0004's row-level range trigger and 0024's deferred check."""
    if op.get_bind().dialect.name == "sqlite":
        return
    op.execute("DROP TRIGGER ledger_postings_in_range ON ledger_postings")
    op.execute(OLD_POSTING_IN_RANGE)
    op.execute(OLD_POSTINGS_IN_RANGE_TRIGGER)
    op.execute(OLD_COMPLETE_AND_BALANCED)

"""The ledger's batch path (``record_batch``) on both databases, built by the real migrations.

It must keep every rule of the single-entry path: all or nothing, idempotent by key with the
same payload hash (so both paths replay each other's entries), the same triggers on every row
it writes, and the same books as posting the same entries one by one.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_support import StepClock, run_at_once
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from treasury import audit, ledger
from treasury.exceptions import (
    IdempotencyConflictError,
    InvalidAmountError,
    InvalidEntryError,
    LedgerError,
    OverdraftError,
    UnbalancedEntryError,
    UnknownAccountError,
)
from treasury.ledger import (
    AccountType,
    EntryKind,
    EntryRequest,
    JournalEntry,
    Leg,
    Posting,
    payload_hash,
)
from treasury.ledger.batch import _insert_postgres, _insert_sqlite, _new_ids
from treasury.ledger.entries import make_draft
from treasury.ledger.journal import accounts_of

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
ACTOR = "ledger-batch-test"
RESERVE_BTC = "reserve:btc:vault-1"
OPENING_BTC = "equity:btc:opening"
FEES_BTC = "expense:btc:fees"
FUND_BTC = "fund:btc:national-reserve"
RESERVE_ETH = "reserve:eth:safe-1"
OPENING_ETH = "equity:eth:opening"
ONE_ETH_WEI = 10**18


@pytest.fixture
def clock() -> StepClock:
    return StepClock(T0)


def _open(
    session: Session, code: str, kind: AccountType, asset: str, *, guarded: bool = False
) -> None:
    ledger.open_account(
        session,
        code,
        name=code.replace(":", " "),
        account_type=kind,
        asset_code=asset,
        no_overdraft=guarded,
        actor=ACTOR,
        clock=lambda: T0,
    )


@pytest.fixture
def chart(sessions: sessionmaker[Session]) -> None:
    """BTC and ETH, a vault and opening equity per asset, a fees expense, a no-overdraft fund."""
    with sessions.begin() as session:
        ledger.register_asset(session, ledger.BTC, actor=ACTOR, clock=lambda: T0)
        ledger.register_asset(session, ledger.ETH, actor=ACTOR, clock=lambda: T0)
        _open(session, RESERVE_BTC, AccountType.ASSET, "BTC")
        _open(session, OPENING_BTC, AccountType.EQUITY, "BTC")
        _open(session, FEES_BTC, AccountType.EXPENSE, "BTC")
        _open(session, FUND_BTC, AccountType.LIABILITY, "BTC", guarded=True)
        _open(session, RESERVE_ETH, AccountType.ASSET, "ETH")
        _open(session, OPENING_ETH, AccountType.EQUITY, "ETH")


def _deposit(key: str, sats: int, *, description: str = "deposit") -> EntryRequest:
    return EntryRequest(
        key, (Leg.debit(RESERVE_BTC, sats), Leg.credit(OPENING_BTC, sats)), description
    )


def _counts(sessions: sessionmaker[Session]) -> tuple[int, int]:
    with sessions() as session:
        return (
            session.scalar(select(func.count()).select_from(JournalEntry)) or 0,
            session.scalar(select(func.count()).select_from(Posting)) or 0,
        )


def _posted(sessions: sessionmaker[Session], code: str) -> int:
    with sessions() as session:
        return ledger.balance(session, code).posted


# --- Posting and refusing ---------------------------------------------------------------------


@pytest.mark.usefixtures("chart")
def test_a_batch_of_balanced_entries_posts_and_reads_back_like_the_single_path(
    sessions: sessionmaker[Session], clock: StepClock
) -> None:
    """Multi-asset, multi-leg and pending entries of one batch are stored with their legs, ids in request order."""
    requests = [
        _deposit("d-1", 150_000_000),
        EntryRequest(
            "mixed",
            (
                Leg.debit(RESERVE_ETH, 3 * ONE_ETH_WEI),
                Leg.credit(OPENING_ETH, 3 * ONE_ETH_WEI),
                Leg.debit(FEES_BTC, 700),
                Leg.credit(RESERVE_BTC, 500),
                Leg.credit(RESERVE_BTC, 200),
            ),
            "wei beyond 64 bits and a split fee",
        ),
        EntryRequest("held", (Leg.debit(FEES_BTC, 9), Leg.credit(RESERVE_BTC, 9)), pending=True),
    ]
    with sessions.begin() as session:
        result = ledger.record_batch(session, requests, clock=clock)
    assert result.posted == ("d-1", "mixed", "held")
    assert result.present == ()
    assert result.recorded_at == T0
    assert list(result.ids.values()) == sorted(result.ids.values())
    with sessions() as session:
        for request in requests:
            stored = ledger.get_entry(session, result.ids[request.key])
            assert (stored.key, stored.legs, stored.description) == (
                request.key,
                request.legs,
                request.description,
            )
            assert stored.kind is (EntryKind.PENDING if request.pending else EntryKind.POSTED)
            assert stored.recorded_at == T0
        assert ledger.balance(session, RESERVE_BTC).posted == 150_000_000 - 700
        assert ledger.balance(session, RESERVE_BTC).pending == -9
        assert ledger.balance(session, RESERVE_ETH).posted == 3 * ONE_ETH_WEI
        assert all(line.balanced for line in ledger.trial_balance(session))


REFUSED_IN_A_BATCH: list[tuple[EntryRequest, type[LedgerError]]] = [
    (
        EntryRequest("bad", (Leg.debit(RESERVE_BTC, 10), Leg.credit(OPENING_BTC, 9))),
        UnbalancedEntryError,
    ),
    (
        EntryRequest("bad", (Leg.debit(RESERVE_BTC, 10), Leg.credit(OPENING_ETH, 10))),
        UnbalancedEntryError,
    ),
    (
        EntryRequest("bad", (Leg.debit(RESERVE_BTC, 10), Leg.credit("nope", 10))),
        UnknownAccountError,
    ),
    (EntryRequest("bad", (Leg.debit(FUND_BTC, 10), Leg.credit(RESERVE_BTC, 10))), OverdraftError),
]
"""Unbalanced, balanced only across assets, an unknown account, an overdraft."""


@pytest.mark.usefixtures("chart")
def test_one_refused_entry_refuses_the_whole_batch_and_writes_nothing(
    sessions: sessionmaker[Session], clock: StepClock
) -> None:
    """An unbalanced, unknown-account or overdrawing entry anywhere in a batch leaves the database as it was."""
    with sessions.begin() as session:
        ledger.record_batch(session, [_deposit("before", 5)], clock=clock)
    before = _counts(sessions)
    for bad, error in REFUSED_IN_A_BATCH:
        batch = [_deposit(f"ok-{n}", 10 + n) for n in range(50)]
        batch.insert(25, bad)
        with pytest.raises(error, match=r"'(bad|nope)'"), sessions.begin() as session:
            ledger.record_batch(session, batch, clock=clock)
        assert _counts(sessions) == before, bad
    assert _posted(sessions, RESERVE_BTC) == 5


MALFORMED: list[Any] = [
    EntryRequest("k", (Leg.debit(RESERVE_BTC, 1.5), Leg.credit(OPENING_BTC, 1.5))),  # type: ignore[arg-type]
    EntryRequest("k", (Leg.debit(RESERVE_BTC, True), Leg.credit(OPENING_BTC, True))),  # type: ignore[arg-type]
    EntryRequest("k", (Leg.debit(RESERVE_BTC, 0), Leg.credit(OPENING_BTC, 0))),
    EntryRequest("k", (Leg.debit(RESERVE_BTC, 10**78), Leg.credit(OPENING_BTC, 10**78))),
    EntryRequest("k", (Leg.debit(RESERVE_BTC, 5),)),
    EntryRequest("k", [Leg.debit("bad code!", 5), Leg.credit(OPENING_BTC, 5)]),  # type: ignore[arg-type]
    EntryRequest("k", (Leg(RESERVE_BTC, "debit", 5), Leg.credit(OPENING_BTC, 5))),  # type: ignore[arg-type]
    EntryRequest(" ", (Leg.debit(RESERVE_BTC, 5), Leg.credit(OPENING_BTC, 5))),
    EntryRequest("k\n", (Leg.debit(RESERVE_BTC, 5), Leg.credit(OPENING_BTC, 5))),
    EntryRequest("k" * 129, (Leg.debit(RESERVE_BTC, 5), Leg.credit(OPENING_BTC, 5))),
    EntryRequest("k", (Leg.debit(RESERVE_BTC, 5), Leg.credit(OPENING_BTC, 5)), "d" * 501),
    # PostgreSQL refuses a NUL outright; other controls and lone surrogates garble logs/screens.
    EntryRequest("k", (Leg.debit(RESERVE_BTC, 5), Leg.credit(OPENING_BTC, 5)), "a\x00b"),
    EntryRequest("k", (Leg.debit(RESERVE_BTC, 5), Leg.credit(OPENING_BTC, 5)), "bell\x07"),
    EntryRequest("k", (Leg.debit(RESERVE_BTC, 5), Leg.credit(OPENING_BTC, 5)), "\ud800"),
    EntryRequest("k", (Leg.debit(RESERVE_BTC, 5), Leg.credit(OPENING_BTC, 5)), pending=1),  # type: ignore[arg-type]
    ("k", (Leg.debit(RESERVE_BTC, 5), Leg.credit(OPENING_BTC, 5))),
]
"""Requests both paths refuse before touching the database."""


@pytest.mark.usefixtures("chart")
def test_a_malformed_request_is_refused_exactly_as_the_single_path_refuses_it(
    sessions: sessionmaker[Session], clock: StepClock
) -> None:
    """The batch path raises the same error, with the same message, as ``record_entries``, and writes nothing."""
    for request in MALFORMED:
        batch = [_deposit("fine", 5), request]
        with (
            pytest.raises((InvalidEntryError, InvalidAmountError)) as single,
            sessions.begin() as session,
        ):
            ledger.record_entries(session, batch, clock=clock)
        with (
            pytest.raises((InvalidEntryError, InvalidAmountError)) as bulk,
            sessions.begin() as session,
        ):
            ledger.record_batch(session, batch, clock=clock)
        assert type(bulk.value) is type(single.value), request
        assert str(bulk.value) == str(single.value)
    assert _counts(sessions) == (0, 0)


# --- Idempotency ------------------------------------------------------------------------------


@pytest.mark.usefixtures("chart")
def test_reposting_a_batch_is_a_no_op_that_returns_the_same_ids(
    sessions: sessionmaker[Session], clock: StepClock
) -> None:
    """The same batch twice writes once; the second call lists every key as present, with the first call's ids."""
    batch = [_deposit(f"d-{n}", 100 + n) for n in range(30)]
    with sessions.begin() as session:
        first = ledger.record_batch(session, batch, clock=clock)
    counts = _counts(sessions)
    with sessions.begin() as session:
        again = ledger.record_batch(session, list(reversed(batch)), clock=clock)
    assert again.posted == ()
    assert set(again.present) == {r.key for r in batch}
    assert again.recorded_at is None
    assert dict(again.ids) == dict(first.ids)
    assert _counts(sessions) == counts
    assert _posted(sessions, RESERVE_BTC) == sum(100 + n for n in range(30))


@pytest.mark.usefixtures("chart")
def test_a_batch_mixing_new_and_stored_keys_posts_only_the_new_ones(
    sessions: sessionmaker[Session], clock: StepClock
) -> None:
    """Keys stored earlier, by either path, with the same payload (legs in any order) are replays; only new keys are written."""
    with sessions.begin() as session:
        single = ledger.record_entry(
            session,
            "by-single",
            [Leg.credit(OPENING_BTC, 7), Leg.debit(RESERVE_BTC, 7)],
            description="deposit",
            clock=clock,
        )
        earlier = ledger.record_batch(session, [_deposit("by-batch", 11)], clock=clock)
    batch = [
        _deposit("new-1", 1),
        _deposit("by-single", 7),
        _deposit("new-2", 2),
        _deposit("by-batch", 11),
    ]
    with sessions.begin() as session:
        result = ledger.record_batch(session, batch, clock=clock)
    assert result.posted == ("new-1", "new-2")
    assert result.present == ("by-single", "by-batch")
    assert result.ids["by-single"] == single.id
    assert result.ids["by-batch"] == earlier.ids["by-batch"]
    assert _counts(sessions) == (4, 8)
    assert _posted(sessions, RESERVE_BTC) == 7 + 11 + 1 + 2
    with sessions.begin() as session:  # and the single path replays what the batch wrote
        assert (
            ledger.record_entry(
                session, "new-2", _deposit("new-2", 2).legs, description="deposit", clock=clock
            ).id
            == result.ids["new-2"]
        )


@pytest.mark.usefixtures("chart")
def test_a_stored_key_with_different_content_refuses_the_whole_batch(
    sessions: sessionmaker[Session], clock: StepClock
) -> None:
    """Reusing a stored key for another amount, text, kind or account raises IdempotencyConflictError and writes none of the batch."""
    with sessions.begin() as session:
        ledger.record_batch(session, [_deposit("stored", 10)], clock=clock)
    for changed in [
        _deposit("stored", 11),
        _deposit("stored", 10, description="another"),
        EntryRequest("stored", _deposit("stored", 10).legs, "deposit", pending=True),
        EntryRequest("stored", (Leg.debit(FEES_BTC, 10), Leg.credit(OPENING_BTC, 10)), "deposit"),
    ]:
        with (
            pytest.raises(IdempotencyConflictError, match="'stored' was already used"),
            sessions.begin() as session,
        ):
            ledger.record_batch(
                session, [_deposit("new-1", 1), changed, _deposit("new-2", 2)], clock=clock
            )
        assert _counts(sessions) == (1, 2)


@pytest.mark.usefixtures("chart")
def test_a_key_repeated_within_a_batch_must_carry_the_same_content(
    sessions: sessionmaker[Session], clock: StepClock
) -> None:
    """Twice with the same payload counts once; twice with different payloads refuses the batch."""
    with sessions.begin() as session:
        result = ledger.record_batch(
            session, [_deposit("twice", 5), _deposit("other", 6), _deposit("twice", 5)], clock=clock
        )
    assert result.posted == ("twice", "other")
    assert _counts(sessions) == (2, 4)
    with (
        pytest.raises(IdempotencyConflictError, match="'dup' appears twice"),
        sessions.begin() as session,
    ):
        ledger.record_batch(
            session, [_deposit("dup", 5), _deposit("fresh", 1), _deposit("dup", 6)], clock=clock
        )
    assert _counts(sessions) == (2, 4)


@pytest.mark.usefixtures("chart")
def test_an_empty_batch_writes_nothing(sessions: sessionmaker[Session], clock: StepClock) -> None:
    """No requests, no entries, no transaction work."""
    with sessions.begin() as session:
        result = ledger.record_batch(session, [], clock=clock)
    assert (dict(result.ids), result.posted, result.present, result.recorded_at) == (
        {},
        (),
        (),
        None,
    )
    assert _counts(sessions) == (0, 0)


# --- Database guarantees ----------------------------------------------------------------------


@pytest.mark.usefixtures("chart")
def test_rows_written_by_a_batch_cannot_be_changed_or_deleted(
    sessions: sessionmaker[Session], engine: Engine, clock: StepClock
) -> None:
    """The immutability triggers refuse UPDATE and DELETE of batch-written entries and postings."""
    with sessions.begin() as session:
        ledger.record_batch(session, [_deposit(f"d-{n}", 10 + n) for n in range(5)], clock=clock)
    with sessions() as session:
        before = ledger.list_entries(session)
    statements = [
        "UPDATE ledger_entries SET description = 'rewritten'",
        "DELETE FROM ledger_entries",
        "UPDATE ledger_postings SET amount = amount",
        "DELETE FROM ledger_postings WHERE position = 2",
    ]
    for statement in statements:
        with pytest.raises(DBAPIError, match="immutable"), engine.begin() as connection:
            connection.execute(text(statement))
    with sessions() as session:
        assert ledger.list_entries(session) == before


@pytest.mark.usefixtures("chart")
@pytest.mark.parametrize(
    "legs",
    [
        (Leg.debit(RESERVE_BTC, 10), Leg.credit(OPENING_BTC, 9)),
        (Leg.debit(RESERVE_BTC, 10), Leg.credit(OPENING_ETH, 10)),
    ],
    ids=["unbalanced", "across-assets"],
)
def test_the_bulk_inserts_go_through_the_databases_balance_check(
    sessions: sessionmaker[Session], legs: tuple[Leg, ...]
) -> None:
    """The batch's bulk INSERTs fire the balance triggers: an unbalanced draft smuggled past the code checks cannot commit."""
    good = make_draft("good", EntryKind.POSTED, _deposit("good", 3).legs, "")
    bad = make_draft("smuggled", EntryKind.POSTED, legs, "")

    def smuggle() -> None:
        with sessions.begin() as session:
            accounts = accounts_of(session, [good, bad])
            connection = session.connection()
            postgres = connection.dialect.name == "postgresql"
            ids = _new_ids(connection, 2, postgres=postgres)
            insert = _insert_postgres if postgres else _insert_sqlite
            insert(connection, [good, bad], ids, accounts, T0)

    with pytest.raises(DBAPIError, match="balance"):
        smuggle()
    assert _counts(sessions) == (0, 0)


# --- Same books as one by one -----------------------------------------------------------------

BOOK_ACCOUNTS = {"BTC": ("btc:a", "btc:b", "btc:c"), "ETH": ("eth:a", "eth:b")}
"""Per example, each path gets these accounts under its own prefix."""

book_payload = st.tuples(
    st.sampled_from(sorted(BOOK_ACCOUNTS)),
    st.integers(0, 2),
    st.integers(0, 2),
    st.integers(min_value=1, max_value=10**40),
    st.booleans(),
)


@st.composite
def book(draw: st.DrawFn) -> list[tuple[int, str, int, int, int, bool]]:
    """Entries as (key number, payload); a repeated key number repeats its payload (a replay)."""
    payloads = draw(st.lists(book_payload, min_size=1, max_size=10))
    order = draw(st.lists(st.integers(0, len(payloads) - 1), min_size=1, max_size=20))
    return [(number, *payloads[number]) for number in order]


@pytest.mark.usefixtures("chart")
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture
    ],  # one database, a prefix per example
)
@given(
    entries=book(),
    cuts=st.lists(st.integers(0, 20), max_size=4),
    text_=st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=8) | st.just("a\tb\n"),
)
def test_posting_one_by_one_or_in_batches_gives_identical_rows_and_balances(
    sessions: sessionmaker[Session],
    entries: list[tuple[int, str, int, int, int, bool]],
    cuts: list[int],
    text_: str,
) -> None:
    """The same entries posted one by one and in randomly cut batches leave the same rows (order, kind, text, legs, time, canonical hash) and balances."""
    with sessions() as session:
        example = session.scalar(select(func.count()).select_from(JournalEntry)) or 0
    prefixes = (f"x{example}-one", f"x{example}-bulk")

    def requests(prefix: str) -> list[EntryRequest]:
        made = []
        for number, asset, i, j, amount, pending in entries:
            codes = BOOK_ACCOUNTS[asset]
            legs = (
                Leg.debit(f"{prefix}:{codes[i % len(codes)]}", amount),
                Leg.credit(f"{prefix}:{codes[j % len(codes)]}", amount),
            )
            made.append(EntryRequest(f"{prefix}:k{number}", legs, f"{text_}{number}", pending))
        return made

    fixed_time = lambda: T0  # noqa: E731 - both paths stamp the same time, so rows compare whole
    with sessions.begin() as session:
        for prefix in prefixes:
            for asset, codes in BOOK_ACCOUNTS.items():
                for code in codes:
                    _open(session, f"{prefix}:{code}", AccountType.ASSET, asset)
    one, bulk = requests(prefixes[0]), requests(prefixes[1])
    for request in one:
        with sessions.begin() as session:
            ledger.record_entries(session, [request], clock=fixed_time)
    bounds = sorted({0, len(bulk), *(c for c in cuts if c <= len(bulk))})
    for start, end in itertools.pairwise(bounds):
        with sessions.begin() as session:
            ledger.record_batch(session, bulk[start:end], clock=fixed_time)

    def rows(
        prefix: str,
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[str, Any]]]:
        with sessions() as session:
            connection = session.connection()
            stored = connection.execute(
                text(
                    "SELECT id, idempotency_key, kind, description, payload_hash, posting_count, "
                    "recorded_at FROM ledger_entries WHERE idempotency_key LIKE :p ORDER BY id"
                ),
                {"p": prefix + ":%"},
            ).all()
            legs = connection.execute(
                text(
                    "SELECT e.idempotency_key, p.position, a.code, p.asset_id, p.side, p.amount "
                    "FROM ledger_postings p JOIN ledger_entries e ON e.id = p.entry_id "
                    "JOIN ledger_accounts a ON a.id = p.account_id "
                    "WHERE e.idempotency_key LIKE :p ORDER BY e.id, p.position"
                ),
                {"p": prefix + ":%"},
            ).all()
            codes = [f"{prefix}:{c}" for codes in BOOK_ACCOUNTS.values() for c in codes]
            balances = [(b.account, b.totals) for b in ledger.balances(session, codes)]
            for (
                row
            ) in stored:  # the codes differ by prefix, so the hashes do: each must be canonical
                entry = ledger.get_entry(session, row.id)
                assert row.payload_hash == payload_hash(entry.kind, entry.legs, entry.description)
        strip = prefix + ":"
        return (
            [(r[1].removeprefix(strip), r[2], r[3], *r[5:]) for r in stored],
            [(r[0].removeprefix(strip), r[1], r[2].removeprefix(strip), *r[3:]) for r in legs],
            [(account.removeprefix(strip), totals) for account, totals in balances],
        )

    assert rows(prefixes[0]) == rows(prefixes[1])
    with sessions() as session:
        assert all(line.balanced for line in ledger.trial_balance(session))


# --- Concurrency: the bank check through the batch path ---------------------------------------

BANK_THREADS = 6
BANK_BATCHES_PER_THREAD = 8
BANK_ACCOUNTS = 5
BANK_OPENING_SATS = 600


def test_concurrent_batches_of_transfers_keep_the_bank_invariants(
    sessions: sessionmaker[Session], test_seed: int
) -> None:
    """Threads posting batches of random transfers (shared and repeated keys) leave one entry per key, no overdraft, and zero trial balance."""
    banks = [f"bank:{n}" for n in range(BANK_ACCOUNTS)]
    clock = StepClock(T0)
    with sessions.begin() as session:
        ledger.register_asset(session, ledger.BTC, actor=ACTOR, clock=clock)
        _open(session, OPENING_BTC, AccountType.EQUITY, "BTC")
        for code in banks:
            _open(session, code, AccountType.LIABILITY, "BTC", guarded=True)
        ledger.record_batch(
            session,
            [
                EntryRequest(
                    f"open-{c}",
                    (Leg.debit(OPENING_BTC, BANK_OPENING_SATS), Leg.credit(c, BANK_OPENING_SATS)),
                )
                for c in banks
            ],
            clock=clock,
        )
    shared_rng = random.Random(test_seed)  # noqa: S311 - reproducible test data, replayable by seed
    shared = [
        EntryRequest(f"shared-{n}", (Leg.debit(a, amount), Leg.credit(b, amount)))
        for n in range(15)
        for a, b in [shared_rng.sample(banks, 2)]
        for amount in [shared_rng.randint(1, 150)]
    ]
    results: dict[str, set[int]] = defaultdict(set)
    refused: list[int] = []
    failures: list[BaseException] = []
    results_lock = threading.Lock()

    def worker(number: int) -> None:
        rng = random.Random(test_seed * 100 + number)  # noqa: S311 - reproducible test data
        mine: list[EntryRequest] = []
        for round_ in range(BANK_BATCHES_PER_THREAD):
            batch: list[EntryRequest] = []
            for step in range(rng.randint(1, 6)):
                roll = rng.random()
                if roll < 0.3:
                    batch.append(rng.choice(shared))
                elif roll < 0.4 and mine:
                    batch.append(rng.choice(mine))
                else:
                    source, target = rng.sample(banks, 2)
                    amount = rng.randint(1, 150)
                    request = EntryRequest(
                        f"t{number}-{round_}-{step}",
                        (Leg.debit(source, amount), Leg.credit(target, amount)),
                        pending=rng.random() < 0.2,
                    )
                    mine.append(request)
                    batch.append(request)
            try:
                with sessions.begin() as session:
                    result = ledger.record_batch(session, batch, clock=clock)
                with results_lock:
                    for key, entry_id in result.ids.items():
                        results[key].add(entry_id)
            except OverdraftError:
                with results_lock:
                    refused.append(number)  # the rules call for it: the whole batch is refused
            except BaseException as exc:  # any other error fails the test below, with its cause
                failures.append(exc)
                return

    run_at_once(worker, BANK_THREADS)
    assert failures == []
    with sessions() as session:
        assert all(line.balanced for line in ledger.trial_balance(session))
        stored = list(session.execute(select(JournalEntry.idempotency_key, JournalEntry.id)))
        by_key = dict(stored)
        assert len(by_key) == len(stored)
        for key, ids in results.items():
            assert ids == {by_key[key]}, key  # every batch that carried a key got the one entry
        assert len(stored) == len(results) + BANK_ACCOUNTS
        postings = session.scalar(select(func.count()).select_from(Posting))
        assert postings == 2 * len(stored)
        bank_balances = ledger.balances(session, banks)
        assert all(b.available >= 0 and b.posted >= 0 for b in bank_balances)
        assert sum(b.posted for b in bank_balances) == BANK_ACCOUNTS * BANK_OPENING_SATS
        assert audit.verify(session).ok
    assert any(key.startswith("shared") for key in results)

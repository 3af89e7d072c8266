"""Each chain's relayer in the books, against a real anvil on SQLite and PostgreSQL: its top-ups,
the gas of real Safe executions booked once as fees, its float compared with the chain, its
low-balance warning, an unexplained spending alarmed, and a database writer's deletion caught."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from eth_utils.address import to_checksum_address
from reconcile_support import (
    Db,
    create_safe,
    deployed,
    eth_key,
    migrated,
    rng_for,
    safe_institutions,
)
from sqlalchemy import delete, select, text

from custody.devnet import EvmNode
from custody.ethereum import EthChain, SafeVaults, sign_safe_tx_hash
from treasury import ledger
from treasury.ledger import JournalEntry, Posting
from treasury.policy import ReconciliationOutcome
from treasury.reconcile import (
    AlarmKind,
    EthereumReader,
    ReconcileGate,
    Reconciler,
    RunReport,
    RunStatus,
    list_alarms,
    relayer_floats,
)
from treasury.reconcile import relayers as relayer_module
from treasury.reconcile.accounts import (
    fees_account,
    relayer_account,
    relayer_unexplained_account,
)
from treasury.reconcile.relayers import (
    RelayerBookingKind,
    RelayerBookingRow,
    RelayerCursorRow,
    RelayerWatch,
    watch_relayer,
)

log = logging.getLogger("tests.relayer.reconcile")

WEI = 10**18
SAFE = "relayed-safe"
RECIPIENT = "0x000000000000000000000000000000000000dEaD"
THRESHOLD = WEI // 2


@dataclass
class RelayerWorld:
    db: Db
    chain: EthChain
    vaults: SafeVaults
    safe: str
    relayer: str
    people: list  # type: ignore[type-arg]

    @property
    def watch(self) -> RelayerWatch:
        return RelayerWatch(EthereumReader(self.chain.rpc), self.relayer, THRESHOLD)

    @property
    def float_code(self) -> str:
        return relayer_account(self.chain.chain_id, self.relayer, "ETH")

    def run(self) -> RunReport:
        """One reconciliation run: the Safe, then the relayer."""
        return Reconciler(
            self.db.sessions,
            bitcoin=None,
            ethereum=EthereumReader(self.chain.rpc),
            relayers=[self.watch],
        ).run()

    def top_up(self, wei: int) -> str:
        funder = self.chain.accounts()[0]
        return self.chain.transact(funder, self.relayer, b"", value=wei, action="top up").tx_hash

    def execute(self, wei: int = 1) -> tuple[str, int]:
        """A real 2-of-3 Safe execution sent by the relayer; its hash and its gas cost from the
        receipt (gasUsed * effectiveGasPrice), read here independently of custody."""
        safe_tx = self.vaults.propose(SAFE, self.vaults.new_safe_tx(SAFE, RECIPIENT, wei))
        for person in self.people[:2]:
            signature = sign_safe_tx_hash(eth_key(person), safe_tx.hash)
            self.vaults.add_signature(safe_tx.hash_hex, signature.encode())
        receipt = self.vaults.execute(safe_tx.hash_hex, self.relayer)
        raw = self.chain.rpc.call("eth_getTransactionReceipt", receipt.tx_hash)
        assert raw["from"].lower() == self.relayer.lower()
        return receipt.tx_hash.lower(), int(raw["gasUsed"], 16) * int(raw["effectiveGasPrice"], 16)

    def bookings(self, kind: RelayerBookingKind) -> list[RelayerBookingRow]:
        with self.db.sessions() as session:
            return list(
                session.scalars(
                    select(RelayerBookingRow).where(
                        RelayerBookingRow.relayer == self.relayer, RelayerBookingRow.kind == kind
                    )
                )
            )

    def posted(self, account: str) -> int:
        return self.db.posted(account)

    def open_alarms(self, kind: AlarmKind) -> list:  # type: ignore[type-arg]
        with self.db.sessions() as session:
            return [a for a in list_alarms(session, only_open=True) if a.kind is kind]

    def all_alarms(self, kind: AlarmKind) -> list:  # type: ignore[type-arg]
        with self.db.sessions() as session:
            return [a for a in list_alarms(session) if a.kind is kind]


@pytest.fixture
def world(
    evm_node: EvmNode, db_url: str, test_seed: int, request: pytest.FixtureRequest
) -> Iterator[RelayerWorld]:
    """A funded 2-of-3 Safe, and a fresh relayer account (impersonated on anvil) holding nothing."""
    db = migrated(db_url)
    chain = EthChain(evm_node.rpc)
    deployed(chain)
    rng = rng_for(test_seed, request.node.nodeid, "relayer")
    people = safe_institutions(test_seed)
    vaults = SafeVaults(chain, db.sessions, random_bytes=rng.randbytes)
    safe = create_safe(vaults, SAFE, people, rng.getrandbits(128))
    chain.transact(chain.accounts()[0], safe, b"", value=WEI, action="fund the Safe")
    relayer = to_checksum_address("0x" + rng.randbytes(20).hex())
    chain.rpc.call("anvil_impersonateAccount", relayer)
    log.info("relayer %s for test seed %s", relayer, test_seed)
    yield RelayerWorld(db, chain, vaults, safe, relayer, people)
    chain.rpc.call("anvil_stopImpersonatingAccount", relayer)
    db.engine.dispose()


def test_gas_of_a_real_safe_execution_is_booked_once_as_a_fee(world: RelayerWorld) -> None:
    """Top-up and execution: the float equals the chain, the fee equals the receipt's gasUsed *
    effectiveGasPrice, and a rerun books nothing more."""
    assert world.run().status is RunStatus.SUCCEEDED  # the opening: nothing held yet
    topup = world.top_up(WEI)
    tx, gas = world.execute()
    report = world.run()
    assert report.status is RunStatus.SUCCEEDED, report
    (top_up,) = world.bookings(RelayerBookingKind.TOP_UP)
    assert (top_up.tx_ref, top_up.amount) == (topup.lower(), WEI)
    (booked,) = world.bookings(RelayerBookingKind.GAS)
    assert (booked.tx_ref, booked.amount) == (tx, gas)
    assert world.posted(fees_account("ETH")) == gas
    assert world.posted(world.float_code) == world.chain.balance(world.relayer) == WEI - gas
    entries = world.db.entry_count()
    log.info("a rerun books nothing more")
    assert world.run().status is RunStatus.SUCCEEDED
    assert len(world.bookings(RelayerBookingKind.GAS)) == 1
    assert world.db.entry_count() == entries
    assert world.posted(fees_account("ETH")) == gas
    assert world.db.trial_balance_zero()
    with world.db.sessions() as session:
        (found,) = [f for f in relayer_floats(session) if f.relayer == world.relayer]
    assert (found.chain_balance, found.ledger_balance, found.gas_booked) == (WEI - gas,) * 2 + (
        gas,
    )
    assert world.open_alarms(AlarmKind.BALANCE_MISMATCH) == []
    assert world.open_alarms(AlarmKind.RELAYER_UNEXPLAINED) == []


def test_a_crash_before_the_cursor_moves_and_a_lost_cursor_still_book_once(
    world: RelayerWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash after the bookings but before the cursor moved rolls the whole relayer back (one
    transaction); a cursor lost afterwards (a writer deleting it, as if the steps were apart) makes
    the next run read everything again and book nothing twice; two reconcilers at once, once."""
    world.run()
    world.top_up(WEI)
    tx, gas = world.execute()

    def crash(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("crashed before the cursor moved")

    monkeypatch.setattr(relayer_module, "_move_cursor", crash)
    assert world.run().status is RunStatus.FAILED
    assert world.bookings(RelayerBookingKind.GAS) == []
    monkeypatch.undo()
    assert world.run().status is RunStatus.SUCCEEDED
    assert [b.amount for b in world.bookings(RelayerBookingKind.GAS)] == [gas]

    log.info("the cursor deleted: the relayer is read again from its opening block")
    with world.db.engine.begin() as connection:
        connection.execute(
            delete(RelayerCursorRow).where(RelayerCursorRow.relayer == world.relayer)
        )
    assert world.run().status is RunStatus.SUCCEEDED
    assert [b.tx_ref for b in world.bookings(RelayerBookingKind.GAS)] == [tx]
    assert world.posted(fees_account("ETH")) == gas

    log.info("two reconcilers at once book a new execution once")
    second, second_gas = world.execute()
    errors: list[BaseException] = []

    def reconcile() -> None:
        try:
            watch_relayer(world.db.sessions, world.watch)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reconcile) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(b.tx_ref for b in world.bookings(RelayerBookingKind.GAS)) == sorted([tx, second])
    assert world.posted(fees_account("ETH")) == gas + second_gas
    assert world.posted(world.float_code) == world.chain.balance(world.relayer)
    assert world.db.trial_balance_zero()
    assert all("duplicate" in str(e).lower() or "unique" in str(e).lower() for e in errors)


def test_the_low_balance_warning_opens_once_clears_on_top_up_and_blocks_nothing(
    world: RelayerWorld,
) -> None:
    """Below the threshold one relayer_low alarm opens (not again on the next run), the spend gate
    still says matched; a top-up above it clears the alarm without any officer."""
    first = world.run()
    assert first.status is RunStatus.SUCCEEDED, first
    world.run()
    (low,) = world.all_alarms(AlarmKind.RELAYER_LOW)
    assert low.open
    assert world.relayer in low.detail
    assert str(THRESHOLD) in low.detail
    with world.db.sessions() as session:
        facts = ReconcileGate().latest(session, "ETH")
    assert facts is not None
    assert facts.outcome is ReconciliationOutcome.MATCHED
    world.top_up(THRESHOLD - 1)
    world.run()
    assert len(world.open_alarms(AlarmKind.RELAYER_LOW)) == 1
    world.top_up(1)
    world.run()
    assert world.open_alarms(AlarmKind.RELAYER_LOW) == []
    (cleared,) = world.all_alarms(AlarmKind.RELAYER_LOW)
    assert cleared.id == low.id
    assert cleared.acknowledgements == ()
    assert world.posted(world.float_code) == THRESHOLD == world.chain.balance(world.relayer)


def test_an_unexplained_spending_of_the_relayer_is_booked_apart_and_alarms(
    world: RelayerWorld,
) -> None:
    """A plain transfer the relayer sent (no Safe execution): its value and gas go to the
    unexplained account, not to fees, the float still matches, and a blocking alarm names it."""
    world.run()
    world.top_up(WEI)
    world.run()
    receipt = world.chain.transact(world.relayer, RECIPIENT, b"", value=1000, action="leak")
    raw = world.chain.rpc.call("eth_getTransactionReceipt", receipt.tx_hash)
    cost = int(raw["gasUsed"], 16) * int(raw["effectiveGasPrice"], 16)
    world.run()
    (alarm,) = world.open_alarms(AlarmKind.RELAYER_UNEXPLAINED)
    assert alarm.tx_ref == receipt.tx_hash.lower()
    assert world.posted(relayer_unexplained_account("ETH")) == cost + 1000
    assert world.bookings(RelayerBookingKind.GAS) == []
    assert world.posted(world.float_code) == world.chain.balance(world.relayer)
    with world.db.sessions() as session:
        facts = ReconcileGate().latest(session, "ETH")
    assert facts is not None
    assert facts.outcome is ReconciliationOutcome.MISMATCHED
    with world.db.sessions() as session:
        kinds = {a.kind for a in list_alarms(session, only_open=True)}
    assert kinds == {AlarmKind.RELAYER_UNEXPLAINED}  # the relayer's alarm alone closed the gate


def _drop_triggers(db: Db) -> None:
    """What a database owner can do: drop every trigger (immutability, balance)."""
    with db.engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            found = connection.execute(
                text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            ).all()
            for (name,) in found:
                connection.execute(text(f'DROP TRIGGER "{name}"'))
        else:
            found = connection.execute(
                text(
                    "SELECT c.relname, t.tgname FROM pg_trigger t "
                    "JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal"
                )
            ).all()
            for table, name in found:
                connection.execute(text(f'DROP TRIGGER "{name}" ON "{table}"'))


def test_a_fee_deleted_by_a_database_writer_alarms_and_is_not_booked_again(
    world: RelayerWorld,
) -> None:
    """The attacker (triggers dropped) deletes a booked gas fee: its booking row, its entry and
    postings. The next run does not book it again behind the cursor; the float now exceeds the
    chain, and a balance_mismatch alarm names the relayer and blocks spends."""
    world.run()
    world.top_up(WEI)
    _tx, gas = world.execute()
    world.run()
    (booked,) = world.bookings(RelayerBookingKind.GAS)
    _drop_triggers(world.db)
    with world.db.engine.begin() as connection:
        connection.execute(delete(RelayerBookingRow).where(RelayerBookingRow.id == booked.id))
        connection.execute(delete(Posting).where(Posting.entry_id == booked.entry_id))
        connection.execute(delete(JournalEntry).where(JournalEntry.id == booked.entry_id))
    assert world.run().status is RunStatus.SUCCEEDED
    assert world.bookings(RelayerBookingKind.GAS) == []
    (alarm,) = world.open_alarms(AlarmKind.BALANCE_MISMATCH)
    assert world.relayer in alarm.scope
    assert f"difference {-gas}" in alarm.detail
    with world.db.sessions() as session:
        assert ledger.balance(session, world.float_code).posted == WEI

"""A 2-of-3 vault across three institutions on regtest: addresses, spends, fee bumps, refusals.

Spends are signed on the officers' real statements: a roster anchored in the three ceremonies'
seeds, two institutions' approvals of each spend as bitcoind decodes it. The refusal tests sign
under an explicit ``BreakGlass`` instead, on purpose: they show that the custody checks (shares,
fingerprint, PSBT, fees, cosigners) hold even when no statement is checked.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from authority_support import NOW, Deployment, bitcoind_spend_under_review
from embit.bip32 import HDKey
from embit.psbt import PSBT, InputScope
from embit.script import address_to_scriptpubkey
from embit.transaction import TransactionOutput
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from custody.authority.gate import AuthorityEvidence, BreakGlass
from custody.bitcoin import (
    ApprovedSpend,
    Branch,
    FeePolicy,
    Payment,
    broadcast_spend,
    build_spend,
    bump_spend,
    create_vault,
    estimate_vsize,
    load_spend,
    load_vault,
    next_receive_address,
    parse_psbt,
    sign_psbt,
    sign_spend,
    vault_balance,
)
from custody.bitcoin.crosscheck import sortedmulti_wsh_address
from custody.bitcoin.rpc import btc_to_sats
from custody.bitcoin.spend import approval_of
from custody.bitcoin.vault import Vault
from custody.ceremony import CeremonyPlan, ShareFiles, read_share_file, run_ceremony
from custody.devnet import BitcoinNode
from custody.exceptions import (
    AbsurdFeeError,
    CustodyError,
    FingerprintMismatchError,
    ForeignChangeError,
    ForeignInputError,
    InsufficientSharesError,
    InvalidShareError,
    MalformedPSBTError,
    MixedSharesError,
    NotACosignerError,
    SpendApprovalMismatchError,
    SpendStateError,
    VaultConfigError,
)
from custody.keys import signing_keys
from custody.records import CUSTODY_TABLES, SpendRecord, VaultRecord
from custody.shamir import ShareMnemonic, combine_shares, parse_shares
from treasury import migrate
from treasury.db import make_engine, session_factory

log = logging.getLogger("tests.btc")

FINANCE, BANK, CHAMBER, OUTSIDER = (
    "Ministry of Finance",
    "National Bank",
    "Accounts Chamber",
    "Outside Agency",
)
BANK_PASSPHRASE = "national bank vault"
FUNDING_SATS = 150_000_000
PAYMENT_SATS = 120_000_000
FEE_RATE_SAT_VB = Decimal(5)
MAX_FEE_SATS = 50_000
CODES = {"CB": BANK, "MOF": FINANCE, "SAO": CHAMBER}
"""The roster's institution codes and the ceremonies whose seeds anchor them."""
MECHANICS_ONLY = BreakGlass("test of custody mechanics: the refusal comes before any authority")
"""For refusal tests: even on the break-glass path these checks hold."""


@dataclass
class World:
    """One migrated database, four ceremonies (three in the vault), one funded vault."""

    engine: Engine
    sessions: Callable[[], Session]
    node: BitcoinNode
    vault: Vault
    shares: dict[str, list[str]]
    """Share texts as read back from the holders' files, in member order."""
    external: str
    """An address of another wallet: where spends pay to."""
    deployment: Deployment | None = None
    """The officers' roster, anchored in the three ceremonies (made on first use)."""

    def root(self, institution: str) -> HDKey:
        """The institution's seed root, as its signer recombines it (for the ceremony key)."""
        with combine_shares(self.quorum(institution), self.passphrase(institution)) as seed:
            return HDKey.from_seed(seed.reveal())

    def evidence(self, spend_id: int) -> AuthorityEvidence:
        """Approvals by the Bank's and the Ministry's approvers of the spend bitcoind decodes."""
        if self.deployment is None:
            self.deployment = Deployment.build(
                roots={code: self.root(name) for code, name in CODES.items()},
                names=dict(CODES),
            )
            self.deployment.authorise({"BTC": 21_000_000 * 10**8}, [("BTC", self.external)])
        with self.sessions() as session:
            psbt_text = load_spend(session, spend_id).unsigned_psbt
        spend = bitcoind_spend_under_review(
            self.node.rpc, psbt_text, self.vault.receive_descriptor, self.vault.change_descriptor
        )
        d = self.deployment
        return d.evidence(
            *(d.statement_for(o, spend, max_fee=MAX_FEE_SATS) for o in ("cb-alice", "mof-carol"))
        )

    def quorum(self, institution: str, count: int | None = None) -> list[ShareMnemonic]:
        texts = self.shares[institution]
        threshold = parse_shares(texts[:1])[0].info.member_threshold
        return parse_shares(texts[: count if count is not None else threshold])

    def passphrase(self, institution: str) -> str:
        return BANK_PASSPHRASE if institution == BANK else ""

    def fund(self, amount_sats: int) -> None:
        with self.sessions() as session, session.begin():
            _, address = next_receive_address(session, self.node.rpc, self.vault.name)
        self.node.rpc.wallet("miner").call("sendtoaddress", address, Decimal(amount_sats) / 10**8)
        self.node.mine(1)

    def build(self, amount_sats: int = PAYMENT_SATS, **kwargs: Any) -> int:
        with self.sessions() as session, session.begin():
            spend = build_spend(
                session,
                self.node.rpc,
                self.vault.name,
                [Payment(self.external, amount_sats)],
                kwargs.pop("fee_rate", FEE_RATE_SAT_VB),
                kwargs.pop("max_fee_sats", MAX_FEE_SATS),
                **kwargs,
            )
        return spend.id

    def sign(self, spend_id: int, institution: str, **kwargs: Any) -> None:
        """Sign on the officers' statements for this spend (unless ``authority`` is given)."""
        authority = kwargs.pop("authority", None) or self.evidence(spend_id)
        with self.sessions() as session, session.begin():
            sign_spend(
                session,
                spend_id,
                institution,
                self.quorum(institution),
                self.passphrase(institution),
                authority=authority,
                clock=lambda: NOW,
                **kwargs,
            )

    def broadcast(self, spend_id: int) -> str:
        with self.sessions() as session, session.begin():
            return broadcast_spend(session, self.node.rpc, spend_id)

    def snapshot(self) -> tuple[Any, ...]:
        """Every custody row plus the vault wallet's coins and the mempool."""
        with self.engine.connect() as conn:
            rows = tuple(
                tuple(map(tuple, conn.execute(text(f"SELECT * FROM {table} ORDER BY id"))))  # noqa: S608 (fixed table names)
                for table in CUSTODY_TABLES
            )
        wallet = self.node.rpc.wallet(self.vault.wallet_name)
        coins = sorted((u["txid"], u["vout"]) for u in wallet.call("listunspent", 0))
        return rows, coins, sorted(self.node.rpc.call("getrawmempool"))


def _random_bytes(seed: int) -> Callable[[int], bytes]:
    rng = random.Random(seed)  # noqa: S311 (deterministic test randomness, replayable by seed)
    return rng.randbytes


@pytest.fixture(scope="module")
def world(
    bitcoin_node: BitcoinNode, tmp_path_factory: pytest.TempPathFactory, test_seed: int
) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("vault")
    url = f"sqlite:///{folder / 'treasury.sqlite3'}"
    migrate.upgrade(url, "0002")
    engine = make_engine(url)
    sessions = session_factory(engine)
    plans = [
        (CeremonyPlan(FINANCE, ("Alice", "Bob", "Carol"), 2, ("Auditor Ivanova",)), ""),
        (
            CeremonyPlan(BANK, ("Dan", "Erin", "Frank", "Grace", "Heidi"), 3, ("Notary Petrov",)),
            BANK_PASSPHRASE,
        ),
        (CeremonyPlan(CHAMBER, ("Ivan", "Judy", "Mallory"), 2), ""),
        (CeremonyPlan(OUTSIDER, ("Oscar", "Peggy"), 2), ""),
    ]
    shares: dict[str, list[str]] = {}
    for number, (plan, passphrase) in enumerate(plans):
        delivery = ShareFiles(folder / "shares" / str(number))
        with sessions() as session, session.begin():
            run_ceremony(
                session,
                plan,
                delivery,
                passphrase,
                random_bytes=_random_bytes(test_seed + number),
                rng=random.Random(test_seed),  # noqa: S311 (replayable quorum choice)
            )
        shares[plan.institution] = [read_share_file(path) for path in delivery.written]
    log.info("ceremonies done; creating the vault")
    with sessions() as session, session.begin():
        vault = create_vault(
            session, bitcoin_node.rpc, f"reserve-{test_seed}", 2, [FINANCE, BANK, CHAMBER]
        )
    external_wallet = f"external-{test_seed}"
    bitcoin_node.rpc.call("createwallet", external_wallet)
    external = bitcoin_node.rpc.wallet(external_wallet).call("getnewaddress", "", "bech32")
    yield World(engine, sessions, bitcoin_node, vault, shares, external)
    engine.dispose()


def test_addresses_0_to_99_equal_bitcoind_and_bitcoinlib(world: World) -> None:
    """Our receive and change addresses 0..99 equal bitcoind's deriveaddresses and bitcoinlib's."""
    rpc, vault = world.node.rpc, world.vault
    xpubs = [t.account_xpub for t in vault.cosigners]
    for branch, descriptor in (
        (Branch.RECEIVE, vault.receive_descriptor),
        (Branch.CHANGE, vault.change_descriptor),
    ):
        ours = [vault.descriptor.address(branch, i) for i in range(100)]
        assert ours == rpc.call("deriveaddresses", descriptor, [0, 99])
        assert len(set(ours)) == 100
        for i in (0, 1, 50, 99):
            assert sortedmulti_wsh_address(2, xpubs, int(branch), i) == ours[i]


def test_vault_wallet_is_watch_only_with_our_descriptors(world: World) -> None:
    """bitcoind holds the vault as a watch-only wallet whose active descriptors are ours."""
    wallet = world.node.rpc.wallet(world.vault.wallet_name)
    assert wallet.call("getwalletinfo")["private_keys_enabled"] is False
    listed = {d["desc"]: d for d in wallet.call("listdescriptors")["descriptors"]}
    assert set(listed) == {world.vault.receive_descriptor, world.vault.change_descriptor}
    assert listed[world.vault.change_descriptor]["internal"] is True
    assert "sortedmulti(2," in world.vault.receive_descriptor


def test_vault_with_unknown_or_repeated_cosigners_is_refused(world: World) -> None:
    """A vault naming an institution twice, or an impossible threshold, is refused before bitcoind."""
    wallets = world.node.rpc.call("listwallets")
    with world.sessions() as session:
        with pytest.raises(VaultConfigError, match="listed twice"):
            create_vault(session, world.node.rpc, "dup", 2, [FINANCE, FINANCE, BANK])
        with pytest.raises(VaultConfigError, match="threshold must be between 1 and the 3"):
            create_vault(session, world.node.rpc, "big", 4, [FINANCE, BANK, CHAMBER])
    assert world.node.rpc.call("listwallets") == wallets


def test_a_second_vault_over_the_same_keys_is_refused(world: World) -> None:
    """The same cosigners in another order would share every address with the existing vault."""
    wallets = world.node.rpc.call("listwallets")
    with world.sessions() as session:
        with pytest.raises(VaultConfigError, match="would share every address"):
            create_vault(session, world.node.rpc, "twin", 2, [CHAMBER, FINANCE, BANK])
        assert len(session.scalars(select(VaultRecord)).all()) == 1
    assert world.node.rpc.call("listwallets") == wallets


def test_two_institutions_spend_to_an_external_address(world: World) -> None:
    """Finance (2-of-3 shares) and the Bank (3-of-5 with passphrase) sign; the spend confirms."""
    world.fund(FUNDING_SATS)
    rpc = world.node.rpc
    before = vault_balance(rpc, world.vault)
    spend_id = world.build()
    world.sign(spend_id, FINANCE)
    world.sign(spend_id, BANK)
    txid = world.broadcast(spend_id)
    world.node.mine(1)
    tx = rpc.wallet(world.vault.wallet_name).call("gettransaction", txid, True, True)
    assert tx["confirmations"] == 1
    with world.sessions() as session:
        spend = load_spend(session, spend_id)
    decoded = tx["decoded"]
    paid = [o for o in decoded["vout"] if o["scriptPubKey"].get("address") == world.external]
    assert [btc_to_sats(o["value"]) for o in paid] == [PAYMENT_SATS]
    assert spend.signed_by == (FINANCE, BANK)
    assert -btc_to_sats(tx["fee"]) == spend.fee_sats
    estimate = estimate_vsize(parse_psbt(spend.unsigned_psbt), 2)
    assert 0 <= estimate - decoded["vsize"] <= len(decoded["vin"])  # signatures are 71-73 bytes
    after = vault_balance(rpc, world.vault)
    assert after.total_sats == before.total_sats - PAYMENT_SATS - spend.fee_sats
    coins = rpc.wallet(world.vault.wallet_name).call("listunspent", 0)
    assert after.total_sats == sum(btc_to_sats(c["amount"]) for c in coins)


def test_a_stuck_spend_is_replaced_by_fee_through_the_same_approval_path(world: World) -> None:
    """A broadcast spend is bumped (RBF): the replacement is approved, signed and confirmed anew."""
    world.fund(FUNDING_SATS)
    original_id = world.build(fee_rate=Decimal(1))
    world.sign(original_id, FINANCE)
    world.sign(original_id, CHAMBER)
    original_txid = world.broadcast(original_id)
    with world.sessions() as session, session.begin():
        bumped = bump_spend(session, world.node.rpc, original_id, Decimal(20), MAX_FEE_SATS)
    with world.sessions() as session:
        original = load_spend(session, original_id)
    assert bumped.approval.unsigned_txid != original.approval.unsigned_txid
    assert bumped.fee_sats > original.fee_sats
    assert bumped.approval.payments == original.approval.payments
    world.sign(bumped.id, BANK)
    world.sign(bumped.id, CHAMBER)
    replacement_txid = world.broadcast(bumped.id)
    mempool = world.node.rpc.call("getrawmempool")
    assert replacement_txid in mempool
    assert original_txid not in mempool
    world.node.mine(1)
    with world.sessions() as session:
        assert load_spend(session, original_id).state.value == "replaced"
        assert load_spend(session, bumped.id).state.value == "broadcast"
    tx = world.node.rpc.wallet(world.vault.wallet_name).call("gettransaction", replacement_txid)
    assert tx["confirmations"] == 1


def _tamper(world: World, spend_id: int, edit: Callable[[SpendRecord, PSBT], bool]) -> None:
    """Rewrite a stored spend (a compromised coordinator); ``edit`` says whether to re-approve."""
    with world.sessions() as session, session.begin():
        record = session.get(SpendRecord, spend_id)
        assert record is not None
        psbt = PSBT.from_string(record.unsigned_psbt)
        reapprove = edit(record, psbt)
        record.unsigned_psbt = psbt.to_string()
        if reapprove:
            record.unsigned_txid = psbt.tx.txid().hex()


def _change_elsewhere(world: World) -> Callable[[SpendRecord, PSBT], bool]:
    def edit(record: SpendRecord, psbt: PSBT) -> bool:
        change = next(o for o in psbt.outputs if o.bip32_derivations)
        thief = world.node.rpc.wallet("miner").call("getnewaddress", "", "bech32")
        change.script_pubkey = address_to_scriptpubkey(thief)
        change.bip32_derivations.clear()
        change.witness_script = None
        return True

    return edit


def _foreign_input(world: World) -> Callable[[SpendRecord, PSBT], bool]:
    def edit(record: SpendRecord, psbt: PSBT) -> bool:
        coin = world.node.rpc.wallet("miner").call("listunspent")[0]
        inp = InputScope(unknown={})
        inp.txid = bytes.fromhex(coin["txid"])
        inp.vout = coin["vout"]
        inp.sequence = 0xFFFFFFFD
        inp.witness_utxo = TransactionOutput(
            btc_to_sats(coin["amount"]), address_to_scriptpubkey(coin["address"])
        )
        psbt.inputs.append(inp)
        return True

    return edit


def _altered_amount(record: SpendRecord, psbt: PSBT) -> bool:
    payment = next(o for o in psbt.outputs if not o.bip32_derivations)
    payment.value -= 1_000
    return False


def _tamper_raw(world: World, spend_id: int, value: str) -> None:
    with world.sessions() as session, session.begin():
        record = session.get(SpendRecord, spend_id)
        assert record is not None
        record.unsigned_psbt = value


SHARE_CASES: list[tuple[str, Callable[[World], list[ShareMnemonic]], str, type, str]] = [
    (
        "too few shares",
        lambda w: w.quorum(BANK, 2),
        BANK,
        InsufficientSharesError,
        "2 distinct share\\(s\\) given but this seed needs 3",
    ),
    (
        "shares of two seeds mixed",
        lambda w: w.quorum(FINANCE, 1) + w.quorum(CHAMBER, 1),
        FINANCE,
        MixedSharesError,
        "come from 2 different splits",
    ),
]


@pytest.mark.parametrize(
    ("case", "shares", "institution", "error", "message"),
    SHARE_CASES,
    ids=[c[0] for c in SHARE_CASES],
)
def test_bad_share_quorums_are_refused_without_state_change(
    world: World,
    case: str,
    shares: Callable[[World], list[ShareMnemonic]],
    institution: str,
    error: type[CustodyError],
    message: str,
) -> None:
    """Too few shares or mixed seeds raise their specific error and write nothing."""
    world.fund(FUNDING_SATS)
    spend_id = world.build()
    before = world.snapshot()
    with world.sessions() as session, session.begin(), pytest.raises(error, match=message):
        sign_spend(
            session,
            spend_id,
            institution,
            shares(world),
            world.passphrase(institution),
            authority=MECHANICS_ONLY,
        )
    assert world.snapshot() == before


def test_a_corrupted_share_word_is_refused(world: World) -> None:
    """One altered word fails the share's RS1024 checksum, naming the share, not its words."""
    words = world.shares[FINANCE][0].split()
    words[5] = "academic" if words[5] != "academic" else "acid"
    with pytest.raises(InvalidShareError, match="Share 1 is not a valid SLIP-39 share") as info:
        parse_shares([" ".join(words), world.shares[FINANCE][1]])
    assert words[0] not in str(info.value).split()


def test_a_wrong_passphrase_is_caught_by_the_fingerprint_check(world: World) -> None:
    """The Bank's shares with a wrong passphrase recombine to another seed, which is refused."""
    spend_id = world.build(amount_sats=10_000_000)
    before = world.snapshot()
    with (
        world.sessions() as session,
        session.begin(),
        pytest.raises(FingerprintMismatchError, match="wrong passphrase"),
    ):
        sign_spend(
            session,
            spend_id,
            BANK,
            world.quorum(BANK),
            "not the passphrase",
            authority=MECHANICS_ONLY,
        )
    assert world.snapshot() == before


PSBT_CASES = [
    ("change goes elsewhere", "change", ForeignChangeError, "neither an approved payment nor"),
    ("foreign input", "input", ForeignInputError, "is not a coin of this vault"),
    ("altered after approval", "amount", SpendApprovalMismatchError, "altered after approval"),
    ("malformed PSBT string", "garbled", MalformedPSBTError, "does not decode"),
]


@pytest.mark.parametrize(
    ("case", "kind", "error", "message"), PSBT_CASES, ids=[c[0] for c in PSBT_CASES]
)
def test_bad_psbts_are_refused_by_the_signer_without_state_change(
    world: World, case: str, kind: str, error: type[CustodyError], message: str
) -> None:
    """The signer decodes the PSBT itself and refuses each attack with a specific error."""
    spend_id = world.build(amount_sats=10_000_000)
    if kind == "change":
        _tamper(world, spend_id, _change_elsewhere(world))
    elif kind == "input":
        _tamper(world, spend_id, _foreign_input(world))
    elif kind == "amount":
        _tamper(world, spend_id, _altered_amount)
    else:
        _tamper_raw(world, spend_id, "cHNidP8BAKYCAAAAAm3uh9Mi7POxz8DSDvFIin3a3lDz")
    before = world.snapshot()
    with world.sessions() as session, session.begin(), pytest.raises(error, match=message):
        sign_spend(session, spend_id, FINANCE, world.quorum(FINANCE), authority=MECHANICS_ONLY)
    assert world.snapshot() == before


def test_fees_above_the_approval_or_the_policy_are_refused(world: World) -> None:
    """A fee above the approved maximum is refused at build; one above the signer's caps at signing."""
    before = world.snapshot()
    with (
        world.sessions() as session,
        session.begin(),
        pytest.raises(AbsurdFeeError, match="exceeds the approved maximum of 100 sats"),
    ):
        build_spend(
            session,
            world.node.rpc,
            world.vault.name,
            [Payment(world.external, 1_000_000)],
            FEE_RATE_SAT_VB,
            100,
        )
    assert world.snapshot() == before
    spend_id = world.build(amount_sats=1_000_000)
    with world.sessions() as session:
        record = session.get(SpendRecord, spend_id)
        assert record is not None
        vault = load_vault(session, world.vault.name)
        approval = approval_of(record)
        psbt_text = record.unsigned_psbt
    with signing_keys(
        combine_shares(world.quorum(FINANCE)), vault.cosigners[0].fingerprint
    ) as keys:
        with pytest.raises(AbsurdFeeError, match="absolute cap of 100 sats"):
            sign_psbt(
                psbt_text,
                vault.descriptor,
                approval,
                keys,
                FeePolicy(max_fee_sats=100),
                authority=MECHANICS_ONLY,
            )
        with pytest.raises(AbsurdFeeError, match="cap of 1 sat/vB"):
            sign_psbt(
                psbt_text,
                vault.descriptor,
                approval,
                keys,
                FeePolicy(max_fee_rate_sat_vb=1),
                authority=MECHANICS_ONLY,
            )


def test_spend_states_and_cosigners_are_enforced(world: World) -> None:
    """An outsider cannot sign, one signature cannot broadcast, and nobody signs twice."""
    spend_id = world.build(amount_sats=2_000_000)
    with (
        world.sessions() as session,
        session.begin(),
        pytest.raises(NotACosignerError, match="'Outside Agency' is not a cosigner"),
    ):
        sign_spend(session, spend_id, OUTSIDER, world.quorum(OUTSIDER), authority=MECHANICS_ONLY)
    world.sign(spend_id, CHAMBER)
    with pytest.raises(SpendStateError, match="has already signed"):
        world.sign(spend_id, CHAMBER)
    with pytest.raises(SpendStateError, match="has 1 of the 2 institutions' signatures"):
        world.broadcast(spend_id)
    world.sign(spend_id, FINANCE)
    world.broadcast(spend_id)
    with pytest.raises(SpendStateError, match="only a built spend can be signed"):
        world.sign(spend_id, BANK)
    world.node.mine(1)


def test_an_approval_for_another_transaction_is_refused(world: World) -> None:
    """Signing with an approval bound to a different hash fails before any signature is made."""
    spend_id = world.build(amount_sats=3_000_000)
    with world.sessions() as session:
        record = session.get(SpendRecord, spend_id)
        assert record is not None
        vault = load_vault(session, world.vault.name)
        approval = ApprovedSpend(
            vault.name, (Payment(world.external, 3_000_000),), MAX_FEE_SATS, "00" * 32
        )
        psbt_text = record.unsigned_psbt
    with (
        signing_keys(combine_shares(world.quorum(CHAMBER)), vault.cosigners[2].fingerprint) as keys,
        pytest.raises(SpendApprovalMismatchError, match="but the approval is for 0000"),
    ):
        sign_psbt(psbt_text, vault.descriptor, approval, keys, authority=MECHANICS_ONLY)


def test_receive_addresses_advance_and_stay_watched(world: World) -> None:
    """Each issued receive address is new, cross-checked, and watched by bitcoind."""
    with world.sessions() as session, session.begin():
        first = next_receive_address(session, world.node.rpc, world.vault.name)
        second = next_receive_address(session, world.node.rpc, world.vault.name)
    assert second[0] == first[0] + 1
    info = world.node.rpc.wallet(world.vault.wallet_name).call("getaddressinfo", second[1])
    assert info["ismine"] is True
    assert info["iswatchonly"] is False or info["solvable"] is True

"""The Bitcoin signer verifies the officers' quorum itself, against a real regtest vault.

Three ceremonies make the seeds of a 2-of-3 vault; each seed's ceremony key signs the roster
genesis. Every refusal below happens after the shares are recombined and before any signature:
a spy on the signer's signing step (``sign_multisig_inputs``) records none, and no signature row
is written. The signer has no unchecked path: the authority is required, and the one alternative
to statements is an explicit ``BreakGlass``, which the signer logs as a warning and marks in the
PSBT.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from authority_support import NOW, Deployment, k1_public, private_key
from embit.bip32 import HDKey
from embit.psbt import PSBT
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

import custody.bitcoin.signer as btc_signer
from custody.authority import (
    CEREMONY_KEY_ID,
    ApprovalStatement,
    AuthorityEvidence,
    CeremonySignatureError,
    Genesis,
    InstitutionEntry,
    InsufficientApprovalsError,
    OfficerAdded,
    OfficerEntry,
    OfficerRole,
    RecordKind,
    RecordSignature,
    RosterRules,
    Secp256k1Signature,
    SpendUnderReview,
    StatementKind,
    StatementMismatchError,
    UnauthorizedChangeError,
    UnknownSignerError,
    VetoedError,
    ceremony_public_key,
    next_record,
    sign_with_ceremony_key,
)
from custody.authority.gate import BreakGlass
from custody.bitcoin import Payment, broadcast_spend, build_spend, load_spend, sign_spend
from custody.bitcoin.psbt import parse_psbt
from custody.bitcoin.signer import break_glass_marks
from custody.bitcoin.vault import Vault, create_vault, next_receive_address
from custody.ceremony import CeremonyPlan, ShareFiles, read_share_file, run_ceremony
from custody.devnet import BitcoinNode
from custody.records import SpendRecord
from custody.shamir import combine_shares, parse_shares
from treasury import migrate
from treasury.db import make_engine, session_factory

FINANCE, BANK, CHAMBER = "Ministry of Finance", "National Bank", "Accounts Chamber"
CODES = {"CB": BANK, "MOF": FINANCE, "SAO": CHAMBER}
"""The roster's institution codes and the ceremonies whose seeds anchor them."""
PAYMENT_SATS = 1_000_000
MAX_FEE_SATS = 50_000
FEE_RATE = Decimal(3)


@dataclass
class World:
    engine: Engine
    sessions: Callable[[], Session]
    node: BitcoinNode
    vault: Vault
    shares: dict[str, list[str]]
    external: str
    attacker: str

    def quorum(self, institution: str) -> list[Any]:
        return parse_shares(self.shares[institution][:2])

    def root(self, institution: str) -> HDKey:
        """The institution's seed root, as a signer recombines it (for the ceremony key)."""
        seed = combine_shares(self.quorum(institution))
        try:
            return HDKey.from_seed(seed.reveal())
        finally:
            seed.wipe()

    def build(self, to: str | None = None, amount: int = PAYMENT_SATS) -> int:
        with self.sessions() as session, session.begin():
            spend = build_spend(
                session,
                self.node.rpc,
                self.vault.name,
                [Payment(to or self.external, amount)],
                FEE_RATE,
                MAX_FEE_SATS,
            )
        return spend.id

    def decoded(self, spend_id: int) -> SpendUnderReview:
        """What the spend does, read by bitcoind (not by the signer under test)."""
        with self.sessions() as session:
            psbt_text = load_spend(session, spend_id).unsigned_psbt
        decoded = self.node.rpc.call("decodepsbt", psbt_text)
        change = set(self.node.rpc.call("deriveaddresses", self.vault.change_descriptor, [0, 50]))
        payments = [o for o in decoded["tx"]["vout"] if o["scriptPubKey"]["address"] not in change]
        assert len(payments) == 1
        return SpendUnderReview(
            chain="bitcoin:regtest",
            vault_id=self.vault.receive_descriptor,
            asset="BTC",
            amount=int(Decimal(str(payments[0]["value"])) * 10**8),
            destination=payments[0]["scriptPubKey"]["address"],
            tx_hash=decoded["tx"]["txid"],
            fee=int(Decimal(str(decoded["fee"])) * 10**8),
            safe_nonce=None,
        )

    def sign(
        self, spend_id: int, institution: str, evidence: AuthorityEvidence | BreakGlass
    ) -> Any:
        with self.sessions() as session, session.begin():
            return sign_spend(
                session,
                spend_id,
                institution,
                self.quorum(institution),
                authority=evidence,
                clock=lambda: NOW,
            )


@pytest.fixture(scope="module")
def world(
    bitcoin_node: BitcoinNode, tmp_path_factory: pytest.TempPathFactory, test_seed: int
) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("authority-btc")
    url = f"sqlite:///{folder / 'treasury.sqlite3'}"
    migrate.upgrade(url, "0002")
    engine = make_engine(url)
    sessions = session_factory(engine)
    shares: dict[str, list[str]] = {}
    for number, institution in enumerate((FINANCE, BANK, CHAMBER)):
        delivery = ShareFiles(folder / "shares" / str(number))
        rng = random.Random(test_seed + 100 + number)  # noqa: S311 (replayable test randomness)
        with sessions() as session, session.begin():
            run_ceremony(
                session,
                CeremonyPlan(institution, ("Holder A", "Holder B", "Holder C"), 2),
                delivery,
                random_bytes=rng.randbytes,
                rng=rng,
            )
        shares[institution] = [read_share_file(path) for path in delivery.written]
    with sessions() as session, session.begin():
        vault = create_vault(
            session, bitcoin_node.rpc, f"authority-{test_seed}", 2, [FINANCE, BANK, CHAMBER]
        )
    wallet = f"authority-external-{test_seed}"
    bitcoin_node.rpc.call("createwallet", wallet)
    external = bitcoin_node.rpc.wallet(wallet).call("getnewaddress", "", "bech32")
    attacker = bitcoin_node.rpc.wallet(wallet).call("getnewaddress", "", "bech32")
    w = World(engine, sessions, bitcoin_node, vault, shares, external, attacker)
    for _ in range(6):
        with sessions() as session, session.begin():
            _, address = next_receive_address(session, bitcoin_node.rpc, vault.name)
        bitcoin_node.rpc.wallet("miner").call("sendtoaddress", address, Decimal("0.5"))
    bitcoin_node.mine(1)
    yield w
    engine.dispose()


@pytest.fixture(scope="module")
def deployment(world: World) -> Deployment:
    """The roster anchored in the vault's three ceremonies (CB=Bank, MOF=Finance, SAO=Chamber),
    with the decree the statements cite and the external payee on the signed allowlist."""
    d = Deployment.build(
        roots={code: world.root(name) for code, name in CODES.items()},
        names=dict(CODES),
    )
    d.authorise({"BTC": 21_000_000 * 10**8}, [("BTC", world.external)])
    return d


@pytest.fixture
def signing_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every call of the signer's signing step, ``sign_multisig_inputs`` (the only place the
    signer signs a vault input), recorded with the number of inputs it was given."""
    calls: list[int] = []
    original = btc_signer.sign_multisig_inputs

    def spy(psbt: PSBT, root: HDKey) -> int:
        calls.append(len(psbt.inputs))
        return original(psbt, root)

    monkeypatch.setattr(btc_signer, "sign_multisig_inputs", spy)
    return calls


def statements(
    d: Deployment, spend: SpendUnderReview, officers: tuple[str, ...] = ("cb-alice", "mof-carol")
) -> list[ApprovalStatement]:
    return [d.statement_for(o, spend, max_fee=MAX_FEE_SATS) for o in officers]


def refused(
    world: World,
    spend_id: int,
    evidence: AuthorityEvidence | BreakGlass,
    error: type[Exception],
    match: str,
) -> None:
    """Each cosigner is refused with ``error``; nothing is signed, nothing is stored."""
    for institution in (FINANCE, BANK):
        with pytest.raises(error, match=match):
            world.sign(spend_id, institution, evidence)
    with world.sessions() as session:
        assert load_spend(session, spend_id).signed_by == ()


def test_valid_statements_let_both_institutions_sign_and_name_the_approvers(
    world: World, deployment: Deployment, signing_calls: list[int]
) -> None:
    """A quorum naming exactly the decoded PSBT is verified; the spend signs and confirms."""
    spend_id = world.build()
    evidence = deployment.evidence(*statements(deployment, world.decoded(spend_id)))
    for institution in (FINANCE, BANK):
        signed = world.sign(spend_id, institution, evidence)
        assert signed.authorization is not None
        assert {(a.name, a.institution) for a in signed.authorization.approvers} == {
            ("Alice", "CB"),
            ("Carol", "MOF"),
        }
        assert signed.authorization.institutions == ("CB", "MOF")
        assert signed.authorization.proposal_id == "17"
    assert len(signing_calls) == 2
    with world.sessions() as session, session.begin():
        txid = broadcast_spend(session, world.node.rpc, spend_id)
    world.node.mine(1)
    wallet = world.node.rpc.wallet(world.vault.wallet_name)
    assert wallet.call("gettransaction", txid)["confirmations"] == 1


def test_without_authority_nothing_is_signed(world: World, signing_calls: list[int]) -> None:
    """There is no unchecked path any more: ``None`` (the old "staging" call) signs nothing."""
    spend_id = world.build()
    refused(world, spend_id, None, TypeError, "AuthorityEvidence or an explicit BreakGlass")  # type: ignore[arg-type]
    assert signing_calls == []


def test_break_glass_signs_without_statements_says_so_and_marks_the_psbt(
    world: World, signing_calls: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    """An explicit BreakGlass signs with no statement check; the result has no authorization but
    the reason, a WARNING names vault, txid, fingerprint and reason, and the PSBT carries the mark."""
    spend_id = world.build()
    txid = world.decoded(spend_id).tx_hash
    reason = "Officers' keys lost in the flood; decree pending"
    with caplog.at_level(logging.WARNING, logger="custody.bitcoin.signer"):
        signed = world.sign(spend_id, CHAMBER, BreakGlass(reason))
    assert signed.authorization is None
    assert signed.break_glass == reason
    assert signing_calls == [len(parse_psbt(signed.unsigned_psbt).inputs)]
    fingerprint = next(t.fingerprint for t in world.vault.cosigners if t.institution == CHAMBER)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "BREAK-GLASS" in m and world.vault.name in m and txid in m and fingerprint in m
        and reason in m
        for m in warnings
    ), warnings  # fmt: skip
    with world.sessions() as session:
        record = session.get_one(SpendRecord, spend_id)
        stored = parse_psbt(record.signatures[0].signed_psbt)
    assert break_glass_marks(stored) == {fingerprint: reason}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("destination", "attacker"),
        ("amount", PAYMENT_SATS + 1),
        ("tx_hash", "cd" * 32),
    ],
)
def test_statements_for_another_payment_are_refused(
    world: World, deployment: Deployment, signing_calls: list[int], field: str, value: Any
) -> None:
    """Genuine signatures on a statement naming another destination, amount or txid sign nothing."""
    spend_id = world.build()
    spend = world.decoded(spend_id)
    if value == "attacker":
        value = world.attacker
    forged = [
        deployment.statement_for("cb-alice", spend, max_fee=MAX_FEE_SATS, **{field: value}),
        deployment.statement_for("mof-carol", spend, max_fee=MAX_FEE_SATS, **{field: value}),
    ]
    refused(world, spend_id, deployment.evidence(*forged), StatementMismatchError, field)
    assert signing_calls == []


def test_a_spend_re_pointed_in_the_database_is_refused(
    world: World, deployment: Deployment, signing_calls: list[int]
) -> None:
    """The issue's attack: one UPDATE swaps the stored PSBT, txid and payments for another spend.

    The custody row is self-consistent again (its approval matches its PSBT), so only the
    officers' statements -- for the original payment -- can stop it.
    """
    approved_id = world.build()
    evidence = deployment.evidence(*statements(deployment, world.decoded(approved_id)))
    other_id = world.build(to=world.attacker, amount=40_000_000)
    with world.sessions() as session, session.begin():
        other = session.get_one(SpendRecord, other_id)
        session.execute(
            update(SpendRecord)
            .where(SpendRecord.id == approved_id)
            .values(
                unsigned_psbt=other.unsigned_psbt,
                unsigned_txid=other.unsigned_txid,
                payments=other.payments,
                fee_sats=other.fee_sats,
            )
        )
    refused(world, approved_id, evidence, StatementMismatchError, "names")
    assert signing_calls == []


def test_a_genesis_of_other_ceremonies_is_refused(world: World, signing_calls: list[int]) -> None:
    """A well-formed roster whose genesis other seeds' ceremony keys signed is not this vault's."""
    spend_id = world.build()
    forged = Deployment.build()  # the same officers, anchored in seeds the attacker holds
    evidence = forged.evidence(*statements(forged, world.decoded(spend_id)))
    refused(world, spend_id, evidence, CeremonySignatureError, "not made with this seed")
    assert signing_calls == []


def test_a_genesis_that_copies_the_real_ceremony_keys_but_not_their_signatures_is_refused(
    world: World, deployment: Deployment, signing_calls: list[int]
) -> None:
    """Listing the real fingerprints and ceremony keys is not enough: their signatures are missing."""
    spend_id = world.build()
    real = {code: world.root(name) for code, name in CODES.items()}
    attacker_admin = private_key("attacker admin")
    body = Genesis(
        "test-reserve",
        tuple(
            InstitutionEntry(
                code, name, real[code].my_fingerprint.hex(), ceremony_public_key(real[code])
            )
            for code, name in CODES.items()
        ),
        tuple(
            OfficerEntry(
                f"{code.lower()}-admin",
                "Mallory",
                code,
                frozenset({OfficerRole.ADMIN}),
                (k1_public(attacker_admin),),
            )
            for code in CODES
        ),
        RosterRules(),
    )
    genesis = next_record(None, RecordKind.GENESIS, body)
    for code in CODES:
        fake_root = HDKey.from_seed(hashlib.sha256(f"attacker {code}".encode()).digest())
        genesis = genesis.with_signature(
            RecordSignature(
                code,
                CEREMONY_KEY_ID,
                Secp256k1Signature(sign_with_ceremony_key(fake_root, genesis.record_hash())),
            )
        )
    forged = AuthorityEvidence(
        (genesis, *deployment.records[1:]),
        deployment.evidence(*statements(deployment, world.decoded(spend_id))).statements,
    )
    refused(world, spend_id, forged, CeremonySignatureError, "does not verify")
    assert signing_calls == []


@pytest.mark.parametrize("signer", [None, "cb-admin"])
def test_an_officer_added_without_their_admins_signature_is_refused(
    world: World, deployment: Deployment, signing_calls: list[int], signer: str | None
) -> None:
    """A MOF approver inserted unsigned, or signed by another institution's admin, counts for nothing."""
    spend_id = world.build()
    d = Deployment(list(deployment.records), dict(deployment.secrets), dict(deployment.passkeys))
    d.secrets["mof-mallory"] = private_key("mof-mallory")
    entry = OfficerEntry(
        "mof-mallory",
        "Mallory",
        "MOF",
        frozenset({OfficerRole.APPROVER}),
        (k1_public(d.secrets["mof-mallory"]),),
    )
    d.append(RecordKind.OFFICER_ADDED, OfficerAdded(entry), [signer] if signer else [])
    evidence = d.evidence(*statements(d, world.decoded(spend_id), ("cb-alice", "mof-mallory")))
    refused(world, spend_id, evidence, UnauthorizedChangeError, "Record")
    assert signing_calls == []


def test_a_statement_by_an_officer_missing_from_the_roster_is_refused(
    world: World, deployment: Deployment, signing_calls: list[int]
) -> None:
    """Leaving the fake officer out of the chain does not help: the signer does not know them."""
    spend_id = world.build()
    d = Deployment(list(deployment.records), dict(deployment.secrets), dict(deployment.passkeys))
    d.secrets["mof-mallory"] = private_key("mof-mallory")
    evidence = d.evidence(*statements(d, world.decoded(spend_id), ("cb-alice", "mof-mallory")))
    refused(world, spend_id, evidence, UnknownSignerError, "not an active officer")
    assert signing_calls == []


def test_a_veto_refuses_the_spend(
    world: World, deployment: Deployment, signing_calls: list[int]
) -> None:
    """A quorum of approvals and one genuine veto by oversight: nothing is signed."""
    spend_id = world.build()
    spend = world.decoded(spend_id)
    veto = deployment.statement_for(
        "sao-olga", spend, max_fee=MAX_FEE_SATS, kind=StatementKind.VETO
    )
    evidence = deployment.evidence(*statements(deployment, spend), veto)
    refused(world, spend_id, evidence, VetoedError, "vetoed proposal 17")
    assert signing_calls == []


def test_approvals_of_one_institution_are_refused(
    world: World, deployment: Deployment, signing_calls: list[int]
) -> None:
    """Two approvers of the central bank are one institution, not the two the rules need."""
    spend_id = world.build()
    evidence = deployment.evidence(
        *statements(deployment, world.decoded(spend_id), ("cb-alice", "cb-bob"))
    )
    refused(world, spend_id, evidence, InsufficientApprovalsError, "1 institution")
    assert signing_calls == []


def test_a_spend_with_two_payments_is_refused_under_statements(
    world: World, deployment: Deployment, signing_calls: list[int]
) -> None:
    """A statement names one destination; a PSBT paying two cannot be covered by it."""
    with world.sessions() as session, session.begin():
        spend_id = build_spend(
            session,
            world.node.rpc,
            world.vault.name,
            [Payment(world.external, PAYMENT_SATS), Payment(world.attacker, PAYMENT_SATS)],
            FEE_RATE,
            MAX_FEE_SATS,
        ).id
    with world.sessions() as session:
        txid = load_spend(session, spend_id).approval.unsigned_txid
    spend = SpendUnderReview(
        "bitcoin:regtest",
        world.vault.receive_descriptor,
        "BTC",
        PAYMENT_SATS,
        world.external,
        txid,
        None,
        None,
    )
    evidence = deployment.evidence(*statements(deployment, spend))
    refused(world, spend_id, evidence, StatementMismatchError, "pays 2 outputs")
    assert signing_calls == []

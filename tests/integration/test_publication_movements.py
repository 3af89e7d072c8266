"""The export on both databases: translated fields, each spend's accounts, payee and decree link,
chains by name, and movements that reconcile the funds with the vaults after real spends."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workflow_support import (
    BTC_EQUITY,
    BTC_FEES,
    BTC_HOLDINGS,
    BTC_PAYMENTS,
    CHAIN_FEE_SATS,
    DECREE,
    DESTINATION,
    World,
    shares_of,
)

from reporting.site import load_export
from treasury import ledger
from treasury.ledger import AccountType, AssetSpec
from treasury.publication import MOVEMENT_FIGURES, write_export
from treasury.reconcile.accounts import suspense_account
from treasury.translations import set_translation

EXPORTED_AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HEALTH_FUND = "fund:health:BTC"
ALLOCATED_SATS = 10 * 100_000_000
ETH_HOLDINGS = "vault:eth:31337:reserve:ETH"
ETH_INFLOWS = "reserve:unallocated-inflows:ETH"
ETH_DEPOSIT_WEI = 20 * 10**18


def _spend(world: World, amount: int, purpose: str, *, confirm: bool = True) -> int:
    """One spend through two institutions' approvals and signatures to broadcast (and a block)."""
    wf = world.workflow()
    view = wf.propose(
        world.officers["proposer"], asset="BTC", amount=amount, destination=DESTINATION,
        purpose=purpose, legal_basis=DECREE,
    )  # fmt: skip
    view = wf.prepare(world.officers["proposer"], view.id, world.chain)
    assert view.tx_hash is not None
    for name in ("cb_approver", "parl_approver"):
        wf.approve(world.officers[name], view.id, view.tx_hash)
    for name, code in (("cb_approver", "CB"), ("parl_approver", "PARL")):
        shares, passphrase = shares_of(code)
        wf.sign(world.officers[name], view.id, world.chain, shares, passphrase)
    wf.broadcast(view.id, world.chain)
    if confirm:
        world.chain.mine()
        wf.refresh(view.id, world.chain)
    return view.id


def _export(world: World, tmp_path: Path, **options: Any) -> dict[str, Any]:
    path = write_export(
        world.sessions, tmp_path / "export.json", exported_at=EXPORTED_AT, **options
    )
    document: dict[str, Any] = json.loads(path.read_text("utf-8"))
    load_export(path)  # the site still reads it
    return document


def _figures(block: dict[str, Any]) -> dict[str, int]:
    return {name: int(block[name]) for name in MOVEMENT_FIGURES}


def _identity_holds(figures: dict[str, int]) -> bool:
    return (
        figures["allocated"] - figures["spent"] - figures["unexplained"] - figures["fees"]
        == figures["held"]
    )


def _translate(world: World, *entries: tuple[str, str, str, str]) -> None:
    with world.sessions.begin() as session:
        for kind, key, language, text in entries:
            set_translation(
                session, world.officers["admin"], kind, key, language, text, now=world.clock()
            )


def test_export_carries_translations_paying_accounts_payee_and_decree_link(
    world: World, tmp_path: Path
) -> None:
    """Each entered text comes with the translations entered for it (only those); a spend names
    the vault account that paid, the outflow account booked, its fee, the payee's allowlist
    label, and its decree has the addresses of its official texts."""
    spend_id = _spend(world, 25_000_000, "Hospital equipment for Osh region")
    url = "https://cbd.minjust.gov.kg/act/view/ru-ru/112233"
    _translate(
        world,
        ("institution", "CB", "ky", "Борбордук банк"),
        ("institution", "CB", "ru", "Центральный банк"),
        ("legal_basis", DECREE, "ky", "Резервди кайра бөлүштүрүү жарлыгы"),
        ("legal_basis_url", DECREE, "ru", url),
        ("account", BTC_EQUITY, "ru", "Нераспределённый резерв"),
        ("account", BTC_HOLDINGS, "ky", "Резервдин хранилищеси"),
        ("purpose", str(spend_id), "ky", "Ош облусундагы ооруканалар үчүн жабдуулар"),
        ("payee", DESTINATION, "ru", "Поставщик медицинского оборудования"),
    )
    document = _export(world, tmp_path, bitcoin_network="regtest")
    assert document["original_language"] == "en"
    institutions = {i["code"]: i for i in document["institutions"]}
    assert institutions["CB"]["translations"] == {"ky": "Борбордук банк", "ru": "Центральный банк"}
    assert institutions["MOF"]["translations"] == {}
    [basis] = document["legal_bases"]
    assert basis["title"] == "Reserve rebalancing decree"
    assert basis["translations"] == {"ky": "Резервди кайра бөлүштүрүү жарлыгы"}
    assert basis["text_urls"] == {"ru": url}
    [fund] = document["funds"]
    assert fund["translations"] == {"ru": "Нераспределённый резерв"}
    [spend] = document["spends"]
    assert spend["purpose"] == "Hospital equipment for Osh region"
    assert spend["translations"] == {"ky": "Ош облусундагы ооруканалар үчүн жабдуулар"}
    assert spend["fee"] == str(CHAIN_FEE_SATS)
    assert spend["paid_from"] == {
        "account": BTC_HOLDINGS,
        "name": BTC_HOLDINGS,
        "translations": {"ky": "Резервдин хранилищеси"},
    }
    assert spend["booked_to"] == {"account": BTC_PAYMENTS, "name": BTC_PAYMENTS, "translations": {}}
    assert spend["payee"] == {
        "label": "Payee",
        "translations": {"ru": "Поставщик медицинского оборудования"},
    }
    assert spend["legal_basis"] == DECREE
    assert document["assets"] == [{"code": "BTC", "decimals": 8, "chain": "bitcoin:regtest"}]
    assert document["chains"] == [
        {"id": "bitcoin:regtest", "name": "Bitcoin regtest (a local test network)"}
    ]


def test_movements_reconcile_funds_with_the_vaults_through_real_spends(
    world: World, tmp_path: Path
) -> None:
    """Allocated minus spent, unexplained and fees equals what the vaults hold, posted and pending,
    for every asset: through a fund allocation, a spend awaiting confirmation, confirmed spends,
    an outflow booked to suspense and an ether deposit; allocated is the funds' sum."""
    with world.sessions.begin() as session:
        ledger.open_account(
            session, HEALTH_FUND, name="Health fund", account_type=AccountType.LIABILITY,
            asset_code="BTC", actor="setup", clock=world.clock,
        )  # fmt: skip
        ledger.record_entry(
            session,
            "allocate:health",
            [
                ledger.Leg.debit(BTC_EQUITY, ALLOCATED_SATS),
                ledger.Leg.credit(HEALTH_FUND, ALLOCATED_SATS),
            ],
            description="Allocate to the health fund",
            clock=world.clock,
        )
    waiting = _spend(world, 30_000_000, "Ambulances", confirm=False)
    document = _export(world, tmp_path)
    btc = document["movements"]["BTC"]
    assert _figures(btc["pending"]) == {
        "allocated": 0,
        "spent": 30_000_000,
        "unexplained": 0,
        "fees": CHAIN_FEE_SATS,
        "held": -(30_000_000 + CHAIN_FEE_SATS),
    }
    assert _identity_holds(_figures(btc))
    assert _identity_holds(_figures(btc["pending"]))
    assert [s["state"] for s in document["spends"]] == ["broadcast"]

    world.chain.mine()
    world.workflow().refresh(waiting, world.chain)
    _spend(world, 25_000_000, "Hospital equipment")
    with world.sessions.begin() as session:
        ledger.open_account(
            session, suspense_account("BTC"), name="Unexplained outflows (suspense)",
            account_type=AccountType.EXPENSE, asset_code="BTC", actor="reconciler", clock=world.clock,
        )  # fmt: skip
        ledger.record_entry(
            session,
            "reconcile:unexplained:1",
            [
                ledger.Leg.debit(suspense_account("BTC"), 7_000),
                ledger.Leg.credit(BTC_HOLDINGS, 7_000),
            ],
            description="An outflow nothing explains",
            clock=world.clock,
        )
        ledger.register_asset(
            session, AssetSpec("ETH", "ethereum", "wei", 18), actor="setup", clock=world.clock
        )
        for code, kind, ref in (
            (ETH_HOLDINGS, AccountType.ASSET, "eth:31337:reserve"),
            (ETH_INFLOWS, AccountType.EQUITY, None),
        ):
            ledger.open_account(
                session, code, name=code, account_type=kind, asset_code="ETH",
                external_ref=ref, actor="reconciler", clock=world.clock,
            )  # fmt: skip
        ledger.record_entry(
            session,
            "deposit:eth:1",
            [
                ledger.Leg.debit(ETH_HOLDINGS, ETH_DEPOSIT_WEI),
                ledger.Leg.credit(ETH_INFLOWS, ETH_DEPOSIT_WEI),
            ],
            description="Ether deposit",
            clock=world.clock,
        )
    document = _export(world, tmp_path, bitcoin_network="regtest")
    movements = document["movements"]
    assert sorted(movements) == ["BTC", "ETH"]
    btc = _figures(movements["BTC"])
    with world.sessions() as session:
        vault = ledger.balance(session, BTC_HOLDINGS).posted
        fees = ledger.balance(session, BTC_FEES).posted
    assert btc == {
        "allocated": 50 * 100_000_000,
        "spent": 55_000_000,
        "unexplained": 7_000,
        "fees": 2 * CHAIN_FEE_SATS,
        "held": vault,
    }
    assert fees == 2 * CHAIN_FEE_SATS
    assert _identity_holds(btc)
    assert set(_figures(movements["BTC"]["pending"]).values()) == {0}
    funds = [f for f in document["funds"] if f["asset"] == "BTC"]
    assert sorted(f["account"] for f in funds) == [BTC_EQUITY, HEALTH_FUND]
    assert sum(int(f["posted"]) for f in funds) == btc["allocated"]
    eth = _figures(movements["ETH"])
    assert eth == {
        "allocated": ETH_DEPOSIT_WEI,
        "spent": 0,
        "unexplained": 0,
        "fees": 0,
        "held": ETH_DEPOSIT_WEI,
    }
    assert _identity_holds(eth)
    assert {a["code"]: a["chain"] for a in document["assets"]} == {
        "BTC": "bitcoin:regtest",
        "ETH": "evm:31337",
    }
    assert {c["id"]: c["name"] for c in document["chains"]} == {
        "bitcoin:regtest": "Bitcoin regtest (a local test network)",
        "evm:31337": "Local EVM test chain 31337",
    }


def test_without_a_network_the_chain_is_the_ledgers_family(world: World, tmp_path: Path) -> None:
    """Not told the Bitcoin network, the export names the chain "bitcoin", not a guess."""
    document = _export(world, tmp_path)
    assert document["assets"] == [{"code": "BTC", "decimals": 8, "chain": "bitcoin"}]
    assert document["chains"] == [{"id": "bitcoin", "name": "Bitcoin"}]
    assert document["spends"] == []
    assert document["legal_bases"] == []

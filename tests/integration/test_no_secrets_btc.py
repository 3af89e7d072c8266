"""No seed, share word or private key leaks into logs, errors, the database or any repr."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from authority_support import NOW, Deployment, bitcoind_spend_under_review
from embit.bip32 import HDKey
from embit.networks import NETWORKS
from log_support import rendered
from sqlalchemy import inspect, text
from sqlalchemy.orm import Session

from custody.authority.gate import BreakGlass
from custody.bitcoin import (
    Payment,
    broadcast_spend,
    build_spend,
    create_vault,
    load_spend,
    next_receive_address,
    parse_psbt,
)
from custody.bitcoin.spend import sign_spend
from custody.ceremony import (
    CeremonyPlan,
    HolderShare,
    PrintedShares,
    ShareFiles,
    load_transcript,
    read_share_file,
    run_ceremony,
)
from custody.devnet import BitcoinNode
from custody.exceptions import CustodyError
from custody.keys import ETH_OWNER_PATH, signing_keys
from custody.secret import SecretBytes
from custody.shamir import ShareMnemonic, combine_shares, parse_shares
from treasury import migrate
from treasury.db import make_engine, session_factory

INSTITUTIONS = ("Finance Ministry", "Central Bank", "Audit Chamber")
PASSPHRASES = {"Central Bank": "bank words"}
CODES = {"CB": "Central Bank", "MOF": "Finance Ministry", "SAO": "Audit Chamber"}
"""The roster's institution codes and the ceremonies whose seeds anchor them."""
MECHANICS_ONLY = BreakGlass("test: these attempts fail on their shares, before any authority")
WORD_WINDOW = 4
"""Any four consecutive words of a share count as a leak of that share."""


class RecordingRandom:
    """Deterministic randomness that remembers everything it handed out (all of it is secret)."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)  # noqa: S311 (deterministic test randomness)
        self.handed_out: list[bytes] = []

    def __call__(self, n: int) -> bytes:
        data = self._rng.randbytes(n)
        self.handed_out.append(data)
        return data


def _key_secrets(seed: bytes, input_paths: list[str]) -> set[str]:
    """Every private form of a seed: hex, xprv/tprv of root and account, child keys, WIFs."""
    found = {seed.hex()}
    root = HDKey.from_seed(seed)
    for network in (NETWORKS["main"], NETWORKS["regtest"]):
        found.add(root.to_base58(version=network["xprv"]))
        account = root.derive("m/48h/1h/0h/2h")
        found.add(account.to_base58(version=network["xprv"]))
    for path in [*input_paths, ETH_OWNER_PATH]:
        key = root.derive(path).key
        found.add(key.secret.hex())
        found.add(key.wif(NETWORKS["main"]))
        found.add(key.wif(NETWORKS["regtest"]))
    return found


def test_a_whole_ceremony_and_spend_leaks_no_secret(
    bitcoin_node: BitcoinNode,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    test_seed: int,
) -> None:
    """Logs at DEBUG (every field of every record, as the CLI and the API print it), exception
    texts, every database row and every repr are free of secrets."""
    caplog.set_level(logging.DEBUG)
    url = f"sqlite:///{tmp_path / 'treasury.sqlite3'}"
    migrate.upgrade(url, "0002")
    engine = make_engine(url)
    sessions = session_factory(engine)
    randomness = RecordingRandom(test_seed)
    shares: dict[str, list[ShareMnemonic]] = {}
    printed: list[str] = []
    reprs: list[str] = []
    errors: list[str] = []
    for number, institution in enumerate(INSTITUTIONS):
        holders = ("One", "Two", "Three")
        folder = tmp_path / f"shares-{number}"
        delivery = ShareFiles(folder) if number else PrintedShares(printed.append)
        with sessions() as session, session.begin():
            transcript = run_ceremony(
                session,
                CeremonyPlan(institution, holders, 2, ("Witness",)),
                delivery,
                PASSPHRASES.get(institution, ""),
                random_bytes=randomness,
            )
        if isinstance(delivery, ShareFiles):
            texts = [read_share_file(p) for p in delivery.written]
        else:
            texts = [block.splitlines()[-1] for block in printed]
        shares[institution] = parse_shares(texts)
        reprs += [repr(transcript), *map(repr, shares[institution])]
        reprs.append(repr(HolderShare(institution, "One", shares[institution][0])))
    with sessions() as session, session.begin():
        vault = create_vault(session, bitcoin_node.rpc, f"nosecret-{test_seed}", 2, INSTITUTIONS)
        _, address = next_receive_address(session, bitcoin_node.rpc, vault.name)
    bitcoin_node.rpc.wallet("miner").call("sendtoaddress", address, Decimal("1"))
    bitcoin_node.mine(1)
    payee = bitcoin_node.rpc.wallet("miner").call("getnewaddress", "", "bech32")
    with sessions() as session, session.begin():
        spend = build_spend(
            session, bitcoin_node.rpc, vault.name, [Payment(payee, 40_000_000)], Decimal(2), 10_000
        )
    roots = {}
    for code, institution in CODES.items():
        with combine_shares(shares[institution][:2], PASSPHRASES.get(institution, "")) as seed:
            roots[code] = HDKey.from_seed(seed.reveal())
    deployment = Deployment.build(roots=roots, names=dict(CODES))
    deployment.authorise({"BTC": 10**8}, [("BTC", payee)])
    decoded = bitcoind_spend_under_review(
        bitcoin_node.rpc, spend.unsigned_psbt, vault.receive_descriptor, vault.change_descriptor
    )
    evidence = deployment.evidence(
        *(deployment.statement_for(o, decoded, max_fee=10_000) for o in ("cb-alice", "mof-carol"))
    )
    bad_attempts: list[Callable[[Session], object]] = [
        lambda s: sign_spend(
            s,
            spend.id,
            "Central Bank",
            shares["Central Bank"][:1],
            "bank words",
            authority=MECHANICS_ONLY,
        ),
        lambda s: sign_spend(
            s,
            spend.id,
            "Finance Ministry",
            [shares["Finance Ministry"][0], shares["Audit Chamber"][1]],
            authority=MECHANICS_ONLY,
        ),
        lambda s: sign_spend(
            s,
            spend.id,
            "Central Bank",
            shares["Central Bank"][:2],
            "wrong",
            authority=MECHANICS_ONLY,
        ),
        lambda s: parse_shares([shares["Audit Chamber"][0].reveal().rsplit(" ", 1)[0] + " zebra"]),
        lambda s: parse_psbt(shares["Audit Chamber"][0].reveal()),
    ]
    for attempt in bad_attempts:
        with sessions() as session, session.begin(), pytest.raises(CustodyError) as caught:
            attempt(session)
        errors += [str(caught.value), repr(caught.value)]
    for institution in ("Finance Ministry", "Central Bank"):
        with sessions() as session, session.begin():
            sign_spend(
                session,
                spend.id,
                institution,
                shares[institution][:2],
                PASSPHRASES.get(institution, ""),
                authority=evidence,
                clock=lambda: NOW,
            )
    with sessions() as session, session.begin():
        broadcast_spend(session, bitcoin_node.rpc, spend.id)
        reprs += [repr(load_spend(session, spend.id)), repr(vault)]
        reprs += [repr(load_transcript(session, i)) for i in INSTITUTIONS]
    with combine_shares(shares["Audit Chamber"][:2]) as seed:
        reprs.append(repr(seed))
        with signing_keys(SecretBytes(seed.reveal()), vault.cosigners[2].fingerprint) as keys:
            reprs.append(repr(keys))
        seeds = [seed.reveal()]
    bitcoin_node.mine(1)

    for institution in ("Finance Ministry", "Central Bank"):
        with combine_shares(shares[institution][:2], PASSPHRASES.get(institution, "")) as seed:
            seeds.append(seed.reveal())
    psbt = parse_psbt(spend.unsigned_psbt)
    input_paths = [
        "m" + "".join(f"/{i}" for i in list(der.derivation)[-2:])
        for inp in psbt.inputs
        for der in inp.bip32_derivations.values()
    ]
    full_paths = [f"m/48h/1h/0h/2h/{p[2:]}" for p in input_paths]
    secrets: set[str] = set()
    for seed_bytes in seeds:
        secrets |= _key_secrets(seed_bytes, full_paths)
    secrets |= {chunk.hex() for chunk in randomness.handed_out if len(chunk) >= 16}
    for institution_shares in shares.values():
        for share in institution_shares:
            words = share.reveal().split()
            secrets.add(share.reveal())
            secrets |= {
                " ".join(words[i : i + WORD_WINDOW]) for i in range(len(words) - WORD_WINDOW + 1)
            }

    with engine.connect() as conn:
        tables = inspect(conn).get_table_names()
        dump = "\n".join(
            repr(conn.execute(text(f'SELECT * FROM "{table}"')).all())  # noqa: S608 (names from the schema)
            for table in tables
        )
    engine.dispose()
    printed = rendered(caplog.records)
    logs = (
        caplog.text
        + printed
        + "\n".join(f"{r.getMessage()} {r.args!r} {r.__dict__!r}" for r in caplog.records)
    )
    haystacks = {
        "logs": logs.lower(),
        "errors": "\n".join(errors).lower(),
        "database": dump.lower(),
        "reprs": "\n".join(reprs).lower(),
    }
    assert len(secrets) > 100
    share_file = next((tmp_path / "shares-1").glob("*.txt")).read_text().lower()
    assert any(s.lower() in share_file for s in secrets)  # the detector does detect a share
    assert "custody_btc_spend_signatures" in tables
    assert "signed spend" in logs
    assert "spend authorised" in logs  # the signer verified the officers' statements
    assert "signed spend" in printed  # the edges' formatters did render the records
    for where, haystack in haystacks.items():
        leaked = [s for s in secrets if s.lower() in haystack]
        assert not leaked, f"{len(leaked)} secret(s) found in {where}"

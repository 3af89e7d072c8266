"""Set-up for the reconciliation tests: a migrated database, Bitcoin and Safe vaults, helpers.

Vaults are built the way custody builds them (ceremonies, watch-only wallet, Safe deployment);
an out-of-band spend is signed here directly with the recombined keys, bypassing every record.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from embit.psbt import PSBT
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from custody.bitcoin import create_vault, next_receive_address
from custody.bitcoin.rpc import BitcoinRPC
from custody.bitcoin.vault import Vault as BtcVault
from custody.ceremony import CeremonyPlan, ShareFiles, read_share_file, run_ceremony
from custody.devnet import BitcoinNode
from custody.ethereum import EthChain, KeyQuorum, SafeVaults, owners_from_cosigners
from custody.ethereum.deploy import find_deployment
from custody.ethereum.rpc import EvmRPC
from custody.keys import CosignerKeys, cosigner_keys, signing_keys
from custody.secret import SecretBytes
from custody.shamir import ShareScheme, combine_shares, parse_shares, split_seed
from treasury import ledger, migrate
from treasury.db import make_engine, session_factory
from treasury.ledger import JournalEntry
from treasury.reconcile import (
    BitcoinReader,
    EthereumReader,
    Reconciler,
    RunReport,
    btc_scope,
    holdings_account,
)
from treasury.reconcile.records import BookingRow

INSTITUTIONS = ("Ministry of Finance", "National Bank", "Accounts Chamber")
SAFE_PASSPHRASE = "safe-officers-passphrase"


def rng_for(*parts: object) -> random.Random:
    """Deterministic randomness from the run's seed and the test (replayable)."""
    return random.Random(" ".join(map(str, parts)))  # noqa: S311 (test data, not keys for use)


@dataclass
class Db:
    url: str
    engine: Engine
    sessions: sessionmaker[Session]

    def trial_balance_zero(self) -> bool:
        with self.sessions() as session:
            return all(line.balanced for line in ledger.trial_balance(session))

    def posted(self, account: str) -> int:
        with self.sessions() as session:
            return ledger.balance(session, account).posted

    def entry_count(self) -> int:
        with self.sessions() as session:
            return int(session.scalar(select(func.count()).select_from(JournalEntry)) or 0)

    def bookings(self, scope: str) -> list[BookingRow]:
        with self.sessions() as session:
            return list(
                session.scalars(
                    select(BookingRow).where(BookingRow.scope == scope).order_by(BookingRow.id)
                )
            )


def migrated(url: str) -> Db:
    migrate.upgrade(url)
    engine = make_engine(url)
    return Db(url, engine, session_factory(engine))


def reconciler(
    db: Db,
    *,
    bitcoin: BitcoinRPC | None = None,
    evm: EvmRPC | None = None,
    btc_min_conf: int = 1,
    eth_min_conf: int = 1,
    clock: Callable[[], datetime] | None = None,
) -> Reconciler:
    return Reconciler(
        db.sessions,
        bitcoin=None if bitcoin is None else BitcoinReader(bitcoin, min_confirmations=btc_min_conf),
        ethereum=None if evm is None else EthereumReader(evm, min_confirmations=eth_min_conf),
        clock=clock or (lambda: datetime.now(UTC)),
    )


def run(db: Db, **kwargs: object) -> RunReport:
    return reconciler(db, **kwargs).run()  # type: ignore[arg-type]


# --- Bitcoin ----------------------------------------------------------------------------------


@dataclass
class BtcWorld:
    db: Db
    node: BitcoinNode
    vault: BtcVault
    shares: dict[str, list[str]]

    @property
    def scope(self) -> str:
        return btc_scope(self.vault.name)

    @property
    def holdings(self) -> str:
        return holdings_account(self.scope, "BTC")

    @property
    def wallet(self) -> BitcoinRPC:
        return self.node.rpc.wallet(self.vault.wallet_name)

    def address(self) -> str:
        with self.db.sessions.begin() as session:
            _, address = next_receive_address(session, self.node.rpc, self.vault.name)
        return address

    def pay(self, amounts_sats: list[int], *, mine: bool = True) -> str:
        """One transaction from the miner paying each amount to a fresh vault address."""
        outputs = {self.address(): Decimal(sats) / 10**8 for sats in amounts_sats}
        txid = str(self.node.rpc.wallet("miner").call("sendmany", "", outputs))
        if mine:
            self.node.mine(1)
        return txid

    def out_of_band_spend(self, to: str, amount_sats: int) -> str:
        """Sign a spend directly with two institutions' recombined keys and broadcast it."""
        quorums = [
            (
                self.shares[institution][:2],
                "",
                next(t.fingerprint for t in self.vault.cosigners if t.institution == institution),
            )
            for institution in INSTITUTIONS[:2]
        ]
        return out_of_band_spend(self.node, self.wallet, to, amount_sats, quorums)


def out_of_band_spend(
    node: BitcoinNode,
    wallet: BitcoinRPC,
    to: str,
    amount_sats: int,
    quorums: list[tuple[list[str], str, str]],
) -> str:
    """What a thief with the keys does: fund a PSBT from the vault's watch-only wallet, sign it
    with each (shares, passphrase, fingerprint) quorum's recombined key, broadcast; no custody
    record, no proposal."""
    funded = wallet.call(
        "walletcreatefundedpsbt",
        [],
        [{to: Decimal(amount_sats) / 10**8}],
        0,
        {"fee_rate": 5, "includeWatching": True},
        True,
    )
    signed = []
    for texts, passphrase, fingerprint in quorums:
        with signing_keys(combine_shares(parse_shares(texts), passphrase), fingerprint) as keys:
            psbt = PSBT.from_string(funded["psbt"])
            psbt.sign_with(keys.bitcoin_root)
            signed.append(psbt.to_string())
    combined = node.rpc.call("combinepsbt", signed)
    final = node.rpc.call("finalizepsbt", combined)
    assert final["complete"]
    return str(node.rpc.call("sendrawtransaction", final["hex"]))


def btc_world(db: Db, node: BitcoinNode, folder: Path, seed: int, name: str) -> BtcWorld:
    """Three ceremonies (2-of-3 shares each, no passphrase) and a 2-of-3 vault over them."""
    shares: dict[str, list[str]] = {}
    for number, institution in enumerate(INSTITUTIONS):
        plan = CeremonyPlan(institution, ("A", "B", "C"), 2)
        delivery = ShareFiles(folder / "shares" / str(number))
        with db.sessions.begin() as session:
            run_ceremony(
                session,
                plan,
                delivery,
                "",
                random_bytes=rng_for(seed, name, number).randbytes,
                rng=rng_for(seed, name),
            )
        shares[institution] = [read_share_file(path) for path in delivery.written]
    with db.sessions.begin() as session:
        vault = create_vault(session, node.rpc, name, 2, list(INSTITUTIONS))
    return BtcWorld(db, node, vault, shares)


# --- Ethereum ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SafeInstitution:
    name: str
    seed: bytes
    keys: CosignerKeys
    quorum: KeyQuorum


def safe_institutions(seed: int) -> list[SafeInstitution]:
    found = []
    for name in INSTITUTIONS:
        rng = rng_for(seed, "safe", name)
        secret = rng.randbytes(32)
        shares = split_seed(
            SecretBytes(secret), ShareScheme(2, 3), SAFE_PASSPHRASE, random_bytes=rng.randbytes
        )
        keys = cosigner_keys(SecretBytes(secret))
        quorum = KeyQuorum(name, tuple(shares[:2]), SAFE_PASSPHRASE, keys.fingerprint)
        found.append(SafeInstitution(name, secret, keys, quorum))
    return found


def deployed(chain: EthChain) -> None:
    if find_deployment(chain) is None:
        from custody.ethereum import deploy_safe_contracts

        deploy_safe_contracts(chain, chain.accounts()[0])


def eth_key(institution: SafeInstitution):  # type: ignore[no-untyped-def]
    """The institution's owner key, recovered from its seed (test only)."""
    with signing_keys(SecretBytes(institution.seed), institution.keys.fingerprint) as keys:
        return keys.eth_key


def create_safe(vaults: SafeVaults, name: str, people: list[SafeInstitution], salt: int) -> str:
    owners = owners_from_cosigners([(p.name, p.keys) for p in people])
    payer = vaults.chain.accounts()[0]
    return vaults.create(name, owners, 2, payer=payer, salt_nonce=salt).address

"""A reserve to attest: three institutions' ceremonies, a 2-of-3 Bitcoin vault and a 2-of-3 Safe,
both funded on the devnets, a ledger of fund accounts, and the two attestation keys in 0600 files.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from live_reserve_support import live_nodes
from registry_support import METADATA_TOKEN_DECIMALS, deploy_metadata_token
from reserve_verifier import Nodes
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from web3 import Web3

from custody.bitcoin.vault import Vault as BitcoinVault
from custody.bitcoin.vault import create_vault, next_receive_address
from custody.ceremony import (
    CeremonyPlan,
    ShareFiles,
    load_transcript,
    read_share_file,
    run_ceremony,
)
from custody.devnet import BitcoinNode, EvmNode
from custody.ethereum import EthChain, SafeVaults, VaultOwner, deploy_safe_contracts
from custody.ethereum.erc20 import transfer_calldata
from custody.ethereum.vault import Vault as SafeVault
from custody.shamir import ShareMnemonic, parse_shares
from reporting.attestation import KeySigner, SignerRole
from treasury import ledger, migrate
from treasury.attest import (
    AttestNodes,
    AttestOptions,
    AttestResult,
    BitcoinEndpoint,
    InstitutionShares,
    attest,
    generate_role_key,
)
from treasury.db import make_engine, session_factory
from treasury.ledger import AccountType, Leg

log = logging.getLogger("tests.attest")

INSTITUTIONS = ("Ministry of Finance", "National Bank", "Accounts Chamber")
PASSPHRASES = {"National Bank": "national bank vault"}
VAULT_FUNDING_SATS = (150_000_000, 70_000_000)
SAFE_ETHER_WEI = 5 * 10**18
TOKEN_SUPPLY = 10**27
SAFE_TOKEN_UNITS = 7 * 10**20
ACTOR = "attest-tests"

FUND_BTC = "fund:btc:national-reserve"
FUND_ETH = "fund:eth:national-reserve"
HOLDINGS_BTC = "vault:btc:reserve:BTC"
HOLDINGS_ETH = "vault:eth:reserve:ETH"
OPENING_BTC = "equity:btc:opening"
OPENING_ETH = "equity:eth:opening"
FUND_BTC_SATS = 180_000_000
FUND_ETH_WEI = 4 * 10**18


def rng_for(seed: object, purpose: str) -> random.Random:
    """Deterministic randomness for one purpose, from the run's seed (printed in the header)."""
    return random.Random(f"{seed}:{purpose}")  # noqa: S311 (reproducible test data only)


class ListHandler(logging.Handler):
    """Keeps every formatted log line emitted while it is attached (to search for secrets)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record) + " " + repr(record.__dict__))


@dataclass
class Reserve:
    """The live reserve and what an attestation run needs."""

    engine: Engine
    url: str
    sessions: sessionmaker[Session]
    bitcoin_node: BitcoinNode
    evm_node: EvmNode
    services_node: EvmNode
    chain: EthChain
    services: Web3
    vault: BitcoinVault
    safe: SafeVault
    token: str
    token_asset: str
    share_files: dict[str, list[Path]]
    treasury_key_file: Path
    auditor_key_file: Path
    treasury: KeySigner
    auditor: KeySigner
    seed: int
    logs: ListHandler

    @property
    def endpoint(self) -> BitcoinEndpoint:
        node = self.bitcoin_node
        return BitcoinEndpoint(node.rpc_url, node.rpc_user, node.rpc_password)

    @property
    def nodes(self) -> AttestNodes:
        return AttestNodes(self.endpoint, "miner", self.chain, self.services)

    @property
    def verify_nodes(self) -> Nodes:
        return live_nodes(self.bitcoin_node, self.evm_node, self.services_node)

    def shares(self, institution: str, first: int = 0) -> list[ShareMnemonic]:
        texts = [read_share_file(path) for path in self.share_files[institution]]
        return parse_shares(texts[first : first + 2])

    def institutions(self, names: Sequence[str] = INSTITUTIONS) -> list[InstitutionShares]:
        return [
            InstitutionShares(name, self.shares(name), PASSPHRASES.get(name, "")) for name in names
        ]

    def mine(self, _txid: str = "") -> None:
        self.bitcoin_node.mine(1)

    def attest(self, **options: Any) -> AttestResult:
        """One attestation through the library API, on a fresh session committed at the end."""
        handler = self.logs
        root = logging.getLogger()
        root.addHandler(handler)
        previous_level = root.level
        root.setLevel(logging.DEBUG)
        try:
            with self.sessions.begin() as session:
                return attest(
                    session,
                    self.nodes,
                    treasury=self.treasury,
                    auditor=self.auditor,
                    institutions=options.pop("institutions", self.institutions()),
                    await_bitcoin_confirmation=self.mine,
                    options=AttestOptions(**options),
                    random_bytes=rng_for(self.seed, f"nonce-{uuid.uuid4()}").randbytes,
                    progress=log.info,
                )
        finally:
            root.removeHandler(handler)
            root.setLevel(previous_level)

    def post(self, key: str, legs: Sequence[Leg]) -> None:
        with self.sessions.begin() as session:
            ledger.record_entry(session, key, legs, description=key)

    def fund_vault(self, sats: int) -> None:
        with self.sessions.begin() as session:
            _, address = next_receive_address(session, self.bitcoin_node.rpc, self.vault.name)
        self.bitcoin_node.rpc.wallet("miner").call("sendtoaddress", address, Decimal(sats) / 10**8)
        self.bitcoin_node.mine(1)


def build_reserve(
    tmp: Path,
    bitcoin_node: BitcoinNode,
    evm_node: EvmNode,
    services_node: EvmNode,
    seed: int,
    label: str,
) -> Reserve:
    """Ceremonies, vaults, funding, ledger and keys on a fresh migrated SQLite database.

    ``label`` separates the deterministic randomness of two reserves built in one run (their
    Safes would otherwise collide at one CREATE2 address).
    """
    url = f"sqlite:///{tmp / 'treasury.sqlite3'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    share_files: dict[str, list[Path]] = {}
    ceremony_rng = rng_for(seed, f"{label}:ceremony")
    with sessions.begin() as session:
        for institution in INSTITUTIONS:
            delivery = ShareFiles(tmp / "shares")
            run_ceremony(
                session,
                CeremonyPlan(institution, ("officer a", "officer b", "officer c"), 2),
                delivery,
                PASSPHRASES.get(institution, ""),
                random_bytes=ceremony_rng.randbytes,
                rng=ceremony_rng,
            )
            share_files[institution] = list(delivery.written)
    name = f"attest-{uuid.uuid4().hex[:8]}"
    bitcoin_node.miner_address()
    with sessions.begin() as session:
        vault = create_vault(session, bitcoin_node.rpc, name, 2, list(INSTITUTIONS))

    chain = EthChain(evm_node.rpc)
    payer = chain.accounts()[0]
    deploy_safe_contracts(chain, payer)
    safes = SafeVaults(chain, sessions, random_bytes=rng_for(seed, f"{label}:safe").randbytes)
    with sessions() as session:
        owners = [
            VaultOwner(
                i, load_transcript(session, i).eth_address, load_transcript(session, i).fingerprint
            )
            for i in INSTITUTIONS
        ]
    safe = safes.create(f"safe-{name}", owners, 2, payer=payer)
    token = deploy_metadata_token(chain, payer, TOKEN_SUPPLY)
    chain.transact(payer, safe.address, b"", action="fund the Safe", value=SAFE_ETHER_WEI)
    chain.transact(payer, token, transfer_calldata(safe.address, SAFE_TOKEN_UNITS), action="fund")

    keys = tmp / "keys"
    treasury_file, auditor_file = keys / "treasury.key", keys / "auditor.key"
    key_rng = rng_for(seed, f"{label}:keys")
    treasury = generate_role_key(treasury_file, SignerRole.TREASURY, random_bytes=key_rng.randbytes)
    auditor = generate_role_key(auditor_file, SignerRole.AUDITOR, random_bytes=key_rng.randbytes)
    services = Web3(Web3.HTTPProvider(services_node.rpc_url))
    publisher = Account.from_key(treasury.private_key).address
    services.provider.make_request("anvil_setBalance", [publisher, hex(10**21)])  # type: ignore[arg-type]

    token_asset = ledger.erc20_asset(token, METADATA_TOKEN_DECIMALS)
    with sessions.begin() as session:
        for spec in (ledger.BTC, ledger.ETH, token_asset):
            ledger.register_asset(session, spec, actor=ACTOR)
        for code, kind, asset in (
            (HOLDINGS_BTC, AccountType.ASSET, "BTC"),
            (OPENING_BTC, AccountType.EQUITY, "BTC"),
            (FUND_BTC, AccountType.LIABILITY, "BTC"),
            (HOLDINGS_ETH, AccountType.ASSET, "ETH"),
            (OPENING_ETH, AccountType.EQUITY, "ETH"),
            (FUND_ETH, AccountType.LIABILITY, "ETH"),
        ):
            ledger.open_account(
                session, code, name=code, account_type=kind, asset_code=asset, actor=ACTOR
            )
    reserve = Reserve(
        engine, url, sessions, bitcoin_node, evm_node, services_node, chain, services,
        vault, safe, token, token_asset.code, share_files, treasury_file, auditor_file,
        treasury, auditor, seed, ListHandler(),
    )  # fmt: skip
    for sats in VAULT_FUNDING_SATS:
        reserve.fund_vault(sats)
    reserve.post(
        "opening-btc",
        [
            Leg.debit(HOLDINGS_BTC, sum(VAULT_FUNDING_SATS)),
            Leg.credit(OPENING_BTC, sum(VAULT_FUNDING_SATS)),
        ],
    )
    reserve.post(
        "allocate-btc", [Leg.debit(OPENING_BTC, FUND_BTC_SATS), Leg.credit(FUND_BTC, FUND_BTC_SATS)]
    )
    reserve.post(
        "opening-eth",
        [Leg.debit(HOLDINGS_ETH, SAFE_ETHER_WEI), Leg.credit(OPENING_ETH, SAFE_ETHER_WEI)],
    )
    reserve.post(
        "allocate-eth", [Leg.debit(OPENING_ETH, FUND_ETH_WEI), Leg.credit(FUND_ETH, FUND_ETH_WEI)]
    )
    return reserve


def reserve_fixture(label: str) -> Callable[..., Iterator[Reserve]]:
    """A module-scoped ``reserve`` fixture: a reserve built for one test module, then disposed.

    ``label`` is the module's ``build_reserve`` label (and names its temporary folder).
    """

    @pytest.fixture(scope="module")
    def reserve(
        tmp_path_factory: pytest.TempPathFactory,
        bitcoin_node: BitcoinNode,
        evm_node: EvmNode,
        services_node: EvmNode,
        test_seed: int,
    ) -> Iterator[Reserve]:
        built = build_reserve(
            tmp_path_factory.mktemp(label), bitcoin_node, evm_node, services_node, test_seed, label
        )
        yield built
        built.engine.dispose()

    return reserve

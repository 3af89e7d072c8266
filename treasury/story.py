"""The reserve's whole story on live devnets, one step per method: what ``make demo`` runs.

A ``Reserve`` holds a fresh working folder (SQLite database, share files, bundles, site), the
devnet nodes, and a story clock. Each step is ordinary library code (ceremonies, vaults,
reconciliation, the spend workflow), so the end-to-end tests drive the same steps and assert
between them.

The story clock starts at the real time and is moved forward where the story skips days (the
allowlist's 48-hour delay); everything that judges time (workflow, policy, reconciliation) reads
it, so their checks agree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from reserve_verifier import Nodes, Report, verify_bundle
from sqlalchemy.orm import Session, sessionmaker

from custody.bitcoin import create_vault, next_receive_address
from custody.bitcoin.descriptor import Branch
from custody.bitcoin.rpc import sats_to_btc
from custody.ceremony import CeremonyPlan, ShareFiles, Transcript, read_share_file, run_ceremony
from custody.devnet import BitcoinNode, EvmNode
from custody.ethereum import (
    EthChain,
    SafeVaults,
    SigningPolicy,
    VaultOwner,
    deploy_safe_contracts,
)
from custody.ethereum.dev_token import deploy_dev_token
from custody.ethereum.erc20 import transfer_calldata
from custody.ethereum.relayer import node_gas_payer
from custody.ethereum.web3_client import web3_client
from custody.exceptions import DevnetError
from custody.shamir import parse_shares
from reporting.attestation import SignerRole
from reporting.site import PublishedSite, load_bundles, load_export, publish_site
from treasury import ledger, migrate
from treasury.attest import (
    AttestNodes,
    AttestOptions,
    AttestResult,
    BitcoinEndpoint,
    InstitutionShares,
    attest,
)
from treasury.attest.keys import role_key
from treasury.db import make_engine, session_factory
from treasury.ledger import AccountType
from treasury.officers import Founding, Officer, Role, add_institution, add_officer
from treasury.policy import (
    LegalBasis,
    add_legal_basis,
    approve_destination,
    current_policy,
    request_destination,
    set_policy,
)
from treasury.proposals import ProposalView, Workflow
from treasury.publication import EXPORT_FILE_NAME, write_export
from treasury.reconcile import (
    ReconcileSettings,
    RunReport,
    inflows_account,
    reconcile_now,
    track_token,
)
from treasury.spenders import BitcoinSpender, SafeSpender
from treasury.wiring import configured_workflow
from treasury.workflow_exceptions import ProposalTransitionError

Echo = Callable[[str], None]

SATS_PER_BTC = 100_000_000
WEI_PER_ETH = 10**18
BTC_VAULT = "reserve"
SAFE_VAULT = "reserve"
TOKEN_SYMBOL = "KGST"  # noqa: S105 - an ERC-20 ticker, not a credential
TOKEN_DECIMALS = 18
DECREE = "Decree No. 112 of the Cabinet of Ministers"
FEE_RATE_SAT_VB = Decimal(2)
MAX_FEE_SATS = 50_000
ALLOWLIST_DELAY = timedelta(hours=48)
RECONCILE_EVERY = timedelta(hours=5)
"""How often the story's scheduler runs while days pass (within the 6-hour freshness rule)."""


@dataclass(frozen=True)
class Institution:
    """A cosigner institution: its code in the workflow, its name at the ceremony, its officers."""

    code: str
    name: str
    holders: tuple[str, ...]
    passphrase: str = ""


INSTITUTIONS = (
    Institution("MOF", "Ministry of Finance", ("Aida Sadykova", "Bakyt Usenov", "Chynara Abdieva")),
    Institution(
        "NBKR",
        "National Bank",
        ("Daniyar Toktogulov", "Elmira Asanova", "Farida Ismailova"),
        passphrase="nbkr-vault-passphrase",  # noqa: S106 - the devnet demo's own; ceremonies prompt
    ),
    Institution("ACH", "Accounts Chamber", ("Gulnara Bekova", "Ilyas Omurov", "Jyldyz Karimova")),
)
SHARE_THRESHOLD = 2
VAULT_THRESHOLD = 2

POLICY: dict[str, Any] = {
    "quorum": {"institutions": [i.code for i in INSTITUTIONS], "required": 2},
    "assets": {
        "BTC": {
            "per_tx_limit": 1 * SATS_PER_BTC,
            "daily_limit": 2 * SATS_PER_BTC,
            "veto_threshold": SATS_PER_BTC // 2,
        },
        "ETH": {
            "per_tx_limit": 10 * WEI_PER_ETH,
            "daily_limit": 20 * WEI_PER_ETH,
            "veto_threshold": 5 * WEI_PER_ETH,
        },
    },
    "veto_window_seconds": 24 * 3600,
    "allowlist": {"required": 2, "delay_seconds": int(ALLOWLIST_DELAY.total_seconds())},
    "reconciliation_max_age_seconds": 6 * 3600,
    "proposal_ttl_seconds": 7 * 24 * 3600,
}
"""The written policy: any 2 of the 3 institutions, limits per asset, allowlist after 48 h."""

OFFICERS: tuple[tuple[str, str, tuple[Role, ...]], ...] = (
    ("Treasury administrator", "MOF", (Role.ADMIN,)),
    ("Asel Proposer (MOF)", "MOF", (Role.PROPOSER,)),
    ("Aida Sadykova (MOF)", "MOF", (Role.APPROVER,)),
    ("Elmira Asanova (NBKR)", "NBKR", (Role.APPROVER,)),
    ("Ilyas Omurov (ACH)", "ACH", (Role.APPROVER,)),
    ("Oversight committee (ACH)", "ACH", (Role.OVERSIGHT,)),
    ("State auditor (ACH)", "ACH", (Role.AUDITOR,)),
)


class StoryClock:
    """Real time plus the days the story skips; every time-judging component reads this."""

    def __init__(self, start: datetime | None = None) -> None:
        self._offset = timedelta(0)
        self._start = start

    def __call__(self) -> datetime:
        now = self._start if self._start is not None else datetime.now(UTC)
        return now + self._offset

    def advance(self, delta: timedelta) -> None:
        self._offset += delta


@dataclass
class Reserve:
    """The reserve under construction: folder, database, nodes, clock, and what the steps made."""

    workdir: Path
    bitcoin: BitcoinNode
    evm: EvmNode
    btc_vault: str = BTC_VAULT
    clock: StoryClock = field(default_factory=StoryClock)
    transcripts: dict[str, Transcript] = field(default_factory=dict)
    share_files: dict[str, list[Path]] = field(default_factory=dict)
    officers: dict[str, Officer] = field(default_factory=dict)
    payees: dict[str, str] = field(default_factory=dict)
    """Allowlisted destination per asset, once ``govern`` has approved them."""
    token: str | None = None
    relayer: str = ""

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.database_url = f"sqlite:///{self.workdir / 'treasury.sqlite3'}"
        migrate.upgrade(self.database_url)
        self.engine = make_engine(self.database_url)
        self.sessions: sessionmaker[Session] = session_factory(self.engine)
        self.chain = EthChain(self.evm.rpc)
        self.safes = SafeVaults(self.chain, self.sessions)

    @property
    def institutions(self) -> Mapping[str, str]:
        """Workflow code -> the institution name its ceremony recorded."""
        return {i.code: i.name for i in INSTITUTIONS}

    # --- 1. Key ceremonies -------------------------------------------------------------------

    def hold_ceremonies(self, echo: Echo) -> None:
        """Each institution's cosigner seed is generated, split 2-of-3 among three officers,
        checked to recombine, and recorded; only the holders' share files receive the words."""
        for inst in INSTITUTIONS:
            delivery = ShareFiles(self.workdir / "shares" / inst.code.lower())
            plan = CeremonyPlan(
                inst.name, inst.holders, SHARE_THRESHOLD, witnesses=("State auditor",)
            )
            with self.sessions.begin() as session:
                transcript = run_ceremony(
                    session, plan, delivery, inst.passphrase, clock=self.clock
                )
            self.transcripts[inst.code] = transcript
            self.share_files[inst.code] = list(delivery.written)
            echo(
                f"   {inst.name}: fingerprint {transcript.fingerprint}, "
                f"{SHARE_THRESHOLD}-of-{len(inst.holders)} shares (identifier "
                f"{transcript.identifier}{', with passphrase' if inst.passphrase else ''}), "
                f"Safe owner {transcript.eth_address}"
            )
        echo(f"   share files (one per holder, mode 0600): {self.workdir / 'shares'}")

    def shares_of(self, code: str) -> tuple[list[str], str]:
        """What two of the institution's holders bring to a signing: their words and passphrase."""
        inst = next(i for i in INSTITUTIONS if i.code == code)
        files = self.share_files[code][:SHARE_THRESHOLD]
        return [read_share_file(path) for path in files], inst.passphrase

    # --- 2. Vaults on both chains -------------------------------------------------------------

    def open_vaults(self, echo: Echo) -> None:
        """A 2-of-3 wsh(sortedmulti) vault on Bitcoin and a 2-of-3 Safe on the EVM chain."""
        btc = self.bitcoin.rpc
        with self.sessions.begin() as session:
            vault = create_vault(
                session,
                btc,
                self.btc_vault,
                VAULT_THRESHOLD,
                [i.name for i in INSTITUTIONS],
                clock=self.clock,
            )
        echo(
            f"   bitcoin vault {vault.name!r}: {vault.descriptor.text_with_checksum(Branch.RECEIVE)}"
        )
        relayer = node_gas_payer(self.chain)
        if relayer is None:
            raise DevnetError("The reserve's EVM devnet signs for no account to pay gas with.")
        self.relayer = relayer
        report = deploy_safe_contracts(self.chain, self.relayer)
        echo(f"   Safe v1.4.1 singleton at {report.deployment.singleton}")
        owners = tuple(
            VaultOwner(
                i.name, self.transcripts[i.code].eth_address, self.transcripts[i.code].fingerprint
            )
            for i in INSTITUTIONS
        )
        safe = self.safes.create(SAFE_VAULT, owners, VAULT_THRESHOLD, payer=self.relayer)
        echo(f"   Safe vault {safe.name!r}: {safe.address}, {safe.threshold}-of-{len(owners)}")
        self.token = deploy_dev_token(self.chain, self.relayer, 1_000_000 * 10**TOKEN_DECIMALS)
        with self.sessions.begin() as session:
            track_token(session, self.chain.chain_id, self.token, TOKEN_SYMBOL, TOKEN_DECIMALS)
        echo(f"   test ERC-20 {TOKEN_SYMBOL} at {self.token} (tracked in every Safe)")

    # --- 3. Deposits and reconciliation -------------------------------------------------------

    def deposit(self, echo: Echo, btc_sats: tuple[int, ...], eth_wei: int, tokens: int) -> str:
        """Pay the vaults from the devnets' test money: several BTC outputs in one transaction,
        ether and tokens to the Safe. Returns the Bitcoin txid."""
        btc = self.bitcoin.rpc
        outputs: dict[str, Decimal] = {}
        for amount in btc_sats:
            with self.sessions.begin() as session:
                _, address = next_receive_address(session, btc, self.btc_vault)
            outputs[address] = sats_to_btc(amount)
        txid: str = btc.wallet("miner").call("sendmany", "", outputs)
        self.bitcoin.mine(1)
        safe = self.safes.vault(SAFE_VAULT).address
        self.chain.transact(self.relayer, safe, b"", action="fund the Safe", value=eth_wei)
        if self.token is not None:
            self.chain.transact(
                self.relayer, self.token, transfer_calldata(safe, tokens), action="send tokens"
            )
        echo(
            f"   {len(btc_sats)} outputs, {sum(btc_sats)} sats in tx {txid}; "
            f"{eth_wei} wei and {tokens} {TOKEN_SYMBOL} base units to the Safe"
        )
        return txid

    def reconcile(self, echo: Echo) -> RunReport:
        """One reconciliation run over both chains at confirmed heights."""
        report = reconcile_now(
            self.database_url,
            bitcoin=self.bitcoin.rpc,
            evm=self.evm.rpc,
            settings=ReconcileSettings(
                btc_min_confirmations=1,
                eth_min_confirmations=1,
                max_cursor_age_s=POLICY["reconciliation_max_age_seconds"],
            ),
            clock=self.clock,
        )
        for outcome in report.vaults:
            state = "ok" if outcome.ok else f"FAILED: {outcome.error}"
            echo(
                f"   {outcome.scope}: {state}, {outcome.booked} booked, "
                f"{outcome.reversed} reversed, at height {outcome.height}"
            )
        return report

    def pass_time(self, delta: timedelta, echo: Echo) -> None:
        """Let ``delta`` of story time pass: blocks keep coming on both chains and the scheduler
        reconciles every few hours, so the books stay fresh for the policy's age rule."""
        remaining = delta
        runs = 0
        while remaining > timedelta(0):
            step = min(remaining, RECONCILE_EVERY)
            self.clock.advance(step)
            remaining -= step
            self.bitcoin.mine(1)
            self.evm.rpc.call("evm_mine")
            self.reconcile(lambda _line: None)
            runs += 1
        echo(f"   {delta} pass; the scheduler reconciled {runs} times meanwhile")

    # --- 4. Governance: officers, policy, decree, allowlist -----------------------------------

    def govern(self, echo: Echo, destinations: Mapping[str, str]) -> None:
        """Institutions, officers and roles, the written policy, the decree, and the allowlist
        (each destination approved by two institutions, active after the 48-hour delay)."""
        now = self.clock()
        self.payees = dict(destinations)
        with self.sessions.begin() as session:
            founding = Founding("setup")
            for inst in INSTITUTIONS:
                add_institution(session, inst.code, inst.name, actor=founding, now=now)
            admins: dict[str, Officer] = {}
            for name, code, roles in OFFICERS:
                # An institution's own admin adds its officers; founding only where it has none.
                self.officers[name] = add_officer(
                    session, code, name, roles, actor=admins.get(code, founding), now=now
                )
                if Role.ADMIN in roles:
                    admins[code] = self.officers[name]
            admin = self.officers["Treasury administrator"]
            policy = set_policy(session, admin, POLICY, now=now)
            add_legal_basis(
                session,
                admin,
                LegalBasis(
                    DECREE,
                    "Rebalancing of the national reserve",
                    now + timedelta(days=30),
                    {"BTC": 1 * SATS_PER_BTC, "ETH": 10 * WEI_PER_ETH},
                ),
                now=now,
            )
            for asset, address in destinations.items():
                entry = request_destination(
                    session,
                    self.officers["Asel Proposer (MOF)"],
                    asset,
                    address,
                    f"{asset} payee",
                    now=now,
                )
                for approver in ("Elmira Asanova (NBKR)", "Ilyas Omurov (ACH)"):
                    approve_destination(
                        session, self.officers[approver], entry.id, current_policy(session), now=now
                    )
        echo(
            f"   {len(OFFICERS)} officers in {len(INSTITUTIONS)} institutions; policy version "
            f"{policy.version} ({policy.content_hash[:16]}...); decree {DECREE!r}"
        )
        echo(f"   allowlist: {len(destinations)} destinations, approved by NBKR and ACH")
        self.pass_time(ALLOWLIST_DELAY + timedelta(hours=1), echo)

    def workflow(self) -> Workflow:
        """The approval workflow as the CLI and API build it: booking into the reconciler's
        accounts of this reserve's vaults, gated by its reconciliation results."""
        return configured_workflow(self.sessions, clock=self.clock)

    def spenders(self) -> dict[str, BitcoinSpender | SafeSpender]:
        """The custody signers of both chains behind the workflow's ``ChainSpender``."""
        return {
            "BTC": BitcoinSpender(
                self.sessions,
                self.bitcoin.rpc,
                self.btc_vault,
                self.institutions,
                fee_rate_sat_vb=FEE_RATE_SAT_VB,
                max_fee_sats=MAX_FEE_SATS,
            ),
            "ETH": SafeSpender(
                self.safes,
                SAFE_VAULT,
                self.institutions,
                sessions=self.sessions,
                relayer=self.relayer,
                policy=SigningPolicy(),
            ),
        }

    # --- 5. A spend, approved and signed by two institutions ----------------------------------

    def propose_and_approve(
        self, wf: Workflow, asset: str, amount: int, destination: str
    ) -> ProposalView:
        """The MOF proposer cites the decree; NBKR and ACH approve the exact transaction hash."""
        spender = self.spenders()[asset]
        view = wf.propose(
            self.officers["Asel Proposer (MOF)"],
            asset=asset,
            amount=amount,
            destination=destination,
            purpose="Reserve rebalancing",
            legal_basis=DECREE,
        )
        view = wf.prepare(self.officers["Asel Proposer (MOF)"], view.id, spender)
        tx_hash = view.tx_hash
        if tx_hash is None:
            raise ProposalTransitionError(
                f"Proposal {view.id} was prepared but names no transaction."
            )
        for approver in ("Elmira Asanova (NBKR)", "Ilyas Omurov (ACH)"):
            view = wf.approve(self.officers[approver], view.id, tx_hash)
        return view

    def sign(self, wf: Workflow, proposal_id: int, asset: str) -> ProposalView:
        """Each approving institution's share holders recombine its key, sign, and wipe."""
        spender = self.spenders()[asset]
        view = wf.view(proposal_id)
        for approver, code in (("Elmira Asanova (NBKR)", "NBKR"), ("Ilyas Omurov (ACH)", "ACH")):
            words, passphrase = self.shares_of(code)
            view = wf.sign(self.officers[approver], proposal_id, spender, words, passphrase)
        return view

    def allocate(self, echo: Echo, allocations: Mapping[str, int]) -> None:
        """Parliament's budget lines: move reserve inflows into the fund accounts the attested
        liabilities come from (the National Reserve Fund, per asset)."""
        with self.sessions.begin() as session:
            for asset, amount in allocations.items():
                fund = f"fund:national-reserve:{asset}"
                ledger.open_account(
                    session,
                    fund,
                    name=f"National Reserve Fund ({asset})",
                    account_type=AccountType.LIABILITY,
                    asset_code=asset,
                    actor="setup",
                    clock=self.clock,
                )
                ledger.record_entry(
                    session,
                    f"allocation:{fund}:1",
                    [
                        ledger.Leg.debit(inflows_account(asset), amount),
                        ledger.Leg.credit(fund, amount),
                    ],
                    description=f"Allocation to the National Reserve Fund by {DECREE}",
                    clock=self.clock,
                )
                echo(f"   {fund}: {amount} base units allocated")

    def attest(self, echo: Echo, services: EvmNode) -> AttestResult:
        """Snapshot both chains, prove control through two institutions' share quorums, sign as
        treasury and audit office, and anchor on Bitcoin and the services chain."""
        keys = self.workdir / "keys"
        treasury_key = role_key(keys / "treasury.key", SignerRole.TREASURY, generate=True)
        auditor_key = role_key(keys / "auditor.key", SignerRole.AUDITOR, generate=True)
        services_w3 = web3_client(services.rpc_url)
        publisher = treasury_key.identity()["address"]
        services.rpc.call("anvil_setBalance", publisher, hex(10**20))  # devnet gas money
        quorum = []
        for code in ("NBKR", "ACH"):
            words, passphrase = self.shares_of(code)
            quorum.append(
                InstitutionShares(self.institutions[code], parse_shares(words), passphrase)
            )
        node = self.bitcoin
        with self.sessions.begin() as session:
            result = attest(
                session,
                AttestNodes(
                    BitcoinEndpoint(node.rpc_url, node.rpc_user, node.rpc_password),
                    "miner",
                    self.chain,
                    services_w3,
                ),
                treasury=treasury_key,
                auditor=auditor_key,
                institutions=quorum,
                await_bitcoin_confirmation=self._mine_one,
                options=AttestOptions(out=self._next_bundle_path()),
                clock=self.clock,
                progress=lambda line: echo(f"   {line}"),
            )
        return result

    def _next_bundle_path(self) -> Path:
        """``attestations/attestation-NNNN.json``: the folder ``treasury publish`` reads."""
        folder = self.workdir / "attestations"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"attestation-{len(list(folder.glob('*.json'))) + 1:04d}.json"

    def publish(self, services: EvmNode) -> PublishedSite:
        """The parliament site: every attestation verified against the live nodes, the spends,
        the funds, in Kyrgyz, Russian and English, in ``site/`` of the working folder."""
        node = self.bitcoin
        bundles = load_bundles(
            self.workdir / "attestations",
            nodes=Nodes(
                bitcoin=f"http://{node.rpc_user}:{node.rpc_password}@127.0.0.1:{node.rpc_port}",
                evm=self.evm.rpc_url,
                services=services.rpc_url,
            ),
        )
        export = write_export(
            self.sessions, self.workdir / EXPORT_FILE_NAME, exported_at=self.clock()
        )
        return publish_site(
            bundles, load_export(export), self.workdir / "site", published_at=self.clock()
        )

    def _mine_one(self, _txid: str) -> None:
        self.bitcoin.mine(1)

    def verify(self, bundle_path: Path, services: EvmNode) -> Report:
        """What an auditor runs: the independent verifier against the live nodes."""
        node = self.bitcoin
        return verify_bundle(
            bundle_path.read_bytes(),
            nodes=Nodes(
                bitcoin=f"http://{node.rpc_user}:{node.rpc_password}@127.0.0.1:{node.rpc_port}",
                evm=self.evm.rpc_url,
                services=services.rpc_url,
            ),
        )

    def confirm(self, wf: Workflow, proposal_id: int, asset: str) -> ProposalView:
        """Mine (Bitcoin) and track the spend to its confirmation."""
        if asset == "BTC":
            self.bitcoin.mine(1)
        return wf.refresh(proposal_id, self.spenders()[asset])

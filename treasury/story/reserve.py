"""The reserve under construction, one act of the story per method.

A ``Reserve`` holds a fresh working folder (SQLite database, share files, officer keys, bundles,
site), the devnet nodes, and a story clock. Each step is ordinary library code (ceremonies,
vaults, reconciliation, the signed roster, the spend workflow), so the end-to-end tests drive the
same steps and assert between them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from reserve_verifier import Report
from sqlalchemy.orm import Session, sessionmaker

from custody.authority import VerifiedAuthorization
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
from custody.exceptions import DevnetError
from custody.shamir import parse_shares
from reporting.site import PublishedSite
from treasury import ledger, migrate
from treasury.attest import AttestResult, InstitutionShares
from treasury.authority.statements import coin_units
from treasury.custody_health import run_health_check
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
from treasury.reconcile import (
    ReconcileSettings,
    RunReport,
    inflows_account,
    reconcile_now,
    track_token,
)
from treasury.spenders import BitcoinSpender, SafeSpender
from treasury.story.cast import (
    ADMINS,
    ALLOWLIST_DELAY,
    APPROVERS,
    BTC_VAULT,
    DECREE,
    FEE_RATE_SAT_VB,
    INSTITUTIONS,
    KEY_HOLDING_ROLES,
    MAX_FEE_SATS,
    OFFICERS,
    POLICY,
    POLICY_SIGNERS,
    PROPOSER,
    RECONCILE_EVERY,
    SAFE_VAULT,
    SHARE_THRESHOLD,
    TOKEN_DECIMALS,
    TOKEN_SYMBOL,
    TREASURY_ADMIN,
    VAULT_THRESHOLD,
    decree_ceilings,
    story_policy,
)
from treasury.story.clock import StoryClock
from treasury.story.officer_keys import OfficerKeyring
from treasury.story.proofs import (
    TRUST_FILE_NAME,
    HolderProof,
    attest_reserve,
    holder_proof,
    node_endpoints,
    publish_reserve,
    verify_reserve,
)
from treasury.story.roster import AllowlistItem, RosterSummary, found_roster
from treasury.story.second_chain import (
    SecondChain,
    attest_chains,
    reconcile_chains,
    story_settings,
    verifier_nodes,
)
from treasury.story.translated import (
    translate_generated_purposes,
    translate_purpose,
    translate_records,
)
from treasury.story.units import human_duration, token_units
from treasury.wiring import configured_workflow
from treasury.wiring import token_code as erc20_code
from treasury.workflow_exceptions import ProposalTransitionError

Echo = Callable[[str], None]

OFFICER_KEYS_FOLDER = "officer-keys"


@dataclass(frozen=True)
class Verification:
    """One institution's signer verified the officers' signatures of a spend, then signed it."""

    institution: str
    tx_hash: str
    authorization: VerifiedAuthorization


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
    roster: RosterSummary | None = None
    """The signed roster, once ``govern`` has founded it."""
    verifications: list[Verification] = field(default_factory=list)
    """Each signer's verification of the officers' signatures, in signing order."""
    second_chain: SecondChain | None = None
    """The BNB chain and the reserve's Safe on it, once ``open_second_chain`` has opened it."""

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.database_path = self.workdir / "treasury.sqlite3"
        self.database_url = f"sqlite:///{self.database_path}"
        migrate.upgrade(self.database_url)
        self.engine = make_engine(self.database_url)
        self.sessions: sessionmaker[Session] = session_factory(self.engine)
        self.chain = EthChain(self.evm.rpc)
        self.safes = SafeVaults(self.chain, self.sessions)
        self.officer_keys = OfficerKeyring(self.workdir / OFFICER_KEYS_FOLDER)

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

    def check_key_health(self, echo: Echo) -> None:
        """Two holders of each institution bring their shares to a health check: the seed is
        recombined, its public identity compared with the ceremony's record, and wiped; nothing
        is signed. Each outcome is recorded with an audit event, and published on the site."""
        for inst in INSTITUTIONS:
            words, passphrase = self.shares_of(inst.code)
            with self.sessions.begin() as session:
                check = run_health_check(
                    session, inst.name, words, passphrase, actor="story", now=self.clock()
                )
            echo(
                f"   {inst.name}: {', '.join(check.holders)} brought their shares: "
                f"{'they recombine to the recorded key' if check.ok else check.reason}"
            )

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
            f"   {len(btc_sats)} outputs, {coin_units('BTC', sum(btc_sats))} in tx {txid}; "
            f"{coin_units('ETH', eth_wei)} and {token_units(tokens)} to the Safe"
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
            evm_chains=reconcile_chains(self.second_chain),
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
            if self.second_chain is not None:
                self.second_chain.node.rpc.call("evm_mine")
            self.reconcile(lambda _line: None)
            runs += 1
        echo(f"   {human_duration(delta)} pass; the scheduler reconciled {runs} times meanwhile")

    # --- 4. Governance: officers, keys, the signed roster, policy, decree, allowlist ----------

    def govern(self, echo: Echo, destinations: Mapping[str, str]) -> None:
        """Institutions, officers and roles, the written policy, the decree, and the allowlist
        (each destination approved by two institutions, active after the 48-hour delay); then
        the officers' keys and the signed roster that the custody signers will verify."""
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
            admin = self.officers[TREASURY_ADMIN]
            policy = set_policy(session, admin, story_policy(self.token_code), now=now)
            add_legal_basis(
                session,
                admin,
                LegalBasis(
                    DECREE,
                    "Rebalancing of the national reserve",
                    now + timedelta(days=30),
                    decree_ceilings(self.token_code),
                ),
                now=now,
            )
            for asset, address in destinations.items():
                entry = request_destination(
                    session, self.officers[PROPOSER], asset, address, f"{asset} payee", now=now
                )
                for approver in APPROVERS.values():
                    approve_destination(
                        session, self.officers[approver], entry.id, current_policy(session), now=now
                    )
        echo(
            f"   {len(OFFICERS)} officers in {len(INSTITUTIONS)} institutions; policy version "
            f"{policy.version} ({policy.content_hash[:16]}...); decree {DECREE!r}"
        )
        self.roster = self.found_roster(echo)
        echo(f"   allowlist: {len(destinations)} destinations, approved by NBKR and ACH")
        self.pass_time(ALLOWLIST_DELAY + timedelta(hours=1), echo)

    def found_roster(self, echo: Echo) -> RosterSummary:
        """Each officer who approves, vetoes or administers gets a key file; the ceremonies sign
        the genesis, each admin signs in its own officers, two admins sign the policy in force,
        the payees' destinations and the decree."""
        for name, _code, roles in OFFICERS:
            if KEY_HOLDING_ROLES.intersection(roles):
                self.officer_keys.create(name)
        echo(
            f"   officer keys: {len(self.officer_keys)} encrypted key files in "
            f"{self.officer_keys.folder} (mode 0600; each passphrase in a 0600 file beside its "
            "key, for the scripted demo only)"
        )
        summary = found_roster(
            self.sessions,
            self.officers,
            self.officer_keys,
            admins=ADMINS,
            shares_of=self.shares_of,
            policy_signers=POLICY_SIGNERS,
            clock=self.clock,
            allowlist=[
                AllowlistItem(asset, address, f"{asset} payee")
                for asset, address in self.payees.items()
            ],
            decree=DECREE,
        )
        echo(
            f"   roster: genesis {summary.genesis_hash[:16]}... signed by the ceremony keys of "
            f"{', '.join(summary.ceremony_signers)} (each by a quorum of its share holders)"
        )
        echo(
            f"   roster: {summary.genesis_admins} first admins in the genesis; "
            f"{summary.officers - summary.genesis_admins} more officers, each signed in by its own "
            f"institution's admin ({summary.officers} officers, {summary.keys} keys); policy "
            f"version {summary.policy_version} signed by the "
            f"{' and '.join(summary.policy_signers)} admins"
        )
        echo(
            f"   roster: {summary.allowlist} allowlisted destinations and decree "
            f"{summary.decree!r} signed in by the {' and '.join(summary.policy_signers)} admins "
            "(the signers pay only chain-listed destinations, under a chain decree)"
        )
        return summary

    def workflow(self) -> Workflow:
        """The approval workflow as the CLI and API build it: booking into the reconciler's
        accounts of this reserve's vaults, gated by its reconciliation results."""
        return configured_workflow(
            self.sessions, story_settings(self.second_chain), clock=self.clock
        )

    @property
    def token_code(self) -> str | None:
        """The story token's asset code ``ERC20:<contract>`` (``None`` before it is deployed)."""
        return None if self.token is None else erc20_code(self.token)

    def spenders(self) -> dict[str, BitcoinSpender | SafeSpender]:
        """The custody signers behind the workflow's ``ChainSpender``, per asset code: bitcoin,
        ether and the story token from the first chain's Safe, and the second chain's native coin
        from its own Safe once it is open; each tells ``verifications`` whose signatures it
        verified before signing."""
        spenders: dict[str, BitcoinSpender | SafeSpender] = {
            "BTC": BitcoinSpender(
                self.sessions,
                self.bitcoin.rpc,
                self.btc_vault,
                self.institutions,
                fee_rate_sat_vb=FEE_RATE_SAT_VB,
                max_fee_sats=MAX_FEE_SATS,
                on_verified=self._verified,
            ),
            "ETH": SafeSpender(
                self.safes,
                SAFE_VAULT,
                self.institutions,
                sessions=self.sessions,
                relayer=self.relayer,
                policy=SigningPolicy(),
                on_verified=self._verified,
            ),
        }
        if self.token is not None and self.token_code is not None:
            spenders[self.token_code] = SafeSpender(
                self.safes,
                SAFE_VAULT,
                self.institutions,
                sessions=self.sessions,
                relayer=self.relayer,
                token=self.token,
                policy=SigningPolicy(frozenset({self.token})),
                on_verified=self._verified,
            )
        second = self.second_chain
        if second is not None:
            native = second.settings.native_asset
            spenders[native] = SafeSpender(
                SafeVaults(EthChain(second.node.rpc), self.sessions),
                second.safe.name,
                self.institutions,
                sessions=self.sessions,
                relayer=second.relayer,
                policy=SigningPolicy(chain_id=second.safe.chain_id, native_asset=native),
                on_verified=self._verified,
                native_asset=native,
            )
        return spenders

    def _verified(
        self, institution: str, tx_hash: str, authorization: VerifiedAuthorization
    ) -> None:
        self.verifications.append(Verification(institution, tx_hash, authorization))

    def verified_for(self, proposal_id: int) -> list[Verification]:
        """The signers' verifications of proposal ``proposal_id``'s approvals, in signing order."""
        return [v for v in self.verifications if v.authorization.proposal_id == str(proposal_id)]

    # --- 5. A spend, approved with officers' keys and signed by two institutions --------------

    def propose_and_approve(
        self, wf: Workflow, asset: str, amount: int, destination: str
    ) -> ProposalView:
        """The MOF proposer cites the decree; NBKR's and ACH's approvers each sign a statement of
        the exact transaction with their officer key, and approve with it."""
        spender = self.spenders()[asset]
        proposer = self.officers[PROPOSER]
        view = wf.propose(
            proposer,
            asset=asset,
            amount=amount,
            destination=destination,
            purpose="Reserve rebalancing",
            legal_basis=DECREE,
        )
        with self.sessions.begin() as session:
            translate_purpose(session, proposer, self.clock, view.id, view.purpose)
        view = wf.prepare(proposer, view.id, spender)
        tx_hash = view.tx_hash
        if tx_hash is None:
            raise ProposalTransitionError(
                f"Proposal {view.id} was prepared but names no transaction."
            )
        for approver in APPROVERS.values():
            officer = self.officers[approver]
            signed = self.officer_keys[approver].sign_statement(wf.statement(officer, view.id))
            view = wf.approve(officer, view.id, tx_hash, signed=signed)
        return view

    def sign(self, wf: Workflow, proposal_id: int, asset: str) -> ProposalView:
        """Each approving institution's share holders recombine its key; its signer verifies the
        officers' signed statements against the roster, signs, and wipes."""
        spender = self.spenders()[asset]
        view = wf.view(proposal_id)
        for code, approver in APPROVERS.items():
            words, passphrase = self.shares_of(code)
            view = wf.sign(self.officers[approver], proposal_id, spender, words, passphrase)
        return view

    def confirm(self, wf: Workflow, proposal_id: int, asset: str) -> ProposalView:
        """Mine (Bitcoin) and track the spend to its confirmation."""
        if asset == "BTC":
            self.bitcoin.mine(1)
        return wf.refresh(proposal_id, self.spenders()[asset])

    # --- 6. Allocation, proof of reserves, the auditor, the site ------------------------------

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
                echo(f"   {fund}: {coin_units(asset, amount)} allocated")

    def attest(self, echo: Echo, services: EvmNode) -> AttestResult:
        """Snapshot both chains, prove control through two institutions' share quorums, sign as
        treasury and audit office, and anchor on Bitcoin and the services chain."""
        quorum = []
        for code in APPROVERS:
            words, passphrase = self.shares_of(code)
            quorum.append(
                InstitutionShares(self.institutions[code], parse_shares(words), passphrase)
            )
        return attest_reserve(
            self.sessions,
            self.workdir,
            self.bitcoin,
            self.chain,
            services,
            quorum,
            clock=self.clock,
            echo=echo,
            evm_chains=attest_chains(self.second_chain),
        )

    def translate(self) -> int:
        """The treasury admin enters the Kyrgyz and Russian names of the story's records."""
        symbols = {f"ERC20:{self.token}": TOKEN_SYMBOL} if self.token else {}
        with self.sessions.begin() as session:
            count = translate_records(
                session, self.officers[TREASURY_ADMIN], self.clock, decree=DECREE, symbols=symbols
            )
            return count + translate_generated_purposes(
                session, self.officers[PROPOSER], self.clock
            )

    def publish(self, services: EvmNode) -> PublishedSite:
        """The parliament site, from every attestation verified against the live nodes."""
        return publish_reserve(
            self.sessions,
            self.workdir,
            verifier_nodes(node_endpoints(self.bitcoin, self.evm, services), self.second_chain),
            clock=self.clock,
        )

    def holder_proof(self, bundle_path: Path, sequence: int, account_id: str) -> HolderProof:
        """An account holder's proof package, issued from what the database kept."""
        return holder_proof(self.sessions, bundle_path, sequence, account_id)

    def verify(self, bundle_path: Path, services: EvmNode) -> Report:
        """What an auditor runs: the independent verifier against the live nodes."""
        trust = self.workdir / TRUST_FILE_NAME
        return verify_reserve(
            bundle_path,
            verifier_nodes(node_endpoints(self.bitcoin, self.evm, services), self.second_chain),
            trust if trust.exists() else None,
        )

"""Set-up for the reconciler's authority tests: real ceremonies, a verified roster, signed statements.

One world holds both chains, anchored in the same three ceremonies (``reconcile_support``): the
Bitcoin vault over their seeds, a Safe owned by the same seeds' Ethereum keys, the treasury's
institutions named as the ceremonies, and a roster chain founded the treasury's way
(``treasury.authority.genesis``: each ceremony's shares sign the genesis), so the reconciler's
``verify_roster`` checks ceremony signatures, transcripts and the audit log for real. The
approvers, the policy, the decree and the allowlist are signed into the chain by the admins.

``approved_btc_spend`` / ``approved_safe_spend`` are the legitimate path: a proposal row and its
prepared transaction, statements signed by two institutions' approvers and stored through
``add_statement``, and custody's own gated signers, which verify those statements before signing.
Everything else a test does to the database is what an attacker with write access could do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from authority_support import k1_public, k1_sign, private_key
from embit.psbt import PSBT
from reconcile_support import INSTITUTIONS, BtcWorld, Db, btc_world, deployed, migrated, rng_for
from sqlalchemy import Engine, text

from custody.authority import (
    AllowlistAdded,
    ApprovalStatement,
    AuthorityEvidence,
    DecreeAdded,
    OfficerAdded,
    OfficerEntry,
    OfficerRole,
    PolicySet,
    RecordKind,
    RecordSignature,
    SignedStatement,
    SpendUnderReview,
    StatementKind,
    next_record,
    policy_hash_of,
)
from custody.authority.roster_bodies import RecordBody
from custody.bitcoin import Payment, broadcast_spend, build_spend, load_vault, sign_spend
from custody.bitcoin.psbt import parse_psbt
from custody.bitcoin.signer import spend_under_review as btc_spend_under_review
from custody.devnet import BitcoinNode, EvmNode
from custody.ethereum import EthChain, KeyQuorum, SafeVaults, SigningPolicy, owners_from_cosigners
from custody.ethereum.safe_tx import SafeTx
from custody.ethereum.signer import decode_action
from custody.ethereum.signer import spend_under_review as safe_spend_under_review
from custody.keys import cosigner_keys, signing_keys
from custody.shamir import combine_shares, parse_shares
from treasury.authority.genesis import build_genesis, ceremony_key_of, commit_genesis, sign_genesis
from treasury.authority.store import add_statement, append_record, load_records, statements_for
from treasury.officers import Founding, Officer, Role, add_institution, add_officer
from treasury.policy import LegalBasis, add_legal_basis
from treasury.proposals import ProposalState
from treasury.proposals.tables import PreparedTxRow, SpendProposalRow

CODES = {"MOF": INSTITUTIONS[0], "NB": INSTITUTIONS[1], "AC": INSTITUTIONS[2]}
"""The treasury's institution codes, named as the ceremonies ``reconcile_support`` runs."""
NAME_OF = {code: name for code, name in CODES.items()}
CODE_OF = {name: code for code, name in CODES.items()}
DECREE = "DECREE-2026-RC"
POLICY_DOCUMENT = '{"limits":{"BTC":"1000000000"},"version":"reconcile-authority"}'
MAX_FEE_SATS = 50_000
FEE_RATE = Decimal(5)
SAFE_NAME = "reserve-eth"
STATEMENT_TTL = timedelta(hours=1)
FOUNDING = Founding("setup")


@dataclass
class AuthorityWorld:
    """Both vaults, the treasury's officers and their keys, the founded roster."""

    db: Db
    btc: BtcWorld
    officers: dict[str, Officer]
    secrets: dict[str, bytes]
    legal_basis_id: int
    destinations: dict[str, str]
    """Asset -> the allowlisted destination the approved spends pay."""
    evm: EvmNode | None = None
    vaults: SafeVaults | None = None
    safe: str | None = None
    quorums: dict[str, KeyQuorum] = field(default_factory=dict)

    @property
    def sessions(self):  # type: ignore[no-untyped-def]
        return self.db.sessions

    def officer_id(self, name: str) -> str:
        return str(self.officers[name].id)

    # --- the roster -------------------------------------------------------------------------

    def append(self, kind: RecordKind, body: RecordBody, signers: list[str]) -> None:
        """Append a record signed by the named officers' keys, through the treasury's store."""
        with self.sessions() as session:
            previous = load_records(session)[-1]
        record = next_record(previous, kind, body)
        for name in signers:
            record = record.with_signature(
                RecordSignature(
                    self.officer_id(name),
                    k1_public(self.secrets[name]).key_id,
                    k1_sign(self.secrets[name], record.record_hash()),
                )
            )
        with self.sessions.begin() as session:
            append_record(session, record)

    def allow(self, asset: str, address: str) -> None:
        self.append(
            RecordKind.ALLOWLIST_ADDED,
            AllowlistAdded(asset, address, "payee"),
            ["MOF admin", "NB admin"],
        )

    # --- proposals and statements -----------------------------------------------------------

    def proposal(self, asset: str, amount: int, destination: str) -> int:
        """A proposal row (what the workflow stores; the reconciler trusts none of it)."""
        with self.sessions.begin() as session:
            row = SpendProposalRow(
                asset=asset,
                amount=amount,
                destination=destination,
                purpose="reconciler authority test",
                legal_basis_id=self.legal_basis_id,
                proposer_id=self.officers["MOF proposer"].id,
                state=ProposalState.APPROVED.value,
                created_at=datetime.now(UTC),
            )
            session.add(row)
            session.flush()
            return row.id

    def prepare(self, proposal_id: int, tx_hash: str, payload: dict[str, object], fee: int) -> None:
        with self.sessions.begin() as session:
            session.add(
                PreparedTxRow(
                    proposal_id=proposal_id,
                    tx_hash=tx_hash,
                    summary=json.dumps({"test": "reconcile authority"}),
                    payload=json.dumps(payload),
                    fee=fee,
                    prepared_at=datetime.now(UTC),
                )
            )

    def statement(
        self,
        proposal_id: int,
        spend: SpendUnderReview,
        vault: str,
        approver: str,
        *,
        kind: StatementKind = StatementKind.APPROVE,
        max_fee: int | None = None,
    ) -> SignedStatement:
        """``approver``'s statement on exactly ``spend``, signed with their key."""
        officer = self.officers[approver]
        statement = ApprovalStatement(
            kind=kind,
            proposal_id=str(proposal_id),
            chain=spend.chain,
            vault=vault,
            vault_id=spend.vault_id,
            asset=spend.asset,
            amount=spend.amount,
            destination=spend.destination,
            tx_hash=spend.tx_hash,
            safe_nonce=spend.safe_nonce,
            max_fee=max_fee,
            policy_hash=policy_hash_of(POLICY_DOCUMENT),
            legal_basis=DECREE,
            expires_at=(datetime.now(UTC) + STATEMENT_TTL).replace(microsecond=0),
            officer_id=str(officer.id),
            institution=officer.institution_code,
        )
        secret = self.secrets[approver]
        return SignedStatement(
            statement, k1_public(secret).key_id, k1_sign(secret, statement.digest())
        )

    def store(self, proposal_id: int, signed: SignedStatement) -> None:
        with self.sessions.begin() as session:
            add_statement(session, proposal_id, signed)

    def evidence(self, proposal_id: int) -> AuthorityEvidence:
        with self.sessions() as session:
            return AuthorityEvidence(load_records(session), statements_for(session, proposal_id))

    def mark_broadcast(self, proposal_id: int, txid: str) -> None:
        with self.sessions.begin() as session:
            row = session.get_one(SpendProposalRow, proposal_id)
            row.state = ProposalState.BROADCAST.value
            row.txid = txid

    # --- Bitcoin ------------------------------------------------------------------------------

    def build_btc(self, to: str, amount: int) -> tuple[int, PSBT]:
        """A custody spend (a row in custody_btc_spends) and its unsigned PSBT."""
        with self.sessions.begin() as session:
            spend = build_spend(
                session, self.btc.node.rpc, self.btc.vault.name, [Payment(to, amount)],
                FEE_RATE, MAX_FEE_SATS,
            )  # fmt: skip
            return spend.id, parse_psbt(spend.unsigned_psbt)

    def btc_spend(self, psbt: PSBT) -> SpendUnderReview:
        """What the PSBT does, decoded by custody's signer code (as an officer's screen shows)."""
        with self.sessions() as session:
            return btc_spend_under_review(psbt, load_vault(session, self.btc.vault.name).descriptor)

    def btc_proposal(self, to: str, amount: int) -> tuple[int, int, PSBT]:
        """A proposal whose current prepared transaction is a fresh custody spend."""
        spend_id, psbt = self.build_btc(to, amount)
        proposal_id = self.proposal("BTC", amount, to)
        payload = {"spend_id": spend_id, "psbt": psbt.to_string()}
        self.prepare(proposal_id, self.btc_spend(psbt).tx_hash, payload, int(psbt.fee()))
        return proposal_id, spend_id, psbt

    def approve_btc(self, proposal_id: int, psbt: PSBT) -> None:
        """Two institutions' approvers sign statements on the PSBT; the treasury stores them."""
        spend = self.btc_spend(psbt)
        for approver in ("MOF approver", "NB approver"):
            signed = self.statement(
                proposal_id, spend, self.btc.vault.name, approver, max_fee=MAX_FEE_SATS
            )
            self.store(proposal_id, signed)

    def approved_btc_spend(self, amount: int) -> tuple[int, str]:
        """The legitimate path end to end: statements, custody's gated signers, broadcast."""
        proposal_id, spend_id, psbt = self.btc_proposal(self.destinations["BTC"], amount)
        self.approve_btc(proposal_id, psbt)
        evidence = self.evidence(proposal_id)
        for institution in INSTITUTIONS[:2]:
            with self.sessions.begin() as session:
                signed = sign_spend(
                    session, spend_id, institution,
                    parse_shares(self.btc.shares[institution][:2]), "", authority=evidence,
                )  # fmt: skip
            assert signed.authorization is not None  # the signer itself verified the statements
        with self.sessions.begin() as session:
            txid = broadcast_spend(session, self.btc.node.rpc, spend_id)
        self.mark_broadcast(proposal_id, txid)
        return proposal_id, txid

    def sign_out_of_band(self, psbt: PSBT) -> str:
        """What a thief with two quorums of shares does with a PSBT: sign it with embit, send it."""
        signed = []
        for institution in INSTITUTIONS[:2]:
            fingerprint = next(
                t.fingerprint for t in self.btc.vault.cosigners if t.institution == institution
            )
            seed = combine_shares(parse_shares(self.btc.shares[institution][:2]), "")
            with signing_keys(seed, fingerprint) as keys:
                copy = PSBT.from_string(psbt.to_string())
                copy.sign_with(keys.bitcoin_root)
                signed.append(copy.to_string())
        rpc = self.btc.node.rpc
        final = rpc.call("finalizepsbt", rpc.call("combinepsbt", signed))
        assert final["complete"]
        return str(rpc.call("sendrawtransaction", final["hex"]))

    # --- Ethereum -----------------------------------------------------------------------------

    @property
    def chain(self) -> EthChain:
        assert self.vaults is not None
        return self.vaults.chain

    @property
    def relayer(self) -> str:
        return self.chain.accounts()[0]

    def fund_safe(self, amount_wei: int) -> None:
        assert self.safe is not None
        self.chain.transact(self.relayer, self.safe, b"", value=amount_wei, action="fund")

    def safe_spend(self, safe_tx: SafeTx) -> SpendUnderReview:
        return safe_spend_under_review(safe_tx, decode_action(safe_tx, SigningPolicy()))

    def safe_proposal(self, to: str, amount_wei: int) -> tuple[int, SafeTx]:
        """A proposal whose current prepared transaction is a stored SafeTx (safe_transactions)."""
        assert self.vaults is not None
        safe_tx = self.vaults.propose_ether_transfer(SAFE_NAME, to, amount_wei)
        proposal_id = self.proposal("ETH", amount_wei, to)
        self.prepare(proposal_id, safe_tx.hash_hex, {"safe_tx_hash": safe_tx.hash_hex}, 0)
        return proposal_id, safe_tx

    def approved_safe_spend(self, amount_wei: int) -> tuple[int, str]:
        """The legitimate path on the Safe: statements, custody's gated cosigners, execution."""
        assert self.vaults is not None
        proposal_id, safe_tx = self.safe_proposal(self.destinations["ETH"], amount_wei)
        spend = self.safe_spend(safe_tx)
        for approver in ("MOF approver", "NB approver"):
            self.store(proposal_id, self.statement(proposal_id, spend, SAFE_NAME, approver))
        evidence = self.evidence(proposal_id)
        policy = SigningPolicy()
        for institution in INSTITUTIONS[:2]:
            signed = self.vaults.cosign(
                self.vaults.approval(safe_tx.hash_hex, policy),
                self.quorums[institution],
                policy,
                authority=evidence,
            )
            assert signed.authorization is not None
        receipt = self.vaults.execute(safe_tx.hash_hex, self.relayer)
        self.mark_broadcast(proposal_id, receipt.tx_hash)
        return proposal_id, receipt.tx_hash

    def owner_key(self, institution: str):  # type: ignore[no-untyped-def]
        """The institution's Safe owner key, recombined from its shares (a thief's view)."""
        fingerprint = self.quorums[institution].fingerprint
        seed = combine_shares(parse_shares(self.btc.shares[institution][:2]), "")
        with signing_keys(seed, fingerprint) as keys:
            return keys.eth_key


# --- building the world ----------------------------------------------------------------------


def _people(world_db: Db) -> dict[str, Officer]:
    now = datetime.now(UTC)
    people: dict[str, Officer] = {}
    with world_db.sessions.begin() as session:
        for code, name in CODES.items():
            add_institution(session, code, name, actor=FOUNDING, now=now)
            admin = add_officer(
                session, code, f"{code} admin", [Role.ADMIN], actor=FOUNDING, now=now
            )
            people[f"{code} admin"] = admin
            people[f"{code} approver"] = add_officer(
                session, code, f"{code} approver", [Role.APPROVER], actor=admin, now=now
            )
        people["MOF proposer"] = add_officer(
            session, "MOF", "MOF proposer", [Role.PROPOSER], actor=people["MOF admin"], now=now
        )
    return people


def _found_roster(world: AuthorityWorld) -> None:
    """The genesis signed by each ceremony's shares, then approvers, policy and decree."""
    shares = {code: world.btc.shares[name][:2] for code, name in CODES.items()}
    with world.sessions() as session:
        ceremony_keys = {
            code: ceremony_key_of(session, code, s, "")[1] for code, s in shares.items()
        }
        admin_keys = {code: k1_public(world.secrets[f"{code} admin"]) for code in CODES}
        genesis = build_genesis(session, admin_keys, ceremony_keys, name="reconcile-authority")
        for code in CODES:
            genesis = sign_genesis(session, genesis, code, shares[code], "")
    with world.sessions.begin() as session:
        commit_genesis(session, genesis)
    for code in CODES:
        name = f"{code} approver"
        entry = OfficerEntry(
            world.officer_id(name), name, code, frozenset({OfficerRole.APPROVER}),
            (k1_public(world.secrets[name]),),
        )  # fmt: skip
        world.append(RecordKind.OFFICER_ADDED, OfficerAdded(entry), [f"{code} admin"])
    world.append(
        RecordKind.POLICY_SET,
        PolicySet(policy_hash_of(POLICY_DOCUMENT), POLICY_DOCUMENT),
        ["MOF admin", "NB admin"],
    )
    expires = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    world.append(
        RecordKind.DECREE_ADDED,
        DecreeAdded(DECREE, "Reserve rebalancing", expires, {"BTC": 10**9, "ETH": 10**20}),
        ["MOF admin", "NB admin"],
    )
    for asset, address in world.destinations.items():
        world.allow(asset, address)


def authority_world(
    db_url: str,
    node: BitcoinNode,
    folder: Path,
    seed: int,
    name: str,
    evm: EvmNode | None = None,
) -> AuthorityWorld:
    """Ceremonies and a Bitcoin vault (and, with ``evm``, a Safe), officers and a founded roster."""
    db = migrated(db_url)
    btc = btc_world(db, node, folder, seed, name)
    people = _people(db)
    secrets = {person: private_key(f"{name} officer key of {person}") for person in people}
    with db.sessions.begin() as session:
        legal_basis_id = add_legal_basis(
            session,
            people["MOF admin"],
            LegalBasis(
                DECREE, "Reserve rebalancing", datetime.now(UTC) + timedelta(days=30),
                {"BTC": 10**9, "ETH": 10**20},
            ),
            now=datetime.now(UTC),
        )  # fmt: skip
    payee = str(node.rpc.wallet("miner").call("getnewaddress", "", "bech32"))
    destinations = {"BTC": payee}
    world = AuthorityWorld(db, btc, people, secrets, legal_basis_id, destinations)
    if evm is not None:
        _with_safe(world, evm, seed, name)
    _found_roster(world)
    return world


ETH_PAYEE = "0x000000000000000000000000000000000000bEEF"


def _with_safe(world: AuthorityWorld, evm: EvmNode, seed: int, name: str) -> None:
    """A 2-of-3 Safe whose owners are the ceremonies' own Ethereum keys."""
    chain = EthChain(evm.rpc)
    deployed(chain)
    vaults = SafeVaults(chain, world.sessions, random_bytes=rng_for(seed, name, "safe").randbytes)
    cosigners = []
    for institution in INSTITUTIONS:
        shares = parse_shares(world.btc.shares[institution][:2])
        keys = cosigner_keys(combine_shares(shares, ""))
        cosigners.append((institution, keys))
        world.quorums[institution] = KeyQuorum(institution, shares, "", keys.fingerprint)
    salt = rng_for(seed, name, "salt").getrandbits(128)
    world.safe = vaults.create(
        SAFE_NAME, owners_from_cosigners(cosigners), 2, payer=chain.accounts()[0], salt_nonce=salt
    ).address
    world.evm, world.vaults = evm, vaults
    world.destinations["ETH"] = ETH_PAYEE


# --- a database writer ------------------------------------------------------------------------


def drop_statement_triggers(engine: Engine) -> None:
    """What a database owner can do: drop the append-only triggers of approval_statements."""
    with engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            for suffix in ("immutable_update", "immutable_delete"):
                connection.execute(text(f"DROP TRIGGER approval_statements_{suffix}"))
        else:
            for suffix in ("immutable", "no_truncate"):
                connection.execute(
                    text(f"DROP TRIGGER approval_statements_{suffix} ON approval_statements")
                )


__all__ = [
    "CODE_OF",
    "ETH_PAYEE",
    "MAX_FEE_SATS",
    "NAME_OF",
    "AuthorityWorld",
    "authority_world",
    "drop_statement_triggers",
]

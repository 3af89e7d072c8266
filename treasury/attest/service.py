"""``attest``: snapshot, liabilities, proofs of control, two signatures, two anchors, one record.

The steps, each reported through ``progress``:

1. the previous attestation (from the database) fixes this one's sequence and previous digest;
2. the attestation registry on the services chain (deployed once, its address recorded);
3. the snapshot: every vault coin and Safe balance at one confirmed block per chain (every
   configured EVM chain: the reserve's first, and ``AttestNodes.evm_chains``);
4. the liabilities: the ledger's fund accounts, and optionally a CSV, into the sum tree;
5. the audit log's head and the pending encumbrances; the bundle is built;
6. proofs of control through the institutions' share quorums: the BIP-127 reserve proof
   (``custody.bitcoin.reserve_proof``) and each Safe's EIP-1271 signature
   (``custody.ethereum.safe_message``), of the bytes ``treasury.attest.proofs`` derives from the
   body; the reserve proof is checked with the auditors' own checker before anything is published;
7. the treasury signs, the state audit office countersigns (two separate keys);
8. the digest is anchored on Bitcoin (OP_RETURN) and in the registry;
9. the bundle is recorded and written to its file.

Nothing is anchored unless every earlier step succeeded. Keys and share words are never stored
or logged; the liability tree's secret (nonce, leaf records) is kept in ``liability_secrets`` in the
same transaction, so holders' proof packages can be issued later (``treasury proofs issue``).
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from reserve_verifier import VerifierError, check_reserve_psbt
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from web3 import Web3

from custody.bitcoin.descriptor import VaultDescriptor
from custody.bitcoin.reserve_proof import (
    ReserveClaim,
    VaultCoin,
    build_reserve_proof,
    finalize_reserve_proof,
    sign_reserve_proof_with_shares,
)
from custody.bitcoin.vault import Vault as BitcoinVault
from custody.bitcoin.vault import load_vault
from custody.ceremony import load_transcript
from custody.clock import Clock, utc_now
from custody.ethereum.chain import EthChain
from custody.ethereum.records import SafeVaultRow
from custody.ethereum.safe_vaults import SafeVaults
from custody.ethereum.signer import KeyQuorum
from custody.ethereum.vault import Vault as SafeVault
from custody.nodes import BitcoinEndpoint as BitcoinEndpoint  # re-exported: the attest API names it
from custody.records import VaultRecord
from custody.shamir import ShareMnemonic
from reporting.anchor import BitcoinWalletRPC, anchor, deploy_registry
from reporting.announcement import registry_publisher
from reporting.attestation import (
    AttestationInputs,
    AuditHead,
    BitcoinSnapshot,
    Encumbrance,
    EvmSnapshot,
    KeySigner,
    RegistryRef,
    build_attestation,
    sign_bundle,
)
from reporting.bundle import GENESIS_DIGEST_HEX, Bundle, canonical_json
from reporting.sumtree import LiabilityTree
from treasury import audit
from treasury.attest.account_proofs import keep_liability_tree
from treasury.attest.assets import add_chain_assets, bitcoin_registry, vault_set
from treasury.attest.encumbrances import bitcoin_encumbrances, safe_encumbrances
from treasury.attest.errors import AttestError
from treasury.attest.liabilities import (
    fund_balances,
    ledger_totals,
    liability_tree,
    read_liabilities_csv,
)
from treasury.attest.proofs import reserve_claim, sign_attestation
from treasury.attest.records import AttestationRecord, RegistryRecord
from treasury.attest.snapshot import ETHER_ASSET, bitcoin_snapshot, evm_snapshot
from treasury.chains import ConnectedChain
from treasury.ledger import Asset
from treasury.reconcile.records import TrackedTokenRow

log = logging.getLogger(__name__)

NONCE_BYTES = 32
"""The liability tree's per-snapshot salt nonce."""
ERC20_ASSET_PREFIX = "ERC20:"
"""Ledger asset codes of ERC-20 tokens: ``ERC20:<contract address>`` (``treasury.ledger``)."""
BUNDLE_FILE_MODE = 0o644
"""A bundle is public: anyone may read it."""

Progress = Callable[[str], None]


@dataclass(frozen=True)
class AttestNodes:
    """The chains an attestation reads and writes."""

    bitcoin: BitcoinEndpoint
    anchor_wallet: str
    """The bitcoind wallet that pays the OP_RETURN anchor's fee (not a vault)."""
    reserve: EthChain
    """The reserve's first EVM chain (native coin ``ETH``, depth ``confirmations_evm``)."""
    services: Web3
    evm_chains: tuple[ConnectedChain, ...] = ()
    """The further EVM reserve chains (``treasury.chains``), each with its native coin and depth."""

    def chains(self, confirmations: int) -> tuple[ChainToAttest, ...]:
        """Every EVM reserve chain, the first one first (its depth ``confirmations``)."""
        first = ChainToAttest(self.reserve, ETHER_ASSET, confirmations)
        further = (
            ChainToAttest(c.chain, c.native_asset, c.settings.confirmations)
            for c in self.evm_chains
        )
        chains = (first, *further)
        ids = [c.chain.chain_id for c in chains]
        if len(set(ids)) != len(ids):
            raise AttestError(f"Two of the EVM nodes given serve the same chain ({ids}).")
        return chains


@dataclass(frozen=True)
class ChainToAttest:
    """One EVM chain of an attestation: its node, its native coin's code and its depth."""

    chain: EthChain
    native_asset: str
    confirmations: int


class InstitutionShares:
    """One institution's share holders at the table: their shares and the passphrase."""

    __slots__ = ("_passphrase", "_shares", "institution")

    def __init__(
        self, institution: str, shares: Sequence[ShareMnemonic], passphrase: str = ""
    ) -> None:
        self.institution = institution
        self._shares = tuple(shares)
        self._passphrase = passphrase

    def __repr__(self) -> str:
        return (
            f"InstitutionShares(institution={self.institution!r}, "
            f"shares=<{len(self._shares)} redacted>, passphrase=<redacted>)"
        )

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("Institution shares are not picklable: they hold share words.")

    def sign_reserve_proof(
        self,
        psbt: str,
        claim: ReserveClaim,
        vaults: Mapping[str, VaultDescriptor],
        fingerprint: str,
    ) -> str:
        """This institution's signatures on the reserve proof (recombine, check, sign, wipe)."""
        return sign_reserve_proof_with_shares(
            psbt, claim, vaults, self._shares, self._passphrase, fingerprint
        )

    def quorum(self, fingerprint: str) -> KeyQuorum:
        """The Safe signer's view of these shares."""
        return KeyQuorum(self.institution, self._shares, self._passphrase, fingerprint)


@dataclass(frozen=True)
class AttestOptions:
    """Choices of one attestation run."""

    confirmations_bitcoin: int = 1
    confirmations_evm: int = 1
    csv: Path | None = None
    """An external liabilities list: ``account id, asset, amount`` rows."""
    csv_itemises: str | None = None
    """The ledger fund account the CSV itemises (its own leaf is then left out)."""
    tokens: Mapping[str, str] | None = None
    """Asset code -> ERC-20 contract to read from every Safe; default: the ledger's ERC-20 assets."""
    public_accounts: tuple[str, ...] | None = None
    """Accounts published in full; default: every ledger fund account (the state's budget lines)."""
    out: Path | None = None


@dataclass(frozen=True)
class AttestResult:
    """The anchored bundle, its liability tree (for issuing account proofs) and where it went."""

    bundle: Bundle
    liabilities: LiabilityTree
    record_id: int
    path: Path | None


def publisher_account(treasury: KeySigner) -> LocalAccount:
    """The registry publisher: the treasury's attestation key (the designated publisher)."""
    account: LocalAccount = Account.from_key(treasury.private_key)
    return account


def previous_attestation(session: Session) -> AttestationRecord | None:
    """The latest recorded attestation, if any."""
    return session.scalar(
        select(AttestationRecord).order_by(AttestationRecord.sequence.desc()).limit(1)
    )


def ensure_registry(
    session: Session, services: Web3, publisher: LocalAccount, *, clock: Clock = utc_now
) -> RegistryRef:
    """The recorded registry of the services chain, deployed and recorded on first use.

    Who may publish is the registry's own ``publisher()``, read each time: a treasury key
    rotation hands it over on chain (``treasury announce key-rotation``) and then records it; if
    that run stopped in between, the record is brought up to the chain here, so the new key
    attests without the command being re-run. A key the registry does not accept is refused
    before anything is built.
    """
    chain_id = int(services.eth.chain_id)
    record = session.scalar(select(RegistryRecord).where(RegistryRecord.chain_id == chain_id))
    if record is None:
        address = deploy_registry(services, publisher, publisher.address)
        record = RegistryRecord(
            chain_id=chain_id, address=address, publisher=publisher.address, deployed_at=clock()
        )
        session.add(record)
        session.flush()
        log.info("attestation registry deployed: chain_id=%d address=%s", chain_id, address)
    on_chain = registry_publisher(services, record.address)
    if on_chain != publisher.address:
        recorded = "" if record.publisher == on_chain else f" (recorded: {record.publisher})"
        raise AttestError(
            f"The registry {record.address} on chain {chain_id} accepts only publisher "
            f"{on_chain}{recorded}, but the treasury key is {publisher.address}; after a key "
            "rotation, attest with the key in force."
        )
    if record.publisher != on_chain:
        log.warning(
            "registry publisher handed over on chain but not recorded; recording it: "
            "chain_id=%d registry=%s recorded=%s publisher=%s",
            chain_id,
            record.address,
            record.publisher,
            on_chain,
        )
        record_publisher(session, record, on_chain, actor="attest", clock=clock)
    return RegistryRef(chain_id, record.address, record.publisher)


def record_publisher(
    session: Session,
    record: RegistryRecord,
    publisher: str,
    *,
    actor: str,
    clock: Clock = utc_now,
) -> None:
    """Record the registry's new publisher, as the chain already says, with its audit event in
    the same transaction (who may publish the reserve's attestations is an audited fact)."""
    previous = record.publisher
    record.publisher = publisher
    session.flush()
    audit.append(
        session,
        kind=audit.AuditKind.REGISTRY_PUBLISHER,
        actor=actor,
        refs={"registry": record.address, "chain_id": record.chain_id},
        payload={"previous_publisher": previous, "publisher": publisher},
        clock=clock,
    )


def ledger_tokens(session: Session) -> dict[str, str]:
    """ERC-20 assets registered in the ledger: asset code -> contract address."""
    codes = session.scalars(select(Asset.code).order_by(Asset.code))
    return {
        code: code[len(ERC20_ASSET_PREFIX) :]
        for code in codes
        if code.startswith(ERC20_ASSET_PREFIX)
    }


def tokens_by_chain(
    session: Session, tokens: Mapping[str, str], chain_ids: Sequence[int]
) -> dict[int, dict[str, str]]:
    """Chain id -> the tokens (asset code -> contract) read from that chain's Safes.

    A token tracked on exactly one of the attested chains is read there; any other (tracked
    nowhere, as a ledger asset registered by hand) on the first chain, as before chains were
    configured. A token tracked on two attested chains is refused: its one asset code would
    name two contracts.
    """
    tracked: dict[str, set[int]] = {}
    for row in session.scalars(select(TrackedTokenRow)):
        if row.chain_id in chain_ids:
            tracked.setdefault(row.address.lower(), set()).add(row.chain_id)
    found: dict[int, dict[str, str]] = {chain_id: {} for chain_id in chain_ids}
    for code, contract in tokens.items():
        chains = tracked.get(contract.lower(), set())
        if len(chains) > 1:
            raise AttestError(
                f"The token {code} is tracked on chains {sorted(chains)}; one asset code cannot "
                "name a contract on two chains."
            )
        found[chains.pop() if chains else chain_ids[0]][code] = contract
    return found


def _bitcoin_vaults(session: Session) -> list[BitcoinVault]:
    names = session.scalars(select(VaultRecord.name).order_by(VaultRecord.name))
    return [load_vault(session, name) for name in names]


def _reserve_proof(
    session: Session,
    bundle: Bundle,
    vaults: Sequence[BitcoinVault],
    coins: Sequence[VaultCoin],
    institutions: Sequence[InstitutionShares],
    snapshot: BitcoinSnapshot,
    progress: Progress,
) -> str:
    """Build, have a threshold of institutions sign, and finalise the BIP-127 reserve proof."""
    used = {coin.vault_name for coin in coins}
    descriptors = {vault.name: vault.descriptor for vault in vaults if vault.name in used}
    claim = reserve_claim(bundle.body)
    psbt = build_reserve_proof(claim, coins, descriptors)
    needed = max(descriptors[name].threshold for name in descriptors)
    signed: list[str] = []
    for institution in institutions:
        fingerprint = load_transcript(session, institution.institution).fingerprint
        if not all(fingerprint in d.fingerprints for d in descriptors.values()):
            continue
        progress(f"  {institution.institution} signs the reserve proof")
        signed.append(institution.sign_reserve_proof(psbt, claim, descriptors, fingerprint))
        if len(signed) == needed:
            break
    if len(signed) < needed:
        raise AttestError(
            f"{len(signed)} cosigner institution(s) signed the reserve proof; the vaults need "
            f"{needed}. Bring the share holders of more cosigner institutions."
        )
    final = finalize_reserve_proof(signed, claim, descriptors)
    try:
        check_reserve_psbt(
            base64.b64decode(final),
            bundle.digest,
            [(u.txid, u.vout, u.amount_sats, u.script_pubkey) for u in snapshot.utxos],
            snapshot.network,
        )
    except VerifierError as exc:
        raise AttestError(f"The reserve proof fails the auditors' check: {exc}") from None
    return final


def _eip1271(
    session: Session,
    bundle: Bundle,
    chains: Sequence[EthChain],
    institutions: Sequence[InstitutionShares],
    progress: Progress,
) -> list[dict[str, object]]:
    """Each Safe's EIP-1271 signature of the digest, on its own chain, from its owners' share
    quorums."""
    sessions = sessionmaker(bind=session.get_bind())
    by_chain = {chain.chain_id: SafeVaults(chain, sessions) for chain in chains}
    by_address = {
        (row.chain_id, row.address.lower()): row.name
        for row in session.scalars(
            select(SafeVaultRow).where(SafeVaultRow.chain_id.in_(list(by_chain)))
        )
    }
    proofs: list[dict[str, object]] = []
    for slot in bundle.body["proofs_of_control"]["eip1271"]:
        chain_id = int(slot["chain_id"])
        name = by_address[(chain_id, str(slot["safe_address"]).lower())]
        vaults = by_chain[chain_id]
        vault = vaults.vault(name)
        roster = {owner.institution: owner.fingerprint for owner in vault.owners}
        quorums = [
            shares.quorum(roster[shares.institution])
            for shares in institutions
            if shares.institution in roster
        ]
        progress(f"  owners sign for Safe {vault.address} ({vault.threshold} of {len(roster)})")
        signature = sign_attestation(vaults, name, bundle.body, quorums)
        proofs.append(
            {
                "chain_id": slot["chain_id"],
                "safe_address": slot["safe_address"],
                "signature": signature.hex(),
            }
        )
    return proofs


def attest(
    session: Session,
    nodes: AttestNodes,
    *,
    treasury: KeySigner,
    auditor: KeySigner,
    institutions: Sequence[InstitutionShares],
    await_bitcoin_confirmation: Callable[[str], None],
    options: AttestOptions = AttestOptions(),
    random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    clock: Clock = utc_now,
    progress: Progress = lambda _line: None,
) -> AttestResult:
    """Produce, prove, sign, anchor, record and (optionally) write the next attestation.

    Flushes its records into ``session`` (the caller commits). Raises an ``AttestError``, a
    ``CustodyError`` or a ``ReportingError`` naming what failed; nothing is anchored then.
    """
    publisher = publisher_account(treasury)
    previous = previous_attestation(session)
    sequence = previous.sequence + 1 if previous else 1
    previous_digest = previous.digest if previous else GENESIS_DIGEST_HEX
    progress(f"attestation {sequence} (previous {previous_digest[:16]}...)")
    chains = nodes.chains(options.confirmations_evm)
    ids = [c.chain.chain_id for c in chains]
    every_safe = SafeVaults(nodes.reserve, sessionmaker(bind=session.get_bind())).vaults()
    unread = sorted({safe.chain_id for safe in every_safe} - set(ids))
    if unread:
        raise AttestError(
            f"Safe vaults live on chain(s) {unread}, but no node of those chains was given "
            f"(chains given: {ids}); configure every EVM reserve chain (TREASURY_EVM_CHAINS), "
            "so no vault is left out of the attestation."
        )
    registry = ensure_registry(session, nodes.services, publisher, clock=clock)
    progress(f"registry {registry.address} on chain {registry.chain_id}")

    tokens = dict(options.tokens) if options.tokens is not None else ledger_tokens(session)
    btc_vaults = _bitcoin_vaults(session)
    bitcoin, coins = bitcoin_snapshot(
        nodes.bitcoin.rpc(), btc_vaults, confirmations=options.confirmations_bitcoin
    )
    progress(
        f"bitcoin snapshot at height {bitcoin.block.height}: {len(bitcoin.utxos)} coin(s) "
        f"in {len(btc_vaults)} vault(s)"
    )
    per_chain = tokens_by_chain(session, tokens, ids)
    snapshots: list[EvmSnapshot] = []
    safes: list[SafeVault] = []
    assets = bitcoin_registry(bitcoin.network)
    encumbered: list[Encumbrance] = []
    for target in chains:
        chain = target.chain
        here = [safe for safe in every_safe if safe.chain_id == chain.chain_id]
        evm = evm_snapshot(
            chain,
            here,
            per_chain[chain.chain_id],
            confirmations=target.confirmations,
            native_asset=target.native_asset,
        )
        progress(
            f"chain {evm.chain_id} snapshot at block {evm.block.height}: "
            f"{len(evm.balances)} balance(s) of {len(here)} Safe(s)"
        )
        add_chain_assets(
            assets, chain, target.native_asset, per_chain[chain.chain_id], evm.block.height
        )
        encumbered += safe_encumbrances(
            session, here, per_chain[chain.chain_id], target.native_asset
        )
        snapshots.append(evm)
        safes += here
    vaults = vault_set(btc_vaults, coins, safes)
    progress(
        f"asset registry: {', '.join(sorted(assets))}; vault set: "
        f"{len(vaults.bitcoin_scripts)} Bitcoin script(s), {len(vaults.safes)} Safe(s)"
    )

    funds = fund_balances(session)
    csv_rows = read_liabilities_csv(options.csv) if options.csv is not None else None
    holding_assets = {u.holding.asset for u in bitcoin.utxos} | {
        b.asset for evm in snapshots for b in evm.balances
    }
    tree = liability_tree(
        funds,
        csv_rows,
        random_bytes(NONCE_BYTES),
        extra_assets=holding_assets,
        itemises=options.csv_itemises,
    )
    progress(
        f"liabilities: {len(funds)} fund account(s)"
        + (f", {csv_rows.row_count} CSV row(s)" if csv_rows else "")
        + f", {tree.root.leaf_count} leaves"
    )
    head = audit.head(session)
    public = (
        options.public_accounts
        if options.public_accounts is not None
        else tuple(f.account for f in funds if f.account != options.csv_itemises)
    )
    inputs = AttestationInputs(
        sequence=sequence,
        previous_digest=previous_digest,
        as_of=clock(),
        bitcoin=bitcoin,
        evm=tuple(snapshots),
        liabilities=tree,
        ledger_totals=ledger_totals(funds),
        audit_head=AuditHead(head.sequence, head.hash),
        registry=registry,
        treasury=treasury,
        auditor=auditor,
        assets=assets,
        vaults=vaults,
        encumbrances=(*bitcoin_encumbrances(session), *encumbered),
        public_accounts=public,
    )
    bundle = build_attestation(inputs)
    progress(f"digest {bundle.digest.hex()}")
    for line in bundle.body["coverage"].values():
        progress(f"  {line['statement']}")

    if bitcoin.utxos:
        psbt = _reserve_proof(session, bundle, btc_vaults, coins, institutions, bitcoin, progress)
        bundle = bundle.with_proof("bitcoin_reserve_proof", {"psbt": psbt})
        progress("reserve proof (BIP-127) signed and checked")
    if bundle.body["proofs_of_control"]["eip1271"]:
        bundle = bundle.with_proof(
            "eip1271",
            _eip1271(session, bundle, [c.chain for c in chains], institutions, progress),
        )
        progress("EIP-1271 signatures accepted by every Safe")
    bundle = sign_bundle(sign_bundle(bundle, treasury), auditor)
    progress("signed by the treasury and countersigned by the audit office")

    endpoint = nodes.bitcoin
    wallet = BitcoinWalletRPC(endpoint.url, endpoint.user, endpoint.password, nodes.anchor_wallet)
    try:
        bundle = anchor(
            bundle,
            wallet,
            nodes.services,
            registry.address,
            publisher,
            await_bitcoin_confirmation=await_bitcoin_confirmation,
        )
    finally:
        wallet.close()
    progress(
        f"anchored: bitcoin {bundle.anchors['bitcoin']['txid']} at height "
        f"{bundle.anchors['bitcoin']['height']}, registry sequence "
        f"{bundle.anchors['services']['sequence']}"
    )
    record = AttestationRecord(
        sequence=sequence,
        digest=bundle.digest.hex(),
        previous_digest=previous_digest,
        bitcoin_anchor_txid=bundle.anchors["bitcoin"]["txid"],
        services_chain_id=registry.chain_id,
        services_anchor_tx=bundle.anchors["services"]["tx_hash"],
        anchors_json=canonical_json(dict(bundle.anchors)).decode(),
        bundle_json=bundle.to_bytes().decode(),
        created_at=clock(),
    )
    session.add(record)
    session.flush()
    keep_liability_tree(session, record, tree, clock=clock)
    if options.out is not None:
        write_bundle(bundle, options.out)
        progress(f"bundle written to {options.out}")
    log.info(
        "attestation published: sequence=%d digest=%s bitcoin_txid=%s",
        sequence,
        bundle.digest.hex(),
        bundle.anchors["bitcoin"]["txid"],
    )
    return AttestResult(bundle, tree, record.id, options.out)


def write_bundle(bundle: Bundle, path: Path) -> None:
    """Write the bundle file atomically (a temp file renamed into place), world-readable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(bundle.to_bytes())
    os.chmod(temporary, BUNDLE_FILE_MODE)
    temporary.replace(path)

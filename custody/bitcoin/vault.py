"""Bitcoin vaults: M-of-N P2WSH multisig over cosigner institutions' ceremony keys.

bitcoind watches a vault as a watch-only descriptor wallet (no private key ever reaches it) and
funds PSBTs from it. Every address shown to a user is derived by our code and must equal both
bitcoind's ``deriveaddresses`` and bitcoinlib's independent derivation; if any differ, nothing
is shown.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.bitcoin.crosscheck import sortedmulti_wsh_address
from custody.bitcoin.descriptor import Branch, VaultDescriptor
from custody.bitcoin.rpc import BitcoinRPC, btc_to_sats
from custody.bitcoin_network import BitcoinNetwork
from custody.ceremony import Transcript, ceremony_record
from custody.clock import Clock, utc_now
from custody.exceptions import (
    AddressMismatchError,
    BitcoinRPCError,
    UnknownVaultError,
    VaultConfigError,
)
from custody.records import VaultCosignerRecord, VaultRecord

log = logging.getLogger(__name__)

WALLET_PREFIX = "vault-"
IMPORT_RANGE_END = 999
"""bitcoind watches indices 0..this on both branches from the start; extended on demand."""
ADDRESS_GAP = 100
"""How far beyond the next receive index bitcoind keeps watching."""
BSMS_VERSION = "BSMS 1.0"


@dataclass(frozen=True)
class Vault:
    """A vault as stored: its descriptor, its cosigners and its bitcoind wallet."""

    name: str
    descriptor: VaultDescriptor
    cosigners: tuple[Transcript, ...]
    wallet_name: str
    receive_descriptor: str
    """With bitcoind's checksum, as imported."""
    change_descriptor: str
    next_receive_index: int
    created_at: datetime

    @property
    def threshold(self) -> int:
        return self.descriptor.threshold


@dataclass(frozen=True)
class VaultBalance:
    """Satoshis the vault's wallet sees, by confirmation state."""

    confirmed_sats: int
    unconfirmed_sats: int

    @property
    def total_sats(self) -> int:
        return self.confirmed_sats + self.unconfirmed_sats


def _vault_from_record(record: VaultRecord) -> Vault:
    cosigners = tuple(Transcript.from_record(c.ceremony) for c in record.cosigners)
    descriptor = VaultDescriptor(record.threshold, tuple(t.key_origin for t in cosigners))
    return Vault(
        name=record.name,
        descriptor=descriptor,
        cosigners=cosigners,
        wallet_name=record.wallet_name,
        receive_descriptor=record.receive_descriptor,
        change_descriptor=record.change_descriptor,
        next_receive_index=record.next_receive_index,
        created_at=record.created_at,
    )


def vault_record(session: Session, name: str) -> VaultRecord:
    record = session.scalar(select(VaultRecord).where(VaultRecord.name == name))
    if record is None:
        raise UnknownVaultError(
            f"No vault named {name!r} exists; create it with `treasury btc vault create`."
        )
    return record


def load_vault(session: Session, name: str) -> Vault:
    """The vault named ``name``; ``UnknownVaultError`` if there is none."""
    return _vault_from_record(vault_record(session, name))


def checked_address(rpc: BitcoinRPC, vault: Vault, branch: Branch, index: int) -> str:
    """Our address at ``branch``/``index``, after bitcoind and bitcoinlib derived the same one."""
    ours = vault.descriptor.address(branch, index)
    descriptor = vault.receive_descriptor if branch is Branch.RECEIVE else vault.change_descriptor
    theirs = rpc.call("deriveaddresses", descriptor, [index, index])[0]
    second = sortedmulti_wsh_address(
        vault.threshold,
        [t.account_xpub for t in vault.cosigners],
        int(branch),
        index,
        vault.descriptor.network,
    )
    if not ours == theirs == second:
        raise AddressMismatchError(
            f"Vault {vault.name!r} {branch.name.lower()} address {index} differs between our "
            f"derivation ({ours}), bitcoind ({theirs}) and bitcoinlib ({second}); not using it."
        )
    return ours


def _import_descriptors(wallet: BitcoinRPC, vault: Vault, range_end: int) -> None:
    requests = [
        {
            "desc": desc,
            "active": True,
            "internal": internal,
            "range": [0, range_end],
            "timestamp": "now",
        }
        for desc, internal in ((vault.receive_descriptor, False), (vault.change_descriptor, True))
    ]
    results = wallet.call("importdescriptors", requests)
    failed = [r for r in results if not r.get("success")]
    if failed:
        raise VaultConfigError(
            f"bitcoind refused the descriptors of vault {vault.name!r}: "
            f"{failed[0].get('error', {}).get('message', 'no reason given')}."
        )


def create_vault(
    session: Session,
    rpc: BitcoinRPC,
    name: str,
    threshold: int,
    institutions: Sequence[str],
    *,
    clock: Clock = utc_now,
) -> Vault:
    """Create an M-of-N vault over the named institutions' ceremony keys and register it.

    The vault is added to ``session`` and flushed (the caller commits). bitcoind gets a blank,
    watch-only descriptor wallet with the receive and change descriptors; their checksums from
    ``getdescriptorinfo`` must equal ours, and address 0 of each branch is cross-checked.
    """
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise VaultConfigError(
            f"Vault name {name!r} must be non-empty letters, digits, '-' or '_' "
            "(it names the bitcoind wallet)."
        )
    if len(set(institutions)) != len(institutions):
        raise VaultConfigError("An institution is listed twice; each cosigner holds one key.")
    if session.scalar(select(VaultRecord.id).where(VaultRecord.name == name)) is not None:
        raise VaultConfigError(f"A vault named {name!r} already exists; choose another name.")
    ceremonies = [ceremony_record(session, institution) for institution in institutions]
    cosigners = tuple(Transcript.from_record(c) for c in ceremonies)
    descriptor = VaultDescriptor(threshold, tuple(t.key_origin for t in cosigners))
    _refuse_same_addresses(session, descriptor)
    wallet_name = f"{WALLET_PREFIX}{name}"
    if wallet_name in rpc.call("listwallets") or wallet_name in _wallet_dirs(rpc):
        raise VaultConfigError(
            f"bitcoind already has a wallet named {wallet_name!r}; choose another vault name."
        )
    descriptors = {}
    for branch in Branch:
        info = rpc.call("getdescriptorinfo", descriptor.text(branch))
        ours = descriptor.text_with_checksum(branch)
        if info["descriptor"] != ours:
            raise AddressMismatchError(
                f"bitcoind normalises the {branch.name.lower()} descriptor to "
                f"{info['descriptor']!r}, which differs from ours {ours!r}."
            )
        descriptors[branch] = ours
    vault = Vault(
        name=name,
        descriptor=descriptor,
        cosigners=cosigners,
        wallet_name=wallet_name,
        receive_descriptor=descriptors[Branch.RECEIVE],
        change_descriptor=descriptors[Branch.CHANGE],
        next_receive_index=0,
        created_at=clock(),
    )
    for branch in Branch:
        checked_address(rpc, vault, branch, 0)
    rpc.call("createwallet", wallet_name, True, True, "", False, True, True)
    try:
        _import_descriptors(rpc.wallet(wallet_name), vault, IMPORT_RANGE_END)
        session.add(
            VaultRecord(
                name=name,
                threshold=threshold,
                wallet_name=wallet_name,
                receive_descriptor=vault.receive_descriptor,
                change_descriptor=vault.change_descriptor,
                next_receive_index=0,
                created_at=vault.created_at,
                cosigners=[
                    VaultCosignerRecord(ceremony_id=c.id, position=i)
                    for i, c in enumerate(ceremonies)
                ],
            )
        )
        session.flush()
    except BaseException:
        rpc.call("unloadwallet", wallet_name)
        raise
    log.info(
        "vault created: vault=%s threshold=%d cosigners=%s wallet=%s",
        name,
        threshold,
        ",".join(descriptor.fingerprints),
        wallet_name,
    )
    return vault


def _refuse_same_addresses(session: Session, descriptor: VaultDescriptor) -> None:
    """Two vaults over the same keys and threshold share every address (``sortedmulti`` ignores
    key order), so their coins and books would be mixed up: one such vault only."""
    first = descriptor.address(Branch.RECEIVE, 0)
    for record in session.scalars(select(VaultRecord)):
        existing = _vault_from_record(record)
        if existing.descriptor.address(Branch.RECEIVE, 0) == first:
            raise VaultConfigError(
                f"Vault {existing.name!r} already has these {len(descriptor.key_origins)} "
                f"cosigners with threshold {descriptor.threshold}, so it would share every "
                "address with the new vault; use that vault, or another threshold or cosigners."
            )


def _wallet_dirs(rpc: BitcoinRPC) -> list[str]:
    try:
        listed = rpc.call("listwalletdir")
    except BitcoinRPCError:
        return []
    return [w["name"] for w in listed.get("wallets", [])]


def next_receive_address(session: Session, rpc: BitcoinRPC, name: str) -> tuple[int, str]:
    """Hand out the vault's next unused receive address (index, address), cross-checked.

    The index is advanced in ``session`` (the caller commits); bitcoind's watched range is
    extended first if the index comes near its end.
    """
    record = vault_record(session, name)
    vault = _vault_from_record(record)
    index = record.next_receive_index
    address = checked_address(rpc, vault, Branch.RECEIVE, index)
    watched = _watched_range_end(rpc.wallet(vault.wallet_name), vault.receive_descriptor)
    if index + ADDRESS_GAP > watched:
        _import_descriptors(rpc.wallet(vault.wallet_name), vault, index + ADDRESS_GAP)
    record.next_receive_index = index + 1
    session.flush()
    log.info("receive address issued: vault=%s index=%d address=%s", name, index, address)
    return index, address


def _watched_range_end(wallet: BitcoinRPC, descriptor: str) -> int:
    checksum = descriptor.rsplit("#", 1)[-1]
    for entry in wallet.call("listdescriptors")["descriptors"]:
        if entry["desc"].rsplit("#", 1)[-1] == checksum:
            return int(entry["range"][1])
    return -1


def vault_balance(rpc: BitcoinRPC, vault: Vault) -> VaultBalance:
    """The vault's balance as its watch-only wallet sees it."""
    mine = rpc.wallet(vault.wallet_name).call("getbalances")["mine"]
    return VaultBalance(
        confirmed_sats=btc_to_sats(mine["trusted"]),
        unconfirmed_sats=btc_to_sats(mine["untrusted_pending"]),
    )


CARAVAN_NETWORKS = {
    BitcoinNetwork.MAIN: "mainnet",
    BitcoinNetwork.TEST: "testnet",
    BitcoinNetwork.SIGNET: "signet",
    BitcoinNetwork.REGTEST: "regtest",
}
"""Caravan's (and Sparrow's import's) name of each network."""


def caravan_config(vault: Vault) -> dict[str, Any]:
    """A Caravan-style wallet configuration (also readable by Sparrow's import)."""
    return {
        "name": vault.name,
        "addressType": "P2WSH",
        "network": CARAVAN_NETWORKS[vault.descriptor.network],
        "client": {"type": "public"},
        "quorum": {"requiredSigners": vault.threshold, "totalSigners": len(vault.cosigners)},
        "extendedPublicKeys": [
            {
                "name": t.institution,
                "bip32Path": t.account_path.replace("h", "'"),
                "xpub": t.account_xpub,
                "xfp": t.fingerprint,
            }
            for t in vault.cosigners
        ],
        "startingAddressIndex": 0,
        "descriptors": {"receive": vault.receive_descriptor, "change": vault.change_descriptor},
    }


def bsms_record(vault: Vault) -> str:
    """A BIP-129 (BSMS) descriptor record: version, template, path restrictions, first address."""
    template = vault.descriptor.text(Branch.RECEIVE).replace("/0/*", "/**")
    return "\n".join(
        (
            BSMS_VERSION,
            template,
            "/0/*,/1/*",
            vault.descriptor.address(Branch.RECEIVE, 0),
        )
    )


def export_vault(vault: Vault, fmt: str) -> str:
    """The vault's watch-only configuration as ``descriptor`` text, ``caravan`` JSON or ``bsms``."""
    if fmt == "descriptor":
        return f"{vault.receive_descriptor}\n{vault.change_descriptor}"
    if fmt == "caravan":
        return json.dumps(caravan_config(vault), indent=2)
    if fmt == "bsms":
        return bsms_record(vault)
    raise VaultConfigError(f"Unknown export format {fmt!r}; use descriptor, caravan or bsms.")

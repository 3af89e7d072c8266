"""Building and signing a proof-of-reserves attestation from plain snapshot values.

The custody and ledger modules are wired in by the caller: this module takes value objects
(vault UTXOs at a block, Safe balances at a block, a built liability tree, the ledger's totals,
pending encumbrances, the audit head) and returns a :class:`~reporting.bundle.Bundle` whose body
holds the roots, totals, reconciliation and coverage, and whose digest the treasury and the state
audit office then sign. The layout is specified in ``reporting/SPEC-attestation.md``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from eth_keys.datatypes import PrivateKey, PublicKey
from eth_utils.address import to_checksum_address
from eth_utils.exceptions import ValidationError

from reporting.bundle import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    DIGEST_BYTES,
    GENESIS_DIGEST_HEX,
    AttestationError,
    Bundle,
    SigningError,
)
from reporting.holdings import HoldingsTree, SafeBalanceHolding, UtxoHolding
from reporting.merkle.assets import canonical_assets
from reporting.sumtree import LiabilityTree

RESERVE_PROOF_PREFIX = b"Proof-of-Reserves: "
"""BIP-127's prefix of the commitment message whose SHA-256 is the commitment input's txid."""

RESERVE_PROOF_MESSAGE_PREFIX = "national-reserve-attestation:"
"""Our commitment message is this prefix and the digest's hex, so it names what it commits to."""

PERCENT_DECIMALS = 2
"""Decimals in the human-readable coverage percentage (truncated, never rounded up)."""

BITCOIN_CHAIN_PREFIX = "bitcoin:"
"""An asset's chain on Bitcoin: ``bitcoin:<network>`` (the snapshot's ``network``)."""

EVM_CHAIN_PREFIX = "evm:"
"""An asset's chain on an EVM chain: ``evm:<chain id>`` in decimal."""

MAX_ASSET_DECIMALS = 255
"""Most decimals an asset may state (ERC-20's ``decimals()`` is a ``uint8``)."""

BITCOIN_ASSET = "BTC"
"""The asset code of every vault UTXO (the holdings tree's, ``reporting.holdings``)."""


class SignerRole(Enum):
    """The two separate keys that sign every attestation."""

    TREASURY = "treasury"
    AUDITOR = "auditor"


class EncumbranceKind(Enum):
    """Why part of the holdings is not freely available at the snapshot."""

    PENDING_SPEND = "pending_spend"
    """An approved spend (PSBT or Safe transaction) not yet broadcast or not yet confirmed."""
    LOCKED = "locked"
    """Held but committed elsewhere (a time lock, a pledge)."""


class AssetKind(Enum):
    """Whether an asset is a chain's own coin or an ERC-20 token contract on it."""

    NATIVE = "native"
    ERC20 = "erc20"


def evm_chain(chain_id: int) -> str:
    """The registry's name of EVM chain ``chain_id``."""
    return f"{EVM_CHAIN_PREFIX}{chain_id}"


def bitcoin_chain(network: str) -> str:
    """The registry's name of the Bitcoin network ``network``."""
    return f"{BITCOIN_CHAIN_PREFIX}{network}"


def _check_hex(text: str, length: int, what: str) -> None:
    """Refuse anything but lowercase hex of ``length`` bytes."""
    if (
        not isinstance(text, str)
        or len(text) != 2 * length
        or any(c not in "0123456789abcdef" for c in text)
    ):
        raise AttestationError(f"The {what} must be {length} bytes of lowercase hex.")


def _check_count(value: int, what: str) -> None:
    """Refuse a non-integer or negative height, number or sequence."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise AttestationError(f"The {what} must be a non-negative integer, not {value!r}.")


@dataclass(frozen=True)
class BlockRef:
    """A block by height (or number) and hash (Bitcoin: bare hex; EVM: ``0x``-prefixed)."""

    height: int
    block_hash: str

    def __post_init__(self) -> None:
        """Validate the height and the hash's form."""
        _check_count(self.height, "block height")
        _check_hex(self.block_hash.removeprefix("0x"), 32, "block hash")


@dataclass(frozen=True)
class SnapshotUtxo:
    """A vault UTXO and the block that created it (so an auditor can find it without an index)."""

    txid: str
    vout: int
    amount_sats: int
    script_pubkey: bytes
    created: BlockRef

    @property
    def holding(self) -> UtxoHolding:
        """The holdings-tree leaf of this UTXO."""
        return UtxoHolding(self.txid, self.vout, self.amount_sats, self.script_pubkey)


@dataclass(frozen=True)
class BitcoinSnapshot:
    """Every vault UTXO unspent at ``block`` on the Bitcoin chain ``network``."""

    network: str
    block: BlockRef
    utxos: tuple[SnapshotUtxo, ...]

    def __post_init__(self) -> None:
        """Refuse a UTXO created above the snapshot, or listed twice."""
        for utxo in self.utxos:
            utxo.holding  # noqa: B018 - validates the outpoint, amount and script
            if utxo.created.height > self.block.height:
                raise AttestationError(
                    f"The UTXO {utxo.txid}:{utxo.vout} was created at height {utxo.created.height}, above the snapshot height {self.block.height}."
                )
        outpoints = [(utxo.txid, utxo.vout) for utxo in self.utxos]
        if len(set(outpoints)) != len(outpoints):
            raise AttestationError("The Bitcoin snapshot lists one outpoint twice.")


@dataclass(frozen=True)
class EvmSnapshot:
    """The Safes' balances (ether and tokens) on one EVM chain at ``block``."""

    chain_id: int
    block: BlockRef
    balances: tuple[SafeBalanceHolding, ...]

    def __post_init__(self) -> None:
        """Refuse a balance read on another chain."""
        for balance in self.balances:
            if balance.chain_id != self.chain_id:
                raise AttestationError(
                    f"The balance of {balance.asset} in Safe {balance.safe_address} is on chain {balance.chain_id}, not the snapshot's chain {self.chain_id}."
                )


@dataclass(frozen=True)
class AssetInfo:
    """What an asset code means: the chain it lives on, its contract (tokens), decimals, symbol.

    The body commits to one of these per asset code, so a token's balance cannot be relabelled
    as another asset (ether, say) without the signed registry saying which contract the code is.
    """

    chain: str
    kind: AssetKind
    contract: str | None
    decimals: int
    symbol: str

    def __post_init__(self) -> None:
        """Refuse a chain name, contract, decimals or symbol the format cannot state."""
        if self.chain.startswith(BITCOIN_CHAIN_PREFIX):
            if self.kind is not AssetKind.NATIVE or not self.chain[len(BITCOIN_CHAIN_PREFIX) :]:
                raise AttestationError(
                    f"The asset on {self.chain!r} must be that network's native coin."
                )
        elif self.chain.startswith(EVM_CHAIN_PREFIX):
            number = self.chain[len(EVM_CHAIN_PREFIX) :]
            if not number.isascii() or not number.isdigit() or number != str(int(number)):
                raise AttestationError(f"The chain {self.chain!r} is not evm:<chain id>.")
        else:
            raise AttestationError(
                f"The asset chain {self.chain!r} is neither bitcoin:<network> nor evm:<chain id>."
            )
        if (self.kind is AssetKind.NATIVE) != (self.contract is None):
            raise AttestationError(
                f"A {self.kind.value} asset on {self.chain} must "
                + ("have no contract." if self.kind is AssetKind.NATIVE else "name its contract.")
            )
        if self.contract is not None:
            _address_checksum(self.contract, "token contract")
        if (
            isinstance(self.decimals, bool)
            or not isinstance(self.decimals, int)
            or not 0 <= self.decimals <= MAX_ASSET_DECIMALS
        ):
            raise AttestationError(f"The asset decimals {self.decimals!r} are not 0 to 255.")
        if not isinstance(self.symbol, str) or not self.symbol:
            raise AttestationError("The asset symbol must be a non-empty string.")

    def to_dict(self) -> dict[str, Any]:
        """The body's entry: contract in EIP-55 form, ``None`` for a native coin."""
        return {
            "chain": self.chain,
            "kind": self.kind.value,
            "contract": None if self.contract is None else to_checksum_address(self.contract),
            "decimals": self.decimals,
            "symbol": self.symbol,
        }


@dataclass(frozen=True)
class VaultSet:
    """Every vault the treasury holds: Bitcoin vault scripts and (chain id, Safe) pairs.

    The body commits to it so an auditor can tell a coin or Safe that is not a vault from one that
    is, and (online) read every vault's balance of every registered asset, listed or not.
    """

    bitcoin_scripts: tuple[bytes, ...]
    safes: tuple[tuple[int, str], ...]

    def __post_init__(self) -> None:
        """Refuse a script or Safe listed twice, or a malformed Safe address."""
        if len(set(self.bitcoin_scripts)) != len(self.bitcoin_scripts):
            raise AttestationError("The vault set lists one Bitcoin script twice.")
        for chain_id, safe in self.safes:
            _check_count(chain_id, "Safe chain id")
            _address_checksum(safe, "Safe address")
        keys = [(chain_id, safe.lower()) for chain_id, safe in self.safes]
        if len(set(keys)) != len(keys):
            raise AttestationError("The vault set lists one Safe twice.")

    def to_dict(self) -> dict[str, Any]:
        """The body's ``vaults``: scripts sorted as hex, Safes sorted by chain id and address."""
        return {
            "bitcoin": sorted(script.hex() for script in self.bitcoin_scripts),
            "evm": [
                {"chain_id": chain_id, "safe_address": to_checksum_address(safe)}
                for chain_id, safe in sorted(
                    self.safes, key=lambda pair: (pair[0], pair[1].lower())
                )
            ],
        }


def _address_checksum(text: str, what: str) -> str:
    """The EIP-55 form of a 20-byte ``0x`` address; refuses anything else."""
    if (
        not isinstance(text, str)
        or len(text) != 42
        or not text.startswith("0x")
        or any(c not in "0123456789abcdefABCDEF" for c in text[2:])
    ):
        raise AttestationError(f"The {what} {text!r} is not a 0x-prefixed 20-byte address.")
    return str(to_checksum_address(text))


@dataclass(frozen=True)
class Encumbrance:
    """Holdings that are not freely available (e.g. an approved spend awaiting confirmation)."""

    asset: str
    amount: int
    kind: EncumbranceKind
    reference: str
    description: str

    def __post_init__(self) -> None:
        """Refuse a negative or non-integer amount."""
        canonical_assets([self.asset])
        if isinstance(self.amount, bool) or not isinstance(self.amount, int) or self.amount < 0:
            raise AttestationError(
                f"The encumbrance {self.reference!r} has amount {self.amount!r}; it must be zero or more base units."
            )


@dataclass(frozen=True)
class AuditHead:
    """The state audit log's newest event: its sequence number and chained hash."""

    sequence: int
    head_hash: str

    def __post_init__(self) -> None:
        """Validate the sequence and the hash's form."""
        _check_count(self.sequence, "audit log sequence")
        _check_hex(self.head_hash, 32, "audit log head hash")


@dataclass(frozen=True)
class RegistryRef:
    """Where the digest is published: the registry contract on the services chain and its publisher."""

    chain_id: int
    address: str
    publisher: str


@dataclass(frozen=True)
class KeySigner:
    """A secp256k1 signing key for one role; its repr shows the role and address only."""

    role: SignerRole
    private_key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        """Refuse a key that is not a valid secp256k1 scalar."""
        try:
            PrivateKey(self.private_key)
        except (ValidationError, ValueError) as error:
            raise SigningError(
                f"The {self.role.value} signing key is not a valid secp256k1 private key."
            ) from error

    @property
    def public_key(self) -> PublicKey:
        """The key's public half."""
        return PrivateKey(self.private_key).public_key

    def identity(self) -> dict[str, str]:
        """The role's public identity as listed in the body (public key and address)."""
        public = self.public_key
        return {"public_key": public.to_bytes().hex(), "address": public.to_checksum_address()}

    def sign_digest(self, digest: bytes) -> bytes:
        """Sign the 32-byte digest: ``r || s || v`` (65 bytes, v in {0, 1})."""
        if len(digest) != DIGEST_BYTES:
            raise SigningError(f"The digest to sign must be {DIGEST_BYTES} bytes.")
        return bytes(PrivateKey(self.private_key).sign_msg_hash(digest).to_bytes())


@dataclass(frozen=True)
class AttestationInputs:
    """Everything an attestation states, gathered by the caller at one snapshot."""

    sequence: int
    previous_digest: str
    as_of: datetime
    bitcoin: BitcoinSnapshot
    evm: tuple[EvmSnapshot, ...]
    liabilities: LiabilityTree
    ledger_totals: Mapping[str, int]
    audit_head: AuditHead
    registry: RegistryRef
    treasury: KeySigner
    auditor: KeySigner
    assets: Mapping[str, AssetInfo]
    """The asset registry: every asset code the attestation names -> what it is."""
    vaults: VaultSet
    """Every vault: each UTXO's script and each balance's Safe must be one of them."""
    encumbrances: tuple[Encumbrance, ...] = ()
    public_accounts: tuple[str, ...] = ()


def reserve_commitment_message(digest: bytes) -> str:
    """Return the BIP-127 commitment message of an attestation digest."""
    return RESERVE_PROOF_MESSAGE_PREFIX + digest.hex()


def reserve_commitment_txid(digest: bytes) -> str:
    """Return the commitment input's txid (RPC display order) for ``digest``.

    BIP-127: the outpoint's hash is ``SHA-256("Proof-of-Reserves: " || message)``; we take those
    32 bytes as the serialised (internal-order) hash, so the display txid is them reversed.
    """
    message = reserve_commitment_message(digest).encode("utf-8")
    return hashlib.sha256(RESERVE_PROOF_PREFIX + message).digest()[::-1].hex()


def _amounts(totals: Mapping[str, int]) -> dict[str, str]:
    """Write per-asset totals as decimal strings, in asset order."""
    return {asset: str(amount) for asset, amount in sorted(totals.items())}


def percent_text(numerator: int, denominator: int) -> str:
    """Return ``numerator / denominator`` as a percentage with two decimals, truncated."""
    scale = 10**PERCENT_DECIMALS
    hundredths = numerator * 100 * scale // denominator
    return f"{hundredths // scale}.{hundredths % scale:0{PERCENT_DECIMALS}d}%"


def coverage_line(asset: str, available: int, liabilities: int) -> dict[str, Any]:
    """State whether available holdings cover liabilities, as an exact fraction and in words."""
    if liabilities == 0:
        return {
            "numerator": str(available),
            "denominator": "0",
            "ratio": "no liabilities",
            "covered": True,
            "shortfall": "0",
            "statement": f"{asset}: no liabilities; available holdings are {available} base units.",
        }
    shortfall = max(liabilities - available, 0)
    ratio = percent_text(available, liabilities)
    if shortfall:
        statement = (
            f"{asset}: UNDER-COVERED: available holdings of {available} base units are {ratio} "
            f"of liabilities of {liabilities}; the shortfall is {shortfall} base units."
        )
    else:
        statement = (
            f"{asset}: covered: available holdings of {available} base units are {ratio} "
            f"of liabilities of {liabilities}."
        )
    return {
        "numerator": str(available),
        "denominator": str(liabilities),
        "ratio": ratio,
        "covered": shortfall == 0,
        "shortfall": str(shortfall),
        "statement": statement,
    }


def reconciliation_line(
    asset: str, holdings: int, encumbered: int, liability_total: int, ledger_total: int
) -> dict[str, Any]:
    """Put chain holdings, the liability root's total and the state ledger's total side by side."""
    matches = liability_total == ledger_total
    if matches:
        statement = (
            f"{asset}: the liability tree's total equals the state ledger's total "
            f"({ledger_total} base units); chain holdings are {holdings}, of which {encumbered} encumbered."
        )
    else:
        statement = (
            f"{asset}: MISMATCH: the liability tree totals {liability_total} base units but the "
            f"state ledger totals {ledger_total}; chain holdings are {holdings}, of which {encumbered} encumbered."
        )
    return {
        "chain_holdings": str(holdings),
        "encumbered": str(encumbered),
        "available": str(holdings - encumbered),
        "liability_root_total": str(liability_total),
        "ledger_total": str(ledger_total),
        "liabilities_match_ledger": matches,
        "statement": statement,
    }


def _check_inputs(inputs: AttestationInputs) -> None:
    """Refuse inputs no honest attestation can state."""
    _check_count(inputs.sequence, "attestation sequence")
    if inputs.sequence < 1:
        raise AttestationError("The attestation sequence starts at 1.")
    _check_hex(inputs.previous_digest, DIGEST_BYTES, "previous attestation digest")
    if inputs.sequence == 1 and inputs.previous_digest != GENESIS_DIGEST_HEX:
        raise AttestationError("The first attestation's previous digest must be all zeros.")
    if inputs.sequence > 1 and inputs.previous_digest == GENESIS_DIGEST_HEX:
        raise AttestationError(
            f"Attestation {inputs.sequence} must name the digest of attestation {inputs.sequence - 1}."
        )
    if inputs.as_of.utcoffset() is None:
        raise AttestationError("The attestation time 'as_of' must carry a time zone (UTC).")
    references = [(item.asset, item.reference) for item in inputs.encumbrances]
    if len(set(references)) != len(references):
        # SPEC-attestation R-ENC-1: the verifier refuses a reference of an asset listed twice.
        raise AttestationError(
            "Two encumbrances of one asset share a reference; each is listed once (R-ENC-1)."
        )
    if (
        inputs.treasury.role is not SignerRole.TREASURY
        or inputs.auditor.role is not SignerRole.AUDITOR
    ):
        raise SigningError("The treasury and auditor keys must carry their own roles.")
    if inputs.treasury.identity() == inputs.auditor.identity():
        raise SigningError("The treasury and the audit office must sign with separate keys.")
    chains = [snapshot.chain_id for snapshot in inputs.evm]
    if len(set(chains)) != len(chains):
        raise AttestationError("Two EVM snapshots name the same chain id.")
    for asset, amount in inputs.ledger_totals.items():
        canonical_assets([asset])
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise AttestationError(
                f"The ledger total of {asset} is {amount!r}; it must be zero or more base units."
            )


def _check_registry(inputs: AttestationInputs, used: Iterable[str]) -> None:
    """Refuse what the verifier refuses: an asset code, coin or Safe the registry does not vouch for.

    Every asset code used must be registered; a UTXO must pay a vault script and be the Bitcoin
    network's native coin; a Safe balance must be of a vault Safe, on its asset's chain, and
    read from its asset's contract (none for the native coin).
    """
    for code, info in inputs.assets.items():
        canonical_assets([code])
        if not isinstance(info, AssetInfo):
            raise AttestationError(f"The registry entry of {code} is not an AssetInfo.")
    missing = sorted(set(used) - set(inputs.assets), key=str.encode)
    if missing:
        raise AttestationError(
            f"The asset {missing[0]} is used but not in the asset registry; register it with its chain, contract and decimals."
        )
    scripts = set(inputs.vaults.bitcoin_scripts)
    network = bitcoin_chain(inputs.bitcoin.network)
    for utxo in inputs.bitcoin.utxos:
        if utxo.script_pubkey not in scripts:
            raise AttestationError(
                f"The UTXO {utxo.txid}:{utxo.vout} pays a script that is not in the vault set."
            )
    if inputs.bitcoin.utxos:
        info = inputs.assets[BITCOIN_ASSET]
        if info.chain != network or info.kind is not AssetKind.NATIVE:
            raise AttestationError(
                f"The registry names {BITCOIN_ASSET} on {info.chain} ({info.kind.value}), not the native coin of {network}."
            )
    safes = {(chain_id, safe.lower()) for chain_id, safe in inputs.vaults.safes}
    for snapshot in inputs.evm:
        for balance in snapshot.balances:
            if (snapshot.chain_id, balance.safe_address.lower()) not in safes:
                raise AttestationError(
                    f"The Safe {balance.safe_address} on chain {snapshot.chain_id} is not in the vault set."
                )
            info = inputs.assets[balance.asset]
            if info.chain != evm_chain(snapshot.chain_id):
                raise AttestationError(
                    f"The balance of {balance.asset} is on chain {snapshot.chain_id}, but the registry puts {balance.asset} on {info.chain}."
                )
            token = None if balance.token_address is None else balance.token_address.lower()
            contract = None if info.contract is None else info.contract.lower()
            if token != contract:
                raise AttestationError(
                    f"The balance of {balance.asset} in Safe {balance.safe_address} is read from {balance.token_address or 'the native coin'}, but the registry's {balance.asset} is {info.contract or 'the native coin'}."
                )


def _sum_by_asset(pairs: Iterable[tuple[str, int]]) -> dict[str, int]:
    """Total amounts per asset code."""
    totals: dict[str, int] = {}
    for asset, amount in pairs:
        totals[asset] = totals.get(asset, 0) + amount
    return totals


def _snapshot_body(bitcoin: BitcoinSnapshot, evm: Sequence[EvmSnapshot]) -> dict[str, Any]:
    """The snapshot section: blocks, every UTXO and every Safe balance, in canonical order."""
    return {
        "bitcoin": {
            "network": bitcoin.network,
            "height": bitcoin.block.height,
            "block_hash": bitcoin.block.block_hash,
            "utxos": [
                {
                    "txid": utxo.txid,
                    "vout": utxo.vout,
                    "amount": str(utxo.amount_sats),
                    "script_pubkey": utxo.script_pubkey.hex(),
                    "created_height": utxo.created.height,
                    "created_block_hash": utxo.created.block_hash,
                }
                for utxo in sorted(bitcoin.utxos, key=lambda utxo: (utxo.txid, utxo.vout))
            ],
        },
        "evm": [
            {
                "chain_id": snapshot.chain_id,
                "block_number": snapshot.block.height,
                "block_hash": snapshot.block.block_hash,
                "balances": [
                    {
                        "safe_address": to_checksum_address(balance.safe_address),
                        "asset": balance.asset,
                        "token_address": None
                        if balance.token_address is None
                        else to_checksum_address(balance.token_address),
                        "amount": str(balance.amount),
                    }
                    for balance in sorted(
                        snapshot.balances,
                        key=lambda balance: (balance.safe_address.lower(), balance.asset),
                    )
                ],
            }
            for snapshot in sorted(evm, key=lambda snapshot: snapshot.chain_id)
        ],
    }


def build_attestation(inputs: AttestationInputs) -> Bundle:
    """Build the unsigned bundle: snapshot, roots, totals, reconciliation, coverage, slots.

    Raises :class:`~reporting.bundle.AttestationError` (or a Merkle error) on bad input and
    builds nothing in that case. Sign the result with :func:`sign_bundle` for both roles.
    """
    _check_inputs(inputs)
    utxo_holdings = [utxo.holding for utxo in inputs.bitcoin.utxos]
    safe_holdings = [balance for snapshot in inputs.evm for balance in snapshot.balances]
    holdings = HoldingsTree.build([*utxo_holdings, *safe_holdings])
    holding_totals = dict(holdings.totals())
    liability_root = inputs.liabilities.root
    liability_totals = dict(zip(liability_root.assets, liability_root.sums, strict=True))
    encumbered = _sum_by_asset((item.asset, item.amount) for item in inputs.encumbrances)
    assets = sorted(
        {*holding_totals, *liability_totals, *inputs.ledger_totals, *encumbered},
        key=str.encode,
    )
    _check_registry(inputs, assets)
    for asset in assets:
        if encumbered.get(asset, 0) > holding_totals.get(asset, 0):
            raise AttestationError(
                f"The encumbrances of {asset} ({encumbered[asset]}) exceed its holdings ({holding_totals.get(asset, 0)})."
            )
    reconciliation = {
        asset: reconciliation_line(
            asset,
            holding_totals.get(asset, 0),
            encumbered.get(asset, 0),
            liability_totals.get(asset, 0),
            inputs.ledger_totals.get(asset, 0),
        )
        for asset in assets
    }
    coverage = {
        asset: coverage_line(
            asset,
            holding_totals.get(asset, 0) - encumbered.get(asset, 0),
            liability_totals.get(asset, 0),
        )
        for asset in assets
    }
    listing = inputs.liabilities.public_listing(inputs.public_accounts)
    safes = sorted(
        {
            (snapshot.chain_id, to_checksum_address(balance.safe_address), snapshot.block.height)
            for snapshot in inputs.evm
            for balance in snapshot.balances
        },
        key=lambda slot: (slot[0], slot[1].lower(), slot[2]),
    )
    body: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "sequence": inputs.sequence,
        "previous_digest": inputs.previous_digest,
        "as_of": inputs.as_of.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "assets": {
            code: inputs.assets[code].to_dict() for code in sorted(inputs.assets, key=str.encode)
        },
        "vaults": inputs.vaults.to_dict(),
        "snapshot": _snapshot_body(inputs.bitcoin, inputs.evm),
        "holdings": {"root": holdings.root.to_dict(), "totals": _amounts(holding_totals)},
        "liabilities": {
            "root": liability_root.to_dict(),
            "totals": _amounts(liability_totals),
            "public_listing": listing["leaves"],
        },
        "ledger": {"totals": _amounts(dict(inputs.ledger_totals))},
        "encumbrances": [
            {
                "asset": item.asset,
                "amount": str(item.amount),
                "kind": item.kind.value,
                "reference": item.reference,
                "description": item.description,
            }
            for item in sorted(inputs.encumbrances, key=lambda item: (item.asset, item.reference))
        ],
        "reconciliation": reconciliation,
        "coverage": coverage,
        "audit_log": {
            "sequence": inputs.audit_head.sequence,
            "head_hash": inputs.audit_head.head_hash,
        },
        "proofs_of_control": {
            "bitcoin_reserve_proof": {
                "scheme": "bip127-psbt",
                "commitment_prefix": RESERVE_PROOF_PREFIX.decode(),
                "message_prefix": RESERVE_PROOF_MESSAGE_PREFIX,
            }
            if inputs.bitcoin.utxos
            else None,
            "eip1271": [
                {"chain_id": chain_id, "safe_address": safe, "block_number": number}
                for chain_id, safe, number in safes
            ],
        },
        "signers": {
            SignerRole.TREASURY.value: inputs.treasury.identity(),
            SignerRole.AUDITOR.value: inputs.auditor.identity(),
        },
        "registry": {
            "chain_id": inputs.registry.chain_id,
            "address": to_checksum_address(inputs.registry.address),
            "publisher": to_checksum_address(inputs.registry.publisher),
        },
    }
    return Bundle(body=body)


def sign_bundle(bundle: Bundle, signer: KeySigner) -> Bundle:
    """Add ``signer``'s signature of the digest, refusing a key the body does not list for its role."""
    listed = bundle.body.get("signers", {}).get(signer.role.value)
    if listed != signer.identity():
        raise SigningError(
            f"The {signer.role.value} key is not the one the attestation lists for that role."
        )
    return bundle.with_signature(signer.role.value, signer.sign_digest(bundle.digest))

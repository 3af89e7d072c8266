"""Fast builder of large liability sum trees (millions of accounts) over flat numpy arrays.

Each level is one C-contiguous ``uint8`` array of v1 records ``hash || sums`` (SPEC-merkle.md),
so a node's preimage is its two adjacent child records read straight out of memory; 128-bit sums
are added as two big-endian ``uint64`` limbs with a carry; every proof is a gather of one record
per level. Proofs are checked by ``reporting.merkle``, whose encoders this module does not use,
so the tests that verify these proofs cross-check two independent implementations of the spec.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from reporting.exceptions import (
    AmountOverflowError,
    AssetListError,
    DuplicateLeafError,
    LeafError,
    NegativeAmountError,
    UnknownLeafError,
)
from reporting.merkle.account_package import liability_package
from reporting.merkle.assets import canonical_assets
from reporting.merkle.encoding import (
    HASH_BYTES,
    MAX_AMOUNT_BASE_UNITS,
    SALT_TAG,
    SUM_WIDTH_BYTES,
    TAGS,
    TreeKind,
    domain_prefix,
    empty_hash,
    record_width,
    tree_depth,
)
from reporting.merkle.liability_leaf import (
    MAX_ACCOUNT_ID_BYTES,
    LiabilityLeaf,
    account_id_bytes,
    check_nonce,
    derive_salt,
)
from reporting.merkle.proof import InclusionProof
from reporting.merkle.root import TreeRoot

Column: TypeAlias = Sequence[int] | npt.NDArray[np.integer[Any]]
"""One asset's amounts in base units, one per account, as Python ints or a numpy int array."""

Bytes2D: TypeAlias = npt.NDArray[np.uint8]

CHUNK_NODES = 1 << 16
"""Leaves or nodes hashed per batch: bounds temporary digest lists while keeping loops tight."""

MAX_BUILD_LEAVES = (1 << 32) - 1
"""Most accounts this builder takes (its exact totals add 32-bit limbs in uint64 counters)."""

_LIMB_MASK = (1 << 64) - 1
_HALF_MASK = np.uint64(0xFFFFFFFF)
_HMAC_BLOCK_BYTES = 64
_TAG = TAGS[TreeKind.LIABILITIES]


class LiabilityTree:
    """A built liability sum tree: its root, its levels, and proofs on demand.

    Leaves are ordered by salt, so an account is found again from its id and the snapshot nonce
    the tree keeps; the nonce never appears in ``repr`` or in any error.
    """

    __slots__ = ("_keys", "_levels", "_nonce", "_rows", "root")

    def __init__(
        self,
        root: TreeRoot,
        levels: list[Bytes2D],
        keys: npt.NDArray[np.uint64],
        rows: npt.NDArray[np.int64],
        nonce: bytes,
    ) -> None:
        """Keep the parts :meth:`build` computed; call :meth:`build` instead."""
        self.root = root
        self._levels = levels
        self._keys = keys
        self._rows = rows
        self._nonce = nonce

    def __repr__(self) -> str:
        """Name the tree by its root digest; never show the nonce or any salt."""
        return (
            f"LiabilityTree(assets={list(self.root.assets)}, leaf_count={self.root.leaf_count}, "
            f"digest={self.root.digest().hex()})"
        )

    @classmethod
    def build(
        cls,
        assets: Sequence[str],
        account_ids: Sequence[str],
        amounts: Sequence[Column],
        nonce: bytes,
    ) -> LiabilityTree:
        """Build the tree of ``account_ids`` with ``amounts[j]`` the column of ``assets[j]``.

        Raises a :class:`~reporting.exceptions.LeafError` (negative, overflowing, duplicate or
        badly spelled input) or :class:`~reporting.exceptions.AssetListError` before hashing.
        """
        assets = canonical_assets(assets)
        if not assets:
            raise AssetListError("A liability tree needs at least one asset.")
        check_nonce(nonce)
        count = len(account_ids)
        if count > MAX_BUILD_LEAVES:
            raise LeafError(
                f"{count} accounts were given; this builder takes at most {MAX_BUILD_LEAVES}."
            )
        if len(amounts) != len(assets):
            raise LeafError(
                f"{len(amounts)} amount columns were given for the {len(assets)} assets {list(assets)}."
            )
        words = np.empty((count, 2 * len(assets)), dtype=">u8")
        for position, (asset, column) in enumerate(zip(assets, amounts, strict=True)):
            words[:, 2 * position], words[:, 2 * position + 1] = _limbs(asset, account_ids, column)
        amount_bytes = words.view(np.uint8)
        salts, hashes = _salts_and_leaf_hashes(account_ids, amount_bytes, nonce)
        order, keys = _salt_order(salts, account_ids)
        del salts
        width = record_width(len(assets))
        level = np.empty((count + (count % 2 if count > 1 else 0), width), dtype=np.uint8)
        level[:count, :HASH_BYTES] = hashes[order]
        del hashes
        level[:count, HASH_BYTES:] = amount_bytes[order]
        del words, amount_bytes
        root, levels = _hash_up(assets, level, count)
        return cls(root, levels, keys, order.astype(np.int64), nonce)

    @classmethod
    def from_rows(
        cls, assets: Sequence[str], rows: Iterable[tuple[str, Sequence[int]]], nonce: bytes
    ) -> LiabilityTree:
        """Build from ``(account_id, amounts per asset)`` rows: convenient for small trees."""
        materialised = list(rows)
        columns = [
            [amounts[position] for _, amounts in materialised] for position in range(len(assets))
        ]
        for account_id, amounts in materialised:
            if len(amounts) != len(assets):
                raise LeafError(
                    f"Account {account_id!r} has {len(amounts)} amounts for {len(assets)} assets."
                )
        return cls.build(assets, [account_id for account_id, _ in materialised], columns, nonce)

    @classmethod
    def from_leaf_records(
        cls, assets: Sequence[str], leaf_records: bytes, salt_keys: bytes, nonce: bytes
    ) -> LiabilityTree:
        """Rebuild a tree from what :meth:`leaf_records` and :meth:`salt_keys` returned.

        The leaf level (each leaf's hash and amounts, in leaf order) fixes every node above it,
        so only the upper levels are hashed again; with the snapshot ``nonce`` an account is
        found again by its salt, and its proof is the one the original tree gave. The caller
        compares the rebuilt root with the published one: a changed byte changes the root.
        """
        assets = canonical_assets(assets)
        if not assets:
            raise AssetListError("A liability tree needs at least one asset.")
        check_nonce(nonce)
        width = record_width(len(assets))
        if len(leaf_records) % width or len(salt_keys) != 8 * (len(leaf_records) // width):
            raise LeafError(
                f"The stored leaf level ({len(leaf_records)} bytes) and salt keys "
                f"({len(salt_keys)} bytes) do not describe whole records of {width} bytes "
                "and one 8-byte key per leaf."
            )
        count = len(leaf_records) // width
        keys = np.frombuffer(salt_keys, dtype=">u8").astype(np.uint64)
        if count > 1 and bool(np.any(keys[1:] < keys[:-1])):
            raise LeafError("The stored salt keys are not in ascending leaf order.")
        level = np.empty((count + (count % 2 if count > 1 else 0), width), dtype=np.uint8)
        level[:count] = np.frombuffer(leaf_records, dtype=np.uint8).reshape(count, width)
        root, levels = _hash_up(assets, level, count)
        return cls(root, levels, keys, np.arange(count, dtype=np.int64), nonce)

    def leaf_records(self) -> bytes:
        """The leaf level as bytes: each leaf's ``hash || sums`` record, in leaf order.

        Secret: it holds every account's amounts. With :meth:`salt_keys` and the nonce it is
        all :meth:`from_leaf_records` needs to issue any account's proof again later.
        """
        return self._levels[0][: self.root.leaf_count].tobytes()

    def snapshot_nonce(self) -> bytes:
        """The secret nonce every salt derives from: only for storing it where secrets are kept."""
        return self._nonce

    def salt_keys(self) -> bytes:
        """The first 64 bits of every leaf's salt, big-endian, in leaf order (the lookup index)."""
        return self._keys.astype(">u8").tobytes()

    @property
    def depth(self) -> int:
        """Number of siblings in every proof."""
        return tree_depth(self.root.leaf_count)

    @property
    def proof_size_bytes(self) -> int:
        """Length of every serialised proof of this tree."""
        return 11 + self.depth * record_width(len(self.root.assets))

    @property
    def storage_bytes(self) -> int:
        """Memory the tree keeps: all levels, the salt keys and the input-row map."""
        return sum(level.nbytes for level in self._levels) + self._keys.nbytes + self._rows.nbytes

    def input_row(self, leaf_index: int) -> int:
        """Return the position in the build's input of the account at ``leaf_index``."""
        return int(self._rows[leaf_index])

    def index_of(self, account_id: str) -> int:
        """Return the leaf index of ``account_id``, found from its salt."""
        salt = derive_salt(self._nonce, account_id)
        raw = account_id_bytes(account_id)
        first = int.from_bytes(salt[:8], "big")
        level = self._levels[0]
        low = int(np.searchsorted(self._keys, np.uint64(first), side="left"))
        high = int(np.searchsorted(self._keys, np.uint64(first), side="right"))
        for index in range(low, high):
            record = level[index].tobytes()
            preimage = (
                domain_prefix(_TAG.leaf)
                + salt
                + len(raw).to_bytes(2, "big")
                + raw
                + record[HASH_BYTES:]
            )
            if hashlib.sha256(preimage).digest() == record[:HASH_BYTES]:
                return index
        raise UnknownLeafError(f"The tree has no leaf for account {account_id!r}.")

    def leaf(self, account_id: str) -> LiabilityLeaf:
        """Return the leaf of ``account_id`` (with its salt: hand it only to that account)."""
        index = self.index_of(account_id)
        amounts = _record_sums(self._levels[0][index], len(self.root.assets))
        return LiabilityLeaf(
            account_id=account_id, amounts=amounts, salt=derive_salt(self._nonce, account_id)
        )

    def proof(self, leaf_index: int) -> InclusionProof:
        """Return the inclusion proof of the leaf at ``leaf_index``."""
        if not 0 <= leaf_index < self.root.leaf_count:
            raise UnknownLeafError(
                f"The leaf index {leaf_index} is outside the tree of {self.root.leaf_count} leaves."
            )
        data = self.proofs_bytes(np.array([leaf_index], dtype=np.int64)).tobytes()
        return InclusionProof.from_bytes(data, len(self.root.assets))

    def proofs_bytes(self, leaf_indexes: npt.NDArray[np.int64]) -> Bytes2D:
        """Return one serialised proof per row, for many leaves at once (one gather per level)."""
        width = record_width(len(self.root.assets))
        out = np.empty((len(leaf_indexes), self.proof_size_bytes), dtype=np.uint8)
        out[:, 0] = domain_prefix(_TAG.proof)[0]
        out[:, 1] = _TAG.proof
        out[:, 2:10] = leaf_indexes.astype(">u8").view(np.uint8).reshape(-1, 8)
        out[:, 10] = self.depth
        for level in range(self.depth):
            start = 11 + level * width
            out[:, start : start + width] = self._levels[level][(leaf_indexes >> level) ^ 1]
        return out

    def iter_proof_bytes(self, batch_leaves: int = CHUNK_NODES) -> Iterator[tuple[int, bytes]]:
        """Yield ``(input row, serialised proof)`` for every leaf, in leaf order."""
        size = self.proof_size_bytes
        for start in range(0, self.root.leaf_count, batch_leaves):
            stop = min(start + batch_leaves, self.root.leaf_count)
            blob = self.proofs_bytes(np.arange(start, stop, dtype=np.int64)).tobytes()
            rows = self._rows[start:stop].tolist()
            for offset, row in enumerate(rows):
                yield row, blob[offset * size : (offset + 1) * size]

    def package(
        self, account_id: str, *, attestation: tuple[int, str] | None = None
    ) -> dict[str, Any]:
        """Return what ``account_id`` receives: root, own leaf with salt, and proof.

        ``attestation`` (sequence, bundle digest hex) labels the package with its bundle.
        """
        leaf = self.leaf(account_id)
        return liability_package(
            self.root, leaf, self.proof(self.index_of(account_id)), attestation=attestation
        )

    def public_listing(self, account_ids: Iterable[str]) -> dict[str, Any]:
        """Return a listing of public accounts (budget lines) in full, with their proofs.

        Checked by :func:`reporting.merkle.verify_public_listing`; listing every account makes the
        whole tree public, and the auditor rebuilds the root from the leaves alone.
        """
        entries = []
        for account_id in sorted(
            set(account_ids), key=lambda account_id: derive_salt(self._nonce, account_id)
        ):
            package = self.package(account_id)
            entries.append({"leaf": package["leaf"], "proof": package["proof"]})
        return {"version": 1, "root": self.root.to_dict(), "leaves": entries}


def _limbs(
    asset: str, account_ids: Sequence[str], column: Column
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """Split one asset's amounts into high and low 64-bit limbs, refusing bad amounts."""
    count = len(account_ids)
    if len(column) != count:
        raise LeafError(
            f"The amounts of asset {asset} number {len(column)}, not one per account ({count})."
        )
    high = np.zeros(count, dtype=np.uint64)
    if isinstance(column, np.ndarray):
        if column.dtype.kind not in "iu":
            raise LeafError(
                f"The amounts of asset {asset} must be integers of base units, not {column.dtype}."
            )
        if column.dtype.kind == "i" and count and int(column.min()) < 0:
            _raise_negative(asset, account_ids, column.tolist(), int(np.argmin(column)))
        low = column.astype(np.uint64)
    else:
        if not {type(amount) for amount in column} <= {int}:
            bad = next(amount for amount in column if type(amount) is not int)
            raise LeafError(
                f"The amounts of asset {asset} must be integers of base units, not {bad!r}."
            )
        if count and min(column) < 0:
            _raise_negative(asset, account_ids, column, min(range(count), key=column.__getitem__))
        try:
            low = np.fromiter(column, dtype=np.uint64, count=count)
        except OverflowError:
            if max(column) > MAX_AMOUNT_BASE_UNITS:
                index = max(range(count), key=column.__getitem__)
                raise AmountOverflowError(
                    f"The amount of asset {asset} for account {account_ids[index]!r} is above the 128-bit limit of the v1 encoding."
                ) from None
            high = np.fromiter((amount >> 64 for amount in column), dtype=np.uint64, count=count)
            low = np.fromiter(
                (amount & _LIMB_MASK for amount in column), dtype=np.uint64, count=count
            )
    total = sum(
        int(((limb >> shift) & _HALF_MASK).sum(dtype=np.uint64)) << (weight + shift)
        for limb, weight in ((high, 64), (low, 0))
        for shift in (0, 32)
    )
    if total > MAX_AMOUNT_BASE_UNITS:
        raise AmountOverflowError(
            f"The total of asset {asset} is {total}, above the 128-bit limit of the v1 encoding."
        )
    return high, low


def _raise_negative(
    asset: str, account_ids: Sequence[str], column: Sequence[int], index: int
) -> None:
    """Refuse the first account found with a negative amount, naming it."""
    raise NegativeAmountError(
        f"The amount of asset {asset} for account {account_ids[index]!r} is {column[index]}; liabilities are zero or more base units."
    )


def _hmac_states(nonce: bytes) -> tuple[Any, Any]:
    """Return the keyed inner and outer SHA-256 states of HMAC (RFC 2104) for ``nonce``."""
    key = hashlib.sha256(nonce).digest() if len(nonce) > _HMAC_BLOCK_BYTES else nonce
    key = key.ljust(_HMAC_BLOCK_BYTES, b"\0")
    inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in key))
    outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in key))
    return inner, outer


def _salts_and_leaf_hashes(
    account_ids: Sequence[str], amount_bytes: Bytes2D, nonce: bytes
) -> tuple[Bytes2D, Bytes2D]:
    """Return each account's salt and leaf hash, in input order, as ``(n, 32)`` arrays."""
    count = len(account_ids)
    salts = np.empty((count, HASH_BYTES), dtype=np.uint8)
    hashes = np.empty((count, HASH_BYTES), dtype=np.uint8)
    inner, outer = _hmac_states(nonce)
    salt_prefix = domain_prefix(SALT_TAG)
    leaf_prefix = domain_prefix(_TAG.leaf)
    sha256 = hashlib.sha256
    amounts = amount_bytes.reshape(-1).data
    width = amount_bytes.shape[1] if count else 0
    for start in range(0, count, CHUNK_NODES):
        stop = min(start + CHUNK_NODES, count)
        salt_list = []
        hash_list = []
        offset = start * width
        for account_id in account_ids[start:stop]:
            raw = account_id.encode() if isinstance(account_id, str) else b""
            if (
                not raw
                or len(raw) > MAX_ACCOUNT_ID_BYTES
                or not (raw.isascii() or unicodedata.is_normalized("NFC", account_id))
            ):
                account_id_bytes(account_id)
            state = inner.copy()
            state.update(salt_prefix + raw)
            keyed = outer.copy()
            keyed.update(state.digest())
            salt = keyed.digest()
            salt_list.append(salt)
            hash_list.append(
                sha256(
                    leaf_prefix
                    + salt
                    + len(raw).to_bytes(2, "big")
                    + raw
                    + amounts[offset : offset + width]
                ).digest()
            )
            offset += width
        salts[start:stop] = np.frombuffer(b"".join(salt_list), dtype=np.uint8).reshape(
            -1, HASH_BYTES
        )
        hashes[start:stop] = np.frombuffer(b"".join(hash_list), dtype=np.uint8).reshape(
            -1, HASH_BYTES
        )
    return salts, hashes


def _salt_order(
    salts: Bytes2D, account_ids: Sequence[str]
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.uint64]]:
    """Return the leaf order (ascending salt) and the sorted salts' first 64 bits.

    One sort by the first 64 bits suffices unless two salts share them; then a full 256-bit
    sort runs, and equal salts (an account id given twice) are refused.
    """
    words = salts.view(">u8").astype(np.uint64)
    order = np.argsort(words[:, 0])
    first = words[order, 0]
    if np.any(first[1:] == first[:-1]):
        order = np.lexsort((words[:, 3], words[:, 2], words[:, 1], words[:, 0]))
        ordered = words[order]
        repeated = np.flatnonzero(np.all(ordered[1:] == ordered[:-1], axis=1))
        if repeated.size:
            account_id = account_ids[int(order[int(repeated[0]) + 1])]
            raise DuplicateLeafError(
                f"Account {account_id!r} is listed twice; each account appears once."
            )
        first = words[order, 0]
    return order, first


def _hash_up(
    assets: tuple[str, ...], leaves: Bytes2D, count: int
) -> tuple[TreeRoot, list[Bytes2D]]:
    """Hash every level above the leaf level (``count`` real records) and return the root."""
    levels = [leaves]
    real = count
    while real > 1:
        if real % 2:
            _write_padding(levels[-1][real])
        levels.append(_parent_level(levels[-1], len(assets)))
        real = (real + 1) // 2
    top = levels[-1][0] if count else None
    root = TreeRoot(
        kind=TreeKind.LIABILITIES,
        assets=assets,
        leaf_count=count,
        node_hash=top[:HASH_BYTES].tobytes()
        if top is not None
        else empty_hash(TreeKind.LIABILITIES),
        sums=_record_sums(top, len(assets)) if top is not None else (0,) * len(assets),
    )
    return root, levels


def _write_padding(record: Bytes2D) -> None:
    """Overwrite a record with the empty node: its hash and zero sums."""
    record[:HASH_BYTES] = np.frombuffer(empty_hash(TreeKind.LIABILITIES), dtype=np.uint8)
    record[HASH_BYTES:] = 0


def _parent_level(child: Bytes2D, asset_count: int) -> Bytes2D:
    """Hash the parent level of an even-length level: sums with carries, then node hashes.

    The parent gets one spare row for its padding node when it has an odd count above one.
    """
    pairs = len(child) // 2
    width = child.shape[1]
    parent = np.empty((pairs + (pairs % 2 if pairs > 1 else 0), width), dtype=np.uint8)
    words = child.view(">u8")
    parent_words = parent[:pairs].view(">u8")
    for position in range(asset_count):
        high_column = HASH_BYTES // 8 + 2 * position
        left_low = words[0::2, high_column + 1].astype(np.uint64)
        low = left_low + words[1::2, high_column + 1].astype(np.uint64)
        carry = (low < left_low).astype(np.uint64)
        parent_words[:, high_column] = words[0::2, high_column] + words[1::2, high_column] + carry
        parent_words[:, high_column + 1] = low
    flat = child.reshape(-1).data
    prefix = domain_prefix(_TAG.node)
    sha256 = hashlib.sha256
    step = 2 * width
    for start in range(0, pairs, CHUNK_NODES):
        stop = min(start + CHUNK_NODES, pairs)
        digests = b"".join(
            [
                sha256(prefix + flat[offset : offset + step]).digest()
                for offset in range(start * step, stop * step, step)
            ]
        )
        parent[start:stop, :HASH_BYTES] = np.frombuffer(digests, dtype=np.uint8).reshape(
            -1, HASH_BYTES
        )
    return parent


def _record_sums(record: Bytes2D, asset_count: int) -> tuple[int, ...]:
    """Decode a record's per-asset sums."""
    raw = record.tobytes()
    return tuple(
        int.from_bytes(raw[start : start + SUM_WIDTH_BYTES], "big")
        for start in range(HASH_BYTES, HASH_BYTES + SUM_WIDTH_BYTES * asset_count, SUM_WIDTH_BYTES)
    )

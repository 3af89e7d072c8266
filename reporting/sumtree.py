"""Fast builder of large liability sum trees (millions of accounts) over flat numpy arrays.

Each level is one C-contiguous ``uint8`` array of v1 records ``hash || sums`` (SPEC-merkle.md),
so a node's preimage is its two adjacent child records read straight out of memory; 128-bit sums
are added as two big-endian ``uint64`` limbs with a carry; every proof is a copy of one record
per level. Large trees are hashed by several forked processes (``reporting.forked_workers``):
the salts by ranges of accounts, then the leaves and nodes by ranges of subtrees, the parent
hashing the few top levels; every process writes into the same shared arrays, so the result is
the one-process result byte for byte. Proofs are checked by ``reporting.merkle``, whose encoders this module does not use,
so the tests that verify these proofs cross-check two independent implementations of the spec.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from operator import methodcaller
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
from reporting.forked_workers import (
    MAX_WORKERS,
    available_cores,
    can_fork,
    run_tasks,
    shared_array,
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
    level_size,
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

HASH_CHUNK_NODES = 1 << 13
"""Salts, leaves or nodes hashed per batch: small enough that a batch's digests and inputs stay
in the CPU cache (batches of 65,536 measured about 5 % slower), large enough to keep loops tight."""

PROOF_BLOCK_BYTES = 4 << 20
"""Most proof bytes written per pass over the levels (rounded down to a power of two of
proofs): every level's sibling column is written into one block while it is in the CPU cache.
At 1M leaves, batches of 65,536 proofs (85 MB) written level by level took 0.6 to 0.75 s of
CPU; blocks of 2,048 proofs (2.6 MB) reused as the buffer took 0.2 s."""

PARALLEL_MIN_LEAVES = 1 << 16
"""Fewest leaves hashed by more than one process by default: below, forking costs more."""

PARENT_TOP_LEVELS = 8
"""Levels the parent hashes above the workers' subtrees (at most 255 nodes), so that the
workers' shares of the leaves differ by at most one subtree, 1/256 of the tree."""

MAX_BUILD_LEAVES = (1 << 32) - 1
"""Most accounts this builder takes (its exact totals add 32-bit limbs in uint64 counters)."""

_LIMB_MASK = (1 << 64) - 1
_HALF_MASK = np.uint64(0xFFFFFFFF)
_HMAC_BLOCK_BYTES = 64
_TAG = TAGS[TreeKind.LIABILITIES]
_NODE_STATE = hashlib.sha256(domain_prefix(_TAG.node))
"""SHA-256 having absorbed the liability node prefix ``v || node tag``: each node copies it."""
_LEAF_STATE = hashlib.sha256(domain_prefix(_TAG.leaf))
"""SHA-256 having absorbed the liability leaf prefix ``v || leaf tag``: each leaf copies it."""
_AMOUNT_BYTES = methodcaller("to_bytes", SUM_WIDTH_BYTES, "big")


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
        *,
        workers: int | None = None,
    ) -> LiabilityTree:
        """Build the tree of ``account_ids`` with ``amounts[j]`` the column of ``assets[j]``.

        ``workers`` is the number of processes that hash: by default every available core for
        trees of :data:`PARALLEL_MIN_LEAVES` leaves or more and one process below; the tree is
        the same byte for byte whatever the number. Raises a
        :class:`~reporting.exceptions.LeafError` (negative, overflowing, duplicate or badly
        spelled input) or :class:`~reporting.exceptions.AssetListError` before any leaf is hashed.
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
        processes = _process_count(count, workers)
        shared = processes > 1
        amount_bytes = shared_array((count, SUM_WIDTH_BYTES * len(assets)), shared=shared)
        words = amount_bytes.view(">u8")
        deferred: list[tuple[int, Sequence[int]]] = []
        for position, (asset, column) in enumerate(zip(assets, amounts, strict=True)):
            limbs = _checked_limbs(asset, account_ids, column)
            if limbs is None:
                deferred.append((position, column))  # type: ignore[arg-type]
            else:
                words[:, 2 * position], words[:, 2 * position + 1] = limbs
        messages = _SaltMessages.encode(account_ids)
        salts = shared_array((count, HASH_BYTES), shared=shared)
        run_tasks(
            [
                partial(_hash_salts, messages, nonce, salts, words, deferred, low, high)
                for low, high in _split(count, processes)
            ]
        )
        del deferred
        order, keys = _salt_order(salts, account_ids)
        leaves = _LeafInputs(messages, amount_bytes, salts, order)
        levels = _allocate_levels(count, record_width(len(assets)), shared=shared)
        root = _hash_tree(
            assets, levels, count, processes, partial(_write_leaves, leaves, levels[0])
        )
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
        cls,
        assets: Sequence[str],
        leaf_records: bytes,
        salt_keys: bytes,
        nonce: bytes,
        *,
        workers: int | None = None,
    ) -> LiabilityTree:
        """Rebuild a tree from what :meth:`leaf_records` and :meth:`salt_keys` returned.

        The leaf level (each leaf's hash and amounts, in leaf order) fixes every node above it,
        so only the upper levels are hashed again; with the snapshot ``nonce`` an account is
        found again by its salt, and its proof is the one the original tree gave. The caller
        compares the rebuilt root with the published one: a changed byte changes the root.
        ``workers`` is as for :meth:`build`.
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
        processes = _process_count(count, workers)
        levels = _allocate_levels(count, width, shared=processes > 1)
        levels[0][:count] = np.frombuffer(leaf_records, dtype=np.uint8).reshape(count, width)
        root = _hash_tree(assets, levels, count, processes, None)
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
        siblings = b"".join(
            self._levels[level][(leaf_index >> level) ^ 1].tobytes() for level in range(self.depth)
        )
        data = (
            domain_prefix(_TAG.proof)
            + leaf_index.to_bytes(8, "big")
            + self.depth.to_bytes(1, "big")
            + siblings
        )
        return InclusionProof.from_bytes(data, len(self.root.assets))

    def proofs_bytes(self, leaf_indexes: npt.NDArray[np.int64]) -> Bytes2D:
        """Return one serialised proof per row, for many leaves at once (one gather per level)."""
        width = record_width(len(self.root.assets))
        out = np.empty((len(leaf_indexes), self.proof_size_bytes), dtype=np.uint8)
        self._write_proof_headers(out, leaf_indexes)
        for level in range(self.depth):
            start = 11 + level * width
            out[:, start : start + width] = np.take(
                self._levels[level], (leaf_indexes >> level) ^ 1, axis=0
            )
        return out

    def iter_proof_batches(
        self, batch_leaves: int | None = None
    ) -> Iterator[tuple[npt.NDArray[np.int64], Bytes2D]]:
        """Yield ``(input rows, proofs)`` for consecutive leaves, every leaf once, in leaf order.

        ``proofs`` has one serialised proof per row. It is one buffer, **overwritten by the
        next batch**: write it out or copy it before asking for the next. Batches are
        ``batch_leaves`` rounded down to a power of two, so each level's sibling is the same
        for whole aligned groups of leaves and is copied once per group, without an index.
        By default a batch is as many proofs as fit :data:`PROOF_BLOCK_BYTES`, so the buffer
        stays in the CPU cache between batches; larger batches are written block by block.
        (A forked helper writing every other batch ahead, handing batches over by pipe, was
        tried: at 1M leaves it doubled the CPU time and was slower on a loaded machine.)
        """
        count = self.root.leaf_count
        block = 1 << (max(PROOF_BLOCK_BYTES // self.proof_size_bytes, 2).bit_length() - 1)
        batch = block if batch_leaves is None else 1 << (max(batch_leaves, 2).bit_length() - 1)
        block = min(block, batch)
        buffer = np.empty((min(batch, count), self.proof_size_bytes), dtype=np.uint8)
        for start in range(0, count, batch):
            stop = min(start + batch, count)
            out = buffer[: stop - start]
            for first in range(start, stop, block):
                last = min(first + block, stop)
                self._write_proofs(out[first - start : last - start], first, last)
            yield self._rows[start:stop], out

    def iter_proof_bytes(self, batch_leaves: int | None = None) -> Iterator[tuple[int, bytes]]:
        """Yield ``(input row, serialised proof)`` for every leaf, in leaf order."""
        size = self.proof_size_bytes
        for rows, proofs in self.iter_proof_batches(batch_leaves):
            blob = proofs.tobytes()
            for offset, row in enumerate(rows.tolist()):
                yield row, blob[offset * size : (offset + 1) * size]

    def _write_proofs(self, out: Bytes2D, start: int, stop: int) -> None:
        """Write the proofs of leaves ``start..stop`` (``start`` aligned to a power of two)."""
        width = record_width(len(self.root.assets))
        self._write_proof_headers(out, np.arange(start, stop, dtype=np.int64))
        for level in range(self.depth):
            column = 11 + level * width
            self._copy_siblings(out[:, column : column + width], level, start, stop)

    def _write_proof_headers(self, out: Bytes2D, leaf_indexes: npt.NDArray[np.int64]) -> None:
        """Write each proof's ``v || proof tag || u64 leaf index || u8 depth``."""
        out[:, :2] = np.frombuffer(domain_prefix(_TAG.proof), dtype=np.uint8)
        out[:, 2:10] = leaf_indexes.astype(">u8").view(np.uint8).reshape(-1, 8)
        out[:, 10] = self.depth

    def _copy_siblings(self, out: Bytes2D, level: int, start: int, stop: int) -> None:
        """Write the level-``level`` sibling of leaves ``start..stop`` (``start`` aligned).

        The leaves under one node of level ``level`` share that node's sibling, so each group
        of ``2**level`` rows gets one record by broadcasting.
        """
        records = self._levels[level]
        first = start >> level
        last = (stop - 1) >> level
        if first == last:
            out[:] = records[first ^ 1]
            return
        group = 1 << level
        if level == 0:
            out[0::2] = records[start + 1 : stop + 1 : 2][: (stop - start + 1) // 2]
            out[1::2] = records[start:stop:2][: (stop - start) // 2]
            return
        # Here ``first`` is even (``start`` is aligned to the batch, a larger power of two),
        # so group ``first + i`` has the sibling ``records[first + (i ^ 1)]``.
        whole = (stop - start) >> level
        siblings = np.empty((whole, records.shape[1]), dtype=np.uint8)
        siblings[0::2] = records[first + 1 : first + 1 + 2 * ((whole + 1) // 2) : 2]
        siblings[1::2] = records[first : first + 2 * (whole // 2) : 2]
        full = whole << level
        out[:full].reshape(whole, group, records.shape[1])[:] = siblings[:, None, :]
        if full < stop - start:
            out[full:] = records[(first + whole) ^ 1]

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


def _process_count(count: int, workers: int | None) -> int:
    """Return how many processes hash a tree of ``count`` leaves (``workers`` if given)."""
    if workers is not None:
        if workers < 1:
            raise ValueError(f"A tree is hashed by at least one process, not {workers}.")
        return min(workers, MAX_WORKERS) if can_fork() else 1
    if count < PARALLEL_MIN_LEAVES or not can_fork():
        return 1
    return max(1, min(available_cores(), MAX_WORKERS))


def _split(total: int, parts: int) -> list[tuple[int, int]]:
    """Cut ``range(total)`` into at most ``parts`` consecutive non-empty ranges of near-equal size."""
    bounds = [total * part // parts for part in range(parts + 1)]
    return [(low, high) for low, high in itertools.pairwise(bounds) if high > low]


def _checked_limbs(
    asset: str, account_ids: Sequence[str], column: Column
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]] | None:
    """Refuse bad amounts of one asset; return a numpy column's high and low 64-bit limbs.

    A column of Python ints is only checked here (types, signs, total) and returns ``None``:
    the hashing workers split it into limbs, each for its own rows.
    """
    count = len(account_ids)
    if len(column) != count:
        raise LeafError(
            f"The amounts of asset {asset} number {len(column)}, not one per account ({count})."
        )
    if isinstance(column, np.ndarray):
        if column.dtype.kind not in "iu":
            raise LeafError(
                f"The amounts of asset {asset} must be integers of base units, not {column.dtype}."
            )
        if column.dtype.kind == "i" and count and int(column.min()) < 0:
            _raise_negative(asset, account_ids, column.tolist(), int(np.argmin(column)))
        low = column.astype(np.uint64)
        high = np.zeros(count, dtype=np.uint64)
        total = sum(
            int(((low >> shift) & _HALF_MASK).sum(dtype=np.uint64)) << shift for shift in (0, 32)
        )
        _check_total(asset, total)
        return high, low
    if not set(map(type, column)) <= {int}:
        bad = next(amount for amount in column if type(amount) is not int)
        raise LeafError(
            f"The amounts of asset {asset} must be integers of base units, not {bad!r}."
        )
    if count and min(column) < 0:
        _raise_negative(asset, account_ids, column, min(range(count), key=column.__getitem__))
    total = sum(column)
    if total > MAX_AMOUNT_BASE_UNITS and max(column) > MAX_AMOUNT_BASE_UNITS:
        index = max(range(count), key=column.__getitem__)
        raise AmountOverflowError(
            f"The amount of asset {asset} for account {account_ids[index]!r} is above the 128-bit limit of the v1 encoding."
        )
    _check_total(asset, total)
    return None


def _check_total(asset: str, total: int) -> None:
    """Refuse a column whose total does not fit the top node's 128-bit sum."""
    if total > MAX_AMOUNT_BASE_UNITS:
        raise AmountOverflowError(
            f"The total of asset {asset} is {total}, above the 128-bit limit of the v1 encoding."
        )


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


@dataclass(frozen=True)
class _SaltMessages:
    """Every account's salt message ``v || salt tag || id``, back to back in input order.

    Message ``i`` is ``data[offsets[i]:offsets[i + 1]]``; its account id is the same bytes
    without the two-byte prefix. One flat buffer is read by every worker without copying.
    """

    data: bytes
    offsets: npt.NDArray[np.int64]

    def same_length(self) -> int:
        """Return the length every message shares, or 0 if their lengths differ."""
        if len(self.offsets) < 2:
            return 0
        lengths = np.diff(self.offsets)
        return int(lengths[0]) if bool(np.all(lengths == lengths[0])) else 0

    @classmethod
    def encode(cls, account_ids: Sequence[str]) -> _SaltMessages:
        """Check and encode every account id (R-LEAF-1), refusing the first bad one in order."""
        prefix = domain_prefix(SALT_TAG).decode("ascii")
        count = len(account_ids)
        lengths = np.empty(count + 1, dtype=np.int64)
        lengths[0] = 0
        try:
            text = prefix + prefix.join(account_ids) if count else ""
        except TypeError:
            text = None
        if text is not None and text.isascii():
            lengths[1:] = np.fromiter(map(len, account_ids), dtype=np.int64, count=count)
            if not count or (lengths[1:].min() >= 1 and lengths[1:].max() <= MAX_ACCOUNT_ID_BYTES):
                data = text.encode("ascii")
                lengths[1:] += len(prefix)
                return cls(data=data, offsets=np.cumsum(lengths))
        del text
        raw = [account_id_bytes(account_id) for account_id in account_ids]
        lengths[1:] = np.fromiter(map(len, raw), dtype=np.int64, count=count) + len(prefix)
        data = (prefix.encode("ascii") + prefix.encode("ascii").join(raw)) if count else b""
        return cls(data=data, offsets=np.cumsum(lengths))


def _hash_salts(
    messages: _SaltMessages,
    nonce: bytes,
    salts: Bytes2D,
    words: npt.NDArray[np.uint64],
    deferred: Sequence[tuple[int, Sequence[int]]],
    low: int,
    high: int,
) -> None:
    """Write the salts of accounts ``low..high`` and their Python-int amounts' limbs."""
    inner, outer = _hmac_states(nonce)
    inner_copy = inner.copy
    outer_copy = outer.copy
    data = memoryview(messages.data)
    for start in range(low, high, HASH_CHUNK_NODES):
        stop = min(start + HASH_CHUNK_NODES, high)
        bounds = messages.offsets[start : stop + 1].tolist()
        digests: list[bytes] = []
        append = digests.append
        for begin, end in itertools.pairwise(bounds):
            state = inner_copy()
            state.update(data[begin:end])
            keyed = outer_copy()
            keyed.update(state.digest())
            append(keyed.digest())
        salts[start:stop] = np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(-1, HASH_BYTES)
        for position, column in deferred:
            encoded = b"".join(map(_AMOUNT_BYTES, column[start:stop]))
            words[start:stop, 2 * position : 2 * position + 2] = np.frombuffer(
                encoded, dtype=">u8"
            ).reshape(-1, 2)


@dataclass(frozen=True)
class _LeafInputs:
    """What a leaf's hash is made of, and the leaf order (ascending salt) to write it in."""

    messages: _SaltMessages
    amount_bytes: Bytes2D
    salts: Bytes2D
    order: npt.NDArray[np.intp]


def _write_leaves(inputs: _LeafInputs, level: Bytes2D, low: int, high: int) -> None:
    """Write the leaf records ``hash || amounts`` of leaf positions ``low..high`` into ``level``.

    Each batch's leaf bodies (SPEC-merkle *Liability leaves*) are laid out back to back in one
    buffer by numpy; each hash is a copy of the state that has absorbed the leaf prefix, fed
    one slice of that buffer.
    """
    leaf_state = _LEAF_STATE.copy
    message_bytes = np.frombuffer(inputs.messages.data, dtype=np.uint8)
    offsets = inputs.messages.offsets
    same_length = inputs.messages.same_length()
    for start in range(low, high, HASH_CHUNK_NODES):
        stop = min(start + HASH_CHUNK_NODES, high)
        rows = inputs.order[start:stop]
        amounts = np.take(inputs.amount_bytes, rows, axis=0)
        salts = np.take(inputs.salts, rows, axis=0)
        if same_length:
            body, bounds = _uniform_bodies(message_bytes, same_length, rows, salts, amounts)
        else:
            body, bounds = _varying_bodies(message_bytes, offsets, rows, salts, amounts)
        flat = body.reshape(-1).data
        digests: list[bytes] = []
        append = digests.append
        for begin, end in itertools.pairwise(bounds):
            state = leaf_state()
            state.update(flat[begin:end])
            append(state.digest())
        level[start:stop, :HASH_BYTES] = np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(
            -1, HASH_BYTES
        )
        level[start:stop, HASH_BYTES:] = amounts


def _uniform_bodies(
    message_bytes: npt.NDArray[np.uint8],
    message_length: int,
    rows: npt.NDArray[np.intp],
    salts: Bytes2D,
    amounts: Bytes2D,
) -> tuple[Bytes2D, Sequence[int]]:
    """Lay out ``salt || u16 len || id || amounts`` when every id has one length.

    Returns the bodies and the bounds of body ``i``, ``bounds[i]:bounds[i + 1]``.
    """
    id_length = message_length - 2
    size = HASH_BYTES + 2 + id_length + amounts.shape[1]
    body = np.empty((len(rows), size), dtype=np.uint8)
    body[:, :HASH_BYTES] = salts
    body[:, HASH_BYTES : HASH_BYTES + 2] = np.frombuffer(
        id_length.to_bytes(2, "big"), dtype=np.uint8
    )
    messages = message_bytes.reshape(-1, message_length)
    body[:, HASH_BYTES + 2 : HASH_BYTES + 2 + id_length] = np.take(messages, rows, axis=0)[:, 2:]
    body[:, HASH_BYTES + 2 + id_length :] = amounts
    return body, range(0, (len(rows) + 1) * size, size)


def _varying_bodies(
    message_bytes: npt.NDArray[np.uint8],
    offsets: npt.NDArray[np.int64],
    rows: npt.NDArray[np.intp],
    salts: Bytes2D,
    amounts: Bytes2D,
) -> tuple[Bytes2D, Sequence[int]]:
    """Lay out the same leaf bodies back to back when the ids' lengths differ."""
    message_starts = offsets[rows]
    id_lengths = offsets[rows + 1] - message_starts - 2
    sizes = HASH_BYTES + 2 + id_lengths + amounts.shape[1]
    ends = np.cumsum(sizes)
    begins = ends - sizes
    body = np.empty(int(ends[-1]), dtype=np.uint8)
    body[begins[:, None] + np.arange(HASH_BYTES)] = salts
    body[begins + HASH_BYTES] = id_lengths >> 8
    body[begins + HASH_BYTES + 1] = id_lengths & 0xFF
    within = np.arange(int(id_lengths.sum()), dtype=np.int64) - np.repeat(
        np.cumsum(id_lengths) - id_lengths, id_lengths
    )
    body[np.repeat(begins + HASH_BYTES + 2, id_lengths) + within] = message_bytes[
        np.repeat(message_starts + 2, id_lengths) + within
    ]
    body[(begins + HASH_BYTES + 2 + id_lengths)[:, None] + np.arange(amounts.shape[1])] = amounts
    return body.reshape(1, -1), [0, *ends.tolist()]


def _salt_order(
    salts: Bytes2D, account_ids: Sequence[str]
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.uint64]]:
    """Return the leaf order (ascending salt) and the sorted salts' first 64 bits.

    One sort by the first 64 bits suffices unless two salts share them; then a full 256-bit
    sort runs, and equal salts (an account id given twice) are refused.
    """
    first_words = salts.view(">u8")[:, 0].astype(np.uint64)  # only the column the sort needs
    order = np.argsort(first_words)
    first = first_words[order]
    if np.any(first[1:] == first[:-1]):
        words = salts.view(">u8").astype(np.uint64)
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


def _allocate_levels(count: int, width: int, *, shared: bool) -> list[Bytes2D]:
    """Return one array per level, each with a spare row for its padding node where needed."""
    rows = []
    real = count
    while True:
        rows.append(real + (real % 2 if real > 1 else 0))
        if real <= 1:
            break
        real = (real + 1) // 2
    arena = shared_array((sum(rows), width), shared=shared)
    levels = []
    offset = 0
    for size in rows:
        levels.append(arena[offset : offset + size])
        offset += size
    return levels


def _hash_tree(
    assets: tuple[str, ...],
    levels: list[Bytes2D],
    count: int,
    processes: int,
    write_leaves: Callable[[int, int], None] | None,
) -> TreeRoot:
    """Hash every level (the leaves first if ``write_leaves``) and return the root.

    The workers each take consecutive subtrees below the top :data:`PARENT_TOP_LEVELS`
    levels (their leaves and every node under them); the parent then hashes those top levels.
    """
    asset_count = len(assets)
    depth = tree_depth(count)
    split = max(depth - PARENT_TOP_LEVELS, 0)
    subtrees = level_size(count, split) if count else 0
    run_tasks(
        [
            partial(_hash_subtrees, levels, count, asset_count, split, low, high, write_leaves)
            for low, high in _split(subtrees, processes)
        ]
    )
    _hash_levels(levels, count, asset_count, split, depth, 0, 1)
    top = levels[-1][0] if count else None
    return TreeRoot(
        kind=TreeKind.LIABILITIES,
        assets=assets,
        leaf_count=count,
        node_hash=top[:HASH_BYTES].tobytes()
        if top is not None
        else empty_hash(TreeKind.LIABILITIES),
        sums=_record_sums(top, asset_count) if top is not None else (0,) * asset_count,
    )


def _hash_subtrees(
    levels: list[Bytes2D],
    count: int,
    asset_count: int,
    split: int,
    low: int,
    high: int,
    write_leaves: Callable[[int, int], None] | None,
) -> None:
    """Hash the subtrees under nodes ``low..high`` of level ``split``, leaves included."""
    if write_leaves is not None:
        write_leaves(low << split, min(high << split, count))
    _hash_levels(levels, count, asset_count, 0, split, low, high)


def _hash_levels(
    levels: list[Bytes2D],
    count: int,
    asset_count: int,
    lower: int,
    upper: int,
    low: int,
    high: int,
) -> None:
    """Hash levels ``lower + 1..upper`` under nodes ``low..high`` of level ``upper``.

    A level whose real node count is odd gets its padding node from whoever hashes its end.
    """
    for level in range(lower, upper):
        real = level_size(count, level)
        child_low = low << (upper - level)
        child_high = min(high << (upper - level), real)
        if child_high == real and real % 2 and real > 1:
            _write_padding(levels[level][real])
            child_high += 1
        _parent_range(
            levels[level], levels[level + 1], asset_count, child_low // 2, child_high // 2
        )


def _write_padding(record: Bytes2D) -> None:
    """Overwrite a record with the empty node: its hash and zero sums."""
    record[:HASH_BYTES] = np.frombuffer(empty_hash(TreeKind.LIABILITIES), dtype=np.uint8)
    record[HASH_BYTES:] = 0


def _parent_range(child: Bytes2D, parent: Bytes2D, asset_count: int, low: int, high: int) -> None:
    """Write parents ``low..high`` from children ``2 low..2 high``: sums with carries, then hashes.

    Each node hash is a copy of the SHA-256 state that has already absorbed the node prefix,
    fed the two adjacent child records straight from the child level's memory: no preimage is
    assembled, and copying a state costs less than creating one (``hashlib`` over OpenSSL 3).
    """
    if high <= low:
        return
    width = child.shape[1]
    words = child[2 * low : 2 * high].view(">u8")
    parent_words = parent[low:high].view(">u8")
    for position in range(asset_count):
        high_column = HASH_BYTES // 8 + 2 * position
        left_low = words[0::2, high_column + 1].astype(np.uint64)
        low_limb = left_low + words[1::2, high_column + 1].astype(np.uint64)
        carry = (low_limb < left_low).astype(np.uint64)
        parent_words[:, high_column] = words[0::2, high_column] + words[1::2, high_column] + carry
        parent_words[:, high_column + 1] = low_limb
    flat = child.reshape(-1).data
    node_state = _NODE_STATE.copy
    step = 2 * width
    for start in range(low, high, HASH_CHUNK_NODES):
        stop = min(start + HASH_CHUNK_NODES, high)
        digests: list[bytes] = []
        append = digests.append
        for offset in range(start * step, stop * step, step):
            state = node_state()
            state.update(flat[offset : offset + step])
            append(state.digest())
        parent[start:stop, :HASH_BYTES] = np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(
            -1, HASH_BYTES
        )


def _record_sums(record: Bytes2D, asset_count: int) -> tuple[int, ...]:
    """Decode a record's per-asset sums."""
    raw = record.tobytes()
    return tuple(
        int.from_bytes(raw[start : start + SUM_WIDTH_BYTES], "big")
        for start in range(HASH_BYTES, HASH_BYTES + SUM_WIDTH_BYTES * asset_count, SUM_WIDTH_BYTES)
    )

"""Merkle trees for proof of reserves: byte formats, roots, inclusion proofs and their checks.

Two trees share one engine. The holdings tree is a plain Merkle tree (records are bare 32-byte
hashes); the liability tree is a Merkle *sum* tree whose records are ``hash || sums`` with one
128-bit sum per asset, and whose node hash commits to both children's records, so to both
children's per-asset sums (the fix of Hu et al., IACR eprint 2018/1139, to Maxwell's tree).

This module needs only ``hashlib`` and ``hmac``: the auditors' verifier imports it and nothing
that builds. The byte formats are specified in ``reporting/SPEC-merkle.md``; ``reporting.sumtree``
is the fast builder of large liability trees, and ``reporting.holdings`` holds the holdings leaves.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import secrets
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from reporting.exceptions import (
    AmountOverflowError,
    AssetListError,
    DuplicateLeafError,
    LeafError,
    NegativeAmountError,
    NonceError,
    ProofFormatError,
    ProofInvalidError,
    RootMismatchError,
    TotalsMismatchError,
)

FORMAT_VERSION = 1
"""The version byte that starts every hashed preimage and every serialised proof."""

HASH_BYTES = 32
"""Length of a SHA-256 digest, a salt and a node hash, in bytes."""

SUM_WIDTH_BYTES = 16
"""Width of one per-asset amount or sum, in bytes (unsigned big-endian, 128 bits)."""

MAX_AMOUNT_BASE_UNITS = (1 << (8 * SUM_WIDTH_BYTES)) - 1
"""Largest amount or sum a v1 leaf or node can hold, in base units (2**128 - 1)."""

NONCE_BYTES = 32
"""Length of a fresh per-snapshot salt nonce, and the shortest nonce accepted, in bytes."""

MAX_ACCOUNT_ID_BYTES = 1024
"""Longest account id accepted, in UTF-8 bytes (its length is encoded on two bytes)."""

MAX_ASSET_CODE_BYTES = 64
"""Longest asset code accepted, in ASCII bytes."""

MAX_ASSETS = 255
"""Most assets one liability tree may carry (the count is encoded on one byte)."""

MAX_LEAVES = (1 << 64) - 1
"""Most leaves a tree may have (the count and the leaf index are encoded on eight bytes)."""

SALT_TAG = 0x16
"""Domain tag of the salt HMAC's message, so a salt is never another preimage's hash."""


class TreeKind(Enum):
    """Which of the two trees a root or a proof belongs to."""

    HOLDINGS = "holdings"
    LIABILITIES = "liabilities"


@dataclass(frozen=True)
class DomainTags:
    """The tag bytes that separate a tree's leaf, node, padding, root and proof encodings."""

    leaf: int
    node: int
    empty: int
    root: int
    proof: int


TAGS: Mapping[TreeKind, DomainTags] = {
    TreeKind.HOLDINGS: DomainTags(leaf=0x01, node=0x02, empty=0x03, root=0x04, proof=0x05),
    TreeKind.LIABILITIES: DomainTags(leaf=0x11, node=0x12, empty=0x13, root=0x14, proof=0x15),
}
"""Tag bytes per tree; every value differs, so no encoding of one kind parses as another."""


def domain_prefix(tag: int) -> bytes:
    """Return the two bytes ``version || tag`` that start a preimage or a serialised proof."""
    return bytes((FORMAT_VERSION, tag))


def empty_hash(kind: TreeKind) -> bytes:
    """Return the hash of the padding node that pairs an unpaired last node of a level."""
    return hashlib.sha256(domain_prefix(TAGS[kind].empty)).digest()


def record_width(asset_count: int) -> int:
    """Return the bytes of one node record: its hash and one 128-bit sum per asset."""
    return HASH_BYTES + SUM_WIDTH_BYTES * asset_count


def encode_sums(sums: Sequence[int], assets: Sequence[str]) -> bytes:
    """Encode per-asset amounts as 16-byte big-endian fields, refusing negatives and overflow."""
    for asset, amount in zip(assets, sums, strict=True):
        if amount < 0:
            raise NegativeAmountError(
                f"The amount of asset {asset} is {amount}; amounts are zero or more base units."
            )
        if amount > MAX_AMOUNT_BASE_UNITS:
            raise AmountOverflowError(
                f"The amount of asset {asset} is {amount}, above the 128-bit limit of the v1 encoding."
            )
    return b"".join(amount.to_bytes(SUM_WIDTH_BYTES, "big") for amount in sums)


def node_hash(
    kind: TreeKind,
    assets: Sequence[str],
    left: tuple[bytes, Sequence[int]],
    right: tuple[bytes, Sequence[int]],
) -> bytes:
    """Hash a node from both children's records: ``H(v || node tag || left || right)``."""
    return hashlib.sha256(
        domain_prefix(TAGS[kind].node)
        + left[0]
        + encode_sums(left[1], assets)
        + right[0]
        + encode_sums(right[1], assets)
    ).digest()


def tree_depth(leaf_count: int) -> int:
    """Return the number of levels above the leaves (the siblings in every proof)."""
    return 0 if leaf_count <= 1 else (leaf_count - 1).bit_length()


def level_size(leaf_count: int, level: int) -> int:
    """Return the number of real (unpadded) nodes at ``level`` of a tree of ``leaf_count``."""
    return ((leaf_count - 1) >> level) + 1


def canonical_assets(assets: Iterable[str]) -> tuple[str, ...]:
    """Check an asset list is canonical: printable ASCII codes in strictly ascending order."""
    codes = tuple(assets)
    if len(codes) > MAX_ASSETS:
        raise AssetListError(f"The asset list has {len(codes)} codes; at most {MAX_ASSETS} fit.")
    for code in codes:
        if not isinstance(code, str) or not code:
            raise AssetListError(f"The asset code {code!r} is not a non-empty string.")
        raw = code.encode("utf-8")
        if len(raw) > MAX_ASSET_CODE_BYTES or not all(0x21 <= b <= 0x7E for b in raw):
            raise AssetListError(
                f"The asset code {code!r} must be 1 to {MAX_ASSET_CODE_BYTES} printable ASCII characters without spaces."
            )
    if list(codes) != sorted(set(codes), key=lambda code: code.encode()):
        raise AssetListError(
            f"The asset list {list(codes)} must be in ascending byte order without repeats; "
            f"list it as {sorted(set(codes), key=lambda code: code.encode())}."
        )
    return codes


def account_id_bytes(account_id: str) -> bytes:
    """Return the canonical encoding of an account id: its NFC UTF-8 bytes, checked."""
    if not isinstance(account_id, str) or not account_id:
        raise LeafError(f"The account id {account_id!r} is not a non-empty string.")
    if not unicodedata.is_normalized("NFC", account_id):
        raise LeafError(
            f"The account id {account_id!r} is not in Unicode NFC form; normalise it first so every party encodes it alike."
        )
    raw = account_id.encode("utf-8")
    if len(raw) > MAX_ACCOUNT_ID_BYTES:
        raise LeafError(
            f"The account id starting {account_id[:32]!r} is {len(raw)} bytes; at most {MAX_ACCOUNT_ID_BYTES} fit."
        )
    return raw


def new_snapshot_nonce(random_bytes: Callable[[int], bytes] = secrets.token_bytes) -> bytes:
    """Draw a fresh secret salt nonce for one snapshot (inject ``random_bytes`` in tests)."""
    return random_bytes(NONCE_BYTES)


def check_nonce(nonce: bytes) -> None:
    """Refuse a nonce too short to stop anyone from confirming a guessed allocation."""
    if not isinstance(nonce, bytes) or len(nonce) < NONCE_BYTES:
        raise NonceError(f"The snapshot nonce must be at least {NONCE_BYTES} random bytes.")


def derive_salt(nonce: bytes, account_id: str) -> bytes:
    """Return an account's salt: ``HMAC-SHA256(nonce, v || salt tag || account id)``."""
    check_nonce(nonce)
    message = domain_prefix(SALT_TAG) + account_id_bytes(account_id)
    return hmac.digest(nonce, message, "sha256")


def _check_amounts(amounts: Sequence[int], where: str) -> tuple[int, ...]:
    """Return amounts as a tuple of ints, refusing non-integers, negatives and overflow."""
    checked = tuple(amounts)
    for position, amount in enumerate(checked):
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise LeafError(
                f"Amount {position} of {where} is {amount!r}, not an integer of base units."
            )
        if amount < 0:
            raise NegativeAmountError(
                f"Amount {position} of {where} is {amount}; liabilities are zero or more base units."
            )
        if amount > MAX_AMOUNT_BASE_UNITS:
            raise AmountOverflowError(
                f"Amount {position} of {where} is {amount}, above the 128-bit limit of the v1 encoding."
            )
    return checked


@dataclass(frozen=True)
class LiabilityLeaf:
    """One account's liabilities in base units, one amount per asset of the tree's list."""

    account_id: str
    amounts: tuple[int, ...]
    salt: bytes = field(repr=False)

    def __post_init__(self) -> None:
        """Validate the id, the amounts and the salt's length."""
        account_id_bytes(self.account_id)
        _check_amounts(self.amounts, f"account {self.account_id!r}")
        if not isinstance(self.salt, bytes) or len(self.salt) != HASH_BYTES:
            raise LeafError(f"The salt of account {self.account_id!r} must be {HASH_BYTES} bytes.")

    def to_bytes(self) -> bytes:
        """Encode as ``salt || u16 id length || id || amounts`` (the leaf hash's body)."""
        raw = account_id_bytes(self.account_id)
        return (
            self.salt
            + len(raw).to_bytes(2, "big")
            + raw
            + b"".join(amount.to_bytes(SUM_WIDTH_BYTES, "big") for amount in self.amounts)
        )

    @classmethod
    def from_bytes(cls, data: bytes, asset_count: int) -> LiabilityLeaf:
        """Decode :meth:`to_bytes` output for a tree of ``asset_count`` assets."""
        if len(data) < HASH_BYTES + 2:
            raise ProofFormatError("The leaf bytes are too short to hold a salt and an id length.")
        id_length = int.from_bytes(data[HASH_BYTES : HASH_BYTES + 2], "big")
        start = HASH_BYTES + 2 + id_length
        if len(data) != start + SUM_WIDTH_BYTES * asset_count:
            raise ProofFormatError(
                f"The leaf bytes are {len(data)} long; an id of {id_length} bytes and {asset_count} amounts need {start + SUM_WIDTH_BYTES * asset_count}."
            )
        try:
            account_id = data[HASH_BYTES + 2 : start].decode("utf-8")
        except UnicodeDecodeError as error:
            raise ProofFormatError("The leaf's account id is not valid UTF-8.") from error
        amounts = tuple(
            int.from_bytes(data[offset : offset + SUM_WIDTH_BYTES], "big")
            for offset in range(start, len(data), SUM_WIDTH_BYTES)
        )
        return cls(account_id=account_id, amounts=amounts, salt=data[:HASH_BYTES])

    def leaf_hash(self) -> bytes:
        """Return ``SHA256(v || leaf tag || to_bytes())``."""
        prefix = domain_prefix(TAGS[TreeKind.LIABILITIES].leaf)
        return hashlib.sha256(prefix + self.to_bytes()).digest()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able form; amounts are decimal strings, exact in any JSON reader."""
        return {
            "account_id": self.account_id,
            "amounts": [str(amount) for amount in self.amounts],
            "salt": self.salt.hex(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LiabilityLeaf:
        """Parse :meth:`to_dict` output, refusing missing fields and non-decimal amounts."""
        account_id = _field(data, "account_id", str, "leaf")
        amounts = tuple(
            _parse_int(text, f"amount of account {account_id!r}")
            for text in _field(data, "amounts", list, "leaf")
        )
        return cls(
            account_id=account_id,
            amounts=amounts,
            salt=_parse_hex(_field(data, "salt", str, "leaf"), "leaf salt"),
        )


def _field(data: Mapping[str, Any], name: str, kind: type, what: str) -> Any:
    """Return ``data[name]`` if present with the right JSON type, else a ProofFormatError."""
    if not isinstance(data, Mapping) or name not in data:
        raise ProofFormatError(f"The {what} has no {name!r} field.")
    value = data[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ProofFormatError(f"The {what}'s {name!r} field must be a JSON {kind.__name__}.")
    return value


def _parse_int(text: Any, what: str) -> int:
    """Parse a decimal string (a leading minus allowed, so checks can name the sign)."""
    digits = text[1:] if isinstance(text, str) and text.startswith("-") else text
    if not isinstance(digits, str) or not digits.isascii() or not digits.isdigit():
        raise ProofFormatError(f"The {what} must be a decimal string of base units, not {text!r}.")
    return int(text)


def _parse_hex(text: str, what: str, length: int = HASH_BYTES) -> bytes:
    """Parse lowercase or uppercase hex of exactly ``length`` bytes."""
    try:
        raw = bytes.fromhex(text)
    except ValueError as error:
        raise ProofFormatError(f"The {what} is not hexadecimal.") from error
    if len(raw) != length:
        raise ProofFormatError(f"The {what} must be {length} bytes, not {len(raw)}.")
    return raw


@dataclass(frozen=True)
class TreeRoot:
    """What gets anchored: the tree kind, its assets, leaf count, top node hash and top sums."""

    kind: TreeKind
    assets: tuple[str, ...]
    leaf_count: int
    node_hash: bytes
    sums: tuple[int, ...]

    def __post_init__(self) -> None:
        """Refuse a root that could not be encoded (bad lengths, sign or asset list)."""
        canonical_assets(self.assets)
        if self.kind is TreeKind.HOLDINGS and self.assets:
            raise AssetListError(
                "A holdings root carries no asset list; its leaves name their assets."
            )
        if not 0 <= self.leaf_count <= MAX_LEAVES:
            raise ProofFormatError(f"The root's leaf count {self.leaf_count} is out of range.")
        if len(self.node_hash) != HASH_BYTES:
            raise ProofFormatError(f"The root's node hash must be {HASH_BYTES} bytes.")
        if len(self.sums) != len(self.assets):
            raise ProofFormatError(
                f"The root has {len(self.sums)} sums for {len(self.assets)} assets; it needs one per asset."
            )
        encode_sums(self.sums, self.assets)

    def encode(self) -> bytes:
        """Encode as ``v || root tag || u8 n || (u8 len || code)* || u64 count || hash || sums``."""
        codes = b"".join(len(code).to_bytes(1, "big") + code.encode() for code in self.assets)
        return (
            domain_prefix(TAGS[self.kind].root)
            + len(self.assets).to_bytes(1, "big")
            + codes
            + self.leaf_count.to_bytes(8, "big")
            + self.node_hash
            + encode_sums(self.sums, self.assets)
        )

    def digest(self) -> bytes:
        """Return ``SHA256(encode())``: the 32 bytes an attestation anchors."""
        return hashlib.sha256(self.encode()).digest()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able form; sums are decimal strings."""
        return {
            "version": FORMAT_VERSION,
            "tree": self.kind.value,
            "assets": list(self.assets),
            "leaf_count": self.leaf_count,
            "node_hash": self.node_hash.hex(),
            "sums": [str(total) for total in self.sums],
            "digest": self.digest().hex(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TreeRoot:
        """Parse :meth:`to_dict` output; a stated digest must match the recomputed one."""
        _check_version(data, "root")
        root = cls(
            kind=_parse_kind(_field(data, "tree", str, "root")),
            assets=tuple(_field(data, "assets", list, "root")),
            leaf_count=_field(data, "leaf_count", int, "root"),
            node_hash=_parse_hex(_field(data, "node_hash", str, "root"), "root node hash"),
            sums=tuple(_parse_int(text, "root sum") for text in _field(data, "sums", list, "root")),
        )
        if "digest" in data and data["digest"] != root.digest().hex():
            raise RootMismatchError(
                f"Root digest mismatch: the root's fields hash to {root.digest().hex()} but it states {data['digest']}."
            )
        return root


def _check_version(data: Mapping[str, Any], what: str) -> None:
    """Refuse a JSON form of another format version."""
    version = _field(data, "version", int, what)
    if version != FORMAT_VERSION:
        raise ProofFormatError(
            f"The {what} has format version {version}; this code reads version {FORMAT_VERSION}."
        )


def _parse_kind(text: str) -> TreeKind:
    """Map a JSON tree name to its kind."""
    try:
        return TreeKind(text)
    except ValueError as error:
        raise ProofFormatError(
            f"The tree kind {text!r} is neither 'holdings' nor 'liabilities'."
        ) from error


@dataclass(frozen=True)
class Sibling:
    """One step of a proof: the sibling node's hash and its per-asset sums (none for holdings)."""

    node_hash: bytes
    sums: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        """Refuse a hash of the wrong length (sums are checked against the root when verifying)."""
        if not isinstance(self.node_hash, bytes) or len(self.node_hash) != HASH_BYTES:
            raise ProofFormatError(f"A sibling hash must be {HASH_BYTES} bytes.")


@dataclass(frozen=True)
class InclusionProof:
    """The siblings from a leaf up to the top, lowest level first, and the leaf's index."""

    kind: TreeKind
    leaf_index: int
    siblings: tuple[Sibling, ...]

    def to_bytes(self) -> bytes:
        """Serialise as ``v || proof tag || u64 index || u8 depth || (hash || sums)*``."""
        if not 0 <= self.leaf_index <= MAX_LEAVES:
            raise ProofFormatError(f"The leaf index {self.leaf_index} is out of range.")
        body = b"".join(
            sibling.node_hash
            + b"".join(total.to_bytes(SUM_WIDTH_BYTES, "big") for total in sibling.sums)
            for sibling in self.siblings
        )
        return (
            domain_prefix(TAGS[self.kind].proof)
            + self.leaf_index.to_bytes(8, "big")
            + len(self.siblings).to_bytes(1, "big")
            + body
        )

    @classmethod
    def from_bytes(cls, data: bytes, asset_count: int) -> InclusionProof:
        """Parse :meth:`to_bytes` output for a tree of ``asset_count`` assets (0 for holdings)."""
        kinds = {domain_prefix(tags.proof): kind for kind, tags in TAGS.items()}
        if len(data) < 11 or data[:2] not in kinds:
            raise ProofFormatError("The proof bytes do not start with a v1 proof prefix.")
        kind = kinds[data[:2]]
        if kind is TreeKind.HOLDINGS and asset_count:
            raise ProofFormatError("A holdings proof carries no sums; parse it with asset_count=0.")
        width = record_width(asset_count)
        depth = data[10]
        if len(data) != 11 + depth * width:
            raise ProofFormatError(
                f"The proof bytes are {len(data)} long; {depth} siblings of {width} bytes need {11 + depth * width}."
            )
        siblings = []
        for offset in range(11, len(data), width):
            record = data[offset : offset + width]
            sums = tuple(
                int.from_bytes(record[start : start + SUM_WIDTH_BYTES], "big")
                for start in range(HASH_BYTES, width, SUM_WIDTH_BYTES)
            )
            siblings.append(Sibling(node_hash=record[:HASH_BYTES], sums=sums))
        return cls(
            kind=kind, leaf_index=int.from_bytes(data[2:10], "big"), siblings=tuple(siblings)
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able form; sums are decimal strings."""
        return {
            "version": FORMAT_VERSION,
            "tree": self.kind.value,
            "leaf_index": self.leaf_index,
            "siblings": [
                {"hash": sibling.node_hash.hex(), "sums": [str(total) for total in sibling.sums]}
                for sibling in self.siblings
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InclusionProof:
        """Parse :meth:`to_dict` output (negative sums parse, and are refused by the check)."""
        _check_version(data, "proof")
        siblings = tuple(
            Sibling(
                node_hash=_parse_hex(_field(item, "hash", str, "proof sibling"), "sibling hash"),
                sums=tuple(
                    _parse_int(text, "sibling sum")
                    for text in _field(item, "sums", list, "proof sibling")
                ),
            )
            for item in _field(data, "siblings", list, "proof")
        )
        return cls(
            kind=_parse_kind(_field(data, "tree", str, "proof")),
            leaf_index=_field(data, "leaf_index", int, "proof"),
            siblings=siblings,
        )


def verify_path(
    root: TreeRoot,
    leaf_record: tuple[bytes, tuple[int, ...]],
    proof: InclusionProof,
    *,
    root_digest: bytes | None = None,
) -> None:
    """Fold a leaf record up a proof and check it ends at the root's hash and sums.

    Raises a :class:`~reporting.exceptions.VerificationError` subclass naming the first check
    that failed; returns ``None`` when the leaf is in the tree the root describes.
    """
    if root_digest is not None and root.digest() != root_digest:
        raise RootMismatchError(
            f"Root digest mismatch: the root's fields hash to {root.digest().hex()} but the anchored digest is {root_digest.hex()}."
        )
    if proof.kind is not root.kind:
        raise ProofInvalidError(
            f"A {proof.kind.value} proof cannot be checked against a {root.kind.value} root."
        )
    count = root.leaf_count
    if not 0 <= proof.leaf_index < count:
        raise ProofInvalidError(
            f"The leaf index {proof.leaf_index} is outside the tree of {count} leaves."
        )
    depth = tree_depth(count)
    if len(proof.siblings) != depth:
        raise ProofInvalidError(
            f"The proof has {len(proof.siblings)} siblings but a tree of {count} leaves needs {depth}."
        )
    assets = root.assets
    padding = (empty_hash(root.kind), (0,) * len(assets))
    current = leaf_record
    position = proof.leaf_index
    for level, sibling in enumerate(proof.siblings):
        if len(sibling.sums) != len(assets):
            raise ProofInvalidError(
                f"The sibling at level {level} has {len(sibling.sums)} sums but the root has {len(assets)} assets."
            )
        for asset, total in zip(assets, sibling.sums, strict=True):
            if total < 0:
                raise ProofInvalidError(
                    f"The sibling sum of asset {asset} at level {level} is negative ({total})."
                )
            if total > MAX_AMOUNT_BASE_UNITS:
                raise ProofInvalidError(
                    f"The sibling sum of asset {asset} at level {level} exceeds 128 bits."
                )
        if (
            position ^ 1 >= level_size(count, level)
            and (sibling.node_hash, sibling.sums) != padding
        ):
            raise ProofInvalidError(
                f"The sibling at level {level} must be the empty padding node, because that level has only {level_size(count, level)} nodes."
            )
        pair = (current, (sibling.node_hash, sibling.sums))
        left, right = pair if position % 2 == 0 else pair[::-1]
        sums = tuple(a + b for a, b in zip(left[1], right[1], strict=True))
        for asset, total in zip(assets, sums, strict=True):
            if total > MAX_AMOUNT_BASE_UNITS:
                raise ProofInvalidError(
                    f"The sum of asset {asset} at level {level + 1} exceeds 128 bits."
                )
        current = (node_hash(root.kind, assets, left, right), sums)
        position >>= 1
    if current[0] != root.node_hash:
        raise RootMismatchError(
            f"Root hash mismatch: leaf {proof.leaf_index}'s proof leads to {current[0].hex()} but the root's node hash is {root.node_hash.hex()}."
        )
    for asset, stated, added in zip(assets, root.sums, current[1], strict=True):
        if stated != added:
            raise TotalsMismatchError(
                f"The totals do not add up: the root states {stated} of asset {asset} but its children add up to {added}."
            )


def verify_liability_proof(
    root: TreeRoot, leaf: LiabilityLeaf, proof: InclusionProof, *, root_digest: bytes | None = None
) -> None:
    """Check an account's leaf is in the liability tree of ``root`` (raises if it is not)."""
    if root.kind is not TreeKind.LIABILITIES:
        raise ProofInvalidError("A liability leaf can only be checked against a liabilities root.")
    if len(leaf.amounts) != len(root.assets):
        raise LeafError(
            f"Account {leaf.account_id!r} has {len(leaf.amounts)} amounts but the root's assets {list(root.assets)} need {len(root.assets)}."
        )
    verify_path(root, (leaf.leaf_hash(), leaf.amounts), proof, root_digest=root_digest)


@dataclass(frozen=True)
class ReferenceTree:
    """A tree kept as Python lists: for small trees, for auditors' rebuilds, and as a cross-check.

    ``levels[0]`` holds the leaf records in canonical order; every level with an odd number of
    nodes above one is padded with the empty node before its parent level is hashed.
    """

    kind: TreeKind
    assets: tuple[str, ...]
    leaf_count: int
    levels: tuple[tuple[tuple[bytes, tuple[int, ...]], ...], ...]

    @classmethod
    def build(
        cls, kind: TreeKind, assets: Sequence[str], records: Sequence[tuple[bytes, tuple[int, ...]]]
    ) -> ReferenceTree:
        """Hash the levels above ``records`` (already in canonical order)."""
        assets = canonical_assets(assets)
        padding = (empty_hash(kind), (0,) * len(assets))
        level = list(records)
        levels = []
        while len(level) > 1:
            if len(level) % 2:
                level.append(padding)
            levels.append(tuple(level))
            parents = []
            for left, right in zip(level[0::2], level[1::2], strict=True):
                sums = tuple(a + b for a, b in zip(left[1], right[1], strict=True))
                encode_sums(sums, assets)
                parents.append((node_hash(kind, assets, left, right), sums))
            level = parents
        levels.append(tuple(level))
        return cls(kind=kind, assets=assets, leaf_count=len(records), levels=tuple(levels))

    @property
    def root(self) -> TreeRoot:
        """The root of this tree (an empty tree's top is the padding node with zero sums)."""
        top = (
            self.levels[-1][0]
            if self.levels[-1]
            else (empty_hash(self.kind), (0,) * len(self.assets))
        )
        return TreeRoot(self.kind, self.assets, self.leaf_count, top[0], top[1])

    def proof(self, leaf_index: int) -> InclusionProof:
        """Return the inclusion proof of the leaf at ``leaf_index``."""
        if not 0 <= leaf_index < self.leaf_count:
            raise ProofInvalidError(
                f"The leaf index {leaf_index} is outside the tree of {self.leaf_count} leaves."
            )
        siblings = tuple(
            Sibling(*self.levels[level][(leaf_index >> level) ^ 1])
            for level in range(len(self.levels) - 1)
        )
        return InclusionProof(self.kind, leaf_index, siblings)


def rebuild_liability_tree(assets: Sequence[str], leaves: Iterable[LiabilityLeaf]) -> ReferenceTree:
    """Rebuild a liability tree from all its leaves (salts included), as an auditor does."""
    assets = canonical_assets(assets)
    ordered = sorted(leaves, key=lambda leaf: leaf.salt)
    for earlier, later in itertools.pairwise(ordered):
        if earlier.salt == later.salt:
            raise DuplicateLeafError(
                f"Two leaves share one salt (account {later.account_id!r}); each account appears once."
            )
    for leaf in ordered:
        if len(leaf.amounts) != len(assets):
            raise LeafError(
                f"Account {leaf.account_id!r} has {len(leaf.amounts)} amounts for {len(assets)} assets."
            )
    records = [(leaf.leaf_hash(), leaf.amounts) for leaf in ordered]
    return ReferenceTree.build(TreeKind.LIABILITIES, assets, records)


def liability_package(root: TreeRoot, leaf: LiabilityLeaf, proof: InclusionProof) -> dict[str, Any]:
    """Return what one account receives: the root, its own leaf (with salt) and its proof."""
    return {
        "version": FORMAT_VERSION,
        "root": root.to_dict(),
        "leaf": leaf.to_dict(),
        "proof": proof.to_dict(),
    }


def verify_liability_package(
    package: Mapping[str, Any], *, root_digest: bytes | None = None
) -> LiabilityLeaf:
    """Check one account's package against its root (and the anchored digest, if given)."""
    _check_version(package, "package")
    root = TreeRoot.from_dict(_field(package, "root", dict, "package"))
    leaf = LiabilityLeaf.from_dict(_field(package, "leaf", dict, "package"))
    proof = InclusionProof.from_dict(_field(package, "proof", dict, "package"))
    verify_liability_proof(root, leaf, proof, root_digest=root_digest)
    return leaf


def verify_public_listing(
    listing: Mapping[str, Any], *, root_digest: bytes | None = None, complete: bool = False
) -> tuple[TreeRoot, tuple[LiabilityLeaf, ...]]:
    """Check a published listing of leaves (public budget lines) against its root.

    Every entry with a proof is checked against the root. With ``complete=True`` the listing must
    hold every leaf of the tree; the root is then rebuilt from the leaves alone and must match
    byte for byte, which also proves the root's totals are the sum of the listed amounts.
    """
    _check_version(listing, "listing")
    root = TreeRoot.from_dict(_field(listing, "root", dict, "listing"))
    if root_digest is not None and root.digest() != root_digest:
        raise RootMismatchError(
            f"Root digest mismatch: the listing's root hashes to {root.digest().hex()} but the anchored digest is {root_digest.hex()}."
        )
    leaves = []
    for entry in _field(listing, "leaves", list, "listing"):
        leaf = LiabilityLeaf.from_dict(_field(entry, "leaf", dict, "listing entry"))
        if "proof" in entry:
            verify_liability_proof(
                root, leaf, InclusionProof.from_dict(_field(entry, "proof", dict, "listing entry"))
            )
        elif not complete:
            raise ProofFormatError(
                f"The entry of account {leaf.account_id!r} has no proof; only a complete listing may omit proofs."
            )
        leaves.append(leaf)
    if len({leaf.account_id for leaf in leaves}) != len(leaves):
        raise DuplicateLeafError("The listing names one account twice; each account appears once.")
    if complete:
        if len(leaves) != root.leaf_count:
            raise RootMismatchError(
                f"The listing has {len(leaves)} leaves but the root commits to {root.leaf_count}; a complete listing has every leaf."
            )
        rebuilt = rebuild_liability_tree(root.assets, leaves).root
        if rebuilt.node_hash != root.node_hash:
            raise RootMismatchError(
                f"Root hash mismatch: the listed leaves rebuild to {rebuilt.node_hash.hex()} but the root's node hash is {root.node_hash.hex()}."
            )
        for asset, stated, added in zip(root.assets, root.sums, rebuilt.sums, strict=True):
            if stated != added:
                raise TotalsMismatchError(
                    f"The totals do not add up: the root states {stated} of asset {asset} but the listed leaves add up to {added}."
                )
    return root, tuple(leaves)

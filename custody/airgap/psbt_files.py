"""PSBT files (BIP-174 binary ``.psbt`` or its base64 text) and merging signatures into a PSBT.

Bitcoin Core, Sparrow, Caravan and Coldcard exchange PSBTs as files: the binary serialization
(starting with the magic ``psbt\\xff``) or the same bytes in base64. Both are read; both are written
(``<name>.psbt`` and ``<name>.psbt.b64``), the base64 being what ``analyzepsbt`` takes.

``merge_signatures`` is ``combinepsbt``'s rule for what a cosigner adds: the two PSBTs must be
the same unsigned transaction (refused otherwise), and the partial signatures of the other are
added to the base, input by input. Unlike ``combinepsbt`` it can keep only one cosigner's
signatures (``only_fingerprint``), so a coordinator that imports an institution's file records
that institution's signatures and nothing a file carried besides.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from embit.base import EmbitError
from embit.psbt import PSBT

from custody.airgap.errors import RequestFileError, TamperedRequestError
from custody.bitcoin.psbt import unsigned_txid
from custody.bitcoin.signer import encode_psbt

PSBT_MAGIC = b"psbt\xff"
"""The first five bytes of every BIP-174 PSBT."""
BASE64_SUFFIX = ".b64"
"""Appended to a ``.psbt`` file's name for its base64 twin."""


def psbt_from_bytes(raw: bytes, where: str) -> PSBT:
    """Decode binary or base64 PSBT bytes; ``RequestFileError`` naming ``where`` otherwise."""
    try:
        if not raw.startswith(PSBT_MAGIC):
            raw = base64.b64decode(b"".join(raw.split()), validate=True)
        if not raw.startswith(PSBT_MAGIC):
            raise RequestFileError(f"{where} is not a PSBT (it lacks the BIP-174 magic bytes).")
        return PSBT.parse(raw)
    except (binascii.Error, EmbitError, ValueError, IndexError) as exc:
        if isinstance(exc, RequestFileError):
            raise
        raise RequestFileError(f"{where} does not decode as a PSBT: {exc}") from None


def read_psbt_file(path: Path) -> PSBT:
    """The PSBT in ``path``, binary or base64."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RequestFileError(f"Cannot read the PSBT file {path}: {exc.strerror}.") from None
    return psbt_from_bytes(raw, f"The file {path}")


def psbt_base64(psbt: PSBT) -> str:
    """The base64 text of ``psbt``, as ``analyzepsbt`` and ``combinepsbt`` take it."""
    return encode_psbt(psbt)


def write_psbt_files(psbt: PSBT, path: Path) -> tuple[Path, Path]:
    """Write ``psbt`` to ``path`` (binary) and ``path`` + ``.b64`` (base64); both paths."""
    text = psbt_base64(psbt)
    twin = path.with_name(path.name + BASE64_SUFFIX)
    _write_atomically(path, base64.b64decode(text))
    _write_atomically(twin, (text + "\n").encode("ascii"))
    return path, twin


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` whole or not at all: a half-written signed file is never left behind."""
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.replace(path)


def same_transaction(base: PSBT, other: PSBT) -> None:
    """Refuse unless ``other`` is the same unsigned transaction as ``base``, byte for byte."""
    if base.tx.serialize() != other.tx.serialize() or len(base.inputs) != len(other.inputs):
        raise TamperedRequestError(
            f"The PSBT is transaction {unsigned_txid(other)}, not {unsigned_txid(base)}: its "
            "inputs, outputs or amounts differ, so its signatures cannot be merged."
        )


def merge_signatures(base: PSBT, other: PSBT, only_fingerprint: str | None = None) -> int:
    """Add ``other``'s partial signatures to ``base`` (``combinepsbt``); how many were added.

    ``only_fingerprint`` keeps only signatures by keys that ``base`` derives from that cosigner
    fingerprint (hex). Signatures are copied as given: ``signed_fingerprints`` verifies them.
    """
    same_transaction(base, other)
    added = 0
    for mine, theirs in zip(base.inputs, other.inputs, strict=True):
        for pub, signature in theirs.partial_sigs.items():
            derivation = mine.bip32_derivations.get(pub)
            if only_fingerprint is not None and (
                derivation is None or derivation.fingerprint.hex() != only_fingerprint.lower()
            ):
                continue
            if mine.partial_sigs.get(pub) != signature:
                mine.partial_sigs[pub] = signature
                added += 1
    return added

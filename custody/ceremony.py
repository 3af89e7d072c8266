"""The key ceremony: one institution's cosigner seed is born, split among officers, and forgotten.

A seed is drawn from the CSPRNG, split with SLIP-39, and each share goes to its named holder (a
file only they receive, or a screen printed once). Before anything is recorded, quorums of the
fresh shares are recombined and must give back the seed's master fingerprint. The transcript
keeps only public facts: who holds which member index, the split's identifier and threshold,
the cosigner's fingerprint, xpub and Ethereum address, the witnesses and the time.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import random
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.clock import Clock, utc_now
from custody.exceptions import (
    CeremonyExistsError,
    CeremonyPlanError,
    KeyMaterialError,
    QuorumCheckError,
    ShareFileError,
    ShareMismatchError,
    UnknownCeremonyError,
)
from custody.keys import SEED_LENGTH_BYTES, cosigner_keys
from custody.records import CeremonyRecord, ShareHolderRecord
from custody.secret import SecretBytes
from custody.shamir import (
    RandomBytes,
    ShareMnemonic,
    ShareScheme,
    combine_shares,
    split_seed,
)

log = logging.getLogger(__name__)

MAX_EXHAUSTIVE_QUORUMS = 10
"""Up to this many threshold-subsets every one is recombined; beyond, the first and a random one."""
SHARE_FILE_MODE = 0o600
SHARE_FOLDER_MODE = 0o700


@dataclass(frozen=True)
class CeremonyPlan:
    """Who takes part: the institution, its share holders in member order, and the witnesses."""

    institution: str
    holders: tuple[str, ...]
    threshold: int
    witnesses: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.institution.strip():
            raise CeremonyPlanError("The institution name is empty; name the cosigner institution.")
        if any(not name.strip() for name in (*self.holders, *self.witnesses)):
            raise CeremonyPlanError("A holder or witness name is empty; name every participant.")
        if len(set(self.holders)) != len(self.holders):
            raise CeremonyPlanError(
                "Holder names repeat; each share needs its own named holder "
                "(one officer must not hold two shares)."
            )
        ShareScheme(self.threshold, len(self.holders))  # raises ShareSchemeError if impossible

    @property
    def scheme(self) -> ShareScheme:
        return ShareScheme(self.threshold, len(self.holders))


@dataclass(frozen=True)
class HolderEntry:
    """A transcript line: this officer holds this member share."""

    holder: str
    member_index: int


@dataclass(frozen=True)
class Transcript:
    """Public record of one ceremony; what later checks compare shares and keys against."""

    institution: str
    threshold: int
    share_count: int
    identifier: int
    iteration_exponent: int
    extendable: bool
    passphrase_protected: bool
    holders: tuple[HolderEntry, ...]
    fingerprint: str
    account_path: str
    account_xpub: str
    eth_address: str
    witnesses: tuple[str, ...]
    performed_at: datetime

    @property
    def key_origin(self) -> str:
        """``[fingerprint/48h/1h/0h/2h]tpub...`` as written inside descriptors."""
        return f"[{self.fingerprint}{self.account_path[1:]}]{self.account_xpub}"

    def holder_of(self, member_index: int) -> str | None:
        return next((h.holder for h in self.holders if h.member_index == member_index), None)

    @classmethod
    def from_record(cls, record: CeremonyRecord) -> Transcript:
        return cls(
            institution=record.institution,
            threshold=record.threshold,
            share_count=record.share_count,
            identifier=record.identifier,
            iteration_exponent=record.iteration_exponent,
            extendable=record.extendable,
            passphrase_protected=record.passphrase_protected,
            holders=tuple(HolderEntry(h.holder_name, h.member_index) for h in record.holders),
            fingerprint=record.fingerprint,
            account_path=record.account_path,
            account_xpub=record.account_xpub,
            eth_address=record.eth_address,
            witnesses=tuple(record.witnesses),
            performed_at=record.performed_at,
        )


@dataclass(frozen=True)
class HolderShare:
    """A share on its way to its holder; the words stay behind ``share.reveal()``."""

    institution: str
    holder: str
    share: ShareMnemonic = field(repr=False)

    def __repr__(self) -> str:
        return (
            f"HolderShare(institution={self.institution!r}, holder={self.holder!r}, "
            f"member_index={self.share.info.member_index}, words=<redacted>)"
        )


class ShareDelivery(Protocol):
    """Where shares go: one holder at a time, undone if the ceremony fails before recording."""

    def deliver(self, share: HolderShare, transcript: Transcript) -> None: ...

    def undo(self) -> None: ...


def share_file_text(share: HolderShare, transcript: Transcript) -> str:
    """A share file: ``#`` comment lines a holder can read, then the words on one line."""
    return (
        f"# SLIP-39 share of {transcript.institution}'s cosigner seed\n"
        f"# holder: {share.holder}\n"
        f"# member index: {share.share.info.member_index} "
        f"(any {transcript.threshold} of {transcript.share_count} recombine)\n"
        f"# identifier: {transcript.identifier}\n"
        f"# cosigner fingerprint: {transcript.fingerprint}\n"
        f"# Keep this offline; never type it anywhere but a signing prompt.\n"
        f"{share.share.reveal()}\n"
    )


def read_share_file(path: Path) -> str:
    """The share words of a share file as ``share_file_text`` writes it (``#`` lines dropped).

    Every command that takes a share file reads it here, so a file the ceremony wrote is always
    accepted. The error names the file, never its content.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a text file"
        raise ShareFileError(f"Cannot read the share file {path}: {reason}.") from None
    words = " ".join(
        stripped for line in lines if (stripped := line.strip()) and not stripped.startswith("#")
    )
    if not words:
        raise ShareFileError(
            f"The share file {path} holds no share words (only comment lines or nothing)."
        )
    return words


def _file_stem(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


class ShareFiles:
    """One 0600 file per holder in ``folder`` (created 0700); refuses to overwrite a file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.written: list[Path] = []

    def path_for(self, share: HolderShare) -> Path:
        index = share.share.info.member_index
        return self.folder / (
            f"{_file_stem(share.institution)}-share-{index}-{_file_stem(share.holder)}.txt"
        )

    def deliver(self, share: HolderShare, transcript: Transcript) -> None:
        self.folder.mkdir(mode=SHARE_FOLDER_MODE, parents=True, exist_ok=True)
        path = self.path_for(share)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SHARE_FILE_MODE)
        except FileExistsError:
            raise CeremonyPlanError(
                f"The share file {path} already exists; choose an empty folder for the shares."
            ) from None
        self.written.append(path)
        with os.fdopen(fd, "w") as handle:
            handle.write(share_file_text(share, transcript))
        log.info("share of %s delivered to %s at %s", share.institution, share.holder, path)

    def undo(self) -> None:
        for path in self.written:
            path.unlink(missing_ok=True)
        self.written.clear()


class PrintedShares:
    """Shows each share once through ``show`` (e.g. a terminal facing only that holder)."""

    def __init__(self, show: Callable[[str], None]) -> None:
        self.show = show

    def deliver(self, share: HolderShare, transcript: Transcript) -> None:
        self.show(share_file_text(share, transcript))

    def undo(self) -> None:
        """Printed words cannot be taken back; the holders are told to destroy them."""
        self.show("The ceremony failed: destroy every share printed above.")


def load_transcript(session: Session, institution: str) -> Transcript:
    """The transcript of ``institution``'s ceremony; ``UnknownCeremonyError`` if there is none."""
    return Transcript.from_record(ceremony_record(session, institution))


def ceremony_record(session: Session, institution: str) -> CeremonyRecord:
    record = session.scalar(select(CeremonyRecord).where(CeremonyRecord.institution == institution))
    if record is None:
        raise UnknownCeremonyError(
            f"No key ceremony is recorded for institution {institution!r}; "
            "run `treasury ceremony run` for it first."
        )
    return record


def list_transcripts(session: Session) -> list[Transcript]:
    records = session.scalars(select(CeremonyRecord).order_by(CeremonyRecord.id))
    return [Transcript.from_record(record) for record in records]


def quorums_to_check(count: int, threshold: int, rng: random.Random) -> list[tuple[int, ...]]:
    """Which threshold-subsets (0-based positions) to recombine right after the split.

    Every subset while there are few; otherwise the first ``threshold`` shares and one random
    subset, so a systematic fault and a share-specific one both have a chance to show.
    """
    if math.comb(count, threshold) <= MAX_EXHAUSTIVE_QUORUMS:
        return list(itertools.combinations(range(count), threshold))
    first = tuple(range(threshold))
    other = tuple(sorted(rng.sample(range(count), threshold)))
    return [first] if other == first else [first, other]


def verify_quorums(
    shares: Sequence[ShareMnemonic],
    passphrase: str,
    fingerprint: str,
    rng: random.Random,
) -> int:
    """Recombine chosen quorums and compare fingerprints; returns how many quorums were checked."""
    threshold = shares[0].info.member_threshold
    subsets = quorums_to_check(len(shares), threshold, rng)
    for subset in subsets:
        try:
            with combine_shares([shares[i] for i in subset], passphrase) as recovered:
                actual = cosigner_keys(recovered).fingerprint
        except KeyMaterialError as exc:
            raise QuorumCheckError(
                f"Shares at member positions {[i + 1 for i in subset]} did not recombine right "
                f"after the split ({exc}); nothing was recorded, run the ceremony again."
            ) from None
        if actual != fingerprint:
            raise QuorumCheckError(
                f"Shares at member positions {[i + 1 for i in subset]} recombine to fingerprint "
                f"{actual}, not {fingerprint}; nothing was recorded, run the ceremony again."
            )
    return len(subsets)


def run_ceremony(
    session: Session,
    plan: CeremonyPlan,
    delivery: ShareDelivery,
    passphrase: str = "",
    *,
    random_bytes: RandomBytes = secrets.token_bytes,
    rng: random.Random | None = None,
    clock: Clock = utc_now,
) -> Transcript:
    """Generate, split, verify, deliver and record one institution's cosigner seed.

    The transcript is added to ``session`` and flushed; the caller commits. If delivery or the
    flush fails, delivered share files are removed and nothing is recorded.
    """
    if session.scalar(
        select(CeremonyRecord.id).where(CeremonyRecord.institution == plan.institution)
    ):
        raise CeremonyExistsError(
            f"Institution {plan.institution!r} already has a ceremony transcript; a new seed for "
            "it needs a new institution name (e.g. with a year) and a new vault."
        )
    with SecretBytes(random_bytes(SEED_LENGTH_BYTES)) as seed:
        shares = split_seed(seed, plan.scheme, passphrase, random_bytes=random_bytes)
        keys = cosigner_keys(seed)
    checked = verify_quorums(shares, passphrase, keys.fingerprint, rng or random.SystemRandom())
    info = shares[0].info
    transcript = Transcript(
        institution=plan.institution,
        threshold=plan.threshold,
        share_count=len(shares),
        identifier=info.identifier,
        iteration_exponent=info.iteration_exponent,
        extendable=info.extendable,
        passphrase_protected=bool(passphrase),
        holders=tuple(
            HolderEntry(holder, share.info.member_index)
            for holder, share in zip(plan.holders, shares, strict=True)
        ),
        fingerprint=keys.fingerprint,
        account_path=keys.account_path,
        account_xpub=keys.account_xpub,
        eth_address=keys.eth_address,
        witnesses=plan.witnesses,
        performed_at=clock(),
    )
    try:
        for holder, share in zip(plan.holders, shares, strict=True):
            delivery.deliver(HolderShare(plan.institution, holder, share), transcript)
        session.add(_record(transcript))
        session.flush()
    except BaseException:
        delivery.undo()
        raise
    log.info(
        "key ceremony recorded: institution=%s fingerprint=%s quorums_checked=%d",
        plan.institution,
        keys.fingerprint,
        checked,
    )
    return transcript


def _record(transcript: Transcript) -> CeremonyRecord:
    return CeremonyRecord(
        institution=transcript.institution,
        threshold=transcript.threshold,
        share_count=transcript.share_count,
        identifier=transcript.identifier,
        iteration_exponent=transcript.iteration_exponent,
        extendable=transcript.extendable,
        passphrase_protected=transcript.passphrase_protected,
        fingerprint=transcript.fingerprint,
        account_path=transcript.account_path,
        account_xpub=transcript.account_xpub,
        eth_address=transcript.eth_address,
        witnesses=list(transcript.witnesses),
        performed_at=transcript.performed_at,
        holders=[
            ShareHolderRecord(holder_name=h.holder, member_index=h.member_index)
            for h in transcript.holders
        ],
    )


@dataclass(frozen=True)
class ShareHealth:
    """A share passed its health check: it is well formed and belongs where the transcript says."""

    institution: str
    holder: str
    member_index: int
    identifier: int


def check_share(
    transcript: Transcript, share: ShareMnemonic, holder: str | None = None
) -> ShareHealth:
    """Check a share against its transcript without recombining anything.

    Parsing the share already verified its word list and RS1024 checksum; this compares its
    public metadata (identifier, threshold, group layout, member index) with the transcript.
    """
    info = share.info
    where = f"{transcript.institution}'s transcript"
    mismatches = [
        ("identifier", info.identifier, transcript.identifier),
        ("member threshold", info.member_threshold, transcript.threshold),
        ("iteration exponent", info.iteration_exponent, transcript.iteration_exponent),
        ("group count", info.group_count, 1),
        ("group threshold", info.group_threshold, 1),
    ]
    for name, actual, expected in mismatches:
        if actual != expected:
            raise ShareMismatchError(
                f"The share's {name} is {actual} but {where} records {expected}: "
                "it is a share of another seed or split."
            )
    recorded = transcript.holder_of(info.member_index)
    if recorded is None:
        raise ShareMismatchError(
            f"The share's member index {info.member_index} was not issued in {where}."
        )
    if holder is not None and holder != recorded:
        raise ShareMismatchError(
            f"The share's member index {info.member_index} was issued to {recorded!r}, "
            f"not to {holder!r}, in {where}."
        )
    return ShareHealth(transcript.institution, recorded, info.member_index, info.identifier)


__all__ = [
    "CeremonyPlan",
    "HolderEntry",
    "HolderShare",
    "PrintedShares",
    "ShareDelivery",
    "ShareFiles",
    "ShareHealth",
    "Transcript",
    "ceremony_record",
    "check_share",
    "list_transcripts",
    "load_transcript",
    "read_share_file",
    "run_ceremony",
    "verify_quorums",
]

"""SLIP-39 splitting and recombination of cosigner seeds, with errors that never echo share words.

One group per seed (``group_threshold = 1``): an institution's officers each hold one member share
and any ``threshold`` of them recombine the seed. The reference implementation
(``shamir-mnemonic``) does the mathematics; this module adds typed values that hide their words,
share inspection without reconstruction, and specific errors checked before combining.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import shamir_mnemonic
from shamir_mnemonic import shamir as _slip39_shamir
from shamir_mnemonic.wordlist import WORD_INDEX_MAP

from custody.exceptions import (
    InsufficientSharesError,
    InvalidShareError,
    MixedSharesError,
    ShareSchemeError,
)
from custody.secret import SecretBytes

MAX_SHARE_COUNT = 16
"""SLIP-39 encodes member indices in 4 bits."""
ITERATION_EXPONENT = 1
"""PBKDF2 rounds = 10000 * 2**e; 1 is the reference default (about 5 ms per combine)."""

RandomBytes = Callable[[int], bytes]

_random_lock = threading.Lock()


@dataclass(frozen=True)
class ShareScheme:
    """How a seed is split: any ``threshold`` of ``count`` member shares recombine it."""

    threshold: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.threshold <= self.count <= MAX_SHARE_COUNT:
            raise ShareSchemeError(
                f"A share scheme needs 1 <= threshold <= count <= {MAX_SHARE_COUNT}; "
                f"got threshold {self.threshold} of count {self.count}."
            )
        if self.threshold == 1 and self.count > 1:
            raise ShareSchemeError(
                "A threshold of 1 with several shares would hand every holder the whole seed; "
                "use threshold >= 2, or a single share."
            )


@dataclass(frozen=True)
class ShareInfo:
    """A share's public metadata: what a transcript may record and a health check compares."""

    identifier: int
    extendable: bool
    iteration_exponent: int
    group_index: int
    group_threshold: int
    group_count: int
    member_index: int
    member_threshold: int


class ShareMnemonic:
    """One holder's share: its words are only reachable through ``reveal()``.

    Parsing validates the RS1024 checksum and word list, so an instance is always a well-formed
    share; ``info`` is its public metadata.
    """

    __slots__ = ("_words", "info")

    def __init__(self, words: str, *, position: int = 1) -> None:
        normalised = " ".join(words.lower().split())
        unknown = [i for i, word in enumerate(normalised.split(), 1) if word not in WORD_INDEX_MAP]
        if unknown:
            raise InvalidShareError(
                f"Share {position} has words that are not in the SLIP-39 word list "
                f"(word positions {', '.join(map(str, unknown))}); check the transcription."
            )
        try:
            share = shamir_mnemonic.Share.from_mnemonic(normalised)
        except shamir_mnemonic.MnemonicError as exc:
            reason = "its checksum does not match" if "checksum" in str(exc) else "it is malformed"
            raise InvalidShareError(
                f"Share {position} is not a valid SLIP-39 share: {reason} "
                f"({len(normalised.split())} words); check the transcription."
            ) from None
        self._words = normalised
        self.info = ShareInfo(
            identifier=share.identifier,
            extendable=share.extendable,
            iteration_exponent=share.iteration_exponent,
            group_index=share.group_index,
            group_threshold=share.group_threshold,
            group_count=share.group_count,
            member_index=share.index,
            member_threshold=share.member_threshold,
        )

    def reveal(self) -> str:
        """The share's words, for handing to its holder once; never log or store them."""
        return self._words

    def __repr__(self) -> str:
        return (
            f"ShareMnemonic(identifier={self.info.identifier}, "
            f"member_index={self.info.member_index}, words=<redacted>)"
        )

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError(
            "Shares are not picklable: they must not leave memory except to their holder."
        )


@contextmanager
def _randomness(random_bytes: RandomBytes) -> Iterator[None]:
    """Route the reference implementation's randomness through ``random_bytes`` for one split.

    The reference library reads a module-level ``RANDOM_BYTES`` (its documented hook for
    deterministic vectors); a lock keeps concurrent splits from seeing each other's source.
    """
    with _random_lock:
        saved = _slip39_shamir.RANDOM_BYTES
        _slip39_shamir.RANDOM_BYTES = random_bytes
        try:
            yield
        finally:
            _slip39_shamir.RANDOM_BYTES = saved


def _passphrase_bytes(passphrase: str) -> bytes:
    encoded = passphrase.encode()
    if not all(32 <= c <= 126 for c in encoded):
        raise ShareSchemeError("A SLIP-39 passphrase may contain only printable ASCII characters.")
    return encoded


def split_seed(
    seed: SecretBytes,
    scheme: ShareScheme,
    passphrase: str = "",
    *,
    random_bytes: RandomBytes = secrets.token_bytes,
) -> list[ShareMnemonic]:
    """Split ``seed`` into ``scheme.count`` shares, any ``scheme.threshold`` of which recombine it."""
    with _randomness(random_bytes):
        groups = shamir_mnemonic.generate_mnemonics(
            group_threshold=1,
            groups=[(scheme.threshold, scheme.count)],
            master_secret=seed.reveal(),
            passphrase=_passphrase_bytes(passphrase),
            iteration_exponent=ITERATION_EXPONENT,
        )
    return [ShareMnemonic(words, position=i) for i, words in enumerate(groups[0], 1)]


def parse_shares(words: Sequence[str]) -> list[ShareMnemonic]:
    """Parse share texts as typed in by holders; errors name the share's position, never its words."""
    return [ShareMnemonic(text, position=i) for i, text in enumerate(words, 1)]


def _distinct(shares: Sequence[ShareMnemonic]) -> list[tuple[int, ShareMnemonic]]:
    """The shares with their 1-based positions, a share given twice kept once.

    Two *different* shares claiming the same member index cannot both be right: one was mistyped
    or altered, and recombining would fail with a vague message, so the positions are named here.
    """
    seen: dict[tuple[int, int], tuple[int, ShareMnemonic]] = {}
    for position, share in enumerate(shares, 1):
        key = (share.info.group_index, share.info.member_index)
        earlier = seen.get(key)
        if earlier is None:
            seen[key] = (position, share)
        elif not hmac.compare_digest(earlier[1].reveal(), share.reveal()):
            raise InvalidShareError(
                f"Shares {earlier[0]} and {position} both carry member index "
                f"{share.info.member_index} but differ: one of them was altered or mistyped; "
                "check both transcriptions."
            )
    return list(seen.values())


def _recover(shares: Sequence[ShareMnemonic]) -> shamir_mnemonic.EncryptedMasterSecret:
    """The encrypted master secret of exactly one quorum (raises ``MnemonicError``)."""
    return shamir_mnemonic.recover_ems(
        shamir_mnemonic.decode_mnemonics([share.reveal() for share in shares])
    )


def _single_group_secret(
    distinct: Sequence[tuple[int, ShareMnemonic]],
) -> shamir_mnemonic.EncryptedMasterSecret:
    """Recombine one quorum and check that every further share agrees with it.

    The seed comes from the first ``threshold`` shares in the order given. Each further share
    replaces the quorum's last share in a second recombination; SLIP-39 interpolates the secret
    at a point no member holds, so any change to a share's value changes that result, and a
    surplus share that disagrees is named instead of being silently ignored.
    """
    threshold = distinct[0][1].info.member_threshold
    quorum = [share for _, share in distinct[:threshold]]
    try:
        recovered = _recover(quorum)
    except shamir_mnemonic.MnemonicError:
        raise InvalidShareError(
            f"The shares at positions {', '.join(str(p) for p, _ in distinct[:threshold])} are "
            "individually valid but do not recombine: one of them was altered so that its "
            "checksum still holds; check their transcriptions."
        ) from None
    for position, extra in distinct[threshold:]:
        try:
            other = _recover([*quorum[: threshold - 1], extra])
            agrees = hmac.compare_digest(other.ciphertext, recovered.ciphertext)
        except shamir_mnemonic.MnemonicError:
            agrees = False
        if not agrees:
            raise InvalidShareError(
                f"Share {position} (member index {extra.info.member_index}) is individually valid "
                f"but does not agree with the shares at positions "
                f"{', '.join(str(p) for p, _ in distinct[:threshold])}: it was altered so that its "
                "checksum still holds; check its transcription, or leave it out."
            )
    return recovered


def combine_shares(shares: Sequence[ShareMnemonic], passphrase: str = "") -> SecretBytes:
    """Recombine the seed from a quorum of shares, or from more shares than the quorum needs.

    Checks first what SLIP-39 would otherwise report vaguely: shares from different splits, two
    different shares with one member index, and too few distinct shares. A share given twice
    counts once.

    More shares than the threshold are accepted, as the holders of a 2-of-3 split who all come
    to the signing table expect: the seed is recombined from the first ``threshold`` of them
    (in the order given) and every further share must recombine to the same secret with that
    quorum, so a surplus share that was altered is refused by its position rather than ignored.
    (The reference library refuses any surplus; splits with several groups, which ceremonies
    never make, keep its behaviour.)

    A wrong passphrase is *not* detectable here (SLIP-39 yields another seed by design): callers
    check the recovered key's fingerprint against the transcript.
    """
    if not shares:
        raise InsufficientSharesError("No shares were given; a quorum of share holders is needed.")
    identifiers = {share.info.identifier for share in shares}
    if len(identifiers) > 1:
        raise MixedSharesError(
            f"The shares come from {len(identifiers)} different splits (identifiers "
            f"{', '.join(map(str, sorted(identifiers)))}); bring shares of one seed only."
        )
    distinct = _distinct(shares)
    first = distinct[0][1].info
    if first.group_count == 1 and any(
        (share.info.member_threshold, share.info.group_count) != (first.member_threshold, 1)
        for _, share in distinct
    ):
        raise InvalidShareError(
            "The shares are individually valid but do not belong to one split: their member "
            "thresholds or group counts differ; bring shares of one seed only."
        )
    threshold = first.member_threshold
    members = {share.info.member_index for _, share in distinct}
    if len(members) < threshold:
        raise InsufficientSharesError(
            f"{len(members)} distinct share(s) given but this seed needs {threshold}; "
            "bring more share holders."
        )
    try:
        if first.group_count == 1:
            encrypted = _single_group_secret(distinct)
        else:
            encrypted = _recover([share for _, share in distinct])
        secret = encrypted.decrypt(_passphrase_bytes(passphrase))
    except shamir_mnemonic.MnemonicError:
        raise InvalidShareError(
            "The shares are individually valid but do not recombine (a share was altered so that "
            "its checksum still holds, or the set mixes incompatible parameters)."
        ) from None
    return SecretBytes(secret)

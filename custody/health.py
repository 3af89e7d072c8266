"""Key health check: do an institution's share holders still hold a quorum of its seed?

Between spends nobody touches the shares, so a lost, damaged or swapped share shows only on the
day a spend must be signed. A health check is a rehearsal of that day without the risk: a quorum
of holders brings their shares, the seed is recombined in a wipeable buffer
(``custody.secret``), its public identity (master fingerprint, BIP-48 account xpub, Safe owner
address) is derived and compared with what the ceremony recorded, and the seed is wiped.
Nothing is signed and nothing secret is returned, logged or kept: the result names only the
member indexes that took part and a reason written from public facts.

Given a fresh ``challenge`` (issued by whoever schedules the check), a quorum that recombined to
the recorded key also proves possession by signing it with both keys (``custody.key_possession``:
BIP-322 simple by the account key's ``/0/0`` child, EIP-191 by the Safe owner key); the proof is
verified against the transcript's public keys at once, and returned with the result. A proof
is public data: the challenge and two signatures, never a share or a key.

A wrong SLIP-39 passphrase cannot be told apart from shares of another seed by SLIP-39 itself
(it yields another valid seed by design); both show as a ``MISMATCH``.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from custody.bitcoin_network import BitcoinNetwork
from custody.ceremony import Transcript, check_share
from custody.exceptions import KeyMaterialError, ShareMismatchError
from custody.key_possession import PossessionProof, prove_possession, verify_possession
from custody.keys import cosigner_keys, signing_keys
from custody.shamir import ShareMnemonic, combine_shares, parse_shares

__all__ = ["HealthOutcome", "HealthResult", "PossessionProof", "check_key_health"]

log = logging.getLogger(__name__)


class HealthOutcome(enum.StrEnum):
    """What a health check found; stored as text."""

    OK = "ok"
    """A quorum recombined to the seed the ceremony recorded (fingerprint, xpub and address)."""
    MISMATCH = "mismatch"
    """The shares recombined, or belong, to another seed (another institution's, a wrong
    passphrase, or a share that was swapped)."""
    MALFORMED = "malformed"
    """The shares could not be used at all: unreadable, too few, altered, or mixed splits."""


@dataclass(frozen=True)
class HealthResult:
    """The outcome of one check: public facts only, safe to log, store and publish."""

    institution: str
    outcome: HealthOutcome
    member_indexes: tuple[int, ...]
    """The SLIP-39 member indexes of the shares that were brought (never the shares)."""
    reason: str
    """One sentence; names member indexes, positions and public keys, never share words."""
    proof: PossessionProof | None = None
    """Both keys' verified signatures over the challenge, when one was given and the check passed."""

    @property
    def ok(self) -> bool:
        return self.outcome is HealthOutcome.OK


def _member_indexes(shares: Sequence[ShareMnemonic]) -> tuple[int, ...]:
    return tuple(sorted({share.info.member_index for share in shares}))


def check_key_health(
    transcript: Transcript,
    shares: Sequence[str],
    passphrase: str = "",
    *,
    network: BitcoinNetwork = BitcoinNetwork.REGTEST,
    challenge: str | None = None,
) -> HealthResult:
    """Recombine ``shares`` (words as the holders typed them) and compare the seed's public identity with ``transcript``'s.

    Never raises for bad shares: a health check that fails is a result to record, not a crash.
    Each share is first compared with the transcript without recombining (identifier, threshold,
    member index), so another institution's share is named by its position; then a quorum is
    recombined and the derived fingerprint, account xpub and Safe owner address must all equal
    the recorded ones. The seed lives only inside ``combine_shares``' wipeable buffer. With a
    ``challenge``, a passing quorum also signs it with both keys, and the proof is verified
    against the transcript before it is returned (a proof that does not verify fails the check).
    """
    institution = transcript.institution
    try:
        parsed = parse_shares(shares)
    except KeyMaterialError as exc:
        return HealthResult(institution, HealthOutcome.MALFORMED, (), str(exc))
    members = _member_indexes(parsed)
    for position, share in enumerate(parsed, 1):
        try:
            check_share(transcript, share)
        except ShareMismatchError as exc:
            return HealthResult(
                institution, HealthOutcome.MISMATCH, members, f"Share {position}: {exc}"
            )
    proof = None
    try:
        with combine_shares(parsed, passphrase) as seed:
            keys = cosigner_keys(seed, network)
            differences = [
                f"{name} {actual} (recorded {recorded})"
                for name, actual, recorded in (
                    ("fingerprint", keys.fingerprint, transcript.fingerprint.lower()),
                    ("account xpub", keys.account_xpub, transcript.account_xpub),
                    ("Safe owner address", keys.eth_address, transcript.eth_address),
                )
                if actual != recorded
            ]
            if challenge is not None and not differences:
                with signing_keys(seed, keys.fingerprint, network) as signing:
                    proof = prove_possession(
                        challenge,
                        signing.bitcoin_root.derive(keys.account_path),
                        signing.eth_key,
                        network,
                    )
    except KeyMaterialError as exc:
        return HealthResult(institution, HealthOutcome.MALFORMED, members, str(exc))
    if proof is not None and challenge is not None:
        unproven = verify_possession(
            proof,
            account_xpub=transcript.account_xpub,
            eth_address=transcript.eth_address,
            challenge=challenge,
            network=network,
        )
        if unproven is not None:
            differences.append(unproven)
            proof = None
    if differences:
        reason = (
            f"The shares of members {list(members)} recombine to another key than "
            f"{institution}'s ceremony recorded: {'; '.join(differences)}. A wrong passphrase, "
            "or shares of another seed."
        )
        outcome = HealthOutcome.MISMATCH
    else:
        reason = (
            f"The shares of members {list(members)} recombine to {institution}'s key "
            f"(fingerprint {keys.fingerprint}, Safe owner {keys.eth_address})"
            + (
                f" and signed the challenge with both keys ({proof.bitcoin_address}, BIP-322; "
                f"{proof.eth_address}, EIP-191)."
                if proof is not None
                else "."
            )
        )
        outcome = HealthOutcome.OK
    log.info(
        "key health check of %s: %s (members %s)",
        institution, outcome.value, list(members),
        extra={"institution": institution, "outcome": outcome.value},
    )  # fmt: skip
    return HealthResult(institution, outcome, members, reason, proof)

"""The cosigner's signer: it decodes the PSBT itself and signs only what was approved.

Lessons of real thefts: a signer that trusts its coordinator signs whatever it is shown. Before
any signature this module checks, from the PSBT bytes alone, that the unsigned transaction is
the approved one (hash), that every input is a coin of the vault's descriptors, that every
output is an approved payment or the vault's own change, and that the fee is sane.

The approval it compares with (``ApprovedSpend``) is still a database row, though. So the
signer also requires the officers' authority (``AuthorityEvidence``: the roster chain and the
signed statements) and checks, with the root it holds, that the roster genesis is its own
ceremony's, that the chain replays, and that a quorum of statements names exactly the spend it
decoded (``spend_under_review``): chain, vault, amount, destination, unsigned txid, fee.

The one other way to a signature is ``BreakGlass``: the share holders' explicit emergency choice,
with a reason. The statement check is skipped, a warning is logged, and the signer writes a
break-glass mark into the PSBT it returns (a proprietary global field naming its fingerprint and
the reason), so whoever combines the signatures sees it and requires every cosigner's signature
(``every_cosigner_signed``), not just the threshold.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from embit import compact
from embit.base import EmbitError
from embit.ec import PublicKey, Signature
from embit.psbt import PSBT, InputScope, OutputScope
from embit.script import p2pkh_from_p2wpkh
from embit.transaction import SIGHASH, Transaction

from custody.authority.errors import StatementMismatchError
from custody.authority.gate import (
    Authority,
    AuthorityEvidence,
    BreakGlass,
    approvers_line,
    check_before_signing,
)
from custody.authority.quorum import SpendUnderReview, VerifiedAuthorization
from custody.authority.statement import BITCOIN_CHAIN_PREFIX
from custody.bitcoin.approval import ApprovedSpend, FeePolicy
from custody.bitcoin.descriptor import Branch, VaultDescriptor
from custody.bitcoin.multisig_signing import sign_multisig_inputs
from custody.bitcoin.psbt import estimate_vsize, parse_psbt, unsigned_txid
from custody.bitcoin.sighash import Bip143Sighasher, double_sha256
from custody.bitcoin_network import BitcoinNetwork
from custody.clock import Clock, utc_now
from custody.exceptions import (
    AbsurdFeeError,
    ForeignChangeError,
    ForeignInputError,
    NotACosignerError,
    SpendApprovalMismatchError,
)
from custody.keys import SigningKeys

log = logging.getLogger(__name__)

COMPACT_SIZE_ONE_BYTE_LIMIT = 0xFD
"""A CompactSize below this is its own single byte; from it on, a marker and 2, 4 or 8 bytes."""


@dataclass(frozen=True)
class CheckedSpend:
    """What the signer verified: safe to log and show."""

    unsigned_txid: str
    input_count: int
    paid_sats: int
    change_sats: int
    fee_sats: int
    vsize: int

    @property
    def fee_rate_sat_vb(self) -> Decimal:
        """For display only: the fee checks compare integers."""
        return Decimal(self.fee_sats) / self.vsize


def _outpoint(inp: InputScope) -> str:
    return f"{inp.txid.hex()}:{inp.vout}"


def _compact_size(n: int) -> bytes:
    return bytes((n,)) if n < COMPACT_SIZE_ONE_BYTE_LIMIT else bytes(compact.to_bytes(n))


def transaction_id(tx: Transaction) -> bytes:
    """``tx``'s txid (display byte order, as embit's ``txid()``): dSHA256 of its serialisation
    without witnesses, written in one ``join``.

    bitcoind puts the whole previous transaction of every input in a PSBT it funds; when the
    coins come from one large transaction (a batched payout), each input carries all of it, and
    embit's ``txid()``, which serialises output by output through streams, costs more than
    everything else the signer checks. The bytes are the same; the unit tests hold them to
    embit's on generated transactions.
    """
    parts = [int(tx.version).to_bytes(4, "little"), _compact_size(len(tx.vin))]
    for vin in tx.vin:
        script_sig = bytes(vin.script_sig.data)
        parts += (
            bytes(reversed(vin.txid)),
            int(vin.vout).to_bytes(4, "little"),
            _compact_size(len(script_sig)),
            script_sig,
            int(vin.sequence).to_bytes(4, "little"),
        )
    parts.append(_compact_size(len(tx.vout)))
    for out in tx.vout:
        script = bytes(out.script_pubkey.data)
        parts += (int(out.value).to_bytes(8, "little"), _compact_size(len(script)), script)
    parts.append(int(tx.locktime).to_bytes(4, "little"))
    return bytes(reversed(double_sha256(b"".join(parts))))


def _check_input(
    position: int, inp: InputScope, vault: VaultDescriptor, txids: dict[int, bytes]
) -> None:
    """``txids`` holds the ids of the previous transactions already hashed in this check, by
    object: inputs spending one transaction share its parsed object (``parse_psbt``)."""
    where = f"Input {position} ({_outpoint(inp)})"
    if inp.witness_utxo is None:
        raise ForeignInputError(f"{where} carries no witness UTXO; a vault coin always has one.")
    if inp.non_witness_utxo is not None:
        previous = inp.non_witness_utxo
        txid = txids.get(id(previous))
        if txid is None:
            txid = txids[id(previous)] = transaction_id(previous)
        if txid != inp.txid or inp.vout >= len(previous.vout):
            raise ForeignInputError(
                f"{where} comes with a previous transaction that is not its own."
            )
        spent = previous.vout[inp.vout]
        if (
            spent.value != inp.witness_utxo.value
            or spent.script_pubkey != inp.witness_utxo.script_pubkey
        ):
            raise ForeignInputError(
                f"{where} claims {inp.witness_utxo.value} sats but its previous transaction says "
                f"{spent.value}: the amount was forged."
            )
    if inp.sighash_type not in (None, SIGHASH.ALL):
        raise SpendApprovalMismatchError(
            f"{where} asks for sighash type {inp.sighash_type}; only SIGHASH_ALL is signed."
        )
    located = {vault.locate(derivation) for derivation in inp.bip32_derivations.values()}
    located.discard(None)
    if len(located) != 1:
        raise ForeignInputError(
            f"{where} is not a coin of this vault: its key derivations do not point to exactly "
            "one receive or change index of the vault's cosigner keys."
        )
    branch, index = located.pop()  # type: ignore[misc]
    expected_script = vault.script_pubkey(branch, index)
    if inp.witness_utxo.script_pubkey != expected_script:
        raise ForeignInputError(
            f"{where} pays to {inp.witness_utxo.script_pubkey.address(vault.network.params)}, "
            f"not to the vault's {branch.name.lower()} address {index}; it is not a vault coin."
        )
    if inp.witness_script != vault.witness_script(branch, index):
        raise ForeignInputError(f"{where} carries a witness script that is not the vault's.")
    if not set(pub.sec() for pub in inp.bip32_derivations) <= vault.derived_public_keys(
        branch, index
    ):
        raise ForeignInputError(f"{where} lists keys that are not the vault's at that index.")


def _is_vault_change(out: OutputScope, vault: VaultDescriptor) -> bool:
    for derivation in out.bip32_derivations.values():
        located = vault.locate(derivation)
        if located is not None and located[0] is Branch.CHANGE:
            return bool(out.script_pubkey == vault.script_pubkey(Branch.CHANGE, located[1]))
    return False


def check_approved_txid(psbt: PSBT, approval: ApprovedSpend) -> str:
    """The PSBT's unsigned txid, refused unless it is the one the approval names."""
    txid = unsigned_txid(psbt)
    if txid != approval.unsigned_txid:
        raise SpendApprovalMismatchError(
            f"The PSBT's unsigned transaction is {txid}, but the approval is for "
            f"{approval.unsigned_txid}: it was altered after approval; approve it again."
        )
    return txid


@dataclass(frozen=True)
class CheckedOutputs:
    """What a spend's outputs pay: the approved payments, the vault's change and the fee."""

    paid_sats: int
    change_sats: int
    fee_sats: int


def check_outputs_and_fee(
    psbt: PSBT,
    approval: ApprovedSpend,
    policy: FeePolicy,
    *,
    is_change: Callable[[OutputScope], bool],
    change_name: str,
    vsize: int,
    network: BitcoinNetwork,
) -> CheckedOutputs:
    """Refuse an output that is neither an approved payment nor the vault's change (by
    ``is_change``), an approved payment the PSBT lacks, and a fee above the approval's maximum,
    the signer's absolute cap or its rate cap for ``vsize``; every vault signer checks the same.
    """
    expected = Counter((p.script_pubkey.data, p.amount_sats) for p in approval.payments)
    paid = change = 0
    for position, out in enumerate(psbt.outputs):
        key = (out.script_pubkey.data, out.value)
        if expected[key] > 0:
            expected[key] -= 1
            paid += out.value
        elif is_change(out):
            change += out.value
        else:
            raise ForeignChangeError(
                f"Output {position} pays {out.value} sats to "
                f"{out.script_pubkey.address(network.params)}, which is neither an approved "
                f"payment nor {change_name}; refusing to sign."
            )
    missing = [p for p in approval.payments if expected[(p.script_pubkey.data, p.amount_sats)] > 0]
    if missing:
        raise SpendApprovalMismatchError(
            f"The approved payment of {missing[0].amount_sats} sats to {missing[0].address} is "
            "missing from the PSBT."
        )
    fee = int(psbt.fee())
    if fee > approval.max_fee_sats:
        raise AbsurdFeeError(
            f"The fee of {fee} sats exceeds the approved maximum of {approval.max_fee_sats} sats."
        )
    if fee > policy.max_fee_sats:
        raise AbsurdFeeError(
            f"The fee of {fee} sats exceeds the signer's absolute cap of {policy.max_fee_sats} sats."
        )
    if fee > policy.max_fee_rate_sat_vb * vsize:
        raise AbsurdFeeError(
            f"The fee of {fee} sats for about {vsize} vB exceeds the signer's cap of "
            f"{policy.max_fee_rate_sat_vb} sat/vB."
        )
    return CheckedOutputs(paid, change, fee)


def check_psbt(
    psbt: PSBT, vault: VaultDescriptor, approval: ApprovedSpend, policy: FeePolicy
) -> CheckedSpend:
    """Refuse, with a specific error, anything in ``psbt`` that the approval does not cover."""
    txid = check_approved_txid(psbt, approval)
    txids: dict[int, bytes] = {}
    for position, inp in enumerate(psbt.inputs):
        _check_input(position, inp, vault, txids)
    vsize = estimate_vsize(psbt, vault.threshold)
    outputs = check_outputs_and_fee(
        psbt,
        approval,
        policy,
        is_change=lambda out: _is_vault_change(out, vault),
        change_name="the vault's change descriptor",
        vsize=vsize,
        network=vault.network,
    )
    return CheckedSpend(
        txid, len(psbt.inputs), outputs.paid_sats, outputs.change_sats, outputs.fee_sats, vsize
    )


BITCOIN_ASSET = "BTC"
"""The asset code statements name for bitcoin (amounts in sats)."""


def bitcoin_vault_id(vault: VaultDescriptor) -> str:
    """The ``vault_id`` a statement names for this vault: its RECEIVE descriptor with checksum.

    ``wsh(sortedmulti(M,[fp/48h/..]tpub../0/*,...))#checksum`` -- the text bitcoind imports and
    ``custody_btc_vaults`` stores. It pins the threshold and every cosigner key; the change
    descriptor follows from it (``/1/*``), so one string identifies the vault.
    """
    return vault.text_with_checksum(Branch.RECEIVE)


def spend_under_review(psbt: PSBT, vault: VaultDescriptor) -> SpendUnderReview:
    """What ``psbt`` does, read from its bytes alone: the one payment, its txid and its fee.
    Call after ``check_psbt``, which has checked the inputs and that the change is the vault's.
    """
    return review_single_payment(
        psbt,
        is_change=lambda out: _is_vault_change(out, vault),
        vault_id=bitcoin_vault_id(vault),
        network=vault.network,
    )


def review_single_payment(
    psbt: PSBT,
    *,
    is_change: Callable[[OutputScope], bool],
    vault_id: str,
    network: BitcoinNetwork,
) -> SpendUnderReview:
    """The spend a statement must name: every output that is not the vault's own change (by
    ``is_change``) is a payment; an approval statement names one destination, so a transaction
    with several payments (or none) is refused here rather than authorised by a statement that
    covers only part of it. Every Bitcoin vault signer reviews its PSBT this way."""
    payments = [out for out in psbt.outputs if not is_change(out)]
    if len(payments) != 1:
        raise StatementMismatchError(
            f"The transaction pays {len(payments)} outputs besides the vault's change; an "
            "approval statement names exactly one destination, so it cannot authorise this "
            "spend. Build one spend per payment."
        )
    payment = payments[0]
    return SpendUnderReview(
        chain=f"{BITCOIN_CHAIN_PREFIX}{network.value}",
        vault_id=vault_id,
        asset=BITCOIN_ASSET,
        amount=int(payment.value),
        destination=str(payment.script_pubkey.address(network.params)),
        tx_hash=unsigned_txid(psbt),
        fee=int(psbt.fee()),
        safe_nonce=None,
    )


BREAK_GLASS_MARK_PREFIX = b"national-reserve"
"""The identifier of this project's proprietary PSBT fields (BIP-174 type 0xFC)."""
BREAK_GLASS_MARK_SUBTYPE = 1
"""The proprietary subtype of a break-glass mark; its key data is the signer's 4-byte fingerprint
and its value the share holders' reason in UTF-8."""
PSBT_GLOBAL_PROPRIETARY = 0xFC


def _mark_key_prefix() -> bytes:
    return b"".join(
        (
            bytes([PSBT_GLOBAL_PROPRIETARY]),
            bytes(compact.to_bytes(len(BREAK_GLASS_MARK_PREFIX))),
            BREAK_GLASS_MARK_PREFIX,
            bytes(compact.to_bytes(BREAK_GLASS_MARK_SUBTYPE)),
        )
    )


def add_break_glass_mark(psbt: PSBT, fingerprint: str, reason: str) -> None:
    """Record in ``psbt`` that cosigner ``fingerprint`` signed it under break-glass, and why.

    A proprietary global field: it changes no sighash, and bitcoind's ``combinepsbt`` keeps it.
    """
    psbt.unknown[_mark_key_prefix() + bytes.fromhex(fingerprint)] = reason.encode("utf-8")


def break_glass_marks(psbt: PSBT) -> dict[str, str]:
    """The break-glass marks in ``psbt``: cosigner fingerprint (hex) -> the holders' reason."""
    prefix = _mark_key_prefix()
    return {
        key[len(prefix) :].hex(): value.decode("utf-8", errors="replace")
        for key, value in psbt.unknown.items()
        if key.startswith(prefix)
    }


def signed_fingerprints(unsigned: PSBT, signed: PSBT) -> frozenset[str]:
    """The cosigner fingerprints with a VALID SIGHASH_ALL signature on every input of ``unsigned``.

    Each partial signature in ``signed`` is verified against ``unsigned``'s own BIP-143 digest
    (not the other PSBT's), so a signature on another transaction, or bytes that only look like
    one, count for nothing. A fingerprint counts only if its key signed every input. The digests
    come from one ``Bip143Sighasher`` (the transaction hashed once), with the script code embit's
    ``PSBT.sighash`` uses for a segwit v0 input; a taproot input, never a vault coin, or one
    without its witness UTXO makes every fingerprint count for nothing.
    """
    if len(signed.inputs) != len(unsigned.inputs):
        return frozenset()
    sighasher = Bip143Sighasher.from_transaction(unsigned.tx)
    per_input: list[set[str]] = []
    for index, (mine, theirs) in enumerate(zip(unsigned.inputs, signed.inputs, strict=True)):
        if mine.witness_utxo is None or mine.witness_utxo.script_pubkey.script_type() == "p2tr":
            return frozenset()
        script_code = mine.witness_script or mine.redeem_script or mine.witness_utxo.script_pubkey
        if script_code.script_type() == "p2wpkh":
            script_code = p2pkh_from_p2wpkh(script_code)
        digest = sighasher.digest(
            index, bytes(script_code.data), int(mine.witness_utxo.value), SIGHASH.ALL
        )
        valid: set[str] = set()
        for pub, raw in theirs.partial_sigs.items():
            derivation = mine.bip32_derivations.get(pub)
            if derivation is None or not raw or raw[-1] != SIGHASH.ALL:
                continue
            if _verifies(pub, raw[:-1], digest):
                valid.add(derivation.fingerprint.hex())
        per_input.append(valid)
    return frozenset(set.intersection(*per_input)) if per_input else frozenset()


def _verifies(pub: PublicKey, der: bytes, digest: bytes) -> bool:
    try:
        return bool(pub.verify(Signature.parse(der), digest))
    except (EmbitError, ValueError):  # malformed bytes are simply not a signature
        return False


@dataclass(frozen=True)
class _SerializedTransaction:
    """A previous transaction reduced to its serialisation: what embit's ``InputScope.write_to``
    asks of ``non_witness_utxo`` (``serialize()``), nothing else."""

    raw: bytes

    def serialize(self) -> bytes:
        return self.raw


def encode_psbt(psbt: PSBT) -> str:
    """``psbt.to_string()``, byte for byte, with each distinct previous transaction serialised once.

    When every input carries the same large previous transaction (coins of one batched payout),
    embit would serialise it again for each input. Here equal ones (same txid and witnesses, so
    the same bytes) are serialised once and their bytes stand in for them while embit writes the
    PSBT; the inputs get their own objects back afterwards, also if writing fails.
    """
    originals = [inp.non_witness_utxo for inp in psbt.inputs]
    serialized: dict[tuple[bytes, tuple[bytes, ...]], _SerializedTransaction] = {}
    by_object: dict[int, _SerializedTransaction] = {}  # one shared object: one lookup
    try:
        for inp, previous in zip(psbt.inputs, originals, strict=True):
            if previous is None:
                continue
            if id(previous) not in by_object:
                key = (
                    transaction_id(previous),
                    tuple(bytes(vin.witness.serialize()) for vin in previous.vin),
                )
                if key not in serialized:
                    serialized[key] = _SerializedTransaction(bytes(previous.serialize()))
                by_object[id(previous)] = serialized[key]
            inp.non_witness_utxo = by_object[id(previous)]
        return str(psbt.to_string())
    finally:
        for inp, previous in zip(psbt.inputs, originals, strict=True):
            inp.non_witness_utxo = previous


@dataclass(frozen=True)
class SignedPsbt:
    """A cosigner's signing call's outcome: the PSBT with its signatures, what was checked, and
    on whose authority: the verified approvers, or the holders' break-glass reason."""

    psbt: str
    checked: CheckedSpend
    authorization: VerifiedAuthorization | None
    """Whose statements the signer verified; ``None`` exactly when it signed under break-glass."""
    break_glass: str | None = None
    """The share holders' reason when they signed under break-glass (no statements checked)."""


def cosign_psbt(
    psbt_text: str,
    vault: VaultDescriptor,
    approval: ApprovedSpend,
    keys: SigningKeys,
    policy: FeePolicy | None = None,
    *,
    authority: Authority,
    clock: Clock = utc_now,
) -> SignedPsbt:
    """Check ``psbt_text``, then add this cosigner's signatures; say what was checked and by whom.

    The order: the PSBT against the vault and the approval (``check_psbt``), the key against the
    vault's cosigners, then the authority, and only then the signatures. Any failure raises
    before anything is signed.

    The signatures are made by ``sign_multisig_inputs`` (linear in the input count; the same bytes
    as embit's ``PSBT.sign_with``), which refuses any input that is not P2WSH multisig SIGHASH_ALL.

    ``authority`` is required. ``AuthorityEvidence`` is checked against the spend decoded from
    the PSBT (``check_before_signing`` with this seed's root and ``clock()``); the result names
    the approvers. ``BreakGlass`` skips that check: the signer logs a warning naming the vault,
    txid, fingerprint and reason, marks the returned PSBT (``add_break_glass_mark``) and returns
    ``authorization=None, break_glass=reason``.
    """
    psbt = parse_psbt(psbt_text)
    checked = check_psbt(psbt, vault, approval, policy or FeePolicy())
    fingerprint = keys.bitcoin_root.my_fingerprint.hex()
    if fingerprint not in vault.fingerprints:
        raise NotACosignerError(
            f"The key with fingerprint {fingerprint} is not a cosigner of vault "
            f"{approval.vault_name!r}."
        )
    authorization = None
    break_glass = None
    if isinstance(authority, AuthorityEvidence):
        authorization = check_before_signing(
            keys.bitcoin_root, authority, spend_under_review(psbt, vault), clock()
        )
        log.info(
            "spend authorised: vault=%s txid=%s proposal_id=%s approvers=%s",
            approval.vault_name,
            checked.unsigned_txid,
            authorization.proposal_id,
            approvers_line(authorization),
        )
    elif isinstance(authority, BreakGlass):
        break_glass = authority.reason
        log.warning(
            "BREAK-GLASS signature without the officers' statements: vault=%s txid=%s "
            "cosigner=%s reason=%s",
            approval.vault_name,
            checked.unsigned_txid,
            fingerprint,
            break_glass,
        )
    else:
        raise TypeError(
            "The signer needs the officers' AuthorityEvidence or an explicit BreakGlass, not "
            f"{type(authority).__name__}."
        )
    signatures = sign_multisig_inputs(psbt, keys.bitcoin_root)
    if signatures != len(psbt.inputs):
        raise NotACosignerError(
            f"The key with fingerprint {fingerprint} could sign only {signatures} of "
            f"{len(psbt.inputs)} inputs; the PSBT lacks its key derivations."
        )
    if break_glass is not None:
        add_break_glass_mark(psbt, fingerprint, break_glass)
    log.info(
        "signed spend: vault=%s txid=%s cosigner=%s inputs=%d fee_sats=%d",
        approval.vault_name,
        checked.unsigned_txid,
        fingerprint,
        checked.input_count,
        checked.fee_sats,
    )
    return SignedPsbt(encode_psbt(psbt), checked, authorization, break_glass)


def sign_psbt(
    psbt_text: str,
    vault: VaultDescriptor,
    approval: ApprovedSpend,
    keys: SigningKeys,
    policy: FeePolicy | None = None,
    *,
    authority: Authority,
    clock: Clock = utc_now,
) -> str:
    """Check ``psbt_text`` against the vault, the approval and ``authority``, then sign it.

    Returns the PSBT with one signature per input from ``keys``; raises before signing anything
    if a check fails. ``authority`` (required) is the officers' evidence or an explicit
    ``BreakGlass``, handled as ``cosign_psbt`` describes; ``cosign_psbt`` also returns whose
    approvals were verified.
    """
    return cosign_psbt(
        psbt_text, vault, approval, keys, policy, authority=authority, clock=clock
    ).psbt

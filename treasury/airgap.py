"""Air-gapped signing from the coordinator's side: export a signing request, import what was signed.

``export_request`` writes, for one institution and one approved proposal, what its share holders
sign on a machine without network (``custody.airgap``): the PSBT with the signatures gathered so
far (binary and base64; ``analyzepsbt`` shows the progress) or the SafeTx as EIP-712 typed data,
with the roster chain and the officers' signed statements the offline signer verifies. Nothing in
it is secret, and nothing in it is trusted by the signer.

``import_signed`` takes the signed file back and continues the proposal through the workflow's
own ``sign`` step: ``ImportedSignature`` is a ``ChainSpender`` whose ``sign`` reads no share (it
is handed none) and instead merges the file -- for Bitcoin the institution's partial signatures,
``combinepsbt``-style, each verified against the stored unsigned transaction's own sighash; for a
Safe the owner signature, recovered against the stored SafeTx hash -- into custody's records.
Everything after (the quorum, the broadcast, the booking) is the normal path; ``import_signed``
broadcasts once the quorum of signatures is there. The coordinator never holds a share.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embit.psbt import PSBT
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from custody.airgap.errors import RequestFileError, SignedFileError
from custody.airgap.psbt_files import merge_signatures, psbt_from_bytes
from custody.airgap.request import (
    SIGNATURE_FORMAT,
    BitcoinPart,
    SafePart,
    SafeSignatureFile,
    Signer,
    SigningRequest,
    write_request,
)
from custody.bitcoin.psbt import parse_psbt, unsigned_txid
from custody.bitcoin.signer import encode_psbt, signed_fingerprints
from custody.bitcoin.spend import load_spend
from custody.bitcoin.vault import load_vault, vault_record
from custody.clock import Clock, utc_now
from custody.ethereum.vault_store import VaultStore
from custody.records import SpendRecord, SpendSignatureRecord, SpendState
from treasury.officers import Officer, Role
from treasury.proposals import (
    ChainSpender,
    PreparedTx,
    ProposalState,
    ProposalView,
    SealedTx,
    SpendRequest,
    Workflow,
)
from treasury.proposals.tables import PreparedTxRow
from treasury.settings import Settings
from treasury.spenders import authority_evidence
from treasury.wiring import (
    BTC,
    chain_safes,
    custody_institutions,
    institution_transcript,
    spender_for_proposal,
    token_registry,
)
from treasury.workflow_exceptions import (
    NotConfiguredError,
    ProposalTransitionError,
    TransactionMismatchError,
    WorkflowInputError,
)

__all__ = [
    "ImportedSignature",
    "SignedFile",
    "export_request",
    "import_signed",
    "import_with",
    "read_signed_file",
    "signing_request",
]


def _approved_view(workflow: Workflow, proposal_id: int) -> ProposalView:
    view = workflow.view(proposal_id)
    if view.state is not ProposalState.APPROVED or view.tx_hash is None:
        raise ProposalTransitionError(
            f"Proposal {proposal_id} is {view.state.value}; only an approved proposal is "
            "exported for signing."
        )
    return view


def _payload(session: Session, tx_hash: str) -> dict[str, Any]:
    row = session.scalar(
        select(PreparedTxRow).where(
            PreparedTxRow.tx_hash == tx_hash, PreparedTxRow.superseded_at.is_(None)
        )
    )
    if row is None:
        raise TransactionMismatchError(f"No proposal's current transaction is {tx_hash}.")
    body: dict[str, Any] = json.loads(row.payload)
    return body


def _bitcoin_part(session: Session, tx_hash: str) -> BitcoinPart:
    spend = load_spend(session, int(_payload(session, tx_hash)["spend_id"]))
    psbt = parse_psbt(spend.unsigned_psbt)
    if unsigned_txid(psbt) != tx_hash:
        raise TransactionMismatchError(
            f"Custody's spend {spend.id} is transaction {unsigned_txid(psbt)}, not {tx_hash}."
        )
    record = session.get(SpendRecord, spend.id)
    for stored in record.signatures if record is not None else ():
        merge_signatures(psbt, parse_psbt(stored.signed_psbt))
    vault = load_vault(session, spend.vault_name)
    return BitcoinPart(spend.vault_name, vault.descriptor, spend.approval, psbt)


def _safe_part(
    session: Session, sessions: sessionmaker[Session], tx_hash: str, name: str, settings: Settings
) -> SafePart:
    store = VaultStore(sessions)
    proposal = store.proposal(tx_hash)
    vault = store.vault(proposal.vault_name)
    chain_id = proposal.safe_tx.chain_id
    paying = next(
        (s for s in chain_safes(session, settings).values() if s.name == proposal.vault_name),
        None,
    )
    if paying is None or paying.chain_id != chain_id:
        raise NotConfiguredError(
            f"The Safe {proposal.vault_name!r} (chain {chain_id}) pays none of the configured "
            "chains' coins; configure its chain before exporting its signing request."
        )
    tokens = token_registry(session, chain_id)
    return SafePart(
        proposal.vault_name,
        proposal.safe_tx,
        vault.owner(name).address,
        frozenset(t.address for t in tokens.values()),
        tuple(signature for _institution, signature in proposal.signatures),
        native_asset=paying.native_asset,
    )


def signing_request(
    workflow: Workflow,
    sessions: sessionmaker[Session],
    settings: Settings,
    proposal_id: int,
    institution_code: str,
) -> SigningRequest:
    """What ``institution_code``'s holders must sign for approved proposal ``proposal_id``."""
    view = _approved_view(workflow, proposal_id)
    tx_hash = str(view.tx_hash)
    evidence = authority_evidence(sessions, tx_hash)
    with sessions() as session:
        transcript = institution_transcript(session, institution_code)
        signer = Signer(
            transcript.institution,
            transcript.fingerprint,
            transcript.threshold,
            transcript.passphrase_protected,
        )
        part: BitcoinPart | SafePart = (
            _bitcoin_part(session, tx_hash)
            if view.asset == BTC
            else _safe_part(session, sessions, tx_hash, transcript.institution, settings)
        )
    return SigningRequest(str(proposal_id), signer, evidence, part)


def export_request(
    workflow: Workflow,
    sessions: sessionmaker[Session],
    settings: Settings,
    actor: Officer,
    proposal_id: int,
    folder: Path,
) -> list[Path]:
    """Write the signing request of the actor's institution for ``proposal_id`` into ``folder``."""
    actor.require(Role.APPROVER)
    if actor.institution_code in workflow.view(proposal_id).signed_by:
        raise WorkflowInputError(
            f"Institution {actor.institution_code} has already signed proposal {proposal_id}."
        )
    request = signing_request(workflow, sessions, settings, proposal_id, actor.institution_code)
    return write_request(request, folder)


@dataclass(frozen=True)
class SignedFile:
    """A signed file carried back: a PSBT, or a Safe owner signature."""

    tx_hash: str
    psbt: PSBT | None = None
    safe: SafeSignatureFile | None = None


def read_signed_file(path: Path) -> SignedFile:
    """The signed PSBT (binary or base64) or Safe signature file at ``path``."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RequestFileError(f"Cannot read the signed file {path}: {exc.strerror}.") from None
    if raw.lstrip().startswith(b"{") and SIGNATURE_FORMAT.encode() in raw:
        safe = SafeSignatureFile.read(path)
        return SignedFile(safe.safe_tx.hash_hex, safe=safe)
    psbt = psbt_from_bytes(raw, f"The file {path}")
    return SignedFile(unsigned_txid(psbt), psbt=psbt)


class ImportedSignature:
    """The ``ChainSpender`` of an imported signed file: ``sign`` merges the file, reads no share.

    Every other step is the proposal's own spender's (``inner``): build, seal, send, track.
    """

    def __init__(
        self,
        inner: ChainSpender,
        sessions: sessionmaker[Session],
        signed: SignedFile,
        institutions: dict[str, str],
        *,
        clock: Clock = utc_now,
    ) -> None:
        self._inner = inner
        self._sessions = sessions
        self._signed = signed
        self._institutions = institutions
        self._clock = clock

    def build(self, request: SpendRequest) -> PreparedTx:
        return self._inner.build(request)

    def sign(
        self, prepared: PreparedTx, institution: str, shares: Sequence[str], passphrase: str
    ) -> PreparedTx:
        if shares or passphrase:
            raise WorkflowInputError("An imported signature is merged; it takes no shares.")
        if self._signed.tx_hash != prepared.tx_hash:
            raise TransactionMismatchError(
                f"The signed file is for transaction {self._signed.tx_hash}, but the proposal's "
                f"approved transaction is {prepared.tx_hash}; nothing was imported."
            )
        name = self._institutions.get(institution)
        if name is None:
            raise TransactionMismatchError(f"Institution {institution} has no custody key.")
        if self._signed.psbt is not None:
            self._merge_psbt(prepared, name, self._signed.psbt)
        elif self._signed.safe is not None:
            self._merge_safe(prepared, name, self._signed.safe)
        return prepared

    def _merge_psbt(self, prepared: PreparedTx, name: str, signed: PSBT) -> None:
        spend_id = int(json.loads(prepared.payload)["spend_id"])
        with self._sessions.begin() as session:
            record = session.get(SpendRecord, spend_id)
            if record is None or record.state is not SpendState.BUILT:
                raise ProposalTransitionError(
                    f"Custody spend {spend_id} is not awaiting signatures."
                )
            unsigned = parse_psbt(record.unsigned_psbt)
            if unsigned_txid(unsigned) != prepared.tx_hash:
                raise TransactionMismatchError(
                    f"Custody spend {spend_id} is not the approved transaction {prepared.tx_hash}."
                )
            cosigner = next(
                (
                    c
                    for c in vault_record(session, record.vault.name).cosigners
                    if c.ceremony.institution == name
                ),
                None,
            )
            if cosigner is None:
                raise SignedFileError(f"{name!r} is not a cosigner of vault {record.vault.name!r}.")
            if any(s.ceremony_id == cosigner.ceremony_id for s in record.signatures):
                return  # recorded before a crash; the workflow step records it now
            fingerprint = cosigner.ceremony.fingerprint.lower()
            mine = parse_psbt(record.unsigned_psbt)
            merge_signatures(mine, signed, only_fingerprint=fingerprint)
            if fingerprint not in signed_fingerprints(unsigned, mine):
                raise SignedFileError(
                    f"The signed PSBT carries no valid signature of {name} (key {fingerprint}) on "
                    f"every input of transaction {prepared.tx_hash}; nothing was imported."
                )
            record.signatures.append(
                SpendSignatureRecord(
                    ceremony_id=cosigner.ceremony_id,
                    signed_psbt=encode_psbt(mine),
                    signed_at=self._clock(),
                )
            )

    def _merge_safe(self, prepared: PreparedTx, name: str, signed: SafeSignatureFile) -> None:
        store = VaultStore(self._sessions)
        proposal = store.proposal(prepared.tx_hash)
        if proposal.safe_tx != signed.safe_tx or proposal.safe_tx.hash_hex != prepared.tx_hash:
            raise TransactionMismatchError(
                f"The signed SafeTx is not the stored SafeTx {prepared.tx_hash}; nothing was imported."
            )
        owner = store.vault(proposal.vault_name).owner(name)
        if signed.signature.owner != owner.address:
            raise SignedFileError(
                f"The signature recovers to {signed.signature.owner}, not to {name}'s owner "
                f"{owner.address}; nothing was imported."
            )
        store.add_signature(proposal.safe_tx, owner, signed.signature)

    def seal(self, prepared: PreparedTx) -> SealedTx:
        return self._inner.seal(prepared)

    def send(self, prepared: PreparedTx, sealed: SealedTx) -> str:
        return self._inner.send(prepared, sealed)

    def find_broadcast(self, prepared: PreparedTx, sealed: SealedTx | None) -> str | None:
        return self._inner.find_broadcast(prepared, sealed)

    def confirmations(self, txid: str) -> int:
        return self._inner.confirmations(txid)


def _proposal_of(sessions: sessionmaker[Session], tx_hash: str) -> int:
    with sessions() as session:
        proposal_id = session.scalar(
            select(PreparedTxRow.proposal_id).where(
                PreparedTxRow.tx_hash == tx_hash, PreparedTxRow.superseded_at.is_(None)
            )
        )
    if proposal_id is None:
        raise TransactionMismatchError(
            f"No proposal's current transaction is {tx_hash}; the signed file matches nothing."
        )
    return int(proposal_id)


def import_with(
    workflow: Workflow,
    sessions: sessionmaker[Session],
    actor: Officer,
    path: Path,
    spender: ChainSpender,
    *,
    broadcast: bool = True,
) -> ProposalView:
    """Merge the actor's institution's signed file at ``path`` through the workflow's ``sign``
    step, with ``spender`` (the proposal's own) for every other step; once the quorum has signed
    (and ``broadcast``), send the transaction as ``spend broadcast`` does."""
    actor.require(Role.APPROVER)
    signed = read_signed_file(path)
    proposal_id = _proposal_of(sessions, signed.tx_hash)
    with sessions() as session:
        institutions = custody_institutions(session)
    imported = ImportedSignature(spender, sessions, signed, institutions)
    view = workflow.sign(actor, proposal_id, imported, (), "")
    if broadcast and view.state is ProposalState.SIGNED:
        view = workflow.broadcast(proposal_id, spender)
    return view


def import_signed(
    workflow: Workflow,
    sessions: sessionmaker[Session],
    settings: Settings,
    actor: Officer,
    path: Path,
    *,
    broadcast: bool = True,
) -> ProposalView:
    """``import_with`` the configured spender of the proposal the signed file belongs to."""
    actor.require(Role.APPROVER)
    proposal_id = _proposal_of(sessions, read_signed_file(path).tx_hash)
    view = workflow.status(actor, proposal_id)
    spender = spender_for_proposal(sessions, view, settings)
    return import_with(workflow, sessions, actor, path, spender, broadcast=broadcast)

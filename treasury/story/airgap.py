"""The story's air-gapped signing: one spend signed through exported files.

For each approving institution the coordinator exports the signing request (the PSBT or the
SafeTx typed data, the roster chain, the statements); the offline command ``custody-sign`` runs
as its own process (``python -m custody.airgap``), reads the holders' share files and writes the
signed file; the coordinator imports it through the workflow's ``sign`` step. In the demo the
"offline machine" is a child process on the same computer; the integration tests run it in a
virtualenv without the treasury and without network.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from custody.airgap.request import write_request
from treasury.airgap import import_with, signing_request
from treasury.exceptions import TreasuryError
from treasury.proposals import ProposalView, Workflow
from treasury.settings import Settings
from treasury.story.cast import APPROVERS, INSTITUTIONS, SHARE_THRESHOLD
from treasury.story.reserve import Reserve

Echo = Callable[[str], None]

AIRGAP_FOLDER = "airgap"
"""Under the story's working folder: the files carried to and from the offline signer."""
_WROTE = re.compile(r"^wrote (\S+(?:\.signed\.psbt|\.signature\.json))$", re.MULTILINE)
_APPROVED = re.compile(r"approved by (.+)$", re.MULTILINE)


class OfflineSignerError(TreasuryError):
    """The offline signer refused the request (its one-line error is the message)."""


def _offline_sign(
    python: str, request: Path, shares: list[Path], passphrase: str, folder: Path
) -> tuple[Path, str]:
    """Run ``custody-sign sign`` as its own process; the signed file it wrote, and whose
    approvals it verified (its own words)."""
    folder = folder.resolve()
    args = [python, "-m", "custody.airgap", "sign", str(request.resolve()), "--yes"]
    for path in shares:
        args += ["--share-file", str(path.resolve())]
    with tempfile.TemporaryDirectory() as private:
        if passphrase:
            secret = Path(private) / "passphrase"
            descriptor = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(passphrase)
            args += ["--passphrase-file", str(secret)]
        done = subprocess.run(args, cwd=folder, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        said = done.stderr.strip().removeprefix("error:").strip()
        raise OfflineSignerError(said or "The offline signer failed.")
    found = _WROTE.search(done.stdout)
    if found is None:
        raise OfflineSignerError("The offline signer wrote no signed file.")
    approved = _APPROVED.search(done.stdout)
    return folder / found.group(1), approved.group(1) if approved else "nobody"


def sign_through_files(
    reserve: Reserve,
    wf: Workflow,
    proposal_id: int,
    asset: str,
    echo: Echo,
    *,
    python: str = sys.executable,
) -> ProposalView:
    """Each approving institution signs ``proposal_id`` through files; the view once all have.

    Nothing is broadcast here: the caller continues as after ``Reserve.sign``.
    """
    spender = reserve.spenders()[asset]
    view = wf.view(proposal_id)
    for code, approver in APPROVERS.items():
        institution = next(i for i in INSTITUTIONS if i.code == code)
        folder = reserve.workdir / AIRGAP_FOLDER / f"proposal-{proposal_id}" / code.lower()
        request = signing_request(wf, reserve.sessions, Settings(), proposal_id, code)
        request_path = write_request(request, folder)[0]
        echo(f"   {code}: exported {request_path.name} ({request.tx_hash[:16]}...)")
        signed, approvers = _offline_sign(
            python,
            request_path,
            reserve.share_files[code][:SHARE_THRESHOLD],
            institution.passphrase,
            folder,
        )
        view = import_with(
            wf, reserve.sessions, reserve.officers[approver], signed, spender, broadcast=False
        )
        echo(f"   {code}: the offline signer verified the approvals of {approvers}, then signed")
        echo(f"   {code}: imported {signed.name}; signed by {', '.join(view.signed_by)}")
    return view

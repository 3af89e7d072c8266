"""``custody-sign``: review and sign a signing request on a machine without network.

Installed with custody alone (no treasury, no database): ``custody-sign show REQUEST`` prints
what the request would sign, decoded from its own bytes, and whose approvals authorise it;
``custody-sign sign REQUEST --share-file A --share-file B`` does the same, asks to confirm, reads
the holders' shares and passphrase, signs, and writes the signed file next to the request (or
into ``--out-dir``): ``<stem>.signed.psbt`` and ``.signed.psbt.b64`` for Bitcoin,
``<stem>.signature.json`` for a Safe. Carry that file back and import it with
``treasury airgap import``. Any refusal is one ``error:`` line, exit status 1, and no file.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence
from pathlib import Path

from custody.airgap.offline import review, sign_request
from custody.airgap.psbt_files import psbt_from_bytes, write_psbt_files
from custody.airgap.request import (
    SIGNATURE_SUFFIX,
    SIGNED_PSBT_SUFFIX,
    BitcoinPart,
    SafeSignatureFile,
    SigningRequest,
    read_request,
)
from custody.ceremony import read_share_file
from custody.exceptions import CustodyError
from custody.shamir import parse_shares

EXIT_REFUSED = 1

DESCRIPTION = (
    "Review and sign a signing request exported by `treasury airgap export`, on a machine that "
    "never touches the network. The transaction is decoded from the file's own bytes and checked "
    "by custody's signer: every input a vault coin, every output the approved payment or the "
    "vault's change, the fee within limits, and a quorum of the officers' signed statements, "
    "verified against the roster chain, naming exactly this spend. The roster must be anchored "
    "in the seed the shares recombine, so a file from a compromised coordinator cannot invent "
    "officers. Nothing is signed, and no file is written, if any check fails."
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="custody-sign", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("show", help="Print what a request would sign and who approved it.")
    show.add_argument("request", type=Path, help="The <stem>.request.json file.")
    sign = commands.add_parser(
        "sign",
        help="Review, confirm, read the holders' shares, sign and write the signed file.",
        description="Review the request, ask to confirm, then sign it with the holders' shares.",
    )
    sign.add_argument("request", type=Path, help="The <stem>.request.json file.")
    sign.add_argument(
        "--share-file",
        type=Path,
        action="append",
        default=[],
        help="A holder's share file, repeated per holder; without it each holder types the words unseen.",
    )
    sign.add_argument(
        "--passphrase-file",
        type=Path,
        help="File holding the SLIP-39 passphrase (prompted unseen when the ceremony set one).",
    )
    sign.add_argument(
        "--expect-fingerprint",
        help="Your institution's seed fingerprint: refuse a request for any other key.",
    )
    sign.add_argument(
        "--out-dir",
        type=Path,
        help="Where to write the signed file (default: the request's folder).",
    )
    sign.add_argument("--yes", action="store_true", help="Sign without asking to confirm.")
    return parser


def _shares(files: Sequence[Path], threshold: int) -> list[str]:
    if files:
        return [read_share_file(path) for path in files]
    return [
        getpass.getpass(f"Share words of holder {n} of {threshold}: ")
        for n in range(1, threshold + 1)
    ]


def _passphrase(path: Path | None, request: SigningRequest) -> str:
    if path is not None:
        try:
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ValueError(f"Cannot read the passphrase file {path}: {exc.strerror}.") from None
    if not request.signer.passphrase_protected:
        return ""
    return getpass.getpass(f"SLIP-39 passphrase of {request.signer.institution}: ")


def _sign(args: argparse.Namespace) -> list[Path]:
    request = read_request(args.request)
    shown = review(request)
    print("\n".join(shown.lines))
    if not args.yes:
        answer = input(f"Sign this for {request.signer.institution}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            raise ValueError("Not confirmed; nothing was signed.")
    passphrase = _passphrase(args.passphrase_file, request)
    shares = parse_shares(_shares(args.share_file, request.signer.share_threshold))
    signed = sign_request(request, shares, passphrase, expected_fingerprint=args.expect_fingerprint)
    folder = args.out_dir or args.request.parent
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(request.transaction, BitcoinPart):
        assert signed.psbt_text is not None
        psbt = psbt_from_bytes(signed.psbt_text.encode("ascii"), "The signed PSBT")
        return list(write_psbt_files(psbt, folder / (request.stem + SIGNED_PSBT_SUFFIX)))
    assert signed.signature is not None
    file = SafeSignatureFile(
        request.proposal_id,
        request.signer.institution,
        request.transaction.safe_tx,
        signed.signature,
    )
    return [file.write(folder / (request.stem + SIGNATURE_SUFFIX))]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``custody-sign``; the exit status (0 done, 1 refused)."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "show":
            print("\n".join(review(read_request(args.request)).lines))
            return 0
        for path in _sign(args):
            print(f"wrote {path}")
        return 0
    except (CustodyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED


if __name__ == "__main__":  # pragma: no cover - ``python -m custody.airgap.cli``
    sys.exit(main())

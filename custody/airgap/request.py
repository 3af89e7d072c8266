"""The signing request file and the Safe signature file: what crosses the air gap.

A ``SigningRequest`` is one institution's part of one proposal's signing: who signs (the
institution's ceremony name and seed fingerprint), the officers' authority (the roster chain and
the signed statements, ``AuthorityEvidence``), and the transaction -- a Bitcoin PSBT with the
vault's descriptor and the approved payment, or a SafeTx as EIP-712 typed data with the Safe
owner expected to sign. Everything in it is public and trusted for nothing: the offline signer
decodes the transaction itself, anchors the roster in the seed it recombines, and checks the
statements against what it decoded. The request repeats the transaction's hash so that a file
whose parts were changed apart from each other is refused at once (``TamperedRequestError``).

Files (``write_request``): ``<stem>.request.json`` is the request; next to it, for the tools of the
trade, ``<stem>.psbt`` and ``<stem>.psbt.b64`` (Bitcoin) or ``<stem>.typed-data.json`` (Safe).
The offline signer writes ``<stem>.signed.psbt`` (+ ``.b64``) or ``<stem>.signature.json``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embit.psbt import PSBT

from custody.airgap.errors import RequestFileError, TamperedRequestError
from custody.airgap.psbt_files import psbt_base64, psbt_from_bytes, write_psbt_files
from custody.airgap.typed_data import safe_tx_from_typed_data, safe_tx_typed_data
from custody.authority.errors import AuthorityError
from custody.authority.gate import AuthorityEvidence
from custody.authority.quorum import SignedStatement
from custody.authority.roster_record import RosterRecord
from custody.authority.signature import signature_from_json
from custody.authority.statement import ApprovalStatement
from custody.bitcoin.approval import ApprovedSpend, Payment
from custody.bitcoin.descriptor import VaultDescriptor
from custody.bitcoin.psbt import unsigned_txid
from custody.bitcoin_network import BitcoinNetwork
from custody.ethereum.safe_signature import OwnerSignature
from custody.ethereum.safe_tx import SafeTx, checksum_address
from custody.ethereum.signer import ETHER_ASSET, SigningPolicy
from custody.exceptions import CustodyError

REQUEST_FORMAT = "national-reserve/signing-request/1"
SIGNATURE_FORMAT = "national-reserve/safe-signature/1"
REQUEST_SUFFIX = ".request.json"
TYPED_DATA_SUFFIX = ".typed-data.json"
SIGNED_PSBT_SUFFIX = ".signed.psbt"
SIGNATURE_SUFFIX = ".signature.json"
NATIVE_ASSET_PATTERN = re.compile(r"[A-Z0-9]{2,10}")


@dataclass(frozen=True)
class Signer:
    """Who signs: the institution's ceremony name, its seed fingerprint, how its shares open."""

    institution: str
    fingerprint: str
    share_threshold: int
    passphrase_protected: bool


@dataclass(frozen=True)
class BitcoinPart:
    """A Bitcoin spend to sign: the vault, the approved payments and the PSBT (with the
    signatures gathered so far, so each export shows the spend's progress)."""

    vault_name: str
    descriptor: VaultDescriptor
    approval: ApprovedSpend
    psbt: PSBT


@dataclass(frozen=True)
class SafePart:
    """A SafeTx to sign: the transaction, the owner address the signer's key must be, the
    token registry the signer may decode transfers of, and the owner signatures gathered so far."""

    vault_name: str
    safe_tx: SafeTx
    owner: str
    allowed_tokens: frozenset[str]
    signatures: tuple[OwnerSignature, ...] = ()
    native_asset: str = ETHER_ASSET
    """The code the statements name for the chain's native coin (``ETH``; ``BNB`` on BNB
    Chain). A wrong one cannot authorise anything: the officers' statements name the coin, so
    a mismatch is refused; it only lets a spend of another chain's coin be reviewed by name."""

    def policy(self) -> SigningPolicy:
        """The signer's policy for this transaction: the token registry, bound to the chain id
        the typed data's domain commits to and naming that chain's coin."""
        return SigningPolicy(
            self.allowed_tokens, chain_id=self.safe_tx.chain_id, native_asset=self.native_asset
        )


@dataclass(frozen=True)
class SigningRequest:
    """One institution's part of signing one proposal, for an offline signer."""

    proposal_id: str
    signer: Signer
    evidence: AuthorityEvidence
    transaction: BitcoinPart | SafePart

    @property
    def tx_hash(self) -> str:
        """The hash the statements name: the PSBT's unsigned txid, or the SafeTx hash."""
        if isinstance(self.transaction, BitcoinPart):
            return unsigned_txid(self.transaction.psbt)
        return self.transaction.safe_tx.hash_hex

    @property
    def stem(self) -> str:
        """The file name stem of this request: proposal, institution and hash prefix."""
        name = "".join(c if c.isalnum() else "-" for c in self.signer.institution.lower())
        return f"proposal-{self.proposal_id}-{name}-{self.tx_hash.removeprefix('0x')[:12]}"

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "format": REQUEST_FORMAT,
            "proposal_id": self.proposal_id,
            "tx_hash": self.tx_hash,
            "signer": {
                "institution": self.signer.institution,
                "fingerprint": self.signer.fingerprint,
                "share_threshold": self.signer.share_threshold,
                "passphrase_protected": self.signer.passphrase_protected,
            },
            "evidence": {
                "records": [record.to_json() for record in self.evidence.records],
                "statements": [
                    {
                        "statement": signed.statement.to_json(),
                        "key_id": signed.key_id,
                        "signature": signed.signature.to_json(),
                    }
                    for signed in self.evidence.statements
                ],
            },
        }
        part = self.transaction
        if isinstance(part, BitcoinPart):
            body["bitcoin"] = {
                "vault_name": part.vault_name,
                "threshold": part.descriptor.threshold,
                "key_origins": list(part.descriptor.key_origins),
                "network": part.descriptor.network.value,
                "payments": [
                    {"address": p.address, "amount_sats": str(p.amount_sats)}
                    for p in part.approval.payments
                ],
                "max_fee_sats": str(part.approval.max_fee_sats),
                "psbt": psbt_base64(part.psbt),
            }
        else:
            body["safe"] = {
                "vault_name": part.vault_name,
                "typed_data": safe_tx_typed_data(part.safe_tx),
                "owner": part.owner,
                "allowed_tokens": sorted(part.allowed_tokens),
                "native_asset": part.native_asset,
                "signatures": [
                    {"owner": s.owner, "signature": "0x" + s.encode().hex()}
                    for s in sorted(part.signatures, key=lambda s: int(s.owner, 16))
                ],
            }
        return body

    @classmethod
    def from_json(cls, body: object) -> SigningRequest:
        """The request in ``body``; ``RequestFileError`` if malformed, ``TamperedRequestError`` if
        its transaction does not hash to the ``tx_hash`` it names."""
        if not isinstance(body, dict) or body.get("format") != REQUEST_FORMAT:
            raise RequestFileError(
                f"This is not a signing request of format {REQUEST_FORMAT!r}; export it again "
                "with `treasury airgap export`."
            )
        try:
            signer = body["signer"]
            evidence = AuthorityEvidence(
                tuple(RosterRecord.from_json(r) for r in body["evidence"]["records"]),
                tuple(
                    SignedStatement(
                        ApprovalStatement.from_json(s["statement"]),
                        str(s["key_id"]),
                        signature_from_json(s["signature"]),
                    )
                    for s in body["evidence"]["statements"]
                ),
            )
            request = cls(
                proposal_id=str(body["proposal_id"]),
                signer=Signer(
                    str(signer["institution"]),
                    str(signer["fingerprint"]).lower(),
                    int(signer["share_threshold"]),
                    bool(signer["passphrase_protected"]),
                ),
                evidence=evidence,
                transaction=_bitcoin_part(body["bitcoin"])
                if "bitcoin" in body
                else _safe_part(body["safe"]),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise RequestFileError(
                f"The signing request lacks or mistypes a field: {exc}."
            ) from None
        except (AuthorityError, ValueError) as exc:
            if isinstance(exc, RequestFileError):
                raise
            raise RequestFileError(f"The signing request does not decode: {exc}") from None
        if request.tx_hash != body.get("tx_hash"):
            raise TamperedRequestError(
                f"The request names transaction {body.get('tx_hash')}, but its "
                f"{'PSBT' if 'bitcoin' in body else 'typed data'} is {request.tx_hash}: it was "
                "altered after it was exported; refusing it."
            )
        return request


def _bitcoin_part(body: dict[str, Any]) -> BitcoinPart:
    network = BitcoinNetwork(body["network"])
    descriptor = VaultDescriptor(int(body["threshold"]), tuple(body["key_origins"]), network)
    psbt = psbt_from_bytes(str(body["psbt"]).encode("ascii"), "The request's PSBT")
    try:
        approval = ApprovedSpend(
            vault_name=str(body["vault_name"]),
            payments=tuple(
                Payment(str(p["address"]), int(p["amount_sats"]), network) for p in body["payments"]
            ),
            max_fee_sats=int(body["max_fee_sats"]),
            unsigned_txid=unsigned_txid(psbt),
        )
    except CustodyError as exc:
        raise RequestFileError(f"The request's approved payment is unusable: {exc}") from None
    return BitcoinPart(str(body["vault_name"]), descriptor, approval, psbt)


def _safe_part(body: dict[str, Any]) -> SafePart:
    safe_tx = safe_tx_from_typed_data(body["typed_data"])
    signatures = tuple(
        OwnerSignature.decode(safe_tx.hash, bytes.fromhex(str(s["signature"]).removeprefix("0x")))
        for s in body.get("signatures", [])
    )
    return SafePart(
        str(body["vault_name"]),
        safe_tx,
        checksum_address(str(body["owner"]), "owner"),
        frozenset(checksum_address(str(a), "allowed_tokens") for a in body["allowed_tokens"]),
        signatures,
        _native_asset(body.get("native_asset", ETHER_ASSET)),
    )


def _native_asset(value: object) -> str:
    """The request's native coin code: 2-10 capital letters or digits (``ETH``, ``BNB``)."""
    if not isinstance(value, str) or not NATIVE_ASSET_PATTERN.fullmatch(value):
        raise RequestFileError(
            f"The request's native_asset must be 2-10 capital letters or digits, not {value!r}."
        )
    return value


def _read_json(path: Path, what: str) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RequestFileError(f"Cannot read the {what} {path}: {exc.strerror}.") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestFileError(f"The {what} {path} is not JSON: {exc}.") from None


def read_request(path: Path) -> SigningRequest:
    """The signing request in ``path`` (checked for consistency, not yet for authority)."""
    return SigningRequest.from_json(_read_json(path, "signing request"))


def _write_text(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def write_request(request: SigningRequest, folder: Path) -> list[Path]:
    """Write the request and its interoperable twin(s) into ``folder``; the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    main = folder / (request.stem + REQUEST_SUFFIX)
    _write_text(main, json.dumps(request.to_json(), indent=2, sort_keys=True) + "\n")
    part = request.transaction
    if isinstance(part, BitcoinPart):
        return [main, *write_psbt_files(part.psbt, folder / (request.stem + ".psbt"))]
    typed = folder / (request.stem + TYPED_DATA_SUFFIX)
    _write_text(typed, json.dumps(safe_tx_typed_data(part.safe_tx), indent=2) + "\n")
    return [main, typed]


@dataclass(frozen=True)
class SafeSignatureFile:
    """An owner's signature of a SafeTx, as the offline signer writes it."""

    proposal_id: str
    institution: str
    safe_tx: SafeTx
    signature: OwnerSignature

    def to_json(self) -> dict[str, Any]:
        return {
            "format": SIGNATURE_FORMAT,
            "proposal_id": self.proposal_id,
            "institution": self.institution,
            "safe_tx_hash": self.safe_tx.hash_hex,
            "typed_data": safe_tx_typed_data(self.safe_tx),
            "owner": self.signature.owner,
            "signature": "0x" + self.signature.encode().hex(),
        }

    def write(self, path: Path) -> Path:
        _write_text(path, json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def read(cls, path: Path) -> SafeSignatureFile:
        """The signature file in ``path``; the signature must recover to the owner it names."""
        body = _read_json(path, "Safe signature file")
        if not isinstance(body, dict) or body.get("format") != SIGNATURE_FORMAT:
            raise RequestFileError(
                f"{path} is not a Safe signature file of format {SIGNATURE_FORMAT!r}."
            )
        try:
            safe_tx = safe_tx_from_typed_data(body["typed_data"])
            raw = bytes.fromhex(str(body["signature"]).removeprefix("0x"))
            signature = OwnerSignature.decode(safe_tx.hash, raw)
            named = checksum_address(str(body["owner"]), "owner")
        except (KeyError, ValueError) as exc:
            raise RequestFileError(f"The Safe signature file {path} is malformed: {exc}") from None
        except CustodyError as exc:
            raise TamperedRequestError(
                f"The Safe signature file {path} does not verify: {exc}"
            ) from None
        if safe_tx.hash_hex != body.get("safe_tx_hash") or signature.owner != named:
            raise TamperedRequestError(
                f"The Safe signature file {path} names SafeTx {body.get('safe_tx_hash')} and owner "
                f"{named}, but its typed data hashes to {safe_tx.hash_hex} and its signature "
                f"recovers to {signature.owner}."
            )
        return cls(str(body["proposal_id"]), str(body["institution"]), safe_tx, signature)

"""The auditors' verifier: checks an attestation bundle without trusting the treasury's servers.

It shares no code with what it checks: it imports neither ``custody`` nor ``treasury`` (a test
enforces this), nor the bundle builder ``reporting.attestation``. It reads the bundle format
(``reporting.bundle``), the Merkle formats (``reporting.merkle``, ``reporting.holdings``, stdlib
only), decodes Bitcoin transactions with ``bitcoinlib`` and reads EVM chains with ``web3``, both
independent of the custody code's ``embit`` and its own RPC clients. Bitcoin RPC calls are plain
JSON over ``urllib``.

Every check yields one line of the report: a name, ``ok``, ``failed`` or ``skipped``, and a reason.
A bundle passes only if no line failed and (unless the caller accepts an offline check) none was
skipped. Under-coverage is a failed line of its own, stated plainly.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

from eth_keys.datatypes import Signature
from eth_keys.exceptions import BadSignature
from eth_utils.exceptions import ValidationError
from web3.exceptions import Web3Exception

from reporting.bundle import BUNDLE_FORMAT, GENESIS_DIGEST_HEX, Bundle, canonical_json
from reporting.exceptions import ReportingError
from reporting.holdings import HoldingsTree, SafeBalanceHolding, UtxoHolding
from reporting.merkle import (
    LiabilityLeaf,
    TreeKind,
    TreeRoot,
    verify_liability_package,
    verify_public_listing,
)

REGISTRY_ARTIFACT_PATH = Path(__file__).resolve().parent / "contracts" / "AttestationRegistry.json"
"""The registry's compiled code, compared with the code deployed at the anchored address."""

EIP1271_MAGIC = bytes.fromhex("1626ba7e")
"""What ``isValidSignature(bytes32,bytes)`` returns for a valid signature (EIP-1271)."""

OP_RETURN_PREFIX = bytes.fromhex("6a25") + b"NRAT" + b"\x01"
"""OP_RETURN, a 37-byte push, the anchor magic and payload version; the digest follows."""

BIP127_PREFIX = b"Proof-of-Reserves: "
"""BIP-127's prefix of the commitment message."""

RESERVE_MESSAGE_PREFIX = "national-reserve-attestation:"
"""The commitment message is this prefix and the digest's hex (SPEC-attestation.md)."""

PUBLISHED_EVENT_SIGNATURE = b"Published(bytes32,bytes32,uint256,address)"
"""The registry event whose keccak-256 is the first topic of every publication's log."""

RPC_TIMEOUT_S = 30.0
"""Upper bound for one RPC call to a node the auditor names."""

SIGHASH_ALL = 0x01
"""The only signature hash type accepted in a reserve proof (it commits to every input)."""

PSBT_MAGIC = b"psbt\xff"
PSBT_GLOBAL_UNSIGNED_TX = 0x00
PSBT_IN_NON_WITNESS_UTXO = 0x00
PSBT_IN_WITNESS_UTXO = 0x01
PSBT_IN_FINAL_SCRIPTSIG = 0x07
PSBT_IN_FINAL_SCRIPTWITNESS = 0x08
PSBT_IN_POR_COMMITMENT = 0x09


class CheckStatus(Enum):
    """The outcome of one check."""

    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    name: str
    status: CheckStatus
    reason: str


@dataclass(frozen=True)
class Report:
    """Every check made on one bundle, in order."""

    digest: str
    checks: tuple[Check, ...]

    def failed(self) -> tuple[Check, ...]:
        """The checks that failed."""
        return tuple(check for check in self.checks if check.status is CheckStatus.FAILED)

    def passed(self, *, allow_skipped: bool = False) -> bool:
        """True if nothing failed and nothing was skipped (unless skipping is allowed)."""
        return not any(
            check.status is CheckStatus.FAILED
            or (check.status is CheckStatus.SKIPPED and not allow_skipped)
            for check in self.checks
        )

    def status_of(self, name: str) -> CheckStatus:
        """The status of the check called ``name`` (KeyError if there is none)."""
        for check in self.checks:
            if check.name == name:
                return check.status
        raise KeyError(name)

    def render(self) -> str:
        """The itemised report as text, one check a line, and a closing verdict."""
        lines = [f"attestation {self.digest}"]
        lines += [f"{check.status.value:>7}  {check.name}: {check.reason}" for check in self.checks]
        counts = {status: 0 for status in CheckStatus}
        for check in self.checks:
            counts[check.status] += 1
        lines.append(
            f"{counts[CheckStatus.OK]} ok, {counts[CheckStatus.FAILED]} failed, "
            f"{counts[CheckStatus.SKIPPED]} skipped"
        )
        return "\n".join(lines)


@dataclass(frozen=True)
class LeafQuery:
    """An account holder's question: is my account in the liability tree (with my salt)?"""

    account_id: str
    salt: bytes | None = None
    package: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Nodes:
    """RPC endpoints the auditor trusts: a bitcoind (URL with user:password), EVM nodes."""

    bitcoin: str | None = None
    evm: str | None = None
    services: str | None = None


class VerifierError(ReportingError):
    """A check cannot pass: the reason is the message (caught into a failed report line)."""


class NodeError(VerifierError):
    """A node did not answer, or answered with an error."""


_EXPECTED = (
    ReportingError,
    LookupError,
    TypeError,
    ValueError,
    AttributeError,
    ArithmeticError,
    OSError,
    Web3Exception,
)
"""Errors a malformed or tampered bundle, or an unreachable node, raise inside a check; each
fails that check only, so the report names it and the other checks still run."""


# --- small helpers ----------------------------------------------------------------------------


def _amount(text: Any, what: str) -> int:
    """Parse a non-negative decimal string of base units."""
    if not isinstance(text, str) or not text.isascii() or not text.isdigit():
        raise VerifierError(f"The {what} is {text!r}, not a non-negative decimal string.")
    return int(text)


def _amounts(mapping: Any, what: str) -> dict[str, int]:
    """Parse a ``{asset: decimal string}`` map."""
    if not isinstance(mapping, Mapping):
        raise VerifierError(f"The {what} is not a JSON object.")
    return {asset: _amount(text, f"{what} of {asset}") for asset, text in mapping.items()}


def _hex_bytes(text: Any, what: str) -> bytes:
    """Parse hex (with or without 0x)."""
    if not isinstance(text, str):
        raise VerifierError(f"The {what} is not a hex string.")
    try:
        return bytes.fromhex(text[2:] if text.startswith("0x") else text)
    except ValueError as error:
        raise VerifierError(f"The {what} is not hexadecimal.") from error


def _percent(numerator: int, denominator: int) -> str:
    """Two-decimal truncated percentage (the bundle's human ratio), computed independently."""
    hundredths = numerator * 10_000 // denominator
    return f"{hundredths // 100}.{hundredths % 100:02d}%"


def _hash160(data: bytes) -> bytes:
    """RIPEMD-160 of SHA-256, through bitcoinlib (OpenSSL may lack RIPEMD-160)."""
    from bitcoinlib.encoding import hash160

    return bytes(hash160(data))


def _bitcoinlib() -> Any:
    """Import bitcoinlib with its data directory in a temp dir (it writes there on import)."""
    os.environ.setdefault("BCL_DATA_DIR", tempfile.mkdtemp(prefix="bcl-verify-"))
    import bitcoinlib.transactions

    return bitcoinlib.transactions


# --- node access ------------------------------------------------------------------------------


class BitcoinNodeClient:
    """Plain JSON-RPC to a bitcoind the auditor runs (``http://user:password@host:port``)."""

    def __init__(self, url: str) -> None:
        """Split credentials out of ``url``; they never appear in repr or errors."""
        parts = urllib.parse.urlsplit(url)
        self._auth = (
            base64.b64encode(
                f"{urllib.parse.unquote(parts.username or '')}:{urllib.parse.unquote(parts.password or '')}".encode()
            ).decode()
            if parts.username
            else None
        )
        port = f":{parts.port}" if parts.port else ""
        self.url = f"{parts.scheme}://{parts.hostname}{port}{parts.path}"
        if parts.scheme not in ("http", "https"):
            raise VerifierError(f"The Bitcoin RPC URL {self.url!r} is not http(s).")

    def __repr__(self) -> str:
        """Name the endpoint without credentials."""
        return f"BitcoinNodeClient(url={self.url!r})"

    def call(self, method: str, *params: Any) -> Any:
        """Call ``method``; raise :class:`NodeError` on any error."""
        body = json.dumps({"jsonrpc": "1.0", "id": 1, "method": method, "params": list(params)})
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked to be http(s)
            self.url, data=body.encode(), headers={"content-type": "application/json"}
        )
        if self._auth:
            request.add_header("Authorization", f"Basic {self._auth}")
        try:
            with urllib.request.urlopen(request, timeout=RPC_TIMEOUT_S) as response:  # noqa: S310
                payload = json.loads(response.read(), parse_float=Decimal)
        except urllib.error.HTTPError as error:
            payload = json.loads(error.read() or b"{}", parse_float=Decimal)
        except (urllib.error.URLError, OSError) as error:
            raise NodeError(f"bitcoind at {self.url} is unreachable ({error}).") from None
        if payload.get("error"):
            raise NodeError(f"bitcoind {method} failed: {payload['error'].get('message')}.")
        return payload.get("result")


def _web3(url: str) -> Any:
    """A web3 client for ``url``."""
    from web3 import Web3

    return Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": RPC_TIMEOUT_S}))


# --- the verifier -----------------------------------------------------------------------------


class _Verifier:
    """Runs every check on one bundle and collects the report lines."""

    def __init__(self, bundle: Bundle, nodes: Nodes) -> None:
        self.bundle = bundle
        self.body: Mapping[str, Any] = bundle.body
        self.digest = bundle.digest
        self.nodes = nodes
        self.checks: list[Check] = []
        self._bitcoin = BitcoinNodeClient(nodes.bitcoin) if nodes.bitcoin else None

    def run(self, name: str, check: Callable[[], str]) -> bool:
        """Run one check; its return is the ok reason, any expected error the failure reason."""
        try:
            reason = check()
        except _EXPECTED as error:
            message = (
                str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
            )
            if isinstance(error, KeyError):
                message = f"the field {message!r} is missing"
            self.checks.append(Check(name, CheckStatus.FAILED, message))
            return False
        self.checks.append(Check(name, CheckStatus.OK, reason))
        return True

    def skip(self, name: str, reason: str) -> None:
        """Record a check that could not be made (no node given)."""
        self.checks.append(Check(name, CheckStatus.SKIPPED, reason))

    # -- integrity ----------------------------------------------------------------------------

    def check_digest(self) -> str:
        if self.body.get("format") != BUNDLE_FORMAT:
            raise VerifierError("The body is not a national-reserve attestation.")
        canonical_json(self.body)
        if self.bundle.stated_digest is not None and self.bundle.stated_digest != self.digest.hex():
            raise VerifierError(
                f"The bundle states digest {self.bundle.stated_digest} but its body hashes to {self.digest.hex()}."
            )
        return f"SHA-256 of the canonical body is {self.digest.hex()}"

    def check_signature(self, role: str) -> Callable[[], str]:
        def check() -> str:
            listed = self.body["signers"][role]
            text = self.bundle.signatures.get(role)
            if not text:
                raise VerifierError(f"The {role} signature is missing.")
            try:
                signature = Signature(_hex_bytes(text, f"{role} signature"))
                recovered = signature.recover_public_key_from_msg_hash(self.digest)
            except (BadSignature, ValidationError) as error:
                raise VerifierError(f"The {role} signature is malformed ({error}).") from None
            if recovered.to_bytes().hex() != listed["public_key"]:
                raise VerifierError(
                    f"The {role} signature is by {recovered.to_checksum_address()}, not the listed {role} key {listed['address']}."
                )
            if recovered.to_checksum_address() != listed["address"]:
                raise VerifierError(f"The listed {role} address does not match its public key.")
            return f"signed by {listed['address']}"

        return check

    def check_roles(self) -> str:
        signers = self.body["signers"]
        if signers["treasury"]["public_key"] == signers["auditor"]["public_key"]:
            raise VerifierError("The treasury and the audit office list the same key.")
        return "treasury and audit office sign with separate keys"

    # -- holdings -----------------------------------------------------------------------------

    def _utxos(self) -> list[Mapping[str, Any]]:
        utxos: list[Mapping[str, Any]] = self.body["snapshot"]["bitcoin"]["utxos"]
        return utxos

    def _holdings(self) -> list[UtxoHolding | SafeBalanceHolding]:
        holdings: list[UtxoHolding | SafeBalanceHolding] = [
            UtxoHolding(
                txid=utxo["txid"],
                vout=utxo["vout"],
                amount_sats=_amount(utxo["amount"], f"amount of UTXO {utxo['txid']}"),
                script_pubkey=_hex_bytes(utxo["script_pubkey"], "UTXO script"),
            )
            for utxo in self._utxos()
        ]
        for snapshot in self.body["snapshot"]["evm"]:
            for balance in snapshot["balances"]:
                holdings.append(
                    SafeBalanceHolding(
                        chain_id=snapshot["chain_id"],
                        safe_address=balance["safe_address"],
                        asset=balance["asset"],
                        token_address=balance["token_address"],
                        amount=_amount(balance["amount"], f"balance of {balance['asset']}"),
                    )
                )
        return holdings

    def check_holdings_root(self) -> str:
        rebuilt = HoldingsTree.build(self._holdings()).root
        stated = TreeRoot.from_dict(self.body["holdings"]["root"])
        if stated.kind is not TreeKind.HOLDINGS:
            raise VerifierError("The holdings root is not a holdings-tree root.")
        if rebuilt.digest() != stated.digest():
            raise VerifierError(
                f"The holdings root is altered or a holding was added or removed: the snapshot's {rebuilt.leaf_count} holdings rebuild to {rebuilt.digest().hex()}, the bundle states {stated.digest().hex()} over {stated.leaf_count}."
            )
        return f"{rebuilt.leaf_count} holdings rebuild to {rebuilt.digest().hex()}"

    def holdings_totals(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for holding in self._holdings():
            totals[holding.asset] = totals.get(holding.asset, 0) + holding.amount
        return totals

    def check_holdings_totals(self) -> str:
        computed = self.holdings_totals()
        stated = _amounts(self.body["holdings"]["totals"], "holdings total")
        if computed != stated:
            raise VerifierError(
                f"The holdings totals do not add up: the listed holdings sum to {_show(computed)} but the bundle states {_show(stated)}."
            )
        return f"holdings sum to {_show(computed)}"

    # -- liabilities --------------------------------------------------------------------------

    def liability_root(self) -> TreeRoot:
        root = TreeRoot.from_dict(self.body["liabilities"]["root"])
        if root.kind is not TreeKind.LIABILITIES:
            raise VerifierError("The liability root is not a liability-tree root.")
        return root

    def check_liability_root(self) -> str:
        root = self.liability_root()
        stated = _amounts(self.body["liabilities"]["totals"], "liability total")
        sums = dict(zip(root.assets, root.sums, strict=True))
        if stated != sums:
            raise VerifierError(
                f"The liability totals do not add up: the root's sums are {_show(sums)} but the bundle states {_show(stated)}."
            )
        return f"{root.leaf_count} accounts, sums {_show(sums)}, root {root.digest().hex()}"

    def check_public_listing(self) -> str:
        root = self.liability_root()
        entries = self.body["liabilities"]["public_listing"]
        verify_public_listing(
            {"version": 1, "root": root.to_dict(), "leaves": entries},
            root_digest=root.digest(),
        )
        return f"{len(entries)} published accounts verify against the liability root"

    def check_leaf(self, query: LeafQuery) -> str:
        root = self.liability_root()
        if query.package is not None:
            leaf = verify_liability_package(query.package, root_digest=root.digest())
        else:
            found = [
                entry
                for entry in self.body["liabilities"]["public_listing"]
                if entry["leaf"]["account_id"] == query.account_id
            ]
            if not found:
                raise VerifierError(
                    f"The account {query.account_id!r} is not published in this bundle; check it with the proof file it was given (--proof)."
                )
            verify_public_listing(
                {"version": 1, "root": root.to_dict(), "leaves": found}, root_digest=root.digest()
            )
            leaf = LiabilityLeaf.from_dict(found[0]["leaf"])
        if leaf.account_id != query.account_id:
            raise VerifierError(
                f"The proof is for account {leaf.account_id!r}, not {query.account_id!r}."
            )
        if query.salt is not None and leaf.salt != query.salt:
            raise VerifierError(
                f"The account {query.account_id!r} is included with another salt than the one given."
            )
        amounts = dict(zip(root.assets, leaf.amounts, strict=True))
        return f"account {leaf.account_id!r} is in the liability tree with {_show(amounts)}"

    # -- reconciliation and coverage ----------------------------------------------------------

    def _encumbered(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for item in self.body["encumbrances"]:
            amount = _amount(item["amount"], f"encumbrance {item['reference']!r}")
            totals[item["asset"]] = totals.get(item["asset"], 0) + amount
        return totals

    def _assets(self) -> list[str]:
        root = self.liability_root()
        ledger = _amounts(self.body["ledger"]["totals"], "ledger total")
        assets = {*self.holdings_totals(), *root.assets, *ledger, *self._encumbered()}
        return sorted(assets, key=str.encode)

    def _figures(self, asset: str) -> tuple[int, int, int, int]:
        """Holdings, encumbered, liability root total and ledger total of ``asset``, recomputed."""
        root = self.liability_root()
        sums = dict(zip(root.assets, root.sums, strict=True))
        ledger = _amounts(self.body["ledger"]["totals"], "ledger total")
        return (
            self.holdings_totals().get(asset, 0),
            self._encumbered().get(asset, 0),
            sums.get(asset, 0),
            ledger.get(asset, 0),
        )

    def check_reconciliation(self, asset: str) -> Callable[[], str]:
        def check() -> str:
            holdings, encumbered, liabilities, ledger = self._figures(asset)
            line = self.body["reconciliation"][asset]
            expected = {
                "chain_holdings": holdings,
                "encumbered": encumbered,
                "available": holdings - encumbered,
                "liability_root_total": liabilities,
                "ledger_total": ledger,
            }
            for name, value in expected.items():
                if value < 0:
                    raise VerifierError(
                        f"The encumbrances of {asset} ({encumbered}) exceed its holdings ({holdings})."
                    )
                stated = _amount(line[name], f"reconciliation {name} of {asset}")
                if stated != value:
                    raise VerifierError(
                        f"The totals do not add up: the reconciliation states {name} = {stated} of {asset} but the bundle's own figures give {value}."
                    )
            if line["liabilities_match_ledger"] is not (liabilities == ledger):
                raise VerifierError(f"The reconciliation's match flag for {asset} is wrong.")
            if liabilities != ledger:
                raise VerifierError(
                    f"Three-way reconciliation fails for {asset}: the liability tree totals {liabilities} base units but the state ledger totals {ledger} (accounts left out of the tree, or books that differ)."
                )
            return (
                f"chain holdings {holdings} ({encumbered} encumbered), liability tree {liabilities}, "
                f"state ledger {ledger}"
            )

        return check

    def check_coverage(self, asset: str) -> Callable[[], str]:
        def check() -> str:
            holdings, encumbered, liabilities, _ = self._figures(asset)
            available = holdings - encumbered
            line = self.body["coverage"][asset]
            if (
                _amount(line["numerator"], "coverage numerator") != available
                or _amount(line["denominator"], "coverage denominator") != liabilities
            ):
                raise VerifierError(
                    f"The coverage ratio of {asset} is misstated: it should be {available}/{liabilities}, the bundle states {line['numerator']}/{line['denominator']}."
                )
            covered = available >= liabilities
            shortfall = max(liabilities - available, 0)
            ratio = _percent(available, liabilities) if liabilities else "no liabilities"
            if (
                line["covered"] is not covered
                or _amount(line["shortfall"], "shortfall") != shortfall
                or line["ratio"] != ratio
            ):
                raise VerifierError(
                    f"The coverage statement of {asset} is misstated: the figures give covered={covered}, ratio {ratio}, shortfall {shortfall}."
                )
            if not covered:
                raise VerifierError(
                    f"UNDER-COVERED: available {asset} holdings of {available} base units cover only {ratio} of liabilities of {liabilities}; the shortfall is {shortfall} base units."
                )
            return f"covered: {ratio} ({available}/{liabilities})"

        return check

    # -- chain of attestations ----------------------------------------------------------------

    def check_chain(self, previous: Bundle | None) -> str:
        sequence = self.body["sequence"]
        previous_digest = self.body["previous_digest"]
        if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 1:
            raise VerifierError(f"The sequence {sequence!r} is not a positive integer.")
        if (sequence == 1) != (previous_digest == GENESIS_DIGEST_HEX):
            raise VerifierError(
                f"Attestation chain gap: attestation {sequence} names previous digest {previous_digest}; only the first may name none."
            )
        if previous is not None:
            if previous.digest.hex() != previous_digest:
                raise VerifierError(
                    f"Attestation chain gap: the previous bundle's digest is {previous.digest.hex()}, but this one names {previous_digest}."
                )
            if previous.sequence + 1 != sequence:
                raise VerifierError(
                    f"Attestation chain gap: the previous bundle is number {previous.sequence}, this one is {sequence}."
                )
            return f"attestation {sequence} follows {previous_digest}"
        return f"attestation {sequence}, previous {previous_digest} (checked against the registry)"

    # -- proofs of control --------------------------------------------------------------------

    def check_reserve_proof(self) -> str:
        psbt_text = (self.bundle.proofs_of_control.get("bitcoin_reserve_proof") or {}).get("psbt")
        if not psbt_text:
            raise VerifierError("The Bitcoin reserve proof (BIP-127 PSBT) is missing.")
        network = self.body["snapshot"]["bitcoin"]["network"]
        result = check_reserve_psbt(
            base64.b64decode(psbt_text, validate=True),
            self.digest,
            [
                (
                    utxo["txid"],
                    utxo["vout"],
                    _amount(utxo["amount"], "UTXO amount"),
                    _hex_bytes(utxo["script_pubkey"], "UTXO script"),
                )
                for utxo in self._utxos()
            ],
            network,
        )
        if self._bitcoin is not None:
            verdict = self._bitcoin.call("testmempoolaccept", [result.hex()])[0]
            if verdict.get("allowed") or verdict.get("reject-reason") != "missing-inputs":
                raise VerifierError(
                    f"The reserve proof is not unbroadcastable as it must be: the node says {verdict.get('reject-reason')!r}."
                )
            return "the PSBT spends exactly the attested UTXOs plus the digest's commitment input, every input is signed, and the node refuses it (missing-inputs)"
        return "the PSBT spends exactly the attested UTXOs plus the digest's commitment input and every input is signed"

    def eip1271_slots(self) -> list[Mapping[str, Any]]:
        slots: list[Mapping[str, Any]] = self.body["proofs_of_control"]["eip1271"]
        return slots

    def check_eip1271(self, slot: Mapping[str, Any], w3: Any) -> Callable[[], str]:
        def check() -> str:
            produced = {
                (item["chain_id"], item["safe_address"].lower()): item["signature"]
                for item in self.bundle.proofs_of_control.get("eip1271", [])
            }
            signature = produced.get((slot["chain_id"], slot["safe_address"].lower()))
            if not signature:
                raise VerifierError(
                    f"The Safe {slot['safe_address']} has no EIP-1271 signature of the digest."
                )
            answer = eip1271_call(
                w3,
                slot["safe_address"],
                self.digest,
                _hex_bytes(signature, "EIP-1271 signature"),
                slot["block_number"],
            )
            if answer != EIP1271_MAGIC:
                raise VerifierError(
                    f"The Safe {slot['safe_address']} does not accept the signature of the digest at block {slot['block_number']} (isValidSignature returned 0x{answer.hex()})."
                )
            return f"isValidSignature returns 0x1626ba7e at block {slot['block_number']}"

        return check

    # -- live snapshot checks -----------------------------------------------------------------

    def check_bitcoin_block(self) -> str:
        assert self._bitcoin is not None
        snapshot = self.body["snapshot"]["bitcoin"]
        best = self._bitcoin.call("getblockhash", snapshot["height"])
        if best != snapshot["block_hash"]:
            raise VerifierError(
                f"The snapshot block {snapshot['block_hash']} is not the best chain's block at height {snapshot['height']} ({best})."
            )
        return f"block {snapshot['height']} is {best} on the best chain"

    def check_utxo(self, utxo: Mapping[str, Any]) -> Callable[[], str]:
        def check() -> str:
            assert self._bitcoin is not None
            node = self._bitcoin
            height = self.body["snapshot"]["bitcoin"]["height"]
            outpoint = f"{utxo['txid']}:{utxo['vout']}"
            header = node.call("getblockheader", utxo["created_block_hash"])
            if header["confirmations"] < 1 or header["height"] != utxo["created_height"]:
                raise VerifierError(
                    f"The block said to create {outpoint} is not on the best chain at height {utxo['created_height']}."
                )
            if header["height"] > height:
                raise VerifierError(f"The UTXO {outpoint} was created after the snapshot.")
            raw = node.call("getrawtransaction", utxo["txid"], False, utxo["created_block_hash"])
            transaction = _bitcoinlib().Transaction.parse_hex(raw, network=_bcl_network(self))
            outputs = transaction.outputs
            if utxo["vout"] >= len(outputs):
                raise VerifierError(f"The transaction {utxo['txid']} has no output {utxo['vout']}.")
            output = outputs[utxo["vout"]]
            if output.value != _amount(utxo["amount"], "UTXO amount") or bytes(
                output.lock_script
            ) != _hex_bytes(utxo["script_pubkey"], "UTXO script"):
                raise VerifierError(
                    f"The output {outpoint} holds {output.value} sats to another script or amount than attested ({utxo['amount']})."
                )
            if node.call("gettxout", utxo["txid"], utxo["vout"], False) is not None:
                return f"created at height {header['height']}, unspent now"
            spend = _find_spend(node, utxo["txid"], utxo["vout"], header["height"] + 1, height)
            if spend is not None:
                raise VerifierError(
                    f"The UTXO {outpoint} was spent before the snapshot: by {spend[0]} at height {spend[1]} (snapshot height {height})."
                )
            return f"created at height {header['height']}, spent only after the snapshot"

        return check

    def evm_snapshots(self, chain_id: int) -> list[Mapping[str, Any]]:
        return [s for s in self.body["snapshot"]["evm"] if s["chain_id"] == chain_id]

    def _evm_block_check(self, w3: Any, snapshot: Mapping[str, Any]) -> Callable[[], str]:
        return lambda: self.check_evm_block(w3, snapshot)

    def check_evm_block(self, w3: Any, snapshot: Mapping[str, Any]) -> str:
        block = w3.eth.get_block(snapshot["block_number"])
        found = "0x" + bytes(block["hash"]).hex()
        if found != snapshot["block_hash"].lower():
            raise VerifierError(
                f"Chain {snapshot['chain_id']}'s block {snapshot['block_number']} is {found}, not the attested {snapshot['block_hash']}."
            )
        return f"block {snapshot['block_number']} is {found}"

    def check_balance(
        self, w3: Any, snapshot: Mapping[str, Any], balance: Mapping[str, Any]
    ) -> Callable[[], str]:
        def check() -> str:
            attested = _amount(balance["amount"], f"balance of {balance['asset']}")
            found = evm_balance(
                w3, balance["safe_address"], balance["token_address"], snapshot["block_number"]
            )
            if found != attested:
                raise VerifierError(
                    f"The Safe {balance['safe_address']} held {found} {balance['asset']} base units at block {snapshot['block_number']}, not the attested {attested}."
                )
            return f"{found} base units at block {snapshot['block_number']}"

        return check

    # -- anchors ------------------------------------------------------------------------------

    def check_bitcoin_anchor(self) -> str:
        assert self._bitcoin is not None
        anchor = self.bundle.anchors.get("bitcoin")
        if not anchor:
            raise VerifierError(
                "The Bitcoin anchor is missing: no OP_RETURN transaction is recorded."
            )
        header = self._bitcoin.call("getblockheader", anchor["block_hash"])
        if header["confirmations"] < 1 or header["height"] != anchor["height"]:
            raise VerifierError(
                f"The anchor's block {anchor['block_hash']} is not on the best chain at height {anchor['height']}."
            )
        raw = self._bitcoin.call("getrawtransaction", anchor["txid"], False, anchor["block_hash"])
        outputs = _bitcoinlib().Transaction.parse_hex(raw, network=_bcl_network(self)).outputs
        if anchor["vout"] >= len(outputs):
            raise VerifierError(f"The anchor transaction has no output {anchor['vout']}.")
        script = bytes(outputs[anchor["vout"]].lock_script)
        if not script.startswith(OP_RETURN_PREFIX) or len(script) != len(OP_RETURN_PREFIX) + 32:
            raise VerifierError(
                f"The anchor output {anchor['txid']}:{anchor['vout']} is not an attestation OP_RETURN."
            )
        carried = script[len(OP_RETURN_PREFIX) :]
        if carried != self.digest:
            raise VerifierError(
                f"The Bitcoin anchor points at another digest: it carries {carried.hex()}, not {self.digest.hex()}."
            )
        return f"OP_RETURN in {anchor['txid']} at height {anchor['height']} ({header['confirmations']} confirmations)"

    def check_services_anchor(self, w3: Any) -> str:
        anchor = self.bundle.anchors.get("services")
        if not anchor:
            raise VerifierError(
                "The services-chain anchor is missing: no registry publication is recorded."
            )
        registry = self.body["registry"]
        if w3.eth.chain_id != registry["chain_id"]:
            raise VerifierError(
                f"The services RPC serves chain {w3.eth.chain_id}, not the registry's chain {registry['chain_id']}."
            )
        if anchor["registry"].lower() != registry["address"].lower():
            raise VerifierError("The anchor names another registry than the bundle's body.")
        artifact = json.loads(REGISTRY_ARTIFACT_PATH.read_text(encoding="utf-8"))
        code = bytes(w3.eth.get_code(w3.to_checksum_address(registry["address"])))
        if code != _hex_bytes(artifact["bytecode_runtime"], "registry runtime code"):
            raise VerifierError(
                f"The code at {registry['address']} is not the attestation registry's compiled code."
            )
        receipt = w3.eth.get_transaction_receipt(anchor["tx_hash"])
        if (
            receipt["status"] != 1
            or "0x" + bytes(receipt["blockHash"]).hex() != anchor["block_hash"]
        ):
            raise VerifierError("The publication transaction failed or is in another block.")
        logs = [entry for entry in receipt["logs"] if entry["logIndex"] == anchor["log_index"]]
        if not logs or logs[0]["address"].lower() != registry["address"].lower():
            raise VerifierError(f"The registry logged nothing at log index {anchor['log_index']}.")
        topics = [bytes(topic) for topic in logs[0]["topics"]]
        if len(topics) != 4 or topics[0] != bytes(w3.keccak(PUBLISHED_EVENT_SIGNATURE)):
            raise VerifierError("The log at the anchor's index is not a Published event.")
        if topics[1] != self.digest:
            raise VerifierError(
                f"The registry anchor points at another digest: it published {topics[1].hex()}, not {self.digest.hex()}."
            )
        publisher = "0x" + topics[3][12:].hex()
        if publisher != registry["publisher"].lower():
            raise VerifierError(
                f"The digest was published by {publisher}, not the treasury's publisher {registry['publisher']}."
            )
        sequence = int.from_bytes(topics[2], "big")
        previous = bytes(logs[0]["data"])[:32].hex()
        if sequence != self.body["sequence"] or previous != self.body["previous_digest"]:
            raise VerifierError(
                f"Attestation chain gap: the registry recorded this digest as number {sequence} after {previous}, but the bundle claims number {self.body['sequence']} after {self.body['previous_digest']}."
            )
        return f"Published by {publisher} as number {sequence} in block {receipt['blockNumber']}"

    # -- orchestration ------------------------------------------------------------------------

    def verify(self, leaf: LeafQuery | None, previous: Bundle | None) -> None:
        self.run("digest", self.check_digest)
        for role in ("treasury", "auditor"):
            self.run(f"signature {role}", self.check_signature(role))
        self.run("separate signing roles", self.check_roles)
        self.run("holdings root", self.check_holdings_root)
        self.run("holdings totals", self.check_holdings_totals)
        if self.run("liability root", self.check_liability_root):
            self.run("published liabilities", self.check_public_listing)
            if leaf is not None:
                self.run(f"inclusion of {leaf.account_id!r}", lambda: self.check_leaf(leaf))
            try:
                assets = self._assets()
            except _EXPECTED as error:
                self.checks.append(Check("reconciliation", CheckStatus.FAILED, str(error)))
                assets = []
            for asset in assets:
                self.run(f"reconciliation {asset}", self.check_reconciliation(asset))
            for asset in assets:
                self.run(f"coverage {asset}", self.check_coverage(asset))
        self.run("attestation chain", lambda: self.check_chain(previous))
        if self.body.get("snapshot", {}).get("bitcoin", {}).get("utxos"):
            self.run("reserve proof (BIP-127)", self.check_reserve_proof)
        self._live_bitcoin()
        self._live_evm()
        self._services()

    def _live_bitcoin(self) -> None:
        if self._bitcoin is None:
            for name in ("bitcoin snapshot block", "bitcoin UTXOs at snapshot", "bitcoin anchor"):
                self.skip(name, "no --bitcoin-rpc given")
            return
        self.run("bitcoin snapshot block", self.check_bitcoin_block)
        for utxo in self._utxos():
            self.run(f"utxo {utxo['txid']}:{utxo['vout']}", self.check_utxo(utxo))
        self.run("bitcoin anchor", self.check_bitcoin_anchor)

    def _live_evm(self) -> None:
        slots = self.eip1271_slots()
        if not self.nodes.evm:
            if self.body["snapshot"]["evm"]:
                self.skip("evm balances at snapshot", "no --evm-rpc given")
            for slot in slots:
                self.skip(f"eip1271 {slot['safe_address']}", "no --evm-rpc given")
            return
        w3 = _web3(self.nodes.evm)
        chain_id = w3.eth.chain_id
        for snapshot in self.body["snapshot"]["evm"]:
            if snapshot["chain_id"] != chain_id:
                self.skip(
                    f"evm chain {snapshot['chain_id']}",
                    f"the --evm-rpc node serves chain {chain_id}",
                )
                continue
            if not self.run(f"evm snapshot block {chain_id}", self._evm_block_check(w3, snapshot)):
                continue
            for balance in snapshot["balances"]:
                self.run(
                    f"balance {balance['asset']} of {balance['safe_address']}",
                    self.check_balance(w3, snapshot, balance),
                )
        for slot in slots:
            if slot["chain_id"] == chain_id:
                self.run(f"eip1271 {slot['safe_address']}", self.check_eip1271(slot, w3))
            else:
                self.skip(
                    f"eip1271 {slot['safe_address']}", f"no node for chain {slot['chain_id']}"
                )

    def _services(self) -> None:
        if not self.nodes.services:
            self.skip("services anchor", "no --services-rpc given")
            return
        w3 = _web3(self.nodes.services)
        self.run("services anchor", lambda: self.check_services_anchor(w3))


def _show(totals: Mapping[str, int]) -> str:
    """Per-asset amounts as ``ASSET amount`` pairs, in asset order."""
    return ", ".join(f"{asset} {amount}" for asset, amount in sorted(totals.items())) or "nothing"


def _bcl_network(verifier: _Verifier) -> str:
    """bitcoinlib's name of the snapshot's network."""
    return _BCL_NETWORKS.get(verifier.body["snapshot"]["bitcoin"]["network"], "regtest")


_BCL_NETWORKS = {"main": "bitcoin", "test": "testnet", "regtest": "regtest", "signet": "signet"}


def _find_spend(
    node: BitcoinNodeClient, txid: str, vout: int, first: int, last: int
) -> tuple[str, int] | None:
    """Scan blocks ``first..last`` for a transaction spending ``txid:vout`` (no index needed)."""
    for height in range(first, last + 1):
        block = node.call("getblock", node.call("getblockhash", height), 2)
        for transaction in block["tx"]:
            for spent in transaction["vin"]:
                if spent.get("txid") == txid and spent.get("vout") == vout:
                    return transaction["txid"], height
    return None


def eip1271_call(w3: Any, safe: str, digest: bytes, signature: bytes, block: int) -> bytes:
    """Call ``isValidSignature(bytes32,bytes)`` on ``safe`` at ``block``; return the 4-byte answer."""
    from eth_abi.abi import decode, encode

    selector = bytes(w3.keccak(text="isValidSignature(bytes32,bytes)"))[:4]
    data = selector + encode(["bytes32", "bytes"], [digest, signature])
    try:
        answer = bytes(
            w3.eth.call({"to": w3.to_checksum_address(safe), "data": "0x" + data.hex()}, block)
        )
    except Exception as error:
        raise VerifierError(f"isValidSignature on {safe} reverted or failed ({error}).") from None
    if len(answer) < 32:
        raise VerifierError(f"isValidSignature on {safe} returned {len(answer)} bytes, not 32.")
    (magic,) = decode(["bytes4"], answer[:32])
    return bytes(magic)


def evm_balance(w3: Any, holder: str, token: str | None, block: int) -> int:
    """Ether (``token`` None) or ERC-20 balance of ``holder`` at ``block``, in base units."""
    from eth_abi.abi import decode, encode

    address = w3.to_checksum_address(holder)
    if token is None:
        return int(w3.eth.get_balance(address, block))
    data = bytes(w3.keccak(text="balanceOf(address)"))[:4] + encode(["address"], [address])
    answer = bytes(
        w3.eth.call({"to": w3.to_checksum_address(token), "data": "0x" + data.hex()}, block)
    )
    (amount,) = decode(["uint256"], answer)
    return int(amount)


# --- BIP-127 reserve proof --------------------------------------------------------------------


def _compact_size(data: bytes, offset: int) -> tuple[int, int]:
    """Read a Bitcoin CompactSize integer at ``offset``; return it and the next offset."""
    first = data[offset]
    if first < 0xFD:
        return first, offset + 1
    width = {0xFD: 2, 0xFE: 4, 0xFF: 8}[first]
    return int.from_bytes(data[offset + 1 : offset + 1 + width], "little"), offset + 1 + width


def _psbt_maps(data: bytes) -> Iterator[dict[bytes, bytes]]:
    """Yield the key-value maps of a PSBT (global first, then inputs, then outputs)."""
    if not data.startswith(PSBT_MAGIC):
        raise VerifierError("The reserve proof is not a PSBT (bad magic bytes).")
    offset = len(PSBT_MAGIC)
    while offset < len(data):
        entries: dict[bytes, bytes] = {}
        while True:
            key_length, offset = _compact_size(data, offset)
            if key_length == 0:
                break
            key = data[offset : offset + key_length]
            offset += key_length
            value_length, offset = _compact_size(data, offset)
            if offset + value_length > len(data):
                raise VerifierError("The reserve proof PSBT is truncated.")
            if key in entries:
                raise VerifierError("The reserve proof PSBT repeats a key.")
            entries[key] = data[offset : offset + value_length]
            offset += value_length
        yield entries


def check_reserve_psbt(
    psbt: bytes,
    digest: bytes,
    utxos: Sequence[tuple[str, int, int, bytes]],
    network: str,
) -> bytes:
    """Check a BIP-127 reserve proof and return its finalised transaction bytes.

    The PSBT must spend, first, the commitment input ``SHA-256("Proof-of-Reserves: " ||
    message)`` index 0 with the digest's message, then exactly the attested ``(txid, vout,
    amount, script)`` UTXOs; have a single output worth their sum (no fee); and carry, for every
    attested input, a final witness whose key or script is the UTXO's and whose SIGHASH_ALL
    signatures verify (bitcoinlib). Raises :class:`VerifierError` naming the first failure.
    """
    transactions = _bitcoinlib()
    bcl_network = _BCL_NETWORKS.get(network, "regtest")
    maps = list(_psbt_maps(psbt))
    unsigned = maps[0].get(bytes((PSBT_GLOBAL_UNSIGNED_TX,)))
    if unsigned is None:
        raise VerifierError("The reserve proof PSBT has no unsigned transaction.")
    transaction = transactions.Transaction.parse_bytes(unsigned, network=bcl_network)
    inputs = maps[1 : 1 + len(transaction.inputs)]
    if len(inputs) != len(transaction.inputs) or not transaction.inputs:
        raise VerifierError("The reserve proof PSBT lacks an input map per input.")
    message = (RESERVE_MESSAGE_PREFIX + digest.hex()).encode()
    commitment = hashlib.sha256(BIP127_PREFIX + message).digest()[::-1].hex()
    first = transaction.inputs[0]
    if bytes(first.prev_txid).hex() != commitment or first.output_n_int != 0:
        raise VerifierError(
            "The reserve proof's first input is not the commitment to this digest (BIP-127)."
        )
    stated = inputs[0].get(bytes((PSBT_IN_POR_COMMITMENT,)))
    if stated is not None and stated != message:
        raise VerifierError("The reserve proof's commitment message is not this digest's.")
    attested = {(txid, vout): (amount, script) for txid, vout, amount, script in utxos}
    spent = [(bytes(item.prev_txid).hex(), item.output_n_int) for item in transaction.inputs[1:]]
    if sorted(spent) != sorted(attested) or len(set(spent)) != len(spent):
        missing = sorted(set(attested) - set(spent))
        extra = sorted(set(spent) - set(attested))
        raise VerifierError(
            f"The reserve proof does not spend exactly the attested UTXOs (missing {missing}, extra {extra})."
        )
    total = sum(amount for amount, _ in attested.values())
    if len(transaction.outputs) != 1 or transaction.outputs[0].value != total:
        raise VerifierError(
            f"The reserve proof must have one output of exactly {total} sats (no fee)."
        )
    witnesses = []
    for position, (outpoint, fields) in enumerate(zip(spent, inputs[1:], strict=True), start=1):
        witness = fields.get(bytes((PSBT_IN_FINAL_SCRIPTWITNESS,)))
        if witness is None or fields.get(bytes((PSBT_IN_FINAL_SCRIPTSIG,))):
            raise VerifierError(
                f"The reserve proof's input {outpoint[0]}:{outpoint[1]} is not signed and finalised (segwit witness)."
            )
        witnesses.append(witness)
        amount, script = attested[outpoint]
        witness_utxo = fields.get(bytes((PSBT_IN_WITNESS_UTXO,)))
        if witness_utxo is not None and witness_utxo != (
            amount.to_bytes(8, "little") + bytes((len(script),)) + script
        ):
            raise VerifierError(
                f"The reserve proof states another amount or script for input {position} than attested."
            )
    final = (
        unsigned[:4] + b"\x00\x01" + unsigned[4:-4] + b"\x00" + b"".join(witnesses) + unsigned[-4:]
    )
    signed = transactions.Transaction.parse_bytes(final, network=bcl_network)
    for position, outpoint in enumerate(spent, start=1):
        amount, script = attested[outpoint]
        item = signed.inputs[position]
        _check_witness_binding(item, script, outpoint)
        if item.hash_type != SIGHASH_ALL:
            raise VerifierError(
                f"The reserve proof's input {outpoint[0]}:{outpoint[1]} is not signed with SIGHASH_ALL."
            )
        item.value = amount
        sighash = signed.signature_hash(position, item.hash_type, item.witness_type)
        if not item.signatures or not item.verify(sighash):
            raise VerifierError(
                f"The reserve proof's signature on input {outpoint[0]}:{outpoint[1]} does not verify."
            )
    return bytes(final)


def _check_witness_binding(item: Any, script: bytes, outpoint: tuple[str, int]) -> None:
    """Refuse a witness whose key or script is not the one the attested UTXO locks to."""
    where = f"{outpoint[0]}:{outpoint[1]}"
    if len(script) == 22 and script[:2] == b"\x00\x14":
        if len(item.keys) != 1 or _hash160(item.keys[0].public_byte) != script[2:]:
            raise VerifierError(f"The witness of input {where} is not by the UTXO's key.")
    elif len(script) == 34 and script[:2] == b"\x00\x20":
        redeem = bytes(item.redeemscript or b"")
        if hashlib.sha256(redeem).digest() != script[2:]:
            raise VerifierError(f"The witness script of input {where} is not the UTXO's script.")
    else:
        raise VerifierError(
            f"The UTXO {where} is neither P2WPKH nor P2WSH; this verifier checks segwit v0 only."
        )


# --- entry point ------------------------------------------------------------------------------


def verify_bundle(
    data: bytes | str | Bundle,
    *,
    nodes: Nodes = Nodes(),
    leaf: LeafQuery | None = None,
    previous: Bundle | None = None,
) -> Report:
    """Check everything an auditor can check about a bundle; return the itemised report.

    ``nodes`` names the RPC endpoints to check the snapshot and anchors against (checks that
    need a missing node are reported as skipped); ``leaf`` asks for one account's inclusion;
    ``previous`` is the previous bundle of the chain, checked as its predecessor.
    """
    try:
        bundle = data if isinstance(data, Bundle) else Bundle.from_bytes(data, strict=False)
    except ReportingError as error:
        return Report("unknown", (Check("bundle format", CheckStatus.FAILED, str(error)),))
    verifier = _Verifier(bundle, nodes)
    verifier.verify(leaf, previous)
    return Report(bundle.digest.hex(), tuple(verifier.checks))

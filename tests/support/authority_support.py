"""Test helpers for custody.authority: deterministic keys, a software passkey, a signed roster.

``SoftAuthenticator`` emulates a WebAuthn authenticator in Python with a P-256 key, producing real
assertions (authenticatorData, clientDataJSON, DER signature) exactly as a browser would, so the
py_webauthn verification path runs unchanged. ``Deployment`` builds a three-institution roster
chain signed the way the rules require, so attack tests can start from a valid chain and break
one thing.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from embit.bip32 import HDKey

from custody.authority import (
    CEREMONY_KEY_ID,
    AllowlistAdded,
    ApprovalStatement,
    AuthorityEvidence,
    DecreeAdded,
    Genesis,
    InstitutionEntry,
    OfficerAdded,
    OfficerEntry,
    OfficerKeyKind,
    OfficerPublicKey,
    OfficerRole,
    PolicySet,
    RecordKind,
    RecordSignature,
    RosterRecord,
    RosterRules,
    RosterState,
    Secp256k1Signature,
    SignedStatement,
    SpendUnderReview,
    StatementKind,
    WebAuthnSignature,
    ceremony_public_key,
    next_record,
    policy_hash_of,
    replay,
    sign_with_ceremony_key,
)
from custody.authority import secp256k1 as k1
from custody.authority.roster_bodies import RecordBody
from custody.bitcoin.rpc import BitcoinRPC
from custody.secret import SecretBytes

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
RP_ID = "treasury.example"
ORIGIN = "https://treasury.example"
POLICY_DOCUMENT = '{"limits":{"BTC":"100000000"},"version":"1"}'
FLAG_UP = 0x01
FLAG_UV = 0x04
LEGAL_BASIS = "Decree 2026/14"
"""The legal basis ``Deployment.statement`` cites; ``Deployment.authorise`` signs it in."""
SATS_PER_BTC = 10**8


def private_key(label: str) -> bytes:
    """A deterministic secp256k1 private key for tests (SHA-256 of a label; below n)."""
    return hashlib.sha256(label.encode()).digest()


def k1_public(secret: bytes) -> OfficerPublicKey:
    return OfficerPublicKey(OfficerKeyKind.SECP256K1, k1.public_key_of(SecretBytes(secret)))


def k1_sign(secret: bytes, digest: bytes) -> Secp256k1Signature:
    return Secp256k1Signature(k1.sign_digest(SecretBytes(secret), digest))


def ceremony_root(label: str) -> HDKey:
    """The root of a test institution's cosigner seed."""
    return HDKey.from_seed(hashlib.sha256(("seed " + label).encode()).digest())


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class SoftAuthenticator:
    """A P-256 passkey in software: registers a COSE key and answers ``get()`` assertions."""

    label: str
    rp_id: str = RP_ID
    origin: str = ORIGIN
    sign_count: int = 0
    _key: ec.EllipticCurvePrivateKey = field(init=False, repr=False)

    def __post_init__(self) -> None:
        scalar = int.from_bytes(hashlib.sha256(("p256 " + self.label).encode()).digest(), "big")
        self._key = ec.derive_private_key(scalar % (2**255), ec.SECP256R1())

    @property
    def credential_id(self) -> bytes:
        return hashlib.sha256(("credential " + self.label).encode()).digest()[:16]

    def public_key(self) -> OfficerPublicKey:
        numbers = self._key.public_key().public_numbers()
        cose = cbor2.dumps(
            {
                1: 2,
                3: -7,
                -1: 1,
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )
        return OfficerPublicKey(
            OfficerKeyKind.WEBAUTHN_ES256,
            cose,
            rp_id=self.rp_id,
            origin=self.origin,
            credential_id=self.credential_id,
        )

    def assert_digest(
        self,
        digest: bytes,
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        flags: int = FLAG_UP | FLAG_UV,
        client_data: dict[str, Any] | None = None,
    ) -> WebAuthnSignature:
        """What ``navigator.credentials.get({challenge: digest})`` returns on this origin."""
        self.sign_count += 1
        authenticator_data = (
            hashlib.sha256((rp_id or self.rp_id).encode()).digest()
            + bytes([flags])
            + self.sign_count.to_bytes(4, "big")
        )
        data = client_data or {
            "type": "webauthn.get",
            "challenge": b64url(digest),
            "origin": origin or self.origin,
            "crossOrigin": False,
        }
        client_data_json = json.dumps(data, separators=(",", ":")).encode()
        signed = authenticator_data + hashlib.sha256(client_data_json).digest()
        signature = self._key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return WebAuthnSignature(
            self.credential_id, authenticator_data, client_data_json, signature
        )


INSTITUTIONS = ("CB", "MOF", "SAO")
"""Central bank, finance ministry, state audit office."""


@dataclass
class Deployment:
    """A valid roster chain with officers of three institutions, and the keys to extend it."""

    records: list[RosterRecord] = field(default_factory=list)
    secrets: dict[str, bytes] = field(default_factory=dict)
    passkeys: dict[str, SoftAuthenticator] = field(default_factory=dict)
    roots: dict[str, HDKey] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        rules: RosterRules | None = None,
        *,
        roots: dict[str, HDKey] | None = None,
        names: dict[str, str] | None = None,
    ) -> Deployment:
        """The test roster; ``roots`` (by code CB/MOF/SAO) anchor it in real ceremonies' seeds."""
        d = cls()
        institutions = []
        admins = []
        for code in INSTITUTIONS:
            d.roots[code] = (roots or {}).get(code) or ceremony_root(code)
            institutions.append(
                InstitutionEntry(
                    code,
                    (names or {}).get(code, f"Institution {code}"),
                    d.roots[code].my_fingerprint.hex(),
                    ceremony_public_key(d.roots[code]),
                )
            )
            admin = f"{code.lower()}-admin"
            d.secrets[admin] = private_key(admin)
            admins.append(
                OfficerEntry(
                    admin,
                    f"Admin of {code}",
                    code,
                    frozenset({OfficerRole.ADMIN}),
                    (k1_public(d.secrets[admin]),),
                )
            )
        genesis = next_record(
            None,
            RecordKind.GENESIS,
            Genesis("test-reserve", tuple(institutions), tuple(admins), rules or RosterRules()),
        )
        for code in INSTITUTIONS:
            signature = sign_with_ceremony_key(d.roots[code], genesis.record_hash())
            genesis = genesis.with_signature(
                RecordSignature(code, CEREMONY_KEY_ID, Secp256k1Signature(signature))
            )
        d.records.append(genesis)
        d.add_officer("cb-alice", "CB", {OfficerRole.APPROVER}, signer="cb-admin")
        d.add_officer("cb-bob", "CB", {OfficerRole.APPROVER}, signer="cb-admin")
        d.add_officer("mof-carol", "MOF", {OfficerRole.APPROVER}, signer="mof-admin", passkey=True)
        d.add_officer("sao-olga", "SAO", {OfficerRole.OVERSIGHT}, signer="sao-admin")
        d.append(
            RecordKind.POLICY_SET,
            PolicySet(policy_hash_of(POLICY_DOCUMENT), POLICY_DOCUMENT),
            ["cb-admin", "mof-admin"],
        )
        d.append(
            RecordKind.ALLOWLIST_ADDED,
            AllowlistAdded("BTC", "bcrt1qpayee", "Supplier"),
            ["cb-admin", "sao-admin"],
        )
        return d

    def key_of(self, officer_id: str) -> OfficerPublicKey:
        if officer_id in self.passkeys:
            return self.passkeys[officer_id].public_key()
        return k1_public(self.secrets[officer_id])

    def sign(self, officer_id: str, digest: bytes) -> Secp256k1Signature | WebAuthnSignature:
        if officer_id in self.passkeys:
            return self.passkeys[officer_id].assert_digest(digest)
        return k1_sign(self.secrets[officer_id], digest)

    def add_officer(
        self,
        officer_id: str,
        institution: str,
        roles: set[OfficerRole],
        *,
        signer: str,
        passkey: bool = False,
    ) -> RosterRecord:
        if passkey:
            self.passkeys[officer_id] = SoftAuthenticator(officer_id)
        else:
            self.secrets[officer_id] = private_key(officer_id)
        entry = OfficerEntry(
            officer_id,
            officer_id.split("-")[1].title(),
            institution,
            frozenset(roles),
            (self.key_of(officer_id),),
        )
        return self.append(RecordKind.OFFICER_ADDED, OfficerAdded(entry), [signer])

    def make(self, kind: RecordKind, body: RecordBody, signers: list[str]) -> RosterRecord:
        """The next record, signed by ``signers`` (not appended)."""
        record = next_record(self.records[-1], kind, body)
        for officer_id in signers:
            record = record.with_signature(
                RecordSignature(
                    officer_id,
                    self.key_of(officer_id).key_id,
                    self.sign(officer_id, record.record_hash()),
                )
            )
        return record

    def append(self, kind: RecordKind, body: RecordBody, signers: list[str]) -> RosterRecord:
        record = self.make(kind, body, signers)
        self.records.append(record)
        return record

    def state(self) -> RosterState:
        return replay(self.records)

    def authorise(
        self,
        ceilings: Mapping[str, int],
        destinations: Iterable[tuple[str, str]],
        *,
        signers: tuple[str, ...] = ("cb-admin", "mof-admin"),
    ) -> None:
        """Sign into the chain what real spends need besides approvals: the decree the statements
        cite (``LEGAL_BASIS``, with ``ceilings`` by asset, unless the chain has it) and each
        ``(asset, address)`` destination on the allowlist (unless listed already)."""
        state = self.state()
        if LEGAL_BASIS not in state.decrees:
            self.append(
                RecordKind.DECREE_ADDED,
                DecreeAdded(LEGAL_BASIS, "Reserve operations", NOW + timedelta(days=30), ceilings),
                list(signers),
            )
        for asset, address in destinations:
            if not self.state().allows_destination(asset, address):
                self.append(
                    RecordKind.ALLOWLIST_ADDED,
                    AllowlistAdded(asset, address, "Test payee"),
                    list(signers),
                )

    # --- statements -----------------------------------------------------------------------------

    def statement(self, officer_id: str, **changes: Any) -> ApprovalStatement:
        """An approval by ``officer_id`` of ``SPEND`` under the deployment's policy."""
        institution = officer_id.split("-")[0].upper()
        base = ApprovalStatement(
            kind=StatementKind.APPROVE,
            proposal_id="17",
            chain=SPEND.chain,
            vault="reserve-btc",
            vault_id=SPEND.vault_id,
            asset=SPEND.asset,
            amount=SPEND.amount,
            destination=SPEND.destination,
            tx_hash=SPEND.tx_hash,
            safe_nonce=None,
            max_fee=1_000,
            policy_hash=policy_hash_of(POLICY_DOCUMENT),
            legal_basis="Decree 2026/14",
            expires_at=NOW + timedelta(hours=24),
            officer_id=officer_id,
            institution=institution,
        )
        return replace(base, **changes)

    def statement_for(
        self,
        officer_id: str,
        spend: SpendUnderReview,
        *,
        max_fee: int | None = None,
        **changes: Any,
    ) -> ApprovalStatement:
        """An approval by ``officer_id`` naming exactly ``spend`` (what a signer will decode)."""
        fields: dict[str, Any] = {
            "chain": spend.chain,
            "vault_id": spend.vault_id,
            "asset": spend.asset,
            "amount": spend.amount,
            "destination": spend.destination,
            "tx_hash": spend.tx_hash,
            "safe_nonce": spend.safe_nonce,
            "max_fee": max_fee,
        }
        return self.statement(officer_id, **(fields | changes))

    def evidence(self, *statements: ApprovalStatement) -> AuthorityEvidence:
        """The roster chain and ``statements`` signed by their officers, as a signer is shown."""
        return AuthorityEvidence(tuple(self.records), tuple(self.signed(s) for s in statements))

    def signed(self, statement: ApprovalStatement) -> SignedStatement:
        officer = statement.officer_id
        return SignedStatement(
            statement, self.key_of(officer).key_id, self.sign(officer, statement.digest())
        )


def bitcoind_spend_under_review(
    rpc: BitcoinRPC, psbt_text: str, receive_descriptor: str, change_descriptor: str
) -> SpendUnderReview:
    """What a vault spend's PSBT does, read by bitcoind (not by the signer under test).

    The one output that is not the vault's change (indexes 0..50) is the payment.
    """
    decoded = rpc.call("decodepsbt", psbt_text)
    change = set(rpc.call("deriveaddresses", change_descriptor, [0, 50]))
    payments = [o for o in decoded["tx"]["vout"] if o["scriptPubKey"]["address"] not in change]
    assert len(payments) == 1, payments
    return SpendUnderReview(
        chain="bitcoin:regtest",
        vault_id=receive_descriptor,
        asset="BTC",
        amount=int(Decimal(str(payments[0]["value"])) * SATS_PER_BTC),
        destination=payments[0]["scriptPubKey"]["address"],
        tx_hash=decoded["tx"]["txid"],
        fee=int(Decimal(str(decoded["fee"])) * SATS_PER_BTC),
        safe_nonce=None,
    )


SPEND = SpendUnderReview(
    chain="bitcoin:regtest",
    vault_id="wsh(sortedmulti(2,[aaaaaaaa/48h/1h/0h/2h]tpubA/0/*,[bbbbbbbb/48h/1h/0h/2h]tpubB/0/*))#abcdefgh",
    asset="BTC",
    amount=150_000,
    destination="bcrt1qpayee",
    tx_hash="ab" * 32,
    fee=500,
    safe_nonce=None,
)

"""The auditor's trust anchors: keys, registry and genesis pinned in a file the auditor keeps.

A bundle lists its own signers' public keys and names its own registry, so checking it against
itself proves only self-consistency: whoever forges a bundle lists the keys it signs with. The
trust file is the auditor's own record of the treasury's and audit office's public keys, the
registry's chain id and address (and publisher), and optionally the genesis attestation's digest;
the verifier refuses a bundle whose signers or registry differ from it, each with its own reason.

The file is read strictly (unknown or duplicate fields, wrong types and malformed hex are refused
with a sentence naming the field), because a trust file that silently ignores a misspelt field
would pin nothing. The format is documented in ``verifier/README.md``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils.address import is_checksum_address

from reserve_verifier.bundle import Bundle, BundleLike
from reserve_verifier.context import Context
from reserve_verifier.evm import web3_client
from reserve_verifier.exceptions import UsageError, VerifierError

TRUST_FORMAT = "reserve-verifier-trust"
"""The ``format`` field of every trust file."""

TRUST_VERSION = 1
"""The trust file layout version this verifier reads."""

SIGNER_ROLES = ("treasury", "auditor")
"""The roles whose public keys a trust file pins (the bundle body's ``signers`` keys)."""

PUBLIC_KEY_HEX_CHARS = 128
"""An uncompressed secp256k1 public key without its 0x04 prefix, as the bundle lists it."""

SECP256K1_P = 2**256 - 2**32 - 977
"""The secp256k1 field prime: a public key (x, y) must satisfy y^2 = x^3 + 7 modulo it
(``eth_keys`` does not check this, so a typo in a pinned key would pin nothing)."""

DIGEST_HEX_CHARS = 64
"""A SHA-256 attestation digest in hex."""

ADDRESS_HEX_CHARS = 40
"""An EVM address without its 0x prefix."""

_TOP_FIELDS = frozenset({"format", "version", "signers", "registry", "genesis_digest"})
_REGISTRY_FIELDS = frozenset({"chain_id", "address", "publisher"})
_HEX_DIGITS = frozenset("0123456789abcdef")


class TrustFileError(UsageError, ValueError):
    """The trust file cannot be read or is not a valid trust file (a usage error: exit code 2)."""


@dataclass(frozen=True)
class RegistryPin:
    """The registry the auditor expects: chain id, address, and (if pinned) its publisher."""

    chain_id: int
    address: str
    publisher: str | None = None


@dataclass(frozen=True)
class TrustAnchors:
    """What the auditor pins: public keys per role (lower-case hex), registry, genesis digest."""

    signers: Mapping[str, tuple[str, ...]]
    registry: RegistryPin
    genesis_digest: str | None = None

    def describe(self) -> str:
        """One line saying what is pinned, for the report's scope."""
        pinned = "treasury and audit-office keys, registry"
        if self.registry.publisher is not None:
            pinned += " and publisher"
        if self.genesis_digest is not None:
            pinned += ", genesis digest"
        return pinned


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """JSON hook: a field named twice is refused (a reader could take either value)."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise TrustFileError(f"The trust file names the field {key!r} twice.")
        seen[key] = value
    return seen


def _fields(value: Any, allowed: frozenset[str], required: Sequence[str], where: str) -> None:
    """``value`` is an object with only ``allowed`` fields and every ``required`` one."""
    if not isinstance(value, dict):
        raise TrustFileError(f"The trust file's {where} is not a JSON object.")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise TrustFileError(f"The trust file's {where} has the unknown field {unknown[0]!r}.")
    for name in required:
        if name not in value:
            raise TrustFileError(f"The trust file's {where} has no {name!r} field.")


def _hex(value: Any, chars: int, what: str) -> str:
    """Lower-case hex of exactly ``chars`` digits, no prefix."""
    if not isinstance(value, str) or len(value) != chars or not set(value) <= _HEX_DIGITS:
        raise TrustFileError(
            f"The trust file's {what} must be {chars} lower-case hex digits without 0x."
        )
    return value


def _public_key(value: Any, what: str) -> str:
    """A pinned public key: 64 bytes of hex that is a point of secp256k1."""
    text = _hex(value, PUBLIC_KEY_HEX_CHARS, what)
    x, y = int(text[:64], 16), int(text[64:], 16)
    if not (x < SECP256K1_P and y < SECP256K1_P and (y * y - x * x * x - 7) % SECP256K1_P == 0):
        raise TrustFileError(f"The trust file's {what} is not a point of secp256k1.")
    return text


def _address(value: Any, what: str) -> str:
    """An EVM address, 0x and 40 hex digits; mixed case must be a valid EIP-55 checksum."""
    if (
        not isinstance(value, str)
        or len(value) != ADDRESS_HEX_CHARS + 2
        or not value.startswith("0x")
        or not set(value[2:].lower()) <= _HEX_DIGITS
    ):
        raise TrustFileError(f"The trust file's {what} must be 0x and 40 hex digits.")
    body = value[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(value):
        raise TrustFileError(f"The trust file's {what} {value} has a wrong EIP-55 checksum.")
    return value.lower()


def _signers(value: Any) -> dict[str, tuple[str, ...]]:
    """``{"treasury": [key, ...], "auditor": [key, ...]}``: non-empty, no key in two roles."""
    _fields(value, frozenset(SIGNER_ROLES), SIGNER_ROLES, "'signers'")
    pins: dict[str, tuple[str, ...]] = {}
    for role in SIGNER_ROLES:
        keys = value[role]
        if not isinstance(keys, list) or not keys:
            raise TrustFileError(
                f"The trust file's signers.{role} must be a non-empty list of public keys."
            )
        parsed = tuple(
            _public_key(key, f"signers.{role}[{index}]") for index, key in enumerate(keys)
        )
        if len(set(parsed)) != len(parsed):
            raise TrustFileError(f"The trust file's signers.{role} lists a key twice.")
        pins[role] = parsed
    shared = set(pins["treasury"]) & set(pins["auditor"])
    if shared:
        raise TrustFileError(
            "The trust file pins the same key for the treasury and the audit office; the two roles sign with separate keys."
        )
    return pins


def _registry(value: Any) -> RegistryPin:
    """``{"chain_id": int, "address": "0x..", "publisher": "0x.." (optional)}``."""
    _fields(value, _REGISTRY_FIELDS, ("chain_id", "address"), "'registry'")
    chain_id = value["chain_id"]
    if not isinstance(chain_id, int) or isinstance(chain_id, bool) or chain_id < 1:
        raise TrustFileError("The trust file's registry.chain_id must be a positive integer.")
    publisher = value.get("publisher")
    return RegistryPin(
        chain_id=chain_id,
        address=_address(value["address"], "registry.address"),
        publisher=None if publisher is None else _address(publisher, "registry.publisher"),
    )


def parse_trust(data: bytes | str) -> TrustAnchors:
    """Read a trust file's bytes; raise :class:`TrustFileError` naming the first fault."""
    try:
        document = json.loads(data, object_pairs_hook=_refuse_duplicates)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise TrustFileError(f"The trust file is not valid UTF-8 JSON: {error}.") from None
    _fields(document, _TOP_FIELDS, ("format", "version", "signers", "registry"), "top level")
    if document["format"] != TRUST_FORMAT:
        raise TrustFileError(f"The trust file's format is not {TRUST_FORMAT!r}.")
    if document["version"] != TRUST_VERSION or isinstance(document["version"], bool):
        raise TrustFileError(f"The trust file's version must be {TRUST_VERSION}.")
    genesis = document.get("genesis_digest")
    return TrustAnchors(
        signers=_signers(document["signers"]),
        registry=_registry(document["registry"]),
        genesis_digest=None
        if genesis is None
        else _hex(genesis, DIGEST_HEX_CHARS, "genesis_digest"),
    )


def trust_document(
    treasury_keys: Sequence[str],
    auditor_keys: Sequence[str],
    registry: RegistryPin,
    genesis_digest: str | None = None,
) -> dict[str, Any]:
    """The trust file's JSON object for these pins (what a treasury hands its auditor to check)."""
    document: dict[str, Any] = {
        "format": TRUST_FORMAT,
        "version": TRUST_VERSION,
        "signers": {"treasury": list(treasury_keys), "auditor": list(auditor_keys)},
        "registry": {"chain_id": registry.chain_id, "address": registry.address},
    }
    if registry.publisher is not None:
        document["registry"]["publisher"] = registry.publisher
    if genesis_digest is not None:
        document["genesis_digest"] = genesis_digest
    return document


def check_pinned_signer(ctx: Context, trust: TrustAnchors, role: str) -> str:
    """The key the body lists for ``role`` (its signature is checked against it) is pinned."""
    listed = ctx.body["signers"][role]
    key = str(listed["public_key"]).lower()
    pinned = trust.signers[role]
    if key not in pinned:
        raise VerifierError(
            f"The {role} key {listed['address']} is not pinned in the trust file for the {role} "
            f"({len(pinned)} key(s) pinned): the bundle is signed by a key the auditor does not trust."
        )
    return f"the {role} key {listed['address']} is pinned"


def check_pinned_registry(ctx: Context, trust: TrustAnchors) -> str:
    """The body's registry (chain, address, publisher) is the one pinned."""
    registry = ctx.body["registry"]
    pin = trust.registry
    if registry["chain_id"] != pin.chain_id:
        raise VerifierError(
            f"The bundle names a registry on chain {registry['chain_id']}, but the trust file pins chain {pin.chain_id}."
        )
    if str(registry["address"]).lower() != pin.address:
        raise VerifierError(
            f"The bundle names the registry {registry['address']}, but the trust file pins {pin.address}."
        )
    if pin.publisher is not None and str(registry["publisher"]).lower() != pin.publisher:
        raise VerifierError(
            f"The bundle names the registry publisher {registry['publisher']}, but the trust file pins {pin.publisher}."
        )
    return f"registry {pin.address} on chain {pin.chain_id} is pinned"


def genesis_checkable_offline(ctx: Context, previous: BundleLike | None) -> bool:
    """The genesis pin can be checked without a node: this or the given previous is number 1."""
    if ctx.body.get("sequence") == 1:
        return True
    return previous is not None and previous.body.get("sequence") == 1


def check_pinned_genesis(
    ctx: Context, trust: TrustAnchors, previous: BundleLike | None, services: str | None
) -> str:
    """The chain's first attestation is the pinned one: this bundle, the previous one given,
    or (with a services node) the registry's record of number 1."""
    pinned = trust.genesis_digest
    if pinned is None:
        raise VerifierError("The trust file pins no genesis digest.")
    if ctx.body.get("sequence") == 1:
        found, source = ctx.digest.hex(), "this bundle"
    elif previous is not None and previous.body.get("sequence") == 1:
        found, source = Bundle.of(previous).digest.hex(), "the previous bundle"
    elif services is not None:
        found, source = _registry_genesis(services, trust.registry), "the registry's number 1"
    else:
        raise VerifierError("The genesis digest cannot be checked without a node.")
    if found != pinned:
        raise VerifierError(
            f"The chain's first attestation ({source}) is {found}, not the pinned genesis {pinned}."
        )
    return f"the chain starts at the pinned genesis {pinned} ({source})"


def _registry_genesis(services: str, pin: RegistryPin) -> str:
    """The digest the pinned registry recorded as number 1 (``digest_at(1)``)."""
    from eth_abi.abi import decode, encode

    w3 = web3_client(services)
    if w3.eth.chain_id != pin.chain_id:
        raise VerifierError(
            f"The services RPC serves chain {w3.eth.chain_id}, not the pinned registry's chain {pin.chain_id}."
        )
    data = bytes(w3.keccak(text="digest_at(uint256)"))[:4] + encode(["uint256"], [1])
    answer = bytes(
        w3.eth.call({"to": w3.to_checksum_address(pin.address), "data": "0x" + data.hex()})
    )
    (digest,) = decode(["bytes32"], answer)
    return bytes(digest).hex()

"""The auditor's trust anchors: keys, registry and genesis pinned in a file the auditor keeps.

A bundle lists its own signers' public keys and names its own registry, so checking it against
itself proves only self-consistency: whoever forges a bundle lists the keys it signs with. The
trust file is the auditor's own record of the treasury's and audit office's public keys, the
registry's chain id and address (and publisher), optionally the genesis attestation's digest,
and optionally the asset registry and vault set (the body's ``assets`` and ``vaults``, same
shape); the verifier refuses a bundle whose signers, registry, assets or vaults differ from it,
each with its own reason. Pinning the assets stops a forger from redefining a code (``ETH`` as a
token contract); pinning the vaults stops one from dropping a Safe or script from the set.

The file is read strictly (unknown or duplicate fields, wrong types and malformed hex are refused
with a sentence naming the field), because a trust file that silently ignores a misspelt field
would pin nothing. The format is documented in ``verifier/README.md``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils.address import is_checksum_address, to_checksum_address

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

MAX_ASSET_DECIMALS = 255
"""Most decimals an asset may state (ERC-20's ``decimals()`` is a ``uint8``)."""

_TOP_FIELDS = frozenset(
    {"format", "version", "signers", "registry", "genesis_digest", "assets", "vaults"}
)
_REGISTRY_FIELDS = frozenset({"chain_id", "address", "publisher"})
_ASSET_FIELDS = ("chain", "kind", "contract", "decimals", "symbol")
_ASSET_KINDS = ("native", "erc20")
_VAULT_FIELDS = ("bitcoin", "evm")
_SAFE_FIELDS = ("chain_id", "safe_address")
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
    assets: Mapping[str, Mapping[str, Any]] | None = None
    """The pinned asset registry, as the body states it (contracts in EIP-55 form)."""
    vaults: Mapping[str, Any] | None = None
    """The pinned vault set, as the body states it (scripts and Safes sorted, EIP-55 Safes)."""

    def describe(self) -> str:
        """One line saying what is pinned, for the report's scope."""
        pinned = "treasury and audit-office keys, registry"
        if self.registry.publisher is not None:
            pinned += " and publisher"
        if self.genesis_digest is not None:
            pinned += ", genesis digest"
        if self.assets is not None:
            pinned += ", asset registry"
        if self.vaults is not None:
            pinned += ", vault set"
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


def _count(value: Any, what: str, top: int | None = None) -> int:
    """A non-negative JSON integer (at most ``top``)."""
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value < 0
        or (top is not None and value > top)
    ):
        bound = f" up to {top}" if top is not None else ""
        raise TrustFileError(f"The trust file's {what} must be a non-negative integer{bound}.")
    return value


def _assets(value: Any) -> dict[str, dict[str, Any]]:
    """``{code: {chain, kind, contract, decimals, symbol}}``, as the body's ``assets``."""
    if not isinstance(value, dict):
        raise TrustFileError("The trust file's 'assets' is not a JSON object.")
    pins: dict[str, dict[str, Any]] = {}
    for code, entry in value.items():
        where = f"assets.{code}"
        _fields(entry, frozenset(_ASSET_FIELDS), _ASSET_FIELDS, f"'{where}'")
        if not isinstance(entry["chain"], str) or not isinstance(entry["symbol"], str):
            raise TrustFileError(f"The trust file's {where} chain and symbol must be strings.")
        if entry["kind"] not in _ASSET_KINDS:
            raise TrustFileError(f"The trust file's {where}.kind must be 'native' or 'erc20'.")
        contract = entry["contract"]
        if (entry["kind"] == "native") != (contract is None):
            raise TrustFileError(
                f"The trust file's {where}.contract must be null for a native coin and an address for a token."
            )
        pins[code] = {
            "chain": entry["chain"],
            "kind": entry["kind"],
            "contract": None
            if contract is None
            else str(to_checksum_address(_address(contract, f"{where}.contract"))),
            "decimals": _count(entry["decimals"], f"{where}.decimals", MAX_ASSET_DECIMALS),
            "symbol": entry["symbol"],
        }
    return pins


def _vaults(value: Any) -> dict[str, Any]:
    """``{"bitcoin": [script hex], "evm": [{chain_id, safe_address}]}``, as the body's ``vaults``."""
    _fields(value, frozenset(_VAULT_FIELDS), _VAULT_FIELDS, "'vaults'")
    scripts, safes = value["bitcoin"], value["evm"]
    if not isinstance(scripts, list) or not isinstance(safes, list):
        raise TrustFileError("The trust file's vaults.bitcoin and vaults.evm must be lists.")
    for index, script in enumerate(scripts):
        if not isinstance(script, str) or not script or len(script) % 2:
            raise TrustFileError(f"The trust file's vaults.bitcoin[{index}] is not a script's hex.")
        _hex(script, len(script), f"vaults.bitcoin[{index}]")
    if len(set(scripts)) != len(scripts):
        raise TrustFileError("The trust file's vaults.bitcoin lists a script twice.")
    pinned_safes = []
    for index, safe in enumerate(safes):
        where = f"vaults.evm[{index}]"
        _fields(safe, frozenset(_SAFE_FIELDS), _SAFE_FIELDS, f"'{where}'")
        address = _address(safe["safe_address"], f"{where}.safe_address")
        pinned_safes.append((_count(safe["chain_id"], f"{where}.chain_id"), address))
    if len(set(pinned_safes)) != len(pinned_safes):
        raise TrustFileError("The trust file's vaults.evm lists a Safe twice.")
    return {
        "bitcoin": sorted(scripts),
        "evm": [
            {"chain_id": chain_id, "safe_address": str(to_checksum_address(address))}
            for chain_id, address in sorted(pinned_safes)
        ],
    }


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
        assets=_assets(document["assets"]) if "assets" in document else None,
        vaults=_vaults(document["vaults"]) if "vaults" in document else None,
    )


def trust_document(
    treasury_keys: Sequence[str],
    auditor_keys: Sequence[str],
    registry: RegistryPin,
    genesis_digest: str | None = None,
    *,
    assets: Mapping[str, Any] | None = None,
    vaults: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The trust file's JSON object for these pins (what a treasury hands its auditor to check).

    ``assets`` and ``vaults`` are pinned as given: the body's ``assets`` and ``vaults``.
    """
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
    if assets is not None:
        document["assets"] = {code: dict(entry) for code, entry in assets.items()}
    if vaults is not None:
        document["vaults"] = {"bitcoin": list(vaults["bitcoin"]), "evm": list(vaults["evm"])}
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


def check_pinned_assets(ctx: Context, trust: TrustAnchors) -> str:
    """The body's asset registry is the pinned one, code by code."""
    pinned = trust.assets
    if pinned is None:
        raise VerifierError("The trust file pins no asset registry.")
    stated = ctx.asset_registry()
    differences = []
    for code in sorted(set(stated) | set(pinned), key=str.encode):
        if code not in pinned:
            differences.append(f"the bundle registers {code}, which the trust file does not pin")
        elif code not in stated:
            differences.append(f"the trust file pins {code}, which the bundle does not register")
        elif dict(stated[code]) != dict(pinned[code]):
            differences.append(
                f"the bundle's {code} is {dict(stated[code])}, the trust file pins {dict(pinned[code])}"
            )
    if differences:
        raise VerifierError(
            f"The asset registry differs from the trust file's: {'; '.join(differences)}."
        )
    return f"the {len(pinned)} registered asset(s) are the pinned ones"


def check_pinned_vaults(ctx: Context, trust: TrustAnchors) -> str:
    """The body's vault set is the pinned one: the same scripts and the same Safes."""
    pinned = trust.vaults
    if pinned is None:
        raise VerifierError("The trust file pins no vault set.")
    body = ctx.body["vaults"]
    differences = []
    stated_scripts, pinned_scripts = set(body["bitcoin"]), set(pinned["bitcoin"])
    for script in sorted(stated_scripts - pinned_scripts):
        differences.append(f"the bundle lists the script {script}, which is not pinned")
    for script in sorted(pinned_scripts - stated_scripts):
        differences.append(f"the bundle omits the pinned script {script}")
    stated_safes = {(s["chain_id"], str(s["safe_address"]).lower()) for s in body["evm"]}
    pinned_safes = {(s["chain_id"], str(s["safe_address"]).lower()) for s in pinned["evm"]}
    for chain_id, safe in sorted(stated_safes - pinned_safes):
        differences.append(f"the bundle lists the Safe {safe} on chain {chain_id}, not pinned")
    for chain_id, safe in sorted(pinned_safes - stated_safes):
        differences.append(f"the bundle omits the pinned Safe {safe} on chain {chain_id}")
    if differences:
        raise VerifierError(
            f"The vault set differs from the trust file's: {'; '.join(differences)}."
        )
    return f"the {len(pinned_scripts)} vault script(s) and {len(pinned_safes)} Safe(s) are the pinned ones"


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

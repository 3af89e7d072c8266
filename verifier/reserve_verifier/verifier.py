"""The order of the checks, and the entry point: one bundle in, an itemised report out.

Every check yields one line: a name, ``ok``, ``failed`` or ``skipped``, and a reason. An error a
malformed or tampered bundle (or an unreachable node) raises inside a check fails that check only,
so the report names it and the other checks still run. Checks that need a node the auditor did not
name are skipped, and say so.

With a trust file, the signers and the registry must be the ones the auditor pinned (each
mismatch its own failed line); without one, the report's scope says the keys and registry are
self-declared by the bundle, so a pass proves self-consistency only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from web3.exceptions import Web3Exception

from reserve_verifier import (
    announcements,
    asset_checks,
    balance_checks,
    bitcoin_checks,
    evm_checks,
    integrity_checks,
    trust,
    vault_checks,
)
from reserve_verifier import tree_checks as trees
from reserve_verifier.announcements import Announcement
from reserve_verifier.bitcoin_node import BitcoinNodeClient
from reserve_verifier.bundle import Bundle, BundleLike
from reserve_verifier.context import Context
from reserve_verifier.evm import web3_client
from reserve_verifier.exceptions import BundleFormatError, VerifierError
from reserve_verifier.grammar import check_grammar
from reserve_verifier.inputs import LeafQuery, Nodes
from reserve_verifier.report import Check, CheckStatus, Report, Scope
from reserve_verifier.trust import TrustAnchors

EXPECTED_ERRORS = (
    VerifierError,
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


class _Run:
    """The report lines of one bundle, appended as each check runs."""

    def __init__(
        self,
        ctx: Context,
        anchors: TrustAnchors | None,
        announced: Sequence[Announcement] | None = None,
    ) -> None:
        self.ctx = ctx
        self.anchors = anchors
        self.announced = announced
        self.checks: list[Check] = []

    def run(self, name: str, check: Callable[[], str]) -> bool:
        """Run one check; its return is the ok reason, an expected error the failure reason."""
        try:
            reason = check()
        except EXPECTED_ERRORS as error:
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

    def verify(self, leaf: LeafQuery | None, previous: BundleLike | None) -> None:
        """Every check, in report order."""
        ctx = self.ctx
        self.run("digest", partial(integrity_checks.check_digest, ctx))
        for role in integrity_checks.ROLES:
            self.run(f"signature {role}", partial(integrity_checks.check_signature, ctx, role))
        self.run("separate signing roles", partial(integrity_checks.check_roles, ctx))
        self._pins(previous)
        self._registry()
        self.run("holdings root", partial(trees.check_holdings_root, ctx))
        self.run("holdings totals", partial(trees.check_holdings_totals, ctx))
        if self.run("liability root", partial(trees.check_liability_root, ctx)):
            self._liabilities(leaf)
        self.run("attestation chain", partial(self._chain, previous))
        if ctx.body.get("snapshot", {}).get("bitcoin", {}).get("utxos"):
            self.run("reserve proof (BIP-127)", partial(bitcoin_checks.check_reserve_proof, ctx))
        self._live_bitcoin()
        self._live_evm()
        self._services()

    def _pins(self, previous: BundleLike | None) -> None:
        """The signers, registry and genesis against the auditor's trust file, if one was given."""
        anchors, ctx = self.anchors, self.ctx
        if anchors is None:
            return
        if self.announced is not None:
            anchors = self._announcements(anchors)
        for role in integrity_checks.ROLES:
            self.run(f"pinned {role} key", partial(trust.check_pinned_signer, ctx, anchors, role))
        self.run("pinned registry", partial(trust.check_pinned_registry, ctx, anchors))
        if anchors.assets is not None:
            self.run("pinned assets", partial(trust.check_pinned_assets, ctx, anchors))
        if anchors.vaults is not None:
            self.run("pinned vaults", partial(trust.check_pinned_vaults, ctx, anchors))
        if anchors.genesis_digest is None:
            return
        if trust.genesis_checkable_offline(ctx, previous) or ctx.nodes.services:
            self.run(
                "pinned genesis",
                partial(trust.check_pinned_genesis, ctx, anchors, previous, ctx.nodes.services),
            )
        else:
            self.skip("pinned genesis", "no --services-rpc, and neither bundle is number 1")

    def _announcements(self, pinned: TrustAnchors) -> TrustAnchors:
        """The pins with the announced key rotations and vault-set changes in force for this
        attestation; if the announcements do not hold, the plain pins (so the pinned-key check
        then fails with its own reason)."""
        found: list[TrustAnchors] = []

        def check() -> str:
            effective = announcements.effective_trust(
                pinned,
                self.announced or (),
                int(self.ctx.body["sequence"]),
                self.ctx.nodes.services,
            )
            found.append(effective.anchors(pinned))
            return effective.describe()

        self.run("announcements", check)
        return found[0] if found else pinned

    def _registry(self) -> None:
        """The asset registry and the vault set: every holding is a registered asset's and a
        vault's, and every funded Safe proves control."""
        ctx = self.ctx
        self.run("asset registry", partial(asset_checks.check_registry, ctx))
        self.run("balance assets", partial(asset_checks.check_balance_assets, ctx))
        self.run("vault UTXOs", partial(vault_checks.check_utxo_vaults, ctx))
        self.run("vault Safes", partial(vault_checks.check_safe_vaults, ctx))
        self.run("Safe proofs of control", partial(vault_checks.check_safe_proofs, ctx))

    def _chain(self, previous: BundleLike | None) -> str:
        """The chain fields, and what they were (and were not) compared with."""
        reason = integrity_checks.check_chain(self.ctx, previous)
        if previous is not None:
            return reason
        body = self.ctx.body
        registry = (
            "the registry's record is checked under 'services anchor'"
            if self.ctx.nodes.services
            else "the registry was not consulted (no --services-rpc)"
        )
        return (
            f"attestation {body['sequence']}, previous {body['previous_digest']}: consistent, "
            f"not compared with a previous bundle (no --previous); {registry}"
        )

    def _liabilities(self, leaf: LeafQuery | None) -> None:
        """Published accounts, the asked-for account, then reconciliation and coverage."""
        ctx = self.ctx
        self.run("published liabilities", partial(trees.check_public_listing, ctx))
        if leaf is not None:
            self.run(f"inclusion of {leaf.account_id!r}", partial(trees.check_leaf, ctx, leaf))
        self.run("reconciliation assets", partial(asset_checks.check_reconciliation_assets, ctx))
        self.run("coverage assets", partial(asset_checks.check_coverage_assets, ctx))
        try:
            assets = ctx.assets()
        except EXPECTED_ERRORS as error:
            self.checks.append(Check("reconciliation", CheckStatus.FAILED, str(error)))
            assets = []
        for asset in assets:
            self.run(
                f"reconciliation {asset}", partial(balance_checks.check_reconciliation, ctx, asset)
            )
        for asset in assets:
            self.run(f"coverage {asset}", partial(balance_checks.check_coverage, ctx, asset))

    def _live_bitcoin(self) -> None:
        """The snapshot block, each UTXO and the anchor, against the auditor's bitcoind."""
        ctx = self.ctx
        if ctx.bitcoin is None:
            for name in ("bitcoin snapshot block", "bitcoin UTXOs at snapshot", "bitcoin anchor"):
                self.skip(name, "no --bitcoin-rpc given")
            return
        self.run("bitcoin snapshot block", partial(bitcoin_checks.check_bitcoin_block, ctx))
        for utxo in ctx.utxos():
            self.run(
                f"utxo {utxo['txid']}:{utxo['vout']}",
                partial(bitcoin_checks.check_utxo, ctx, utxo),
            )
        self.run("bitcoin anchor", partial(bitcoin_checks.check_bitcoin_anchor, ctx))

    def _live_evm(self) -> None:
        """Blocks, balances and EIP-1271 signatures of each chain, on the auditor's node of it."""
        ctx = self.ctx
        slots = ctx.eip1271_slots()
        endpoints = ctx.nodes.evm_endpoints()
        if not endpoints:
            if ctx.body["snapshot"]["evm"]:
                self.skip("evm balances at snapshot", "no --evm-rpc given")
            for slot in slots:
                self.skip(f"eip1271 {slot['safe_address']}", "no --evm-rpc given")
            return
        nodes = self._evm_nodes(endpoints)
        for snapshot in ctx.body["snapshot"]["evm"]:
            w3 = nodes.get(snapshot["chain_id"])
            if w3 is None:
                self.skip(
                    f"evm chain {snapshot['chain_id']}",
                    f"no --evm-rpc node of chain {snapshot['chain_id']} given "
                    f"(nodes given serve {', '.join(map(str, sorted(nodes))) or 'no chain'})",
                )
                continue
            self._evm_snapshot(w3, snapshot["chain_id"], snapshot)
        for slot in slots:
            name = f"eip1271 {slot['safe_address']}"
            w3 = nodes.get(slot["chain_id"])
            if w3 is not None:
                self.run(name, partial(evm_checks.check_eip1271, ctx, slot, w3))
            else:
                self.skip(name, f"no node for chain {slot['chain_id']}")

    def _evm_nodes(self, endpoints: Sequence[tuple[int | None, str]]) -> dict[int, Any]:
        """Chain id -> client of each named node that answers and serves the chain it was named
        for; a node that does not, fails its own check (and checks nothing)."""
        nodes: dict[int, Any] = {}
        for expected, url in endpoints:
            w3 = web3_client(url)
            served: list[int] = []

            def serves(
                w3: Any = w3, expected: int | None = expected, found: list[int] = served
            ) -> str:
                chain_id = int(w3.eth.chain_id)
                if expected is not None and chain_id != expected:
                    raise VerifierError(
                        f"The node named for chain {expected} serves chain {chain_id}; its "
                        "answers are not taken for either chain."
                    )
                if chain_id in nodes:
                    raise VerifierError(f"Two nodes were named for chain {chain_id}.")
                found.append(chain_id)
                return f"the node serves chain {chain_id}"

            name = f"evm node for chain {expected}" if expected is not None else "evm node"
            if self.run(name, serves):
                nodes[served[0]] = w3
        return nodes

    def _evm_snapshot(self, w3: Any, chain_id: int, snapshot: Any) -> None:
        """One chain's snapshot block and balances, if the node serves that chain."""
        if snapshot["chain_id"] != chain_id:
            self.skip(
                f"evm chain {snapshot['chain_id']}", f"the --evm-rpc node serves chain {chain_id}"
            )
            return
        if not self.run(
            f"evm snapshot block {chain_id}", partial(evm_checks.check_evm_block, w3, snapshot)
        ):
            return
        for balance in snapshot["balances"]:
            self.run(
                f"balance {balance['asset']} of {balance['safe_address']}",
                partial(evm_checks.check_balance, w3, snapshot, balance),
            )
        try:
            registry = self.ctx.asset_registry()
            safes = [
                str(safe["safe_address"])
                for safe in self.ctx.body["vaults"]["evm"]
                if safe["chain_id"] == chain_id
            ]
        except EXPECTED_ERRORS as error:
            self.checks.append(Check("vault holdings", CheckStatus.FAILED, str(error)))
            return
        for code, entry in sorted(registry.items()):
            if entry.get("kind") == "erc20" and entry.get("chain") == f"evm:{chain_id}":
                self.run(
                    f"token {code}",
                    partial(evm_checks.check_token_metadata, w3, snapshot, code, entry),
                )
        for safe in safes:
            self.run(
                f"vault holdings of {safe}",
                partial(evm_checks.check_vault_holdings, w3, snapshot, safe, registry),
            )

    def _services(self) -> None:
        """The registry publication on the services chain."""
        if not self.ctx.nodes.services:
            self.skip("services anchor", "no --services-rpc given")
            return
        w3 = web3_client(self.ctx.nodes.services)
        self.run("services anchor", partial(evm_checks.check_services_anchor, self.ctx, w3))


def _checked_object(bundle: Bundle) -> Bundle:
    """``bundle`` after the file grammar's check of its parts (a missing stated digest is taken
    as the body's own, which the digest check compares anyway)."""
    check_grammar(
        {
            "body": bundle.body,
            "digest": bundle.stated_digest or bundle.digest.hex(),
            "signatures": bundle.signatures,
            "proofs_of_control": bundle.proofs_of_control,
            "anchors": bundle.anchors,
        }
    )
    return bundle


def verify_bundle(
    data: bytes | str | BundleLike,
    *,
    nodes: Nodes = Nodes(),  # noqa: B008 - a frozen dataclass: an immutable default
    leaf: LeafQuery | None = None,
    previous: BundleLike | None = None,
    anchors: TrustAnchors | None = None,
    announced: Sequence[Announcement] | None = None,
) -> Report:
    """Check everything an auditor can check about a bundle; return the itemised report.

    ``data`` is the bundle file's bytes (or text), or a bundle object whose parts are taken as
    they are; ``nodes`` names the RPC endpoints to check the snapshot and anchors against (checks
    that need a missing node are reported as skipped); ``leaf`` asks for one account's inclusion;
    ``previous`` is the previous bundle of the chain, checked as its predecessor; ``anchors``
    are the auditor's pinned keys and registry (without them the report says the keys and
    registry are self-declared, and a pass proves self-consistency only); ``announced`` are
    the published key rotations and vault-set changes (``SPEC-announcements.md``) applied to the
    pins, checked against the registry when a services node is named.

    A bundle object is held to the same grammar as a file (its parts as a file would hold them),
    so a caller handing over objects gets no laxer check than one handing over bytes.
    """
    scope = Scope(
        pinned=anchors.describe() if anchors is not None else None,
        bitcoin_node=bool(nodes.bitcoin),
        evm_node=bool(nodes.evm_endpoints()),
        services_node=bool(nodes.services),
        previous=previous is not None,
    )
    try:
        bundle = (
            Bundle.from_bytes(data, strict=False)
            if isinstance(data, bytes | str)
            else _checked_object(Bundle.of(data))
        )
    except BundleFormatError as error:
        return Report("unknown", (Check("bundle format", CheckStatus.FAILED, str(error)),), scope)
    digest = bundle.digest
    bitcoin = BitcoinNodeClient(nodes.bitcoin) if nodes.bitcoin else None
    run = _Run(Context(bundle, digest, nodes, bitcoin), anchors, announced)
    run.verify(leaf, previous)
    return Report(digest.hex(), tuple(run.checks), scope)

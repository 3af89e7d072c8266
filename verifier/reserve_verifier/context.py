"""One bundle under check, and the figures every check reads from it, recomputed on demand.

Nothing here trusts a stated total: holdings are read from the snapshot, sums from the roots, and
each check compares what the bundle states with these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reserve_verifier.bitcoin_node import BitcoinNodeClient
from reserve_verifier.bitcoin_tx import bcl_network
from reserve_verifier.bundle import Bundle
from reserve_verifier.exceptions import VerifierError
from reserve_verifier.fields import amount, amounts, hex_bytes
from reserve_verifier.holdings_tree import Holding, SafeBalanceHolding, UtxoHolding
from reserve_verifier.inputs import Nodes
from reserve_verifier.tree import Root, Tree, parse_root


@dataclass(frozen=True)
class Context:
    """The bundle, its recomputed digest, and the nodes the auditor named."""

    bundle: Bundle
    digest: bytes
    nodes: Nodes
    bitcoin: BitcoinNodeClient | None

    @property
    def body(self) -> Mapping[str, Any]:
        """The signed body."""
        return self.bundle.body

    def bitcoin_node(self) -> BitcoinNodeClient:
        """The auditor's bitcoind (the live Bitcoin checks only run when one was given)."""
        if self.bitcoin is None:
            raise VerifierError("No Bitcoin node was given (--bitcoin-rpc).")
        return self.bitcoin

    def network(self) -> str:
        """bitcoinlib's name of the snapshot's network."""
        return bcl_network(self.body["snapshot"]["bitcoin"]["network"])

    def utxos(self) -> list[Mapping[str, Any]]:
        """The snapshot's vault UTXOs, as listed."""
        utxos: list[Mapping[str, Any]] = self.body["snapshot"]["bitcoin"]["utxos"]
        return utxos

    def holdings(self) -> list[Holding]:
        """Every UTXO and Safe balance of the snapshot, as tree leaves."""
        holdings: list[Holding] = [
            UtxoHolding(
                txid=utxo["txid"],
                vout=utxo["vout"],
                amount_sats=amount(utxo["amount"], f"amount of UTXO {utxo['txid']}"),
                script_pubkey=hex_bytes(utxo["script_pubkey"], "UTXO script"),
            )
            for utxo in self.utxos()
        ]
        for snapshot in self.body["snapshot"]["evm"]:
            for balance in snapshot["balances"]:
                holdings.append(
                    SafeBalanceHolding(
                        chain_id=snapshot["chain_id"],
                        safe_address=balance["safe_address"],
                        asset=balance["asset"],
                        token_address=balance["token_address"],
                        amount=amount(balance["amount"], f"balance of {balance['asset']}"),
                    )
                )
        return holdings

    def holdings_totals(self) -> dict[str, int]:
        """The snapshot's holdings per asset, summed here."""
        totals: dict[str, int] = {}
        for holding in self.holdings():
            totals[holding.asset] = totals.get(holding.asset, 0) + holding.amount
        return totals

    def liability_root(self) -> Root:
        """The body's liability root, parsed and checked against its stated digest."""
        root = parse_root(self.body["liabilities"]["root"])
        if root.tree is not Tree.LIABILITIES:
            raise VerifierError("The liability root is not a liability-tree root.")
        return root

    def ledger_totals(self) -> dict[str, int]:
        """The state ledger's totals per asset, as the body states them."""
        return amounts(self.body["ledger"]["totals"], "ledger total")

    def encumbered(self) -> dict[str, int]:
        """The encumbered amount per asset, summed from the listed encumbrances."""
        totals: dict[str, int] = {}
        for item in self.body["encumbrances"]:
            value = amount(item["amount"], f"encumbrance {item['reference']!r}")
            totals[item["asset"]] = totals.get(item["asset"], 0) + value
        return totals

    def assets(self) -> list[str]:
        """Every asset of holdings, liabilities, ledger and encumbrances, in byte order."""
        root = self.liability_root()
        ledger = self.ledger_totals()
        found = {*self.holdings_totals(), *root.assets, *ledger, *self.encumbered()}
        return sorted(found, key=str.encode)

    def figures(self, asset: str) -> tuple[int, int, int, int]:
        """Holdings, encumbered, liability root total and ledger total of ``asset``, recomputed."""
        root = self.liability_root()
        sums = dict(zip(root.assets, root.sums, strict=True))
        ledger = self.ledger_totals()
        return (
            self.holdings_totals().get(asset, 0),
            self.encumbered().get(asset, 0),
            sums.get(asset, 0),
            ledger.get(asset, 0),
        )

    def asset_registry(self) -> Mapping[str, Mapping[str, Any]]:
        """The body's asset registry: asset code -> chain, kind, contract, decimals, symbol."""
        registry: Mapping[str, Mapping[str, Any]] = self.body["assets"]
        if not isinstance(registry, Mapping):
            raise VerifierError("The asset registry 'assets' is not a JSON object.")
        return registry

    def vault_scripts(self) -> set[str]:
        """The vault set's Bitcoin scripts (hex)."""
        return set(self.body["vaults"]["bitcoin"])

    def vault_safes(self) -> list[tuple[int, str]]:
        """The vault set's Safes, as (chain id, lowercase address)."""
        return [
            (safe["chain_id"], str(safe["safe_address"]).lower())
            for safe in self.body["vaults"]["evm"]
        ]

    def eip1271_slots(self) -> list[Mapping[str, Any]]:
        """The Safes the body asks an EIP-1271 signature of."""
        slots: list[Mapping[str, Any]] = self.body["proofs_of_control"]["eip1271"]
        return slots

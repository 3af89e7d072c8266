"""The data in the reader's language: chains, institutions, funds, decrees, purposes, checks.

Page text comes from the catalogues; the data the pages show comes from the export and the
bundles, in the language the officers entered it in (``original_language``, English) or as codes
(``evm:31337``, ``signature auditor``). A Kyrgyz or Russian reader must not meet an English
title, so every datum is looked up in this order:

1. the translation the officers entered with the record (the export's ``translations``);
2. the catalogue's message keyed by the record's code (``institution.CB``, ``chain.evm:31337``,
   ``fund.equity:btc``, ``check.name.digest``): names the deployment configures once;
3. a generic wording in the reader's language where one exists (a Safe on "EVM network
   no. 5"; "Unallocated reserve (BTC)" for an equity account);
4. the original text, marked with its language (``<span lang="en">``) so a screen reader reads
   it right; the layout tests list such strings and fail on any in a Kyrgyz or Russian page.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from markupsafe import Markup, escape

from reporting.site.i18n import Catalogue
from reporting.site.sources import FundAllocation, FundKind, Named, TreasuryRecords

CHECK_NAMES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), key)
    for pattern, key in (
        (r"^digest$", "digest"),
        (r"^signature (?P<role>treasury|auditor)$", "signature_{role}"),
        (r"^separate signing roles$", "separate_roles"),
        (r"^asset registry$", "asset_registry"),
        (r"^balance assets$", "balance_assets"),
        (r"^vault UTXOs$", "vault_utxos"),
        (r"^vault Safes$", "vault_safes"),
        (r"^Safe proofs of control$", "safe_proofs"),
        (r"^holdings root$", "holdings_root"),
        (r"^holdings totals$", "holdings_totals"),
        (r"^liability root$", "liability_root"),
        (r"^published liabilities$", "published_liabilities"),
        (r"^reconciliation assets$", "reconciliation_assets"),
        (r"^coverage assets$", "coverage_assets"),
        (r"^reconciliation (?P<asset>\S+)$", "reconciliation_of"),
        (r"^reconciliation$", "reconciliation"),
        (r"^coverage (?P<asset>\S+)$", "coverage_of"),
        (r"^attestation chain$", "attestation_chain"),
        (r"^reserve proof \(BIP-127\)$", "reserve_proof"),
        (r"^bitcoin snapshot block$", "bitcoin_block"),
        (r"^bitcoin UTXOs at snapshot$", "bitcoin_utxos"),
        (r"^utxo (?P<outpoint>\S+)$", "utxo"),
        (r"^bitcoin anchor$", "bitcoin_anchor"),
        (r"^evm balances at snapshot$", "evm_balances"),
        (r"^evm snapshot block (?P<chain>\d+)$", "evm_block"),
        (r"^evm node for chain (?P<chain>\d+)$", "evm_node_for"),
        (r"^evm node$", "evm_node"),
        (r"^balance (?P<asset>\S+) of (?P<address>\S+)$", "balance_of"),
        (r"^token (?P<asset>\S+)$", "token"),
        (r"^vault holdings of (?P<address>\S+)$", "vault_holdings_of"),
        (r"^vault holdings$", "vault_holdings"),
        (r"^eip1271 (?P<address>\S+)$", "eip1271"),
        (r"^services anchor$", "services_anchor"),
        (r"^announcements$", "announcements"),
        (r"^pinned genesis$", "pinned_genesis"),
        (r"^pinned (?P<role>treasury|auditor) key$", "pinned_key_{role}"),
        (r"^pinned assets$", "pinned_assets"),
        (r"^pinned registry$", "pinned_registry"),
        (r"^pinned vaults$", "pinned_vaults"),
        (r"^inclusion of '(?P<account>.*)'$", "inclusion"),
        (r"^bundle format$", "bundle_format"),
    )
)
"""The verifier's check names (``reserve_verifier``) to catalogue keys ``check.name.<key>`` and
``check.about.<key>``; named groups fill the message's fields (``{asset}``, ``{address}``)."""

CODE_FIELDS = frozenset({"address", "outpoint", "account"})
"""Fields of a check name that quote an identifier: set in ``<code>``, never translated."""

SKIP_REASONS = {
    "--bitcoin-rpc": "bitcoin",
    "--evm-rpc": "evm",
    "--services-rpc": "services",
}
"""A skipped check's reason names the node it lacked; the page says which in words."""


@dataclass(frozen=True)
class CheckWording:
    """A verifier check in the reader's language: its name and what it establishes."""

    name: Markup
    about: Markup
    known: bool


class Localiser:
    """Puts the export's and the bundles' data into one catalogue's language."""

    def __init__(self, catalogue: Catalogue, records: TreasuryRecords) -> None:
        self.t = catalogue
        self.records = records
        self.lang = catalogue.code
        self.original = records.original_language

    def _untranslated(self, text: str) -> Markup:
        """The original text, marked with its language if that is not the page's."""
        if self.lang == self.original:
            return escape(text)
        return Markup('<span lang="{}">{}</span>').format(self.original, text)

    def pick(self, original: str, translations: Mapping[str, str], key: str | None) -> Markup:
        """Entered translation, else the catalogue's ``key``, else the marked original."""
        entered = translations.get(self.lang)
        if entered:
            return escape(entered)
        if key is not None and self.t.has(key):
            return escape(self.t.text(key))
        return self._untranslated(original)

    def named(self, record: Named | None, prefix: str) -> Markup:
        """An institution, account or payee by its entered translation or catalogue key; a record
        whose name is only its code (``vault:btc``) is shown as that code, an identifier."""
        if record is None:
            return Markup("—")
        key = f"{prefix}.{record.code}" if record.code else None
        if record.code and record.text == record.code and not record.translated(self.lang):
            if key is not None and self.t.has(key):
                return escape(self.t.text(key))
            return Markup("<code>{}</code>").format(record.code)
        return self.pick(record.text, record.translations, key)

    def institution(self, record: Named) -> Markup:
        return self.named(record, "institution")

    def fund(self, fund: FundAllocation, asset_label: str) -> Markup:
        """A fund's name; an equity account without a name of its own is the unallocated reserve."""
        entered = fund.translations.get(self.lang)
        if entered:
            return escape(entered)
        key = f"fund.{fund.account}"
        if self.t.has(key):
            return escape(self.t.text(key))
        if fund.kind is FundKind.EQUITY and fund.name in (fund.account, ""):
            return self.t.markup("fund.unallocated", asset=asset_label)
        return self._untranslated(fund.name)

    def decree_title(self, reference: str, title: str, translations: Mapping[str, str]) -> Markup:
        return self.pick(title, translations, f"decree.{reference}")

    def purpose(self, text: str, translations: Mapping[str, str]) -> Markup:
        return self.pick(text, translations, None)

    def chain(self, chain_id: str) -> str:
        """A chain by name: the catalogue's, else the export's on an original-language page,
        else a generic name in the reader's language (never a bare ``EVM 31337``)."""
        key = f"chain.{chain_id}"
        if self.t.has(key):
            return self.t.text(key)
        exported = self.records.chains.get(chain_id)
        if exported and self.lang == self.original:
            return exported
        family, _, detail = chain_id.partition(":")
        if family == "bitcoin":
            return self.t.text("chain.bitcoin_other", network=detail or "?")
        return self.t.text("chain.evm_other", id=detail or "?")

    def check(self, name: str) -> CheckWording:
        """A verifier check's name and description in the reader's language."""
        for pattern, key in CHECK_NAMES:
            found = pattern.match(name)
            if found is None:
                continue
            fields = found.groupdict()
            role = fields.pop("role", None)
            key = key.format(role=role) if role else key
            if "chain" in fields:
                fields["chain"] = self.chain(f"evm:{fields['chain']}")
            shown = {
                k: Markup("<code>{}</code>").format(v) if k in CODE_FIELDS else v
                for k, v in fields.items()
            }
            name_key, about_key = f"check.name.{key}", f"check.about.{key}"
            return CheckWording(
                name=self.t.markup(name_key, **{k: shown[k] for k in self.t.fields(name_key)}),
                about=self.t.markup(about_key, **{k: shown[k] for k in self.t.fields(about_key)}),
                known=True,
            )
        return CheckWording(self._untranslated(name), Markup(""), known=False)

    def skipped(self, reason: str) -> str:
        """Why a check was skipped, in words: the node of which chain the publisher lacked."""
        for flag, node in SKIP_REASONS.items():
            if flag in reason:
                return self.t.text(f"check.skipped_for.{node}")
        return self.t.text("check.skipped_for.other")

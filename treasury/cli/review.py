"""What share holders are shown before any share is read: the transaction, decoded from itself.

``treasury spend sign``, ``treasury btc spend sign`` and ``treasury safe sign`` print a review
and ask for confirmation before a share or passphrase is read or prompted; declining signs
nothing and writes nothing. ``--yes`` (scripted use) skips the question and only logs the review;
the decoding and its refusals run all the same. Every address, amount, fee and hash in the review
comes from the bytes the signer will sign, decoded by custody's own checks: the PSBT through
``custody.bitcoin.check_psbt`` (which also proves that every other output is the vault's change
and that the PSBT hashes to the approved txid), the SafeTx through ``SafeVaults.approval``
(which re-hashes it and decodes its action). The database's description of the transaction (the
proposal's summary, a spend's payment list) is never what is shown as "the transaction": a
holder who reads the screen sees what the key would sign, even if someone rewrote that
description.

Amounts are shown in coin units and in base units, exactly (integer arithmetic, no floats):
"0.25 BTC (25000000 sat)", "1.5 ETH (1500000000000000000 wei)"; a token by the symbol and
decimals the reconciler tracks it with, else in base units.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.bitcoin import FeePolicy, check_psbt, list_spends, load_spend, load_vault, parse_psbt
from custody.ethereum.signer import Approval, EtherTransfer, TokenTransfer
from treasury.cli.context import fail
from treasury.reconcile.records import TrackedTokenRow

log = logging.getLogger(__name__)

SATS_DECIMALS = 8
"""One bitcoin is 10**8 satoshis."""
WEI_DECIMALS = 18
"""One ether is 10**18 wei."""


def coin_units(amount: int, decimals: int, symbol: str, base_unit: str) -> str:
    """``amount`` base units as "whole.fraction SYMBOL (amount base_unit)", trailing zeros cut."""
    whole, fraction = divmod(amount, 10**decimals)
    text = f"{whole}.{fraction:0{decimals}d}".rstrip("0").rstrip(".") if decimals else str(whole)
    return f"{text} {symbol} ({amount} {base_unit})"


def btc(sats: int) -> str:
    """Satoshis as "0.25 BTC (25000000 sat)"."""
    return coin_units(sats, SATS_DECIMALS, "BTC", "sat")


def eth(wei: int) -> str:
    """Wei as "1.5 ETH (1500000000000000000 wei)"."""
    return coin_units(wei, WEI_DECIMALS, "ETH", "wei")


# --- Bitcoin --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecodedOutput:
    """One output of the unsigned transaction: where it pays, how much, and whether it is change."""

    address: str
    amount_sats: int
    change: bool


@dataclass(frozen=True)
class BitcoinReview:
    """A custody spend's PSBT as its signer decodes it (checked against vault and approval)."""

    spend_id: int
    vault_name: str
    unsigned_txid: str
    input_count: int
    input_sats: int
    outputs: tuple[DecodedOutput, ...]
    fee_sats: int
    fee_rate_sat_vb: Decimal
    vsize: int
    max_fee_sats: int

    @property
    def payments(self) -> tuple[DecodedOutput, ...]:
        """The outputs that leave the vault."""
        return tuple(out for out in self.outputs if not out.change)

    def lines(self) -> list[str]:
        """The review, one fact a line, in coin units."""
        shown = [
            f"Bitcoin transaction to sign (decoded from spend {self.spend_id}'s PSBT, "
            f"vault {self.vault_name}):",
            f"  spends {self.input_count} vault coin(s) worth {btc(self.input_sats)}",
        ]
        for out in self.outputs:
            if out.change:
                shown.append(f"  change back to the vault: {btc(out.amount_sats)} to {out.address}")
            else:
                shown.append(f"  pay {btc(out.amount_sats)} to {out.address}")
        shown.append(
            f"  fee {btc(self.fee_sats)}, about {self.fee_rate_sat_vb:.1f} sat/vB for "
            f"{self.vsize} vB (approved maximum {btc(self.max_fee_sats)})"
        )
        shown.append(f"  transaction hash (unsigned txid): {self.unsigned_txid}")
        return shown


def review_bitcoin_spend(session: Session, spend_id: int) -> BitcoinReview:
    """Decode custody spend ``spend_id``'s PSBT as the signer will, refusing what it would refuse.

    ``check_psbt`` runs first, so an altered PSBT, a foreign input or output, or an absurd fee
    is refused here, before any holder is asked for a share. Outputs matching an approved
    payment are shown as payments; ``check_psbt`` proved every other one is the vault's change.
    """
    spend = load_spend(session, spend_id)
    vault = load_vault(session, spend.vault_name)
    psbt = parse_psbt(spend.unsigned_psbt)
    checked = check_psbt(psbt, vault.descriptor, spend.approval, FeePolicy())
    params = vault.descriptor.network.params
    approved = Counter((p.script_pubkey.data, p.amount_sats) for p in spend.approval.payments)
    outputs = []
    for out in psbt.outputs:
        key = (out.script_pubkey.data, out.value)
        paid = approved[key] > 0
        approved[key] -= paid
        outputs.append(DecodedOutput(str(out.script_pubkey.address(params)), out.value, not paid))
    return BitcoinReview(
        spend_id=spend.id,
        vault_name=vault.name,
        unsigned_txid=checked.unsigned_txid,
        input_count=checked.input_count,
        input_sats=sum(inp.witness_utxo.value for inp in psbt.inputs if inp.witness_utxo),
        outputs=tuple(outputs),
        fee_sats=checked.fee_sats,
        fee_rate_sat_vb=checked.fee_rate_sat_vb,
        vsize=checked.vsize,
        max_fee_sats=spend.approval.max_fee_sats,
    )


def spend_id_of(session: Session, vault_name: str, unsigned_txid: str) -> int | None:
    """The custody spend of ``vault_name`` whose PSBT is the transaction ``unsigned_txid``."""
    found = [
        s.id for s in list_spends(session, vault_name) if s.approval.unsigned_txid == unsigned_txid
    ]
    return found[0] if found else None


# --- Ethereum -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenUnits:
    """How a token's base units are shown: the reconciler's symbol and decimals for it."""

    symbol: str
    decimals: int


def known_token(session: Session, chain_id: int, address: str) -> TokenUnits | None:
    """The symbol and decimals the reconciler tracks ``address`` with on ``chain_id``, if any."""
    rows = session.scalars(select(TrackedTokenRow).where(TrackedTokenRow.chain_id == chain_id))
    row = next((r for r in rows if r.address.lower() == address.lower()), None)
    return None if row is None else TokenUnits(row.symbol, row.decimals)


def action_line(approval: Approval, token: TokenUnits | None) -> str:
    """The decoded action in coin units ("send 0.25 ETH (250000000000000000 wei) to 0x...")."""
    action = approval.action
    if isinstance(action, TokenTransfer):
        if token is None:
            return (
                f"send {action.amount} base units of token {action.token} (symbol and decimals "
                f"unknown) to {action.to}"
            )
        amount = coin_units(action.amount, token.decimals, token.symbol, "base units")
        return f"send {amount} of token {action.token} to {action.to}"
    return action.describe()


def safe_lines(approval: Approval, vault_name: str, token: TokenUnits | None) -> list[str]:
    """The review of a SafeTx: its action, Safe, chain, nonce and hash, decoded from itself."""
    tx = approval.safe_tx
    return [
        f"SafeTx to sign (decoded from the stored SafeTx of vault {vault_name}):",
        f"action: {action_line(approval, token)}",
        f"  from Safe {tx.safe} on chain {tx.chain_id}, nonce {tx.nonce}; gas is paid by the "
        "relayer (no refund from the vault)",
        f"SafeTx hash: 0x{approval.safe_tx_hash.hex()}",
    ]


def paid(approval: Approval) -> tuple[str, int] | None:
    """(destination, wei) of a plain ether transfer; ``None`` for any other action."""
    action = approval.action
    return (action.to, action.amount_wei) if isinstance(action, EtherTransfer) else None


# --- Confirmation ---------------------------------------------------------------------------------


def confirm_before_shares(lines: list[str], question: str, *, yes: bool) -> None:
    """Print the review, then ask ``question``; refuse with one error line unless confirmed.

    Called before any share or passphrase is read, so declining reads no secret, signs nothing
    and writes nothing. With ``yes`` (``--yes``, scripted use) the review was still decoded and
    checked (refusals happen all the same) but is only logged, so a script's output keeps the
    command's own result first, and nothing is asked.
    """
    if yes:
        log.info(
            "signing without confirmation (--yes): %s", " | ".join(line.strip() for line in lines)
        )
        return
    for line in lines:
        typer.echo(line)
    try:
        confirmed = typer.confirm(question, default=False)
    except typer.Abort:
        raise fail(
            "Not signed: no answer to the confirmation question (pass --yes for scripted use)."
        ) from None
    if not confirmed:
        raise fail("Not signed: the share holders did not confirm the transaction.")

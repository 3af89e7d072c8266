"""The transaction an officer approves, decoded from the bytes the signers will sign.

The proposal page must not show the database's description of the transaction (the prepared
summary) as "the transaction": it shows what custody stored for the signers, decoded by custody's
own code. A Bitcoin PSBT goes through ``check_psbt``, which refuses a foreign input or output and
proves every output that is not an approved payment is change back to the vault; a SafeTx is
rebuilt from its stored fields and must hash to the approved hash. What cannot be decoded is
shown as a refusal, never as a table.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.bitcoin import FeePolicy, check_psbt, load_spend, load_vault, parse_psbt
from custody.ethereum.erc20 import decode_transfer
from custody.ethereum.records import SafeTxRow, SafeVaultRow
from custody.ethereum.safe_tx import Operation
from custody.ethereum.vault_store import safe_tx_of
from custody.exceptions import CustodyError
from treasury.exceptions import TreasuryError
from treasury.proposals.rows import current_tx

BITCOIN_ASSET = "BTC"
ETHER_ASSET = "ETH"
ERC20_PREFIX = "ERC20:"


@dataclass(frozen=True)
class BitcoinInput:
    """A vault coin the transaction spends."""

    outpoint: str
    """``txid:vout``."""
    amount: int | None
    """Satoshis, from the PSBT's witness UTXO (``None`` if the PSBT lacks it)."""


@dataclass(frozen=True)
class BitcoinOutput:
    address: str
    amount: int
    change: bool
    """True: back to the vault (``check_psbt`` proved it); False: an approved payment."""


@dataclass(frozen=True)
class BitcoinTx:
    """A custody spend's PSBT as its signer decodes and checks it."""

    vault: str
    txid: str
    inputs: tuple[BitcoinInput, ...]
    outputs: tuple[BitcoinOutput, ...]
    fee: int
    fee_rate_sat_vb: Decimal
    vsize: int
    max_fee: int
    asset: str = BITCOIN_ASSET
    kind: str = "bitcoin"


@dataclass(frozen=True)
class SafeTransaction:
    """A stored SafeTx, rebuilt from its fields and hashed again."""

    vault: str
    safe: str
    chain_id: int
    to: str
    value: int
    operation: str
    """``CALL`` or ``DELEGATECALL``."""
    nonce: int
    safe_tx_gas: int
    base_gas: int
    gas_price: int
    safe_tx_hash: str
    token: str | None
    """The token contract of an ERC-20 ``transfer``; ``None`` for ether."""
    recipient: str
    """Who receives: the SafeTx's ``to`` for ether, the transfer's ``to`` for a token."""
    amount: int
    """What the recipient gets, in the asset's base units."""
    asset: str
    kind: str = "safe"


@dataclass(frozen=True)
class Undecodable:
    """The prepared transaction could not be decoded: shown as a refusal."""

    reason: str
    kind: str = "undecodable"


DecodedTx = BitcoinTx | SafeTransaction | Undecodable


def _bitcoin(session: Session, payload: dict[str, object], tx_hash: str) -> DecodedTx:
    spend = load_spend(session, int(str(payload["spend_id"])))
    vault = load_vault(session, spend.vault_name)
    psbt = parse_psbt(spend.unsigned_psbt)
    checked = check_psbt(psbt, vault.descriptor, spend.approval, FeePolicy())
    if checked.unsigned_txid != tx_hash:
        return Undecodable(
            f"The stored PSBT is transaction {checked.unsigned_txid}, not the prepared {tx_hash}."
        )
    params = vault.descriptor.network.params
    approved = Counter((p.script_pubkey.data, p.amount_sats) for p in spend.approval.payments)
    outputs = []
    for out in psbt.outputs:
        key = (out.script_pubkey.data, out.value)
        paid = approved[key] > 0
        approved[key] -= paid
        outputs.append(BitcoinOutput(str(out.script_pubkey.address(params)), out.value, not paid))
    return BitcoinTx(
        vault=vault.name,
        txid=checked.unsigned_txid,
        inputs=tuple(
            BitcoinInput(
                f"{inp.txid.hex()}:{inp.vout}",
                None if inp.witness_utxo is None else inp.witness_utxo.value,
            )
            for inp in psbt.inputs
        ),
        outputs=tuple(outputs),
        fee=checked.fee_sats,
        fee_rate_sat_vb=checked.fee_rate_sat_vb,
        vsize=checked.vsize,
        max_fee=spend.approval.max_fee_sats,
    )


def _safe(session: Session, payload: dict[str, object], tx_hash: str) -> DecodedTx:
    wanted = str(payload["safe_tx_hash"]).lower()
    row = session.scalar(select(SafeTxRow).where(SafeTxRow.safe_tx_hash == wanted))
    if row is None:
        return Undecodable(f"No SafeTx with hash {wanted} is stored.")
    vault = session.get_one(SafeVaultRow, row.vault_id)
    safe_tx = safe_tx_of(row, vault)
    if safe_tx.hash_hex != tx_hash.lower():
        return Undecodable(
            f"The stored SafeTx now hashes to {safe_tx.hash_hex}, not the prepared {tx_hash}: "
            "its fields were altered after it was proposed."
        )
    token: str | None = None
    recipient, amount, asset = safe_tx.to, safe_tx.value, ETHER_ASSET
    if safe_tx.data:
        transfer = decode_transfer(safe_tx.data)
        if transfer is None or safe_tx.value != 0:
            return Undecodable(
                f"The SafeTx calls {safe_tx.to} with data that is not an ERC-20 transfer; "
                "the signers refuse it."
            )
        token, (recipient, amount) = safe_tx.to, transfer
        asset = ERC20_PREFIX + safe_tx.to
    return SafeTransaction(
        vault=vault.name,
        safe=safe_tx.safe,
        chain_id=safe_tx.chain_id,
        to=safe_tx.to,
        value=safe_tx.value,
        operation=Operation(safe_tx.operation).name,
        nonce=safe_tx.nonce,
        safe_tx_gas=safe_tx.safe_tx_gas,
        base_gas=safe_tx.base_gas,
        gas_price=safe_tx.gas_price,
        safe_tx_hash=safe_tx.hash_hex,
        token=token,
        recipient=recipient,
        amount=amount,
        asset=asset,
    )


def decoded_transaction(session: Session, proposal_id: int) -> DecodedTx | None:
    """The proposal's current prepared transaction, decoded; ``None`` if none is prepared."""
    prepared = current_tx(session, proposal_id)
    if prepared is None:
        return None
    try:
        payload = json.loads(prepared.payload)
        if not isinstance(payload, dict):
            return Undecodable("The prepared transaction's payload is not a JSON object.")
        if "spend_id" in payload:
            return _bitcoin(session, payload, prepared.tx_hash)
        if "safe_tx_hash" in payload:
            return _safe(session, payload, prepared.tx_hash)
    except (CustodyError, TreasuryError, ValueError, KeyError) as failure:
        return Undecodable(f"The prepared transaction cannot be decoded: {failure}")
    return Undecodable("The prepared transaction is neither a Bitcoin PSBT nor a SafeTx.")

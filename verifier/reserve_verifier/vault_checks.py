"""Offline checks of the vault set: every holding is a vault's, and every funded Safe proves control.

The body's ``vaults`` lists every Bitcoin vault script and every Safe (chain id, address). A UTXO
paying another script, or a balance of a Safe not listed, is not the treasury's to attest. The
body's EIP-1271 slots were the only list of Safes whose control was checked, so removing a slot
(and its signature) removed the check; now the slots are exactly the Safes the snapshot lists a
balance for (zero balances included, as the producer writes them), and the bundle's proofs carry
one signature per slot, in the slots' order.
(Whether a listed Safe holds more than attested is an online check: ``evm_checks``.)
"""

from __future__ import annotations

from reserve_verifier.context import Context
from reserve_verifier.exceptions import VerifierError
from reserve_verifier.fields import amount


def check_utxo_vaults(ctx: Context) -> str:
    """Every UTXO pays a script of the vault set."""
    scripts = ctx.vault_scripts()
    for utxo in ctx.utxos():
        if utxo["script_pubkey"] not in scripts:
            raise VerifierError(
                f"The UTXO {utxo['txid']}:{utxo['vout']} pays the script {utxo['script_pubkey']}, which is not in the vault set."
            )
    return f"{len(ctx.utxos())} UTXO(s), each paying one of {len(scripts)} vault script(s)"


def check_safe_vaults(ctx: Context) -> str:
    """Every Safe balance and every EIP-1271 slot names a Safe of the vault set, and every vault
    Safe's chain has a snapshot (so its balances are attested at a block an auditor can read)."""
    safes = set(ctx.vault_safes())
    chains = {snapshot["chain_id"] for snapshot in ctx.body["snapshot"]["evm"]}
    for chain_id, safe in sorted(safes):
        if chain_id not in chains:
            raise VerifierError(
                f"The vault Safe {safe} is on chain {chain_id}, of which the bundle has no snapshot: its holdings are not attested."
            )
    for snapshot in ctx.body["snapshot"]["evm"]:
        for balance in snapshot["balances"]:
            if (snapshot["chain_id"], str(balance["safe_address"]).lower()) not in safes:
                raise VerifierError(
                    f"The Safe {balance['safe_address']} on chain {snapshot['chain_id']} holds an attested balance but is not in the vault set."
                )
    for slot in ctx.eip1271_slots():
        if (slot["chain_id"], str(slot["safe_address"]).lower()) not in safes:
            raise VerifierError(
                f"The EIP-1271 slot names the Safe {slot['safe_address']} on chain {slot['chain_id']}, which is not in the vault set."
            )
    return f"every Safe balance and slot is one of {len(safes)} vault Safe(s)"


def check_safe_proofs(ctx: Context) -> str:
    """The EIP-1271 slots are exactly the Safes with a balance entry (R-VAULT-3; zero balances
    included, as the producer writes them), and the file carries one signature per slot and no
    other. A Safe holding a non-zero balance without a slot or signature is named as such (its
    control is not proven); a Safe outside the vault set fails ``check_safe_vaults`` as well."""
    listed: dict[tuple[int, str], str] = {}
    funded: set[tuple[int, str]] = set()
    for snapshot in ctx.body["snapshot"]["evm"]:
        for balance in snapshot["balances"]:
            key = (snapshot["chain_id"], str(balance["safe_address"]).lower())
            listed[key] = balance["safe_address"]
            if amount(balance["amount"], f"balance of {balance['asset']}") > 0:
                funded.add(key)
    slots = [(slot["chain_id"], str(slot["safe_address"]).lower()) for slot in ctx.eip1271_slots()]
    signed = [
        (item["chain_id"], str(item["safe_address"]).lower())
        for item in ctx.bundle.proofs_of_control.get("eip1271", [])
    ]
    for key in sorted(funded):
        name = f"The Safe {listed[key]} on chain {key[0]}"
        if key not in slots:
            raise VerifierError(
                f"{name} holds a balance but the body has no EIP-1271 slot for it: its control is not proven."
            )
        if key not in signed:
            raise VerifierError(
                f"{name} holds a balance but the bundle carries no EIP-1271 signature for it."
            )
    unslotted = sorted(set(listed) - set(slots))
    if unslotted:
        chain_id, safe = unslotted[0]
        raise VerifierError(
            f"The Safe {listed[chain_id, safe]} on chain {chain_id} has a balance entry but no EIP-1271 slot: every Safe of the snapshot has one."
        )
    unlisted = sorted(set(slots) - set(listed))
    if unlisted:
        chain_id, safe = unlisted[0]
        raise VerifierError(
            f"The EIP-1271 slot of Safe {safe} on chain {chain_id} names a Safe with no balance entry in the snapshot."
        )
    if signed != slots:
        raise VerifierError(
            f"The file's EIP-1271 signatures name {len(signed)} Safe(s), not exactly the body's {len(slots)} slot(s) in the slots' order (one signature per slot)."
        )
    return f"{len(slots)} Safe(s) of the snapshot, {len(funded)} funded, each with an EIP-1271 slot and signature"

"""Test support for attestations of a reserve held on the live devnets, without a treasury.

``open_live_reserve`` makes a regtest wallet for the reserve's coins, a 2-of-2 Safe v1.4.1 on
anvil owned by fixed test keys, and a fresh anchor registry on the services chain. ``produce``
turns attestation inputs into what ``treasury verify`` checks in full: a bundle with its proofs
of control (BIP-127 PSBT signed by the wallet, the owners' EIP-1271 signature), signed as
treasury and audit office, and anchored on Bitcoin and the services chain.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from eth_abi.abi import decode, encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_keys.datatypes import PrivateKey
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from reserve_verifier import Nodes
from web3 import Web3

from custody.bitcoin.rpc import btc_to_sats
from custody.devnet import BitcoinNode, EvmNode
from custody.ethereum.chain import EthChain
from custody.ethereum.deploy import (
    FALLBACK_HANDLER,
    PROXY_FACTORY,
    SAFE_L2_SINGLETON,
    deploy_safe_contracts,
)
from reporting.anchor import BitcoinWalletRPC, anchor, deploy_registry
from reporting.attestation import (
    AttestationInputs,
    BitcoinSnapshot,
    BlockRef,
    EvmSnapshot,
    SnapshotUtxo,
    build_attestation,
    reserve_commitment_txid,
    sign_bundle,
)
from reporting.bundle import Bundle
from reporting.holdings import SafeBalanceHolding

PUBLISHER_GAS_WEI = 10**20
"""Devnet ether given to the registry publisher for its deployment and anchors."""


@dataclass(frozen=True)
class LiveReserve:
    """The live pieces a test attests: wallets, the Safe and who owns it, the registry."""

    bitcoin_node: BitcoinNode
    reserve: BitcoinWalletRPC
    miner: BitcoinWalletRPC
    w3: Web3
    payer: str
    """The funded anvil account that deployed the Safe (and pays for the test's transactions)."""
    services: Web3
    safe: str
    owner_keys: tuple[bytes, ...]
    registry: str
    publisher: LocalAccount
    nodes: Nodes


def live_nodes(bitcoin_node: BitcoinNode, evm_node: EvmNode, services_node: EvmNode) -> Nodes:
    """The endpoints an auditor would give the verifier for these nodes."""
    node = bitcoin_node
    return Nodes(
        bitcoin=f"http://{node.rpc_user}:{node.rpc_password}@127.0.0.1:{node.rpc_port}",
        evm=evm_node.rpc_url,
        services=services_node.rpc_url,
    )


def _wallet(node: BitcoinNode, name: str) -> BitcoinWalletRPC:
    return BitcoinWalletRPC(node.rpc_url, node.rpc_user, node.rpc_password, name)


def _create_safe(w3: Web3, payer: str, owner_keys: tuple[bytes, ...], salt_nonce: int) -> str:
    """A 2-of-n Safe v1.4.1 (canonical contracts) owned by ``owner_keys``, at CREATE2 ``salt_nonce``."""
    owners = sorted(PrivateKey(k).public_key.to_checksum_address() for k in owner_keys)
    setup = keccak(text="setup(address[],uint256,address,bytes,address,address,uint256,address)")[
        :4
    ]
    zero = "0x" + "00" * 20
    setup += encode(
        ["address[]", "uint256", "address", "bytes", "address", "address", "uint256", "address"],
        [owners, 2, zero, b"", FALLBACK_HANDLER.canonical_address, zero, 0, zero],
    )
    create = keccak(text="createProxyWithNonce(address,bytes,uint256)")[:4] + encode(
        ["address", "bytes", "uint256"], [SAFE_L2_SINGLETON.canonical_address, setup, salt_nonce]
    )
    call = {"from": payer, "to": PROXY_FACTORY.canonical_address, "data": "0x" + create.hex()}
    (address,) = decode(["address"], w3.eth.call(call))  # type: ignore[arg-type]
    w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(call))  # type: ignore[arg-type]
    return str(to_checksum_address(address))


def open_live_reserve(
    bitcoin_node: BitcoinNode,
    evm_node: EvmNode,
    services_node: EvmNode,
    *,
    owner_keys: tuple[bytes, ...],
    safe_salt_nonce: int,
    publisher_key: bytes,
    wallet_prefix: str,
) -> LiveReserve:
    """Deploy the Safe contracts and a Safe, a fresh registry, and an empty reserve wallet.

    ``safe_salt_nonce`` keeps each caller's Safe at its own address; ``wallet_prefix`` names the
    wallet (a random suffix keeps runs apart on one node).
    """
    w3 = Web3(Web3.HTTPProvider(evm_node.rpc_url))
    payer = w3.eth.accounts[0]
    deploy_safe_contracts(EthChain(evm_node.rpc), payer)
    safe = _create_safe(w3, payer, owner_keys, safe_salt_nonce)
    services = Web3(Web3.HTTPProvider(services_node.rpc_url))
    publisher: LocalAccount = Account.from_key(publisher_key)
    services.provider.make_request("anvil_setBalance", [publisher.address, hex(PUBLISHER_GAS_WEI)])  # type: ignore[arg-type]
    registry = deploy_registry(services, publisher, publisher.address)
    name = f"{wallet_prefix}-{uuid.uuid4().hex[:8]}"
    bitcoin_node.rpc.call("createwallet", name)
    bitcoin_node.miner_address()
    return LiveReserve(
        bitcoin_node, _wallet(bitcoin_node, name), _wallet(bitcoin_node, "miner"), w3, payer,
        services, safe, owner_keys, registry, publisher,
        live_nodes(bitcoin_node, evm_node, services_node),
    )  # fmt: skip


def fund_reserve(s: LiveReserve, amounts_btc: tuple[str, ...]) -> None:
    """The miner pays each amount (in BTC) to a new reserve address; one block confirms them."""
    for amount in amounts_btc:
        s.miner.call("sendtoaddress", s.reserve.call("getnewaddress"), amount)
    s.bitcoin_node.mine(1)


def fund_safe(s: LiveReserve, token: str, wei: int, token_units: int) -> None:
    """The payer sends the Safe ``wei`` of ether and ``token_units`` of ``token``."""
    s.w3.eth.wait_for_transaction_receipt(
        s.w3.eth.send_transaction({"from": s.payer, "to": s.safe, "value": wei})  # type: ignore[typeddict-item]
    )
    transfer = keccak(text="transfer(address,uint256)")[:4] + encode(
        ["address", "uint256"], [s.safe, token_units]
    )
    s.w3.eth.wait_for_transaction_receipt(
        s.w3.eth.send_transaction({"from": s.payer, "to": token, "data": "0x" + transfer.hex()})  # type: ignore[typeddict-item]
    )


def safe_snapshot(s: LiveReserve, token: str, token_code: str) -> EvmSnapshot:
    """The Safe's ether and ``token`` balances at the latest block, as the treasury reads them."""
    block = s.w3.eth.get_block("latest")
    number = block["number"]
    data = keccak(text="balanceOf(address)")[:4] + encode(["address"], [s.safe])
    (units,) = decode(
        ["uint256"],
        s.w3.eth.call({"to": token, "data": "0x" + data.hex()}, number),  # type: ignore[typeddict-item]
    )
    chain_id = s.w3.eth.chain_id
    return EvmSnapshot(
        chain_id,
        BlockRef(number, "0x" + bytes(block["hash"]).hex()),
        (
            SafeBalanceHolding(chain_id, s.safe, "ETH", None, s.w3.eth.get_balance(s.safe, number)),
            SafeBalanceHolding(chain_id, s.safe, token_code, token, int(units)),
        ),
    )


def bitcoin_snapshot(s: LiveReserve) -> BitcoinSnapshot:
    """Every UTXO of the reserve wallet, with its creating block, at the current tip."""
    info = s.bitcoin_node.rpc.call("getblockchaininfo")
    utxos = []
    for entry in s.reserve.call("listunspent", 1):
        found = s.reserve.call("gettransaction", entry["txid"])
        utxos.append(
            SnapshotUtxo(
                txid=entry["txid"],
                vout=entry["vout"],
                amount_sats=btc_to_sats(entry["amount"]),
                script_pubkey=bytes.fromhex(entry["scriptPubKey"]),
                created=BlockRef(found["blockheight"], found["blockhash"]),
            )
        )
    return BitcoinSnapshot("regtest", BlockRef(info["blocks"], info["bestblockhash"]), tuple(utxos))


def eip1271_signature(s: LiveReserve, digest: bytes) -> bytes:
    """Every owner signs the Safe's message hash of ``digest``; packed in owner-address order."""
    message = encode(["bytes32"], [digest])
    data = keccak(text="getMessageHash(bytes)")[:4] + encode(["bytes"], [message])
    (message_hash,) = decode(["bytes32"], s.w3.eth.call({"to": s.safe, "data": "0x" + data.hex()}))  # type: ignore[typeddict-item]
    signatures = []
    for key in sorted(s.owner_keys, key=lambda k: PrivateKey(k).public_key.to_canonical_address()):
        sig = PrivateKey(key).sign_msg_hash(message_hash)
        signatures.append(
            sig.r.to_bytes(32, "big") + sig.s.to_bytes(32, "big") + bytes((sig.v + 27,))
        )
    return b"".join(signatures)


def reserve_psbt(s: LiveReserve, bundle: Bundle, skip: int = 0) -> str:
    """The BIP-127 proof: commitment input + the attested UTXOs after the first ``skip``, signed
    by the reserve wallet."""
    utxos = bundle.body["snapshot"]["bitcoin"]["utxos"][skip:]
    total = sum(int(u["amount"]) for u in utxos)
    commitment = {"txid": reserve_commitment_txid(bundle.digest), "vout": 0}
    psbt = s.bitcoin_node.rpc.call(
        "createpsbt",
        [commitment] + [{"txid": u["txid"], "vout": u["vout"]} for u in utxos],
        [{s.reserve.call("getnewaddress"): str(Decimal(total) / 10**8)}],
    )
    processed = s.reserve.call("walletprocesspsbt", psbt, True, "ALL", True, True)
    text: str = processed["psbt"]
    return text


def _mine_one(s: LiveReserve) -> None:
    s.bitcoin_node.mine(1)


def produce(
    s: LiveReserve, inputs: AttestationInputs, *, psbt_skip: int = 0, do_anchor: bool = True
) -> Bundle:
    """Build, prove control, sign with both roles and (by default) anchor on both chains."""
    bundle = build_attestation(inputs)
    bundle = bundle.with_proof(
        "bitcoin_reserve_proof", {"psbt": reserve_psbt(s, bundle, psbt_skip)}
    )
    bundle = bundle.with_proof(
        "eip1271",
        [{"chain_id": s.w3.eth.chain_id, "safe_address": s.safe,
          "signature": eip1271_signature(s, bundle.digest).hex()}],
    )  # fmt: skip
    bundle = sign_bundle(sign_bundle(bundle, inputs.treasury), inputs.auditor)
    if not do_anchor:
        return bundle
    return anchor(
        bundle, s.miner, s.services, s.registry, s.publisher,
        await_bitcoin_confirmation=lambda _txid: _mine_one(s),
    )  # fmt: skip

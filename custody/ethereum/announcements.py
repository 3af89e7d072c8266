"""The window registry on the services chain: deploy, announce, veto, and the signers' reader.

``SpendWindowRegistry`` (``contracts/SpendWindowRegistry.vy``, committed compiled artifact) keeps
each announced spend's block time and logs every submitted veto. ``ServicesChainWindow`` is how
a signer reads it (``custody.authority.delay.SpendWindowReader``): from the node and registry the
signing machine was configured with, at one block, with that block's own timestamp as the clock.
Before its first read it checks that the code at the registry address is exactly the artifact's
runtime code, so an address pointing at a contract that claims every spend was announced long
ago is refused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib.resources import files
from typing import Any

from eth_abi.abi import decode, encode
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from custody.authority.delay import (
    SpendAnnouncement,
    WindowObservation,
    encode_veto,
    proposal_key,
    utc_from_timestamp,
)
from custody.authority.quorum import SignedStatement
from custody.ethereum.chain import EthChain
from custody.exceptions import EthereumError

__all__ = [
    "AnnouncedSpend",
    "RegistryCodeMismatchError",
    "ServicesChainWindow",
    "SubmittedVeto",
    "announce_spend",
    "deploy_window_registry",
    "submit_veto",
    "window_registry_artifact",
]

ANNOUNCE_SELECTOR = function_signature_to_4byte_selector("announce(bytes32,bytes)")
VETO_SELECTOR = function_signature_to_4byte_selector("veto(bytes32,bytes)")
ANNOUNCED_AT_SELECTOR = function_signature_to_4byte_selector("announced_at(bytes32)")
ANNOUNCED_TOPIC = keccak(text="SpendAnnounced(bytes32,bytes32,bytes,uint256)")
VETO_TOPIC = keccak(text="VetoSubmitted(bytes32,address,bytes)")


class RegistryCodeMismatchError(EthereumError):
    """The code at the configured registry address is not the committed window registry's."""


@cache
def window_registry_artifact() -> Mapping[str, Any]:
    """The committed compiled registry (ABI, init and runtime code)."""
    text = (files("custody.ethereum") / "contracts" / "SpendWindowRegistry.json").read_text()
    artifact: Mapping[str, Any] = json.loads(text)
    return artifact


def _code(field: str) -> bytes:
    return bytes.fromhex(str(window_registry_artifact()[field]).removeprefix("0x"))


def deploy_window_registry(chain: EthChain, deployer: str, publisher: str) -> str:
    """Deploy the registry from its artifact with ``publisher`` as the only announcer."""
    data = _code("bytecode") + encode(["address"], [to_checksum_address(publisher)])
    receipt = chain.transact(deployer, None, data, action="deploy the window registry")
    raw = chain.rpc.call("eth_getTransactionReceipt", receipt.tx_hash)
    address = to_checksum_address(raw["contractAddress"])
    if chain.code(address) != _code("bytecode_runtime"):
        raise RegistryCodeMismatchError(
            f"The window registry deployed at {address} does not carry the artifact's code."
        )
    return address


@dataclass(frozen=True)
class AnnouncedSpend:
    """Where an announcement landed and the block time its window counts from."""

    announcement_digest: str
    tx_hash: str
    block_number: int
    announced_at: datetime


@dataclass(frozen=True)
class SubmittedVeto:
    """Where a submitted veto landed."""

    proposal: str
    tx_hash: str
    block_number: int


def announce_spend(
    chain: EthChain, registry: str, publisher: str, announcement: SpendAnnouncement
) -> AnnouncedSpend:
    """Announce ``announcement`` from the publisher's account (simulated first: a refusal --
    another sender, a second announcement of the same spend -- sends nothing)."""
    data = ANNOUNCE_SELECTOR + encode(
        ["bytes32", "bytes"], [proposal_key(announcement.proposal_id), announcement.encode()]
    )
    receipt = chain.transact(publisher, registry, data, action="announce a spend")
    for entry in receipt.logs:
        if entry.topics and entry.topics[0] == ANNOUNCED_TOPIC:
            _, announced_at = decode(["bytes", "uint256"], entry.data)
            return AnnouncedSpend(
                announcement_digest=entry.topics[1].hex(),
                tx_hash=receipt.tx_hash,
                block_number=receipt.block_number,
                announced_at=utc_from_timestamp(int(announced_at)),
            )
    raise EthereumError(f"The announcement {receipt.tx_hash} logged no SpendAnnounced event.")


def submit_veto(
    chain: EthChain, registry: str, submitter: str, signed: SignedStatement
) -> SubmittedVeto:
    """Submit an officer's signed veto from any funded account (no one's permission needed)."""
    proposal = proposal_key(signed.statement.proposal_id)
    data = VETO_SELECTOR + encode(["bytes32", "bytes"], [proposal, encode_veto(signed)])
    receipt = chain.transact(submitter, registry, data, action="submit a veto")
    return SubmittedVeto(proposal.hex(), receipt.tx_hash, receipt.block_number)


class ServicesChainWindow:
    """The signer's view of the window registry: one configured node and registry address."""

    def __init__(self, chain: EthChain, registry: str, *, from_block: int = 0) -> None:
        self.chain = chain
        self.registry = to_checksum_address(registry)
        self.from_block = from_block
        """The registry's deployment block: no veto can be logged before it."""
        self._code_checked = False

    def __repr__(self) -> str:
        return f"ServicesChainWindow(url={self.chain.rpc.url!r}, registry={self.registry})"

    def _check_code(self) -> None:
        if self._code_checked:
            return
        if self.chain.code(self.registry) != _code("bytecode_runtime"):
            raise RegistryCodeMismatchError(
                f"The code at {self.registry} on chain {self.chain.chain_id} is not the window "
                "registry's committed artifact; the signer will not take its word for any "
                "announcement."
            )
        self._code_checked = True

    def observe(self, announcement_digest: bytes, proposal: bytes) -> WindowObservation:
        """The announcement's time and the proposal's vetoes, read at the latest block."""
        self._check_code()
        block = self.chain.rpc.call("eth_getBlockByNumber", "latest", False)
        number = int(block["number"], 16)
        at = hex(number)
        raw = self.chain.rpc.call(
            "eth_call",
            {
                "to": self.registry,
                "data": "0x" + (ANNOUNCED_AT_SELECTOR + announcement_digest).hex(),
            },
            at,
        )
        (announced,) = decode(["uint256"], bytes.fromhex(raw.removeprefix("0x")))
        logs = self.chain.rpc.call(
            "eth_getLogs",
            {
                "address": self.registry,
                "fromBlock": hex(self.from_block),
                "toBlock": at,
                "topics": ["0x" + VETO_TOPIC.hex(), "0x" + proposal.hex()],
            },
        )
        vetoes = tuple(
            bytes(decode(["bytes"], bytes.fromhex(entry["data"].removeprefix("0x")))[0])
            for entry in logs
        )
        return WindowObservation(
            chain_id=self.chain.chain_id,
            registry=self.registry,
            block_number=number,
            block_time=utc_from_timestamp(int(block["timestamp"], 16)),
            announced_at=None if int(announced) == 0 else utc_from_timestamp(int(announced)),
            vetoes=vetoes,
        )

    def vetoes(self, proposal: bytes) -> tuple[tuple[bytes, str], ...]:
        """Every veto submitted for ``proposal`` so far, raw, with its transaction hash."""
        self._check_code()
        logs = self.chain.rpc.call(
            "eth_getLogs",
            {
                "address": self.registry,
                "fromBlock": hex(self.from_block),
                "toBlock": "latest",
                "topics": ["0x" + VETO_TOPIC.hex(), "0x" + proposal.hex()],
            },
        )
        return tuple(
            (
                bytes(decode(["bytes"], bytes.fromhex(entry["data"].removeprefix("0x")))[0]),
                str(entry["transactionHash"]),
            )
            for entry in logs
        )

    def announcements(self) -> tuple[tuple[SpendAnnouncement, datetime, str], ...]:
        """Every announcement logged so far: the spend, its block time, its transaction."""
        self._check_code()
        logs = self.chain.rpc.call(
            "eth_getLogs",
            {
                "address": self.registry,
                "fromBlock": hex(self.from_block),
                "toBlock": "latest",
                "topics": ["0x" + ANNOUNCED_TOPIC.hex()],
            },
        )
        found = []
        for entry in logs:
            body, announced_at = decode(
                ["bytes", "uint256"], bytes.fromhex(entry["data"].removeprefix("0x"))
            )
            found.append(
                (
                    SpendAnnouncement.parse(bytes(body)),
                    utc_from_timestamp(int(announced_at)),
                    str(entry["transactionHash"]),
                )
            )
        return tuple(found)

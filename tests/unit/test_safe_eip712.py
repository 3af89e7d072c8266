"""Our EIP-712 encoder against the specification's vector, Safe's constants and eth-account."""

from __future__ import annotations

from eth_account.messages import encode_typed_data
from eth_keys.datatypes import PrivateKey
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from custody.ethereum.eip712 import encode_type, hash_struct, type_hash, typed_data_digest
from custody.ethereum.safe_tx import SAFE_TX_TYPES, Operation, SafeTx

MAIL_TYPES = {
    "EIP712Domain": [
        ("name", "string"),
        ("version", "string"),
        ("chainId", "uint256"),
        ("verifyingContract", "address"),
    ],
    "Person": [("name", "string"), ("wallet", "address")],
    "Mail": [("from", "Person"), ("to", "Person"), ("contents", "string")],
}
MAIL_DOMAIN = {
    "name": "Ether Mail",
    "version": "1",
    "chainId": 1,
    "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC",
}
MAIL = {
    "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
    "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
    "contents": "Hello, Bob!",
}


def test_mail_vector_from_the_eip712_specification() -> None:
    """The specification's Mail example gives its published type, hashes, digest and signature."""
    assert (
        encode_type("Mail", MAIL_TYPES)
        == "Mail(Person from,Person to,string contents)Person(string name,address wallet)"
    )
    domain = hash_struct("EIP712Domain", MAIL_TYPES, MAIL_DOMAIN)
    assert domain.hex() == "f2cee375fa42b42143804025fc449deafd50cc031ca257e0b194a650a912090f"
    message = hash_struct("Mail", MAIL_TYPES, MAIL)
    assert message.hex() == "c52c0ee5d84264471806290a3f2c4cecfc5490626bf912d01f240d7a274b371e"
    digest = typed_data_digest(domain, message)
    assert digest.hex() == "be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"
    signature = PrivateKey(keccak(text="cow")).sign_msg_hash(digest)
    assert signature.v + 27 == 28
    assert signature.r == 0x4355C47D63924E8A72E509B65029052EB6C299D53A04E167C5775FD466751C9D
    assert signature.s == 0x07299936D304C153F6443DFA05F40FF007D72911B6F72307F996231605B91562


def test_safe_type_hashes_match_the_contract_constants() -> None:
    """Our SafeTx and domain type hashes equal the constants compiled into Safe v1.4.1."""
    assert (
        type_hash("SafeTx", SAFE_TX_TYPES).hex()
        == "bb8310d486368db6bd6f849402fdd73ad53d316b5a4b2644ad6efe0f941286d8"
    )
    assert (
        type_hash("EIP712Domain", SAFE_TX_TYPES).hex()
        == "47e79534a245952e8b16893a336b85a3d9ea9fa8c573f3d803afb92a79469218"
    )


addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
uint256 = st.integers(min_value=0, max_value=2**256 - 1)


@settings(max_examples=200)
@given(
    chain_id=uint256,
    safe=addresses,
    to=addresses,
    value=uint256,
    data=st.binary(max_size=200),
    operation=st.sampled_from(Operation),
    gas=st.tuples(uint256, uint256, uint256),
    tokens=st.tuples(addresses, addresses),
    nonce=uint256,
)
def test_safe_tx_hash_equals_eth_accounts(
    chain_id: int,
    safe: str,
    to: str,
    value: int,
    data: bytes,
    operation: Operation,
    gas: tuple[int, int, int],
    tokens: tuple[str, str],
    nonce: int,
) -> None:
    """For any SafeTx, our digest equals eth-account's independent EIP-712 implementation."""
    safe_tx = SafeTx(
        chain_id=chain_id,
        safe=safe,
        to=to,
        value=value,
        data=data,
        operation=operation,
        nonce=nonce,
        safe_tx_gas=gas[0],
        base_gas=gas[1],
        gas_price=gas[2],
        gas_token=tokens[0],
        refund_receiver=tokens[1],
    )
    signable = encode_typed_data(
        full_message={
            "types": {
                name: [{"name": n, "type": t} for n, t in fields]
                for name, fields in SAFE_TX_TYPES.items()
            },
            "primaryType": "SafeTx",
            "domain": {"chainId": chain_id, "verifyingContract": safe_tx.safe},
            "message": safe_tx.message(),
        }
    )
    theirs = keccak(b"\x19" + signable.version + signable.header + signable.body)
    assert safe_tx.hash == theirs

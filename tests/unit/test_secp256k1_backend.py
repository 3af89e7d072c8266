"""The EVM side's signatures go through libsecp256k1 (coincurve), not eth-keys' pure Python.

Every Safe approval, roster statement and veto is checked by recovering its signer; eth-keys'
native backend takes about 12 ms a recovery, coincurve about 0.1 ms. eth-keys picks coincurve
when it can import it, and silently falls back otherwise: this pins that it does, and that the
two backends sign and recover identically (RFC 6979 nonces, low s).
"""

from __future__ import annotations

from eth_keys.backends import get_backend
from eth_keys.backends.coincurve import CoinCurveECCBackend
from eth_keys.backends.native.main import NativeECCBackend
from eth_keys.main import KeyAPI
from hypothesis import given
from hypothesis import strategies as st

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

private_keys = st.integers(min_value=1, max_value=SECP256K1_N - 1).map(
    lambda n: n.to_bytes(32, "big")
)
digests = st.binary(min_size=32, max_size=32)


def test_eth_keys_uses_libsecp256k1() -> None:
    assert isinstance(get_backend(), CoinCurveECCBackend)


@given(private_keys, digests)
def test_both_backends_sign_and_recover_alike(secret: bytes, digest: bytes) -> None:
    fast, slow = KeyAPI(CoinCurveECCBackend), KeyAPI(NativeECCBackend)
    signed_fast = fast.PrivateKey(secret).sign_msg_hash(digest)
    signed_slow = slow.PrivateKey(secret).sign_msg_hash(digest)
    assert signed_fast.to_bytes() == signed_slow.to_bytes()
    assert signed_fast.s * 2 < SECP256K1_N
    recovered = fast.Signature(signed_slow.to_bytes()).recover_public_key_from_msg_hash(digest)
    assert recovered == slow.PrivateKey(secret).public_key

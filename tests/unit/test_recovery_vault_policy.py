"""The recovery vault's policy, without a node: its descriptor and checksums (against pinned
bitcoind output and an independent BIP-380 implementation), the shape of its witness script,
the blocks left before the recovery path opens, and the satisfier's two witnesses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from embit.psbt import PSBT
from hypothesis import given, settings
from hypothesis import strategies as st

from custody.bitcoin.approval import Payment
from custody.bitcoin.descriptor import Branch
from custody.bitcoin.recovery import (
    CoinRecoveryWindow,
    RecoveryPolicyError,
    RecoveryTimelockError,
    RecoveryVaultPolicy,
    RecoveryWindowError,
    SpendPath,
    UnsatisfiableInputError,
    VaultCoin,
    blocks_until_recovery,
    bsms_record,
    build_psbt,
    coin_windows,
    descriptor_export,
    estimate_vsize,
    finalize_psbt,
    refresh_due,
    satisfy_input,
    sign_vault_psbt,
)
from custody.bitcoin.recovery.spending import PRIMARY_SEQUENCE
from custody.bitcoin.recovery.timelock import (
    MAX_RECOVERY_DELAY_BLOCKS,
    SEQUENCE_DISABLE_FLAG,
    SEQUENCE_TYPE_FLAG,
    recovery_sequence,
    sequence_allows,
)
from custody.exceptions import CustodyError, ForeignInputError, NotACosignerError
from custody.keys import cosigner_keys, signing_keys
from custody.secret import SecretBytes

SEEDS = tuple(bytes([i]) * 32 for i in range(6))
"""Institutions A, B, C, then recovery bodies R1, R2, R3."""
ORIGINS = tuple(cosigner_keys(SecretBytes(seed)).key_origin for seed in SEEDS)
FINGERPRINTS = tuple(origin[1:9] for origin in ORIGINS)
BITCOIND_VECTORS = {
    10: {
        "receive": "hrsrny28",
        "change": "f37quhnr",
        "multipath": "j2fs78rv",
        "receive_0": "bcrt1qlrjuj4y95wkvrcnm43hwn47rgltu4vpqu5zmfd2c66akj8uqdvdqdaxn4t",
        "change_0": "bcrt1qrnghuw4v54wt5d3skaqtzvr3805w7vdxwd82mr5vdmrdesxd70gsyu5uj2",
    },
    200: {
        "receive": "a3m2naxt",
        "change": "nmk4nj8n",
        "multipath": "f3jcm2c0",
        "receive_0": "bcrt1qt7kjz0sj56e2nmyyz5uf0z4yepj30wual6qj6a0gjuts27qxp57qqdcrxv",
        "change_0": "bcrt1qdzcsawgjg3g0pmmcau0m8chdgrncgvp8m0w66t2hm5rz3ss6jd8qchph44",
    },
}
"""What Bitcoin Knots 29.4.3's ``getdescriptorinfo`` and ``deriveaddresses`` answered for the
policy over ``SEEDS`` with N = 10 and N = 200 (recorded once from a regtest node)."""
PAYEE = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
COIN = VaultCoin("11" * 32, 1, 1_000_000, Branch.RECEIVE, 4)


def _policy(delay_blocks: int = 10) -> RecoveryVaultPolicy:
    return RecoveryVaultPolicy(2, ORIGINS[:3], 2, ORIGINS[3:], delay_blocks)


# --- BIP-380 checksum, written again from the BIP (N-version check of embit's) ------------------

_INPUT_CHARSET = (
    "0123456789()[],'/*abcdefgh@:$%{}"
    "IJKLMNOPQRSTUVWXYZ&+-.;<=>?!^_|~"
    'ijklmnopqrstuvwxyzABCDEFGH`#"\\ '
)
_CHECKSUM_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GENERATOR = (0xF5DEE51989, 0xA9FDCA3312, 0x1BAB10E32D, 0x3706B1677A, 0x644D626FFD)


def _reference_checksum(text: str) -> str:
    symbols: list[int] = []
    groups: list[int] = []
    for char in text:
        value = _INPUT_CHARSET.index(char)
        symbols.append(value & 31)
        groups.append(value >> 5)
        if len(groups) == 3:
            symbols.append(groups[0] * 9 + groups[1] * 3 + groups[2])
            groups = []
    if len(groups) == 1:
        symbols.append(groups[0])
    elif len(groups) == 2:
        symbols.append(groups[0] * 3 + groups[1])
    chk = 1
    for value in [*symbols, 0, 0, 0, 0, 0, 0, 0, 0]:
        top = chk >> 35
        chk = (chk & 0x7FFFFFFFF) << 5 ^ value
        for i in range(5):
            if (top >> i) & 1:
                chk ^= _GENERATOR[i]
    chk ^= 1
    return "".join(_CHECKSUM_CHARSET[(chk >> (5 * (7 - i))) & 31] for i in range(8))


# --- descriptor text -----------------------------------------------------------------------------


def test_the_descriptor_is_the_issues_miniscript_over_our_key_origins() -> None:
    """Receive text is ``wsh(or_d(multi(2,A,B,C),and_v(v:multi(2,R1,R2,R3),older(N))))`` with
    each key origin followed by ``/0/*``; change by ``/1/*``; multipath by ``/<0;1>/*``."""
    policy = _policy(144)
    keys = [f"{origin}/0/*" for origin in ORIGINS]
    expected = (
        f"wsh(or_d(multi(2,{keys[0]},{keys[1]},{keys[2]}),"
        f"and_v(v:multi(2,{keys[3]},{keys[4]},{keys[5]}),older(144))))"
    )
    assert policy.text(Branch.RECEIVE) == expected
    assert policy.text(Branch.CHANGE) == expected.replace("/0/*", "/1/*")
    assert policy.multipath_text().split("#")[0] == expected.replace("/0/*", "/<0;1>/*")
    assert all(
        origin.startswith(f"[{fp}/48h/1h/0h/2h]tpub")
        for fp, origin in zip(FINGERPRINTS, ORIGINS, strict=True)
    )


@pytest.mark.parametrize("delay_blocks", sorted(BITCOIND_VECTORS))
def test_checksums_and_first_addresses_equal_bitcoinds(delay_blocks: int) -> None:
    """The checksums of both branches and of the multipath form, and address 0 of each branch,
    are the ones bitcoind gave for the same policy."""
    policy = _policy(delay_blocks)
    vectors = BITCOIND_VECTORS[delay_blocks]
    assert policy.text_with_checksum(Branch.RECEIVE).endswith("#" + vectors["receive"])
    assert policy.text_with_checksum(Branch.CHANGE).endswith("#" + vectors["change"])
    assert policy.multipath_text().endswith("#" + vectors["multipath"])
    assert policy.address(Branch.RECEIVE, 0) == vectors["receive_0"]
    assert policy.address(Branch.CHANGE, 0) == vectors["change_0"]


@settings(max_examples=60, deadline=None)
@given(
    delay_blocks=st.integers(1, MAX_RECOVERY_DELAY_BLOCKS),
    primary_threshold=st.integers(1, 3),
    recovery_threshold=st.integers(1, 3),
    order=st.permutations(range(6)),
)
def test_our_checksums_equal_an_independent_bip380_implementation(
    delay_blocks: int, primary_threshold: int, recovery_threshold: int, order: list[int]
) -> None:
    """For any delay, thresholds and assignment of keys, embit's checksum (ours) equals the
    BIP's reference algorithm on every form of the descriptor."""
    keys = [ORIGINS[i] for i in order]
    policy = RecoveryVaultPolicy(
        primary_threshold, tuple(keys[:3]), recovery_threshold, tuple(keys[3:]), delay_blocks
    )
    for text, with_checksum in (
        (policy.text(Branch.RECEIVE), policy.text_with_checksum(Branch.RECEIVE)),
        (policy.text(Branch.CHANGE), policy.text_with_checksum(Branch.CHANGE)),
        (policy.multipath_text().split("#")[0], policy.multipath_text()),
    ):
        assert with_checksum == f"{text}#{_reference_checksum(text)}"


def test_the_export_carries_the_full_miniscript_with_checksums() -> None:
    """The descriptor export is the multipath, receive and change descriptors, each with its
    checksum and the timelock; the BSMS record's template is the miniscript with ``/**``."""
    policy = _policy(10)
    lines = descriptor_export(policy).splitlines()
    assert lines == [
        policy.multipath_text(),
        policy.text_with_checksum(Branch.RECEIVE),
        policy.text_with_checksum(Branch.CHANGE),
    ]
    for line in lines:
        text, checksum = line.split("#")
        assert checksum == _reference_checksum(text)
        assert "or_d(multi(2," in text
        assert "and_v(v:multi(2," in text
        assert "older(10)" in text
    record = bsms_record(policy).splitlines()
    assert record[0] == "BSMS 1.0"
    assert record[1] == policy.text(Branch.RECEIVE).replace("/0/*", "/**")
    assert record[2:] == ["/0/*,/1/*", BITCOIND_VECTORS[10]["receive_0"]]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"primary_threshold": 0}, "primary threshold"),
        ({"primary_threshold": 4}, "primary threshold"),
        ({"recovery_threshold": 0}, "recovery threshold"),
        ({"recovery_keys": ()}, "recovery quorum"),
        ({"recovery_keys": (ORIGINS[0], ORIGINS[4], ORIGINS[5])}, "appears twice"),
        ({"recovery_keys": ("tpubXYZ", ORIGINS[4], ORIGINS[5])}, "not of the form"),
        ({"recovery_delay_blocks": 0}, "between 1 and 65535"),
        ({"recovery_delay_blocks": MAX_RECOVERY_DELAY_BLOCKS + 1}, "between 1 and 65535"),
    ],
)
def test_impossible_policies_are_refused_with_the_field_named(
    kwargs: dict[str, object], message: str
) -> None:
    """Bad thresholds, an empty quorum, a shared key, a malformed key and a delay outside the
    BIP-68 block range are each refused as a ``RecoveryPolicyError`` naming what is wrong."""
    fields: dict[str, object] = {
        "primary_threshold": 2,
        "primary_keys": ORIGINS[:3],
        "recovery_threshold": 2,
        "recovery_keys": ORIGINS[3:],
        "recovery_delay_blocks": 10,
    }
    fields.update(kwargs)
    with pytest.raises(RecoveryPolicyError, match=message):
        RecoveryVaultPolicy(**fields)  # type: ignore[arg-type]


# --- the witness script --------------------------------------------------------------------------

OP_IFDUP, OP_NOTIF, OP_ENDIF = 0x73, 0x64, 0x68
OP_CHECKMULTISIG, OP_CHECKMULTISIGVERIFY, OP_CHECKSEQUENCEVERIFY = 0xAE, 0xAF, 0xB2


def _tokens(script: bytes) -> Iterator[int | bytes]:
    """Opcodes as ints and pushes (1..75-byte direct pushes) as bytes."""
    position = 0
    while position < len(script):
        op = script[position]
        position += 1
        if 1 <= op <= 75:
            yield script[position : position + op]
            position += op
        else:
            yield op


def _script_number(n: int) -> int | bytes:
    """How a minimal script pushes positive ``n``: ``OP_n`` up to 16, else CScriptNum bytes."""
    if n <= 16:
        return 0x50 + n
    out = bytearray()
    while n:
        out.append(n & 0xFF)
        n >>= 8
    if out[-1] & 0x80:
        out.append(0)
    return bytes(out)


@settings(max_examples=25, deadline=None)
@given(
    delay_blocks=st.one_of(
        st.sampled_from([1, 16, 17, 127, 128, 255, 256, 32767, 32768, 65535]),
        st.integers(1, MAX_RECOVERY_DELAY_BLOCKS),
    ),
    branch=st.sampled_from(Branch),
    index=st.integers(0, 1000),
)
def test_the_witness_script_is_or_d_of_the_two_multisigs_and_the_csv(
    delay_blocks: int, branch: Branch, index: int
) -> None:
    """``2 <A> <B> <C> 3 CHECKMULTISIG IFDUP NOTIF 2 <R1> <R2> <R3> 3 CHECKMULTISIGVERIFY <N>
    CHECKSEQUENCEVERIFY ENDIF`` with the derived keys in descriptor order and N minimally pushed."""
    policy = _policy(delay_blocks)
    primary = policy.path_keys(SpendPath.PRIMARY, branch, index)
    recovery = policy.path_keys(SpendPath.RECOVERY, branch, index)
    expected = [
        0x52, *primary, 0x53, OP_CHECKMULTISIG, OP_IFDUP, OP_NOTIF,
        0x52, *recovery, 0x53, OP_CHECKMULTISIGVERIFY,
        _script_number(delay_blocks), OP_CHECKSEQUENCEVERIFY, OP_ENDIF,
    ]  # fmt: skip
    script = bytes(policy.witness_script(branch, index).data)
    assert list(_tokens(script)) == expected
    assert len(set(primary + recovery)) == 6
    assert all(len(key) == 33 and key[0] in (2, 3) for key in primary + recovery)
    assert policy.address(branch, index).startswith("bcrt1q")


# --- blocks left before the recovery path opens -------------------------------------------------

delays = st.integers(1, MAX_RECOVERY_DELAY_BLOCKS)
confirmations = st.integers(0, 3 * MAX_RECOVERY_DELAY_BLOCKS)


@given(confirmations=confirmations, delay_blocks=delays)
def test_blocks_left_fall_by_one_per_block_until_the_path_opens(
    confirmations: int, delay_blocks: int
) -> None:
    """Blocks left lie in 0..N, are N for an unconfirmed coin, fall by exactly one per new block
    while positive, and are 0 exactly when the coin has N confirmations or more."""
    left = blocks_until_recovery(confirmations, delay_blocks)
    assert 0 <= left <= delay_blocks
    assert blocks_until_recovery(0, delay_blocks) == delay_blocks
    assert (left == 0) == (confirmations >= delay_blocks)
    after = blocks_until_recovery(confirmations + 1, delay_blocks)
    assert after == (left - 1 if left > 0 else 0)
    assert left + min(confirmations, delay_blocks) == delay_blocks


@given(confirmations=confirmations, delay_blocks=delays, percent=st.integers(0, 100))
def test_the_refresh_alarm_fires_at_the_configured_share_and_stays_on(
    confirmations: int, delay_blocks: int, percent: int
) -> None:
    """Refresh is due exactly when blocks left are at most ``percent`` of N, and once due it
    stays due as blocks pass; 0% fires only when the path is open, 100% always."""
    window = CoinRecoveryWindow("aa" * 32, 0, confirmations, delay_blocks)
    due = window.refresh_due(percent)
    assert due == (window.blocks_left * 100 <= delay_blocks * percent)
    if due:
        later = CoinRecoveryWindow("aa" * 32, 0, confirmations + 1, delay_blocks)
        assert later.refresh_due(percent)
    assert refresh_due(window.blocks_left, delay_blocks, 100)
    assert refresh_due(window.blocks_left, delay_blocks, 0) == window.recovery_open


def test_refresh_due_at_twenty_percent_of_a_hundred_blocks() -> None:
    """With N = 100 and the alarm at 20% left, 21 blocks left is quiet and 20 fires."""
    assert not refresh_due(21, 100, 20)
    assert refresh_due(20, 100, 20)


@pytest.mark.parametrize(
    ("confirmations", "delay_blocks"), [(-1, 10), (0, 0), (0, MAX_RECOVERY_DELAY_BLOCKS + 1)]
)
def test_blocks_until_recovery_refuses_impossible_inputs(
    confirmations: int, delay_blocks: int
) -> None:
    """Negative confirmations and delays outside 1..65535 raise custody errors, not answers."""
    with pytest.raises(CustodyError):
        blocks_until_recovery(confirmations, delay_blocks)


@pytest.mark.parametrize(
    ("blocks_left", "percent", "error"),
    [(5, 101, RecoveryPolicyError), (5, -1, RecoveryPolicyError), (11, 20, RecoveryWindowError)],
)
def test_refresh_due_refuses_a_share_outside_0_to_100_and_more_blocks_than_the_delay(
    blocks_left: int, percent: int, error: type[Exception]
) -> None:
    """An alarm share that is not a percentage is a policy error; more blocks left than the
    delay cannot happen and is refused."""
    with pytest.raises(error):
        refresh_due(blocks_left, 10, percent)


def test_coin_windows_order_listunspent_coins_by_blocks_left() -> None:
    """A ``listunspent`` answer becomes one window per coin, the soonest to open first."""
    unspent: list[dict[str, object]] = [
        {"txid": "bb" * 32, "vout": 0, "confirmations": 3},
        {"txid": "aa" * 32, "vout": 1, "confirmations": 12},
        {"txid": "cc" * 32, "vout": 2, "confirmations": 0},
    ]
    windows = coin_windows(unspent, 10)
    assert [(w.txid[:2], w.blocks_left, w.recovery_open) for w in windows] == [
        ("aa", 0, True),
        ("bb", 7, False),
        ("cc", 10, False),
    ]


@given(delay_blocks=delays, version=st.integers(1, 3), sequence=st.integers(0, 2**32 - 1))
def test_sequence_allows_is_bip112s_check(delay_blocks: int, version: int, sequence: int) -> None:
    """An input satisfies ``older(N)`` iff the version is 2+, the lock is enabled, counted in
    blocks, and at least N; the sequence we write for recovery always does."""
    expected = (
        version >= 2
        and not sequence & SEQUENCE_DISABLE_FLAG
        and not sequence & SEQUENCE_TYPE_FLAG
        and sequence & 0xFFFF >= delay_blocks
    )
    assert sequence_allows(sequence, version, delay_blocks) == expected
    assert sequence_allows(recovery_sequence(delay_blocks), 2, delay_blocks)
    assert not sequence_allows(recovery_sequence(delay_blocks), 1, delay_blocks)
    assert not sequence_allows(PRIMARY_SEQUENCE, 2, delay_blocks)


# --- signing and the satisfier -------------------------------------------------------------------


def _psbt(path: SpendPath) -> PSBT:
    return build_psbt(
        _policy(10),
        [COIN],
        [Payment(PAYEE, 400_000)],
        path=path,
        fee_rate_sat_vb=2,
        change_index=3,
    )


def _sign(psbt: PSBT, *holders: int) -> None:
    for holder in holders:
        with signing_keys(SecretBytes(SEEDS[holder]), FINGERPRINTS[holder]) as keys:
            assert sign_vault_psbt(psbt, _policy(10), keys) == 1


def test_the_primary_witness_is_the_dummy_then_signatures_in_key_order() -> None:
    """Signed by C then A, the primary witness is ``<> sigA sigC <script>`` (script order); with
    the recovery quorum's signatures present too, the primary path is still the one chosen."""
    psbt = _psbt(SpendPath.RECOVERY)
    _sign(psbt, 2, 0, 3, 4)
    inp = psbt.inputs[0]
    keys = _policy(10).path_keys(SpendPath.PRIMARY, COIN.branch, COIN.index)
    by_key = {bytes(pub.sec()): bytes(sig) for pub, sig in inp.partial_sigs.items()}
    satisfaction = satisfy_input(psbt, 0, _policy(10))
    assert satisfaction.path is SpendPath.PRIMARY
    assert satisfaction.stack == (
        b"",
        by_key[keys[0]],
        by_key[keys[2]],
        bytes(inp.witness_script.data),
    )
    assert finalize_psbt(psbt, _policy(10)) == (SpendPath.PRIMARY,)
    assert [bytes(item) for item in psbt.inputs[0].final_scriptwitness.items] == list(
        satisfaction.stack
    )
    assert not psbt.inputs[0].partial_sigs


def test_the_recovery_witness_dissatisfies_the_primary_multisig() -> None:
    """Signed by R3 then R2, the recovery witness is ``<> sigR2 sigR3 <> <> <> <script>``: the
    recovery signatures in key order, then three empty items for the primary 2-of-3."""
    psbt = _psbt(SpendPath.RECOVERY)
    assert psbt.tx.version == 2
    assert psbt.inputs[0].sequence == 10
    _sign(psbt, 5, 4)
    inp = psbt.inputs[0]
    keys = _policy(10).path_keys(SpendPath.RECOVERY, COIN.branch, COIN.index)
    by_key = {bytes(pub.sec()): bytes(sig) for pub, sig in inp.partial_sigs.items()}
    satisfaction = satisfy_input(psbt, 0, _policy(10))
    assert satisfaction.path is SpendPath.RECOVERY
    assert satisfaction.stack == (
        b"",
        by_key[keys[1]],
        by_key[keys[2]],
        b"",
        b"",
        b"",
        bytes(inp.witness_script.data),
    )


def test_one_signature_satisfies_neither_path() -> None:
    """One primary and one recovery signature: finalising fails, naming both counts, and the
    PSBT keeps its signatures."""
    psbt = _psbt(SpendPath.RECOVERY)
    _sign(psbt, 0, 3)
    with pytest.raises(UnsatisfiableInputError, match="1 of 2 primary and 1 of 2 recovery"):
        finalize_psbt(psbt, _policy(10))
    assert len(psbt.inputs[0].partial_sigs) == 2
    with pytest.raises(UnsatisfiableInputError, match="primary path needs 2"):
        satisfy_input(psbt, 0, _policy(10), SpendPath.PRIMARY)


def test_recovery_keys_refuse_a_transaction_without_the_timelock() -> None:
    """A recovery body's signer will not sign a primary-path transaction (nSequence without the
    lock); signatures made anyway (embit directly) cannot be finalised through recovery."""
    psbt = _psbt(SpendPath.PRIMARY)
    with (
        signing_keys(SecretBytes(SEEDS[3]), FINGERPRINTS[3]) as keys,
        pytest.raises(CustodyError, match="does not commit to the recovery timelock"),
    ):
        sign_vault_psbt(psbt, _policy(10), keys)
    assert not psbt.inputs[0].partial_sigs
    for holder in (3, 4):
        with signing_keys(SecretBytes(SEEDS[holder]), FINGERPRINTS[holder]) as keys:
            psbt.sign_with(keys.bitcoin_root)
    with pytest.raises(RecoveryTimelockError, match="block lock of at least 10"):
        finalize_psbt(psbt, _policy(10))


def test_a_signature_for_another_transaction_is_named_not_used() -> None:
    """A's signature copied from another spend of the same coin does not verify here; the
    satisfier says so instead of building a witness the node would refuse."""
    other = build_psbt(
        _policy(10), [COIN], [Payment(PAYEE, 300_000)],
        path=SpendPath.PRIMARY, fee_rate_sat_vb=2, change_index=3,
    )  # fmt: skip
    _sign(other, 0)
    psbt = _psbt(SpendPath.PRIMARY)
    _sign(psbt, 1)
    psbt.inputs[0].partial_sigs.update(other.inputs[0].partial_sigs)
    with pytest.raises(UnsatisfiableInputError, match="does not verify"):
        finalize_psbt(psbt, _policy(10))


def test_outsiders_and_foreign_inputs_are_refused_before_signing() -> None:
    """A key of neither quorum is not a cosigner; an input whose witness script is not the
    vault's is refused, and nothing is signed."""
    outsider = bytes([9]) * 32
    with (
        signing_keys(
            SecretBytes(outsider), cosigner_keys(SecretBytes(outsider)).fingerprint
        ) as keys,
        pytest.raises(NotACosignerError),
    ):
        sign_vault_psbt(_psbt(SpendPath.PRIMARY), _policy(10), keys)
    psbt = _psbt(SpendPath.PRIMARY)
    psbt.inputs[0].witness_script = _policy(10).witness_script(Branch.RECEIVE, 5)
    with (
        signing_keys(SecretBytes(SEEDS[0]), FINGERPRINTS[0]) as keys,
        pytest.raises(ForeignInputError, match="witness script that is not the vault's"),
    ):
        sign_vault_psbt(psbt, _policy(10), keys)
    assert not psbt.inputs[0].partial_sigs


def test_change_goes_back_to_the_vault_and_the_fee_covers_the_estimate() -> None:
    """The PSBT pays the payee, returns change to the vault's change address with its
    derivations, and its fee is the rate times the size estimate."""
    psbt = _psbt(SpendPath.RECOVERY)
    payee, change = psbt.tx.vout
    assert payee.value == 400_000
    assert change.script_pubkey == _policy(10).script_pubkey(Branch.CHANGE, 3)
    assert len(psbt.outputs[1].bip32_derivations) == 6
    assert psbt.fee() == COIN.amount_sats - 400_000 - change.value
    estimate = estimate_vsize(
        _policy(10), SpendPath.RECOVERY, 1, [payee.script_pubkey, change.script_pubkey]
    )
    assert psbt.fee() == 2 * estimate

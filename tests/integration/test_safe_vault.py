"""Safe vaults on anvil: a 2-of-3 vault of three institutions spends, refuses, rotates, keeps secrets.

Every institution's owner key comes from its own seed, split 2-of-3 into SLIP-39 shares with a
passphrase; signing recombines it from two shares. anvil's development accounts only pay gas and
fund the vault (test money).

Payments are signed on the officers' real statements (a roster anchored in the three seeds, two
institutions' approvals of each SafeTx as the test reads it). Refusal tests and the owner
rotation sign under an explicit ``BreakGlass`` instead, on purpose: the custody checks hold even
when no statement is checked, and no payment statement covers a swapOwner.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from authority_support import NOW, Deployment
from embit.bip32 import HDKey
from eth_keys.datatypes import PrivateKey
from eth_utils.address import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from log_support import rendered
from sqlalchemy import Engine, func, select, text, update

from custody.authority import AuthorityEvidence, SpendUnderReview
from custody.authority.gate import Authority, BreakGlass
from custody.devnet import EvmNode
from custody.ethereum import (
    EthChain,
    KeyQuorum,
    Operation,
    SafeTx,
    SafeVaults,
    SigningPolicy,
    Vault,
    VaultOwner,
    deploy_safe_contracts,
    owners_from_cosigners,
    pack_signatures,
    sign_safe_tx_hash,
)
from custody.ethereum.dev_token import deploy_dev_token, token_balance
from custody.ethereum.erc20 import transfer_calldata
from custody.ethereum.records import SAFE_TABLES, SafeSignatureRow, SafeTxRow, SafeVaultRow
from custody.exceptions import (
    ApprovalMismatchError,
    CustodyError,
    DelegateCallRefusedError,
    FingerprintMismatchError,
    InsufficientSharesError,
    MissingSignaturesError,
    NotAnOwnerError,
    SafeCallFailedError,
    SafeInvalidOwnerError,
    SafeSignaturesTooShortError,
    StaleSafeTxError,
    UnknownContractError,
    VaultStateMismatchError,
    WrongChainError,
    WrongSafeError,
)
from custody.keys import CosignerKeys, cosigner_keys, signing_keys
from custody.schema import CustodyBase
from custody.secret import SecretBytes
from custody.shamir import ShareMnemonic, ShareScheme, split_seed
from treasury.db import make_engine, session_factory

log = logging.getLogger(__name__)

PASSPHRASE = "vault-officers-passphrase-7Q"
ETHER_WEI = 10**18
TOKEN_SUPPLY = 10**27
VAULT_ETHER_WEI = 10 * ETHER_WEI
VAULT_TOKENS = 10**24
RECIPIENT = "0x000000000000000000000000000000000000bEEF"
INSTITUTIONS = ("Central Bank", "Ministry of Finance", "Audit Office")
CODES = {"CB": "Central Bank", "MOF": "Ministry of Finance", "SAO": "Audit Office"}
"""The roster's institution codes and the owners whose seeds anchor them."""
MECHANICS_ONLY = BreakGlass("test of custody mechanics: the refusal comes before any authority")


@dataclass(frozen=True)
class Institution:
    name: str
    seed: bytes
    keys: CosignerKeys
    shares: tuple[ShareMnemonic, ...]

    def quorum(self, first: int = 0) -> KeyQuorum:
        return KeyQuorum(
            self.name, self.shares[first : first + 2], PASSPHRASE, self.keys.fingerprint
        )

    def eth_key(self) -> PrivateKey:
        with signing_keys(SecretBytes(self.seed), self.keys.fingerprint) as keys:
            return keys.eth_key


def _rng(seed: object) -> random.Random:
    """Deterministic randomness derived from the run's seed (printed in the pytest header)."""
    return random.Random(str(seed))  # noqa: S311 (reproducible test data, not key generation for use)


def make_institution(name: str, rng: random.Random) -> Institution:
    seed = rng.randbytes(32)
    shares = split_seed(
        SecretBytes(seed), ShareScheme(2, 3), PASSPHRASE, random_bytes=rng.randbytes
    )
    return Institution(name, seed, cosigner_keys(SecretBytes(seed)), tuple(shares))


@pytest.fixture(scope="module")
def chain(evm_node: EvmNode) -> EthChain:
    chain = EthChain(evm_node.rpc)
    deploy_safe_contracts(chain, chain.accounts()[0])
    return chain


@pytest.fixture(scope="module")
def payer(chain: EthChain) -> str:
    """anvil's first development account: pays gas and funds vaults (test money)."""
    return chain.accounts()[0]


@pytest.fixture(scope="module")
def token(chain: EthChain, payer: str) -> str:
    return deploy_dev_token(chain, payer, TOKEN_SUPPLY)


@pytest.fixture(scope="module")
def institutions(test_seed: int) -> dict[str, Institution]:
    rng = _rng(test_seed)
    return {name: make_institution(name, rng) for name in INSTITUTIONS}


@pytest.fixture(scope="module")
def deployment(institutions: dict[str, Institution], token: str) -> Deployment:
    """The officers' roster anchored in the three owners' seeds, with the decree the statements
    cite (ether and the dev token) and ``RECIPIENT`` on the signed allowlist."""
    d = Deployment.build(
        roots={code: HDKey.from_seed(institutions[name].seed) for code, name in CODES.items()},
        names=dict(CODES),
    )
    asset = f"ERC20:{to_checksum_address(token)}"
    d.authorise({"ETH": 10**24, asset: 10**30}, [("ETH", RECIPIENT), (asset, RECIPIENT)])
    return d


def approved(
    vaults: SafeVaults, d: Deployment, safe_tx: SafeTx, asset: str, amount: int, to: str
) -> AuthorityEvidence:
    """Approvals by the Bank's and the Ministry's approvers of ``safe_tx`` as the test reads it,
    with the hash the Safe contract computes (``to`` is allowlisted first)."""
    if asset != "ETH":
        asset = f"ERC20:{to_checksum_address(asset)}"
    d.authorise({}, [(asset, to)])
    spend = SpendUnderReview(
        chain=f"eip155:{vaults.chain.chain_id}",
        vault_id=safe_tx.safe,
        asset=asset,
        amount=amount,
        destination=to,
        tx_hash="0x" + vaults.contract_hash(safe_tx).hex(),
        fee=None,
        safe_nonce=safe_tx.nonce,
    )
    return d.evidence(
        *(d.statement_for(o, spend, vault="reserve-eth") for o in ("cb-alice", "mof-carol"))
    )


def _engine(url: str) -> Engine:
    engine = make_engine(url)
    CustodyBase.metadata.create_all(
        engine, tables=[CustodyBase.metadata.tables[t] for t in SAFE_TABLES]
    )
    return engine


@pytest.fixture
def vaults(chain: EthChain, sqlite_url: str, test_seed: int) -> Iterator[SafeVaults]:
    engine = _engine(sqlite_url)
    yield SafeVaults(chain, session_factory(engine), random_bytes=_rng(test_seed).randbytes)
    engine.dispose()


def fund(chain: EthChain, payer: str, token: str, address: str) -> None:
    chain.transact(payer, address, b"", value=VAULT_ETHER_WEI, action="fund the vault")
    chain.transact(payer, token, transfer_calldata(address, VAULT_TOKENS), action="fund tokens")


@pytest.fixture
def vault(
    vaults: SafeVaults,
    institutions: dict[str, Institution],
    chain: EthChain,
    payer: str,
    token: str,
    request: pytest.FixtureRequest,
    test_seed: int,
) -> Vault:
    """A fresh, funded 2-of-3 vault: a new Safe per test (salt nonce from the seed and test id)."""
    owners = owners_from_cosigners([(i.name, i.keys) for i in institutions.values()])
    salt = _rng(f"{test_seed} {request.node.nodeid}").getrandbits(256)
    created = vaults.create("reserve", owners, 2, payer=payer, salt_nonce=salt)
    fund(chain, payer, token, created.address)
    return created


def sign_and_execute(
    vaults: SafeVaults,
    safe_tx: SafeTx,
    signers: list[Institution],
    policy: SigningPolicy,
    payer: str,
    authority: Authority,
) -> None:
    approval = vaults.approval(safe_tx.hash_hex, policy)
    for institution in signers:
        vaults.sign(approval, institution.quorum(), policy, authority=authority, clock=lambda: NOW)
    vaults.execute(safe_tx.hash_hex, payer)


def db_snapshot(vaults: SafeVaults) -> tuple[object, ...]:
    with vaults._sessions() as session:
        return tuple(
            tuple(session.execute(text(f"SELECT * FROM {table} ORDER BY id")).all())  # noqa: S608 (table names are our constants)
            for table in SAFE_TABLES
        )


def chain_snapshot(vaults: SafeVaults, vault: Vault, token: str) -> tuple[object, ...]:
    state = vaults.read_state(vault.address)
    return (
        state,
        vaults.chain.balance(vault.address),
        token_balance(vaults.chain, token, vault.address),
    )


# --- acceptance 1: a 2-of-3 vault moves ether and tokens -------------------------------------


def test_two_institutions_move_ether_and_tokens(
    chain: EthChain,
    db_url: str,
    institutions: dict[str, Institution],
    payer: str,
    token: str,
    test_seed: int,
    request: pytest.FixtureRequest,
    deployment: Deployment,
) -> None:
    """A 2-of-3 Safe pays ether and ERC-20 tokens approved by two institutions; balances match."""
    engine = _engine(db_url)
    rng = _rng(f"{test_seed} {request.node.nodeid}")
    vaults = SafeVaults(chain, session_factory(engine), random_bytes=rng.randbytes)
    owners = owners_from_cosigners([(i.name, i.keys) for i in institutions.values()])
    vault = vaults.create("reserve", owners, 2, payer=payer)
    fund(chain, payer, token, vault.address)
    recipient = PrivateKey(rng.randbytes(32)).public_key.to_checksum_address()
    policy = SigningPolicy(frozenset({token}))
    central, ministry, audit = (institutions[n] for n in INSTITUTIONS)

    sent_wei = 3 * ETHER_WEI + 141
    eth_tx = vaults.propose_ether_transfer("reserve", recipient, sent_wei)
    evidence = approved(vaults, deployment, eth_tx, "ETH", sent_wei, recipient)
    sign_and_execute(vaults, eth_tx, [central, audit], policy, payer, evidence)
    assert chain.balance(recipient) == sent_wei
    assert chain.balance(vault.address) == VAULT_ETHER_WEI - sent_wei

    sent_tokens = 12_345 * 10**18
    token_tx = vaults.propose_token_transfer("reserve", token, recipient, sent_tokens)
    evidence = approved(vaults, deployment, token_tx, token, sent_tokens, recipient)
    sign_and_execute(vaults, token_tx, [ministry, audit], policy, payer, evidence)
    assert token_balance(chain, token, recipient) == sent_tokens
    assert token_balance(chain, token, vault.address) == VAULT_TOKENS - sent_tokens

    stored = vaults.vault("reserve")
    assert stored.nonce == vaults.read_state(vault.address).nonce == 2
    assert [p.state.value for p in vaults.proposals("reserve")] == ["executed", "executed"]
    signers = {inst for inst, _sig in vaults.proposal(token_tx.hash_hex).signatures}
    assert signers == {ministry.name, audit.name}
    engine.dispose()


def test_roster_is_read_back_from_chain(vaults: SafeVaults, vault: Vault) -> None:
    """The stored roster names each institution's cosigner address, and the chain agrees."""
    state = vaults.verify(vaults.vault("reserve"))
    assert sorted(state.owners) == sorted(o.address for o in vault.owners)
    assert state.threshold == 2
    assert state.nonce == 0


@pytest.mark.parametrize(("column", "value"), [("threshold", 1), ("nonce", 5)])
def test_vault_differing_from_database_is_not_operated(
    vaults: SafeVaults, vault: Vault, column: str, value: int
) -> None:
    """A stored threshold or nonce that differs from the chain stops every operation."""
    with vaults._sessions.begin() as session:
        session.execute(update(SafeVaultRow).values({column: value}))
    with pytest.raises(VaultStateMismatchError, match=column):
        vaults.propose_ether_transfer("reserve", RECIPIENT, 1)
    with vaults._sessions() as session:
        assert session.scalar(select(func.count()).select_from(SafeTxRow)) == 0


def test_roster_differing_from_chain_is_not_operated(vaults: SafeVaults, vault: Vault) -> None:
    """A stored owner address that is not an owner on chain stops every operation."""
    with vaults._sessions.begin() as session:
        session.execute(
            text("UPDATE safe_owners SET owner_address = :a WHERE id = 1"), {"a": RECIPIENT}
        )
    with pytest.raises(VaultStateMismatchError, match="owners"):
        vaults.verify(vaults.vault("reserve"))


# --- acceptance 2: our EIP-712 hash equals the contract's ------------------------------------

addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
uint256 = st.integers(min_value=0, max_value=2**256 - 1)


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    to=addresses,
    value=uint256,
    data=st.binary(max_size=300),
    operation=st.sampled_from(Operation),
    gas=st.tuples(uint256, uint256, uint256),
    gas_token=addresses,
    refund_receiver=addresses,
    nonce=uint256,
)
def test_our_safe_tx_hash_equals_the_contracts(
    vaults: SafeVaults,
    vault: Vault,
    to: str,
    value: int,
    data: bytes,
    operation: Operation,
    gas: tuple[int, int, int],
    gas_token: str,
    refund_receiver: str,
    nonce: int,
) -> None:
    """For any SafeTx fields, our EIP-712 hash equals the Safe's getTransactionHash."""
    safe_tx = SafeTx(
        chain_id=vault.chain_id,
        safe=vault.address,
        to=to,
        value=value,
        data=data,
        operation=operation,
        nonce=nonce,
        safe_tx_gas=gas[0],
        base_gas=gas[1],
        gas_price=gas[2],
        gas_token=gas_token,
        refund_receiver=refund_receiver,
    )
    assert vaults.contract_hash(safe_tx) == safe_tx.hash


# --- acceptance 3: bad input, each refused with a specific exception, nothing changed --------


def test_one_signature_is_not_enough(
    vaults: SafeVaults,
    vault: Vault,
    institutions: dict[str, Institution],
    payer: str,
    token: str,
    deployment: Deployment,
) -> None:
    """One institution's signature of a 2-of-3 SafeTx is refused by us and by the Safe (GS020)."""
    safe_tx = vaults.propose_ether_transfer("reserve", RECIPIENT, ETHER_WEI)
    policy = SigningPolicy()
    central = institutions["Central Bank"]
    signature = vaults.sign(
        vaults.approval(safe_tx.hash_hex, policy),
        central.quorum(),
        policy,
        authority=approved(vaults, deployment, safe_tx, "ETH", ETHER_WEI, RECIPIENT),
        clock=lambda: NOW,
    )
    before = (db_snapshot(vaults), chain_snapshot(vaults, vault, token))
    with pytest.raises(MissingSignaturesError, match="needs 2"):
        vaults.execute(safe_tx.hash_hex, payer)
    with pytest.raises(SafeSignaturesTooShortError, match="GS020"):
        vaults.submit(safe_tx, pack_signatures([signature]), payer)
    assert (db_snapshot(vaults), chain_snapshot(vaults, vault, token)) == before


def test_non_owner_signature_is_refused(
    vaults: SafeVaults, vault: Vault, institutions: dict[str, Institution], payer: str, token: str
) -> None:
    """A signature by a key that is not an owner is refused by us and by the Safe (GS026)."""
    safe_tx = vaults.propose_ether_transfer("reserve", RECIPIENT, ETHER_WEI)
    outsider = sign_safe_tx_hash(PrivateKey(b"\x42" * 32), safe_tx.hash)
    owner_sig = sign_safe_tx_hash(institutions["Audit Office"].eth_key(), safe_tx.hash)
    before = (db_snapshot(vaults), chain_snapshot(vaults, vault, token))
    with pytest.raises(NotAnOwnerError, match=outsider.owner):
        vaults.add_signature(safe_tx.hash_hex, outsider.encode())
    with pytest.raises(SafeInvalidOwnerError, match="GS026"):
        vaults.submit(safe_tx, pack_signatures([outsider, owner_sig]), payer)
    assert (db_snapshot(vaults), chain_snapshot(vaults, vault, token)) == before


def test_replayed_safe_tx_is_refused(
    vaults: SafeVaults,
    vault: Vault,
    institutions: dict[str, Institution],
    payer: str,
    token: str,
    deployment: Deployment,
) -> None:
    """An executed SafeTx cannot run again: not through the vault, nor with its old signatures."""
    safe_tx = vaults.propose_ether_transfer("reserve", RECIPIENT, ETHER_WEI)
    policy = SigningPolicy()
    signers = [institutions["Central Bank"], institutions["Ministry of Finance"]]
    evidence = approved(vaults, deployment, safe_tx, "ETH", ETHER_WEI, RECIPIENT)
    sign_and_execute(vaults, safe_tx, signers, policy, payer, evidence)
    old_signatures = pack_signatures(
        sig for _i, sig in vaults.proposal(safe_tx.hash_hex).signatures
    )
    before = (db_snapshot(vaults), chain_snapshot(vaults, vault, token))
    with pytest.raises(StaleSafeTxError, match="executed already"):
        vaults.execute(safe_tx.hash_hex, payer)
    with pytest.raises(StaleSafeTxError, match="nonce"):
        vaults.propose("reserve", safe_tx)
    with pytest.raises(SafeInvalidOwnerError, match="GS026"):
        vaults.submit(safe_tx, old_signatures, payer)
    assert (db_snapshot(vaults), chain_snapshot(vaults, vault, token)) == before


def test_safe_tx_for_another_chain_or_safe_is_refused(
    vaults: SafeVaults,
    vault: Vault,
    institutions: dict[str, Institution],
    payer: str,
    token: str,
    services_node: EvmNode,
) -> None:
    """A SafeTx made for another chain id or another Safe is refused, and its signatures are useless."""
    here = vaults.new_safe_tx("reserve", RECIPIENT, ETHER_WEI)
    other_chain = dataclasses.replace(here, chain_id=services_node.chain_id)
    other_safe = dataclasses.replace(here, safe="0x" + "11" * 20)
    before = (db_snapshot(vaults), chain_snapshot(vaults, vault, token))
    with pytest.raises(WrongChainError, match="chain_id"):
        vaults.propose("reserve", other_chain)
    with pytest.raises(WrongSafeError, match="'safe'"):
        vaults.propose("reserve", other_safe)
    keys = [institutions[n].eth_key() for n in INSTITUTIONS[:2]]
    for foreign in (other_chain, other_safe):
        signatures = pack_signatures(sign_safe_tx_hash(k, foreign.hash) for k in keys)
        with pytest.raises(SafeInvalidOwnerError, match="GS026"):
            vaults.submit(here, signatures, payer)
    assert (db_snapshot(vaults), chain_snapshot(vaults, vault, token)) == before


def test_delegatecall_and_unknown_contract_are_not_signed(
    vaults: SafeVaults, vault: Vault, payer: str, token: str
) -> None:
    """The signer refuses a DELEGATECALL and a call to a contract off its allowlist."""
    delegate = dataclasses.replace(
        vaults.new_safe_tx("reserve", token, 0), operation=Operation.DELEGATECALL
    )
    vaults.propose("reserve", delegate)
    token_tx = vaults.propose_token_transfer("reserve", token, RECIPIENT, 1)
    before = (db_snapshot(vaults), chain_snapshot(vaults, vault, token))
    with pytest.raises(DelegateCallRefusedError, match="operation"):
        vaults.approval(delegate.hash_hex, SigningPolicy(frozenset({token})))
    with pytest.raises(UnknownContractError, match=token):
        vaults.approval(token_tx.hash_hex, SigningPolicy())
    assert (db_snapshot(vaults), chain_snapshot(vaults, vault, token)) == before


def test_value_tampered_after_approval_is_not_signed(
    vaults: SafeVaults, vault: Vault, institutions: dict[str, Institution], token: str
) -> None:
    """If the stored SafeTx's value changes after the officers approved it, nobody signs it."""
    safe_tx = vaults.propose_ether_transfer("reserve", RECIPIENT, ETHER_WEI)
    policy = SigningPolicy()
    approval = vaults.approval(safe_tx.hash_hex, policy)
    with vaults._sessions.begin() as session:
        session.execute(update(SafeTxRow).values(value=VAULT_ETHER_WEI))
    before = (db_snapshot(vaults), chain_snapshot(vaults, vault, token))
    with pytest.raises(ApprovalMismatchError, match="'value'"):
        vaults.sign(
            approval, institutions["Central Bank"].quorum(), policy, authority=MECHANICS_ONLY
        )
    assert (db_snapshot(vaults), chain_snapshot(vaults, vault, token)) == before


def test_failing_call_reverts_whole_safe_tx(
    vaults: SafeVaults,
    vault: Vault,
    institutions: dict[str, Institution],
    payer: str,
    token: str,
    deployment: Deployment,
) -> None:
    """A token transfer beyond the vault's balance fails as GS013 and uses no nonce."""
    policy = SigningPolicy(frozenset({token}))
    safe_tx = vaults.propose_token_transfer("reserve", token, RECIPIENT, VAULT_TOKENS + 1)
    approval = vaults.approval(safe_tx.hash_hex, policy)
    evidence = approved(vaults, deployment, safe_tx, token, VAULT_TOKENS + 1, RECIPIENT)
    for name in INSTITUTIONS[:2]:
        vaults.sign(
            approval, institutions[name].quorum(), policy, authority=evidence, clock=lambda: NOW
        )
    before = (db_snapshot(vaults), chain_snapshot(vaults, vault, token))
    with pytest.raises(SafeCallFailedError, match="GS013"):
        vaults.execute(safe_tx.hash_hex, payer)
    assert (db_snapshot(vaults), chain_snapshot(vaults, vault, token)) == before


def test_wrong_passphrase_signs_nothing(
    vaults: SafeVaults, vault: Vault, institutions: dict[str, Institution]
) -> None:
    """Shares recombined with a wrong passphrase fail the fingerprint check before any signing."""
    safe_tx = vaults.propose_ether_transfer("reserve", RECIPIENT, 1)
    policy = SigningPolicy()
    central = institutions["Central Bank"]
    bad = KeyQuorum(
        central.name, central.shares[:2], "not the passphrase", central.keys.fingerprint
    )
    with pytest.raises(FingerprintMismatchError):
        vaults.sign(
            vaults.approval(safe_tx.hash_hex, policy), bad, policy, authority=MECHANICS_ONLY
        )
    with vaults._sessions() as session:
        assert session.scalar(select(func.count()).select_from(SafeSignatureRow)) == 0


# --- acceptance 4: owner rotation ------------------------------------------------------------


def test_owner_rotation_retires_the_old_key(
    vaults: SafeVaults,
    vault: Vault,
    institutions: dict[str, Institution],
    payer: str,
    token: str,
    test_seed: int,
) -> None:
    """After swapOwner the roster matches the chain, the old key cannot sign, the new one can.

    Signed under break-glass: no payment statement covers a swapOwner, and the officers' roster
    is anchored in the old seed's ceremony key, which the renewed key does not carry.
    """
    central, ministry, audit = (institutions[n] for n in INSTITUTIONS)
    renewed = make_institution(ministry.name, _rng(test_seed + 7))
    new_owner = VaultOwner(ministry.name, renewed.keys.eth_address, renewed.keys.fingerprint)
    policy = SigningPolicy()

    swap = vaults.propose_owner_swap("reserve", new_owner)
    approval = vaults.approval(swap.hash_hex, policy)
    assert approval.action.describe().startswith(f"replace Safe owner {ministry.keys.eth_address}")
    rotation = BreakGlass("test: rotating the Ministry's owner key after its ceremony renewal")
    sign_and_execute(vaults, swap, [ministry, audit], policy, payer, rotation)

    state = vaults.read_state(vault.address)
    roster = vaults.vault("reserve")
    assert sorted(state.owners) == sorted(o.address for o in roster.owners)
    assert roster.owner(ministry.name) == new_owner
    assert ministry.keys.eth_address not in state.owners

    pay = vaults.propose_ether_transfer("reserve", RECIPIENT, ETHER_WEI)
    pay_approval = vaults.approval(pay.hash_hex, policy)
    with pytest.raises(NotAnOwnerError, match="fingerprint"):
        vaults.sign(pay_approval, ministry.quorum(), policy, authority=rotation)
    old_sig = sign_safe_tx_hash(ministry.eth_key(), pay.hash)
    with pytest.raises(NotAnOwnerError, match=old_sig.owner):
        vaults.add_signature(pay.hash_hex, old_sig.encode())
    central_sig = vaults.sign(pay_approval, central.quorum(), policy, authority=rotation)
    with pytest.raises(SafeInvalidOwnerError, match="GS026"):
        vaults.submit(pay, pack_signatures([old_sig, central_sig]), payer)

    before = vaults.chain.balance(RECIPIENT)
    vaults.sign(pay_approval, renewed.quorum(), policy, authority=rotation)
    vaults.execute(pay.hash_hex, payer)
    assert vaults.chain.balance(RECIPIENT) == before + ETHER_WEI


# --- acceptance 5: no key material anywhere ---------------------------------------------------


def test_no_key_material_in_logs_errors_database_or_reprs(
    vaults: SafeVaults,
    vault: Vault,
    institutions: dict[str, Institution],
    payer: str,
    token: str,
    caplog: pytest.LogCaptureFixture,
    deployment: Deployment,
) -> None:
    """Seeds, share words, private keys and passphrases reach no log (every field of every record,
    as the CLI and the API print it), error, table or repr."""
    caplog.set_level(logging.DEBUG)
    policy = SigningPolicy(frozenset({token}))
    central, ministry, _audit = (institutions[n] for n in INSTITUTIONS)
    safe_tx = vaults.propose_token_transfer("reserve", token, RECIPIENT, 5)
    approval = vaults.approval(safe_tx.hash_hex, policy)
    quorums = [central.quorum(), ministry.quorum(1)]
    evidence = approved(vaults, deployment, safe_tx, token, 5, RECIPIENT)
    for quorum in quorums:
        vaults.sign(approval, quorum, policy, authority=evidence, clock=lambda: NOW)
    vaults.execute(safe_tx.hash_hex, payer)

    errors: list[CustodyError] = []
    attempts = [
        KeyQuorum(
            central.name, central.shares[:2], "wrong " + PASSPHRASE, central.keys.fingerprint
        ),
        KeyQuorum(central.name, central.shares[:1], PASSPHRASE, central.keys.fingerprint),
    ]
    pay = vaults.propose_ether_transfer("reserve", RECIPIENT, 1)
    pay_approval = vaults.approval(pay.hash_hex, SigningPolicy())
    for attempt in attempts:
        with pytest.raises((FingerprintMismatchError, InsufficientSharesError)) as caught:
            vaults.sign(pay_approval, attempt, SigningPolicy(), authority=MECHANICS_ONLY)
        errors.append(caught.value)
    wrong_action = dataclasses.replace(pay_approval, action=approval.action)
    with pytest.raises(ApprovalMismatchError) as mismatch:
        vaults.sign(wrong_action, central.quorum(), SigningPolicy(), authority=MECHANICS_ONLY)
    errors.append(mismatch.value)

    secrets = {PASSPHRASE}
    for institution in institutions.values():
        secrets.add(institution.seed.hex())
        secrets.add(institution.eth_key().to_hex()[2:])
        secrets.update(share.reveal() for share in institution.shares)
        secrets.update(" ".join(share.reveal().split()[4:8]) for share in institution.shares)
    rows = repr(db_snapshot(vaults))
    logged = (
        caplog.text
        + repr([record.__dict__ for record in caplog.records])
        + rendered(caplog.records)
    )
    shown = [
        logged,
        rows,
        *(str(e) for e in errors),
        *(repr(q) for q in quorums + attempts),
        repr(approval),
        repr(vaults),
        repr(vaults.proposal(safe_tx.hash_hex)),
    ]
    assert safe_tx.hash_hex in logged
    assert "SafeTx authorised" in logged  # the signer verified the officers' statements
    for secret in secrets:
        for text_shown in shown:
            assert secret not in text_shown.lower()
            assert secret.upper() not in text_shown

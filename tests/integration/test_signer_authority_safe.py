"""The Safe signer verifies the officers' quorum itself, against a real Safe on anvil.

Each institution's owner key and ceremony key come from its own seed, split 2-of-3 into SLIP-39
shares; the ceremony keys sign the roster genesis. Every refusal below happens after the shares
are recombined and before any signature: a spy on ``sign_safe_tx_hash`` records none, and no
signature row is written. The authority is required: the one alternative to statements is an
explicit ``BreakGlass``, which the signer logs as a warning and reports in its result.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from authority_support import NOW, Deployment, k1_public, private_key
from embit.bip32 import HDKey
from eth_utils.address import to_checksum_address
from sqlalchemy import func, select

import custody.ethereum.signer as safe_signer
from custody.authority import (
    ApprovalStatement,
    AuthorityEvidence,
    CeremonySignatureError,
    InsufficientApprovalsError,
    OfficerAdded,
    OfficerEntry,
    OfficerRole,
    RecordKind,
    SpendUnderReview,
    StatementKind,
    StatementMismatchError,
    UnauthorizedChangeError,
    VetoedError,
)
from custody.authority.gate import BreakGlass
from custody.devnet import EvmNode
from custody.ethereum import (
    EthChain,
    KeyQuorum,
    SafeTx,
    SafeVaults,
    SigningPolicy,
    Vault,
    VaultOwner,
    deploy_safe_contracts,
    owners_from_cosigners,
)
from custody.ethereum.dev_token import deploy_dev_token, token_balance
from custody.ethereum.erc20 import transfer_calldata
from custody.ethereum.records import SAFE_TABLES, SafeSignatureRow
from custody.keys import CosignerKeys, cosigner_keys
from custody.schema import CustodyBase
from custody.secret import SecretBytes
from custody.shamir import ShareMnemonic, ShareScheme, split_seed
from treasury.db import make_engine, session_factory

PASSPHRASE = "authority-officers-passphrase"
ETHER_WEI = 10**18
CODES = {"CB": "Central Bank", "MOF": "Ministry of Finance", "SAO": "Audit Office"}
"""The roster's institution codes and the Safe owners whose seeds anchor them."""


@dataclass(frozen=True)
class Institution:
    name: str
    seed: bytes
    keys: CosignerKeys
    shares: tuple[ShareMnemonic, ...]

    def quorum(self) -> KeyQuorum:
        return KeyQuorum(self.name, self.shares[:2], PASSPHRASE, self.keys.fingerprint)

    def root(self) -> HDKey:
        return HDKey.from_seed(self.seed)


@pytest.fixture(scope="module")
def institutions(test_seed: int) -> dict[str, Institution]:
    rng = random.Random(f"authority {test_seed}")  # noqa: S311 (reproducible test data)
    made = {}
    for name in CODES.values():
        seed = rng.randbytes(32)
        shares = split_seed(
            SecretBytes(seed), ShareScheme(2, 3), PASSPHRASE, random_bytes=rng.randbytes
        )
        made[name] = Institution(name, seed, cosigner_keys(SecretBytes(seed)), tuple(shares))
    return made


ETHER_PAYEE = to_checksum_address("0x" + "ab" * 20)
TOKEN_PAYEE = to_checksum_address("0x" + "cd" * 20)


@pytest.fixture(scope="module")
def deployment(institutions: dict[str, Institution], token: str) -> Deployment:
    """The roster anchored in the three owners' seeds (CB, MOF, SAO), with the decree the
    statements cite and the two payees on the signed allowlist."""
    d = Deployment.build(
        roots={code: institutions[name].root() for code, name in CODES.items()},
        names=dict(CODES),
    )
    d.authorise(
        {"ETH": 10**24, f"ERC20:{token}": 10**27},
        [("ETH", ETHER_PAYEE), (f"ERC20:{token}", TOKEN_PAYEE)],
    )
    return d


@pytest.fixture(scope="module")
def chain(evm_node: EvmNode) -> EthChain:
    chain = EthChain(evm_node.rpc)
    deploy_safe_contracts(chain, chain.accounts()[0])
    return chain


@pytest.fixture(scope="module")
def payer(chain: EthChain) -> str:
    return chain.accounts()[0]


@pytest.fixture(scope="module")
def token(chain: EthChain, payer: str) -> str:
    return to_checksum_address(deploy_dev_token(chain, payer, 10**27))


@pytest.fixture
def vaults(chain: EthChain, sqlite_url: str, test_seed: int) -> Iterator[SafeVaults]:
    engine = make_engine(sqlite_url)
    CustodyBase.metadata.create_all(
        engine, tables=[CustodyBase.metadata.tables[t] for t in SAFE_TABLES]
    )
    rng = random.Random(f"vaults {test_seed}")  # noqa: S311 (reproducible salt)
    yield SafeVaults(chain, session_factory(engine), random_bytes=rng.randbytes)
    engine.dispose()


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
    """A fresh 2-of-3 Safe holding 10 ETH and 10^24 token units (a new Safe per test)."""
    owners = owners_from_cosigners([(i.name, i.keys) for i in institutions.values()])
    salt = random.Random(f"{test_seed} {request.node.nodeid}").getrandbits(256)  # noqa: S311
    created = vaults.create("reserve", owners, 2, payer=payer, salt_nonce=salt)
    chain.transact(payer, created.address, b"", value=10 * ETHER_WEI, action="fund ether")
    chain.transact(payer, token, transfer_calldata(created.address, 10**24), action="fund")
    return created


@pytest.fixture
def signing_calls(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every SafeTx hash the signer signs with an owner key."""
    calls: list[bytes] = []
    original = safe_signer.sign_safe_tx_hash

    def spy(key: Any, safe_tx_hash: bytes) -> Any:
        calls.append(safe_tx_hash)
        return original(key, safe_tx_hash)

    monkeypatch.setattr(safe_signer, "sign_safe_tx_hash", spy)
    return calls


def reviewed(
    vaults: SafeVaults, safe_tx: SafeTx, asset: str, amount: int, to: str
) -> SpendUnderReview:
    """What the officers approve, with the hash computed by the Safe contract itself."""
    return SpendUnderReview(
        chain=f"eip155:{vaults.chain.chain_id}",
        vault_id=safe_tx.safe,
        asset=asset,
        amount=amount,
        destination=to,
        tx_hash="0x" + vaults.contract_hash(safe_tx).hex(),
        fee=None,
        safe_nonce=vaults.read_state(safe_tx.safe).nonce,
    )


def statements(
    d: Deployment, spend: SpendUnderReview, officers: tuple[str, ...] = ("cb-alice", "mof-carol")
) -> list[ApprovalStatement]:
    return [d.statement_for(o, spend, vault="reserve-eth") for o in officers]


def sign(
    vaults: SafeVaults,
    safe_tx: SafeTx,
    institution: Institution,
    evidence: AuthorityEvidence | BreakGlass,
    policy: SigningPolicy,
) -> Any:
    approval = vaults.approval(safe_tx.hash_hex, policy)
    return vaults.cosign(
        approval, institution.quorum(), policy, authority=evidence, clock=lambda: NOW
    )


def signature_rows(vaults: SafeVaults) -> int:
    with vaults._sessions() as session:
        return int(session.scalar(select(func.count()).select_from(SafeSignatureRow)) or 0)


def refused(
    vaults: SafeVaults,
    safe_tx: SafeTx,
    institutions: dict[str, Institution],
    evidence: AuthorityEvidence | BreakGlass,
    error: type[Exception],
    match: str,
    policy: SigningPolicy | None = None,
) -> None:
    """Every owner is refused with ``error``; no signature is made or stored."""
    for name in ("Central Bank", "Ministry of Finance"):
        with pytest.raises(error, match=match):
            sign(vaults, safe_tx, institutions[name], evidence, policy or SigningPolicy())
    assert signature_rows(vaults) == 0


def test_valid_statements_let_the_owners_sign_ether_and_name_the_approvers(
    vaults: SafeVaults,
    vault: Vault,
    institutions: dict[str, Institution],
    deployment: Deployment,
    payer: str,
    signing_calls: list[bytes],
) -> None:
    """A quorum naming exactly the decoded SafeTx is verified; the Safe executes it."""
    recipient = to_checksum_address("0x" + "ab" * 20)
    safe_tx = vaults.propose_ether_transfer("reserve", recipient, ETHER_WEI + 7)
    spend = reviewed(vaults, safe_tx, "ETH", ETHER_WEI + 7, recipient)
    evidence = deployment.evidence(*statements(deployment, spend))
    for name in ("Central Bank", "Ministry of Finance"):
        signed = sign(vaults, safe_tx, institutions[name], evidence, SigningPolicy())
        assert signed.authorization is not None
        assert [(a.name, a.institution) for a in signed.authorization.approvers] == [
            ("Alice", "CB"),
            ("Carol", "MOF"),
        ]
    assert signing_calls == [safe_tx.hash, safe_tx.hash]
    before = vaults.chain.balance(recipient)
    vaults.execute(safe_tx.hash_hex, payer)
    assert vaults.chain.balance(recipient) - before == ETHER_WEI + 7


def test_valid_statements_cover_an_erc20_transfer_by_its_asset_code(
    vaults: SafeVaults,
    vault: Vault,
    institutions: dict[str, Institution],
    deployment: Deployment,
    payer: str,
    token: str,
) -> None:
    """A token is named ``ERC20:<checksummed contract>``, the treasury ledger's asset code."""
    recipient = to_checksum_address("0x" + "cd" * 20)
    policy = SigningPolicy(frozenset({token}))
    safe_tx = vaults.propose_token_transfer("reserve", token, recipient, 5_000)
    spend = reviewed(vaults, safe_tx, f"ERC20:{token}", 5_000, recipient)
    evidence = deployment.evidence(*statements(deployment, spend))
    for name in ("Central Bank", "Audit Office"):
        assert sign(vaults, safe_tx, institutions[name], evidence, policy).authorization
    vaults.execute(safe_tx.hash_hex, payer)
    assert token_balance(vaults.chain, token, recipient) == 5_000


def test_without_authority_nothing_is_signed(
    vaults: SafeVaults,
    vault: Vault,
    institutions: dict[str, Institution],
    signing_calls: list[bytes],
) -> None:
    """There is no unchecked path any more: ``None`` (the old "staging" call) signs nothing."""
    safe_tx = vaults.propose_ether_transfer("reserve", "0x" + "12" * 20, 1)
    refused(vaults, safe_tx, institutions, None, TypeError, "explicit BreakGlass")  # type: ignore[arg-type]
    assert signing_calls == []


def test_break_glass_signs_without_statements_and_says_so(
    vaults: SafeVaults,
    vault: Vault,
    institutions: dict[str, Institution],
    signing_calls: list[bytes],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An explicit BreakGlass signs with no statement check; the result carries the reason, not
    an authorization, and a WARNING names the Safe, the SafeTx hash, the fingerprint and why."""
    safe_tx = vaults.propose_ether_transfer("reserve", "0x" + "12" * 20, 1)
    office = institutions["Audit Office"]
    reason = "Roster chain unreadable after the data-centre fire"
    with caplog.at_level(logging.WARNING, logger="custody.ethereum.signer"):
        signed = sign(vaults, safe_tx, office, BreakGlass(reason), SigningPolicy())
    assert signed.authorization is None
    assert signed.break_glass == reason
    assert signed.signature.owner == office.keys.eth_address
    assert signing_calls == [safe_tx.hash]
    assert signature_rows(vaults) == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "BREAK-GLASS" in m and vault.address in m and safe_tx.hash_hex in m
        and office.keys.fingerprint in m and reason in m
        for m in warnings
    ), warnings  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("destination", to_checksum_address("0x" + "66" * 20)),
        ("amount", ETHER_WEI + 1),
        ("tx_hash", "0x" + "ef" * 32),
        ("safe_nonce", 1),
        ("asset", "ERC20:0x000000000000000000000000000000000000dEaD"),
    ],
)
def test_statements_for_another_payment_are_refused(
    vaults: SafeVaults,
    vault: Vault,
    institutions: dict[str, Institution],
    deployment: Deployment,
    signing_calls: list[bytes],
    field: str,
    value: Any,
) -> None:
    """Genuine signatures on statements naming another recipient, amount, hash, nonce or asset."""
    recipient = to_checksum_address("0x" + "ab" * 20)
    safe_tx = vaults.propose_ether_transfer("reserve", recipient, ETHER_WEI)
    spend = reviewed(vaults, safe_tx, "ETH", ETHER_WEI, recipient)
    forged = [
        deployment.statement_for(o, spend, vault="reserve-eth", **{field: value})
        for o in ("cb-alice", "mof-carol")
    ]
    refused(
        vaults, safe_tx, institutions, deployment.evidence(*forged), StatementMismatchError, field
    )
    assert signing_calls == []


def test_a_safe_tx_re_pointed_in_the_database_is_refused(
    vaults: SafeVaults,
    vault: Vault,
    institutions: dict[str, Institution],
    deployment: Deployment,
    signing_calls: list[bytes],
) -> None:
    """The issue's attack: 1 ETH approved, a 9 ETH SafeTx to an unlisted address signed instead.

    The re-pointed SafeTx is self-consistent in custody (stored, hashed right, its approval
    decoded from it); only the officers' statements for the 1 ETH payment can stop it.
    """
    payee = to_checksum_address("0x" + "ab" * 20)
    approved = vaults.propose_ether_transfer("reserve", payee, ETHER_WEI)
    evidence = deployment.evidence(
        *statements(deployment, reviewed(vaults, approved, "ETH", ETHER_WEI, payee))
    )
    attacker = to_checksum_address("0x" + "66" * 20)
    repointed = vaults.propose_ether_transfer("reserve", attacker, 9 * ETHER_WEI)
    refused(vaults, repointed, institutions, evidence, StatementMismatchError, "names amount")
    assert signing_calls == []


def test_a_genesis_of_other_ceremonies_is_refused(
    vaults: SafeVaults,
    vault: Vault,
    institutions: dict[str, Institution],
    signing_calls: list[bytes],
) -> None:
    """A roster whose genesis other seeds' ceremony keys signed does not bind these owners."""
    recipient = to_checksum_address("0x" + "ab" * 20)
    safe_tx = vaults.propose_ether_transfer("reserve", recipient, ETHER_WEI)
    forged = Deployment.build()
    evidence = forged.evidence(
        *statements(forged, reviewed(vaults, safe_tx, "ETH", ETHER_WEI, recipient))
    )
    refused(vaults, safe_tx, institutions, evidence, CeremonySignatureError, "this seed")
    assert signing_calls == []


@pytest.mark.parametrize("signer", [None, "sao-admin"])
def test_an_officer_added_without_their_admins_signature_is_refused(
    vaults: SafeVaults,
    vault: Vault,
    institutions: dict[str, Institution],
    deployment: Deployment,
    signing_calls: list[bytes],
    signer: str | None,
) -> None:
    """A MOF approver inserted unsigned, or signed by another institution's admin."""
    recipient = to_checksum_address("0x" + "ab" * 20)
    safe_tx = vaults.propose_ether_transfer("reserve", recipient, ETHER_WEI)
    d = Deployment(list(deployment.records), dict(deployment.secrets), dict(deployment.passkeys))
    d.secrets["mof-mallory"] = private_key("mof-mallory")
    entry = OfficerEntry(
        "mof-mallory",
        "Mallory",
        "MOF",
        frozenset({OfficerRole.APPROVER}),
        (k1_public(d.secrets["mof-mallory"]),),
    )
    d.append(RecordKind.OFFICER_ADDED, OfficerAdded(entry), [signer] if signer else [])
    spend = reviewed(vaults, safe_tx, "ETH", ETHER_WEI, recipient)
    evidence = d.evidence(*statements(d, spend, ("cb-alice", "mof-mallory")))
    refused(vaults, safe_tx, institutions, evidence, UnauthorizedChangeError, "Record")
    assert signing_calls == []


def test_a_veto_refuses_the_safe_tx(
    vaults: SafeVaults,
    vault: Vault,
    institutions: dict[str, Institution],
    deployment: Deployment,
    signing_calls: list[bytes],
) -> None:
    """Approvals of two institutions and one genuine veto by oversight: nothing is signed."""
    recipient = to_checksum_address("0x" + "ab" * 20)
    safe_tx = vaults.propose_ether_transfer("reserve", recipient, ETHER_WEI)
    spend = reviewed(vaults, safe_tx, "ETH", ETHER_WEI, recipient)
    veto = deployment.statement_for("sao-olga", spend, vault="reserve-eth", kind=StatementKind.VETO)
    evidence = deployment.evidence(*statements(deployment, spend), veto)
    refused(vaults, safe_tx, institutions, evidence, VetoedError, "vetoed")
    assert signing_calls == []


def test_approvals_of_one_institution_are_refused(
    vaults: SafeVaults,
    vault: Vault,
    institutions: dict[str, Institution],
    deployment: Deployment,
    signing_calls: list[bytes],
) -> None:
    """Two central-bank approvers are one institution, not the two the rules need."""
    recipient = to_checksum_address("0x" + "ab" * 20)
    safe_tx = vaults.propose_ether_transfer("reserve", recipient, ETHER_WEI)
    spend = reviewed(vaults, safe_tx, "ETH", ETHER_WEI, recipient)
    evidence = deployment.evidence(*statements(deployment, spend, ("cb-alice", "cb-bob")))
    refused(vaults, safe_tx, institutions, evidence, InsufficientApprovalsError, "1 institution")
    assert signing_calls == []


def test_an_owner_swap_is_not_signed_on_payment_statements(
    vaults: SafeVaults,
    vault: Vault,
    institutions: dict[str, Institution],
    deployment: Deployment,
    signing_calls: list[bytes],
) -> None:
    """Statements authorise payments; with evidence given, a swapOwner SafeTx is refused."""
    new_key = cosigner_keys(SecretBytes(bytes(range(32))))
    safe_tx = vaults.propose_owner_swap(
        "reserve", VaultOwner("Audit Office", new_key.eth_address, new_key.fingerprint)
    )
    spend = SpendUnderReview(
        f"eip155:{vaults.chain.chain_id}",
        vault.address,
        "ETH",
        1,
        vault.address,
        safe_tx.hash_hex,
        None,
        0,
    )
    evidence = deployment.evidence(*statements(deployment, spend))
    refused(vaults, safe_tx, institutions, evidence, StatementMismatchError, "payments only")
    assert signing_calls == []

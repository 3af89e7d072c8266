"""The public delay window, enforced by the signers' gate against a real services chain.

The rule comes from the policy signed into the roster chain, the announcement and the vetoes
from the window registry on the services-chain anvil, the time from that chain's blocks. Each
test attacks one way around it: no services chain, no announcement, an announcement of another
amount, signing inside the window, a veto (genuine or forged), a roster edited to drop the rule,
and a registry address pointing at other code.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest
from authority_support import NOW, SPEND, Deployment, k1_sign

from custody.authority.delay import (
    NotAnnouncedError,
    ServicesChainRequiredError,
    SpendAnnouncement,
    VetoedOnChainError,
    WindowOpenError,
)
from custody.authority.errors import (
    ChangeQuorumError,
    PolicyMismatchError,
    SignatureError,
)
from custody.authority.gate import AuthorityEvidence, check_before_signing
from custody.authority.quorum import verify_veto
from custody.authority.roster import policy_hash_of
from custody.authority.roster_bodies import PolicySet
from custody.authority.roster_record import RecordKind
from custody.authority.statement import ApprovalStatement, StatementKind
from custody.devnet import EvmNode
from custody.ethereum.announcements import (
    RegistryCodeMismatchError,
    ServicesChainWindow,
    announce_spend,
    deploy_window_registry,
    submit_veto,
)
from custody.ethereum.chain import EthChain
from custody.exceptions import EthereumError

WINDOW_SECONDS = 3_600
THRESHOLD_SATS = 100_000
WINDOW_POLICY = json.dumps(
    {
        "assets": {
            "BTC": {
                "daily_limit": 10**9,
                "per_tx_limit": 10**9,
                "veto_threshold": THRESHOLD_SATS,
            }
        },
        "veto_window_seconds": WINDOW_SECONDS,
    },
    sort_keys=True,
    separators=(",", ":"),
)
"""The treasury's policy shape (``PolicyDocument.to_json``), trimmed to what the window reads."""


@pytest.fixture(scope="module")
def chain(services_node: EvmNode) -> EthChain:
    return EthChain(services_node.rpc)


@pytest.fixture
def registry(chain: EthChain) -> str:
    publisher = chain.accounts()[0]
    return deploy_window_registry(chain, publisher, publisher)


@pytest.fixture
def deployment() -> Deployment:
    d = Deployment.build()
    d.append(
        RecordKind.POLICY_SET,
        PolicySet(policy_hash_of(WINDOW_POLICY), WINDOW_POLICY),
        ["cb-admin", "mof-admin"],
    )
    d.authorise({"BTC": 10**9}, [("BTC", SPEND.destination)])
    return d


def _approvals(d: Deployment, proposal: str = "17") -> tuple[ApprovalStatement, ...]:
    return tuple(
        d.statement(officer, proposal_id=proposal, policy_hash=policy_hash_of(WINDOW_POLICY))
        for officer in ("cb-alice", "mof-carol")
    )


def _evidence(
    d: Deployment, reader: ServicesChainWindow | None, proposal: str = "17"
) -> AuthorityEvidence:
    plain = d.evidence(*_approvals(d, proposal))
    return AuthorityEvidence(plain.records, plain.statements, reader)


def _sign(d: Deployment, evidence: AuthorityEvidence, spend=SPEND):  # type: ignore[no-untyped-def]
    return check_before_signing(d.roots["CB"], evidence, spend, NOW)


def _advance(chain: EthChain, seconds: int) -> None:
    chain.rpc.call("evm_increaseTime", seconds)
    chain.rpc.call("evm_mine")


def test_a_large_spend_is_refused_until_its_window_passes_then_signed(
    chain: EthChain, registry: str, deployment: Deployment
) -> None:
    """Without a services chain, unannounced, or inside the window: refused (saying when it
    opens); once the services chain's clock passes the window, signed."""
    reader = ServicesChainWindow(chain, registry)
    with pytest.raises(ServicesChainRequiredError):
        _sign(deployment, _evidence(deployment, None))
    with pytest.raises(NotAnnouncedError, match="not announced"):
        _sign(deployment, _evidence(deployment, reader))
    other_amount = SpendAnnouncement.for_spend("17", replace(SPEND, amount=SPEND.amount + 1))
    announce_spend(chain, registry, chain.accounts()[0], other_amount)
    with pytest.raises(NotAnnouncedError):
        _sign(deployment, _evidence(deployment, reader))

    landed = announce_spend(
        chain, registry, chain.accounts()[0], SpendAnnouncement.for_spend("17", SPEND)
    )
    with pytest.raises(WindowOpenError) as refused:
        _sign(deployment, _evidence(deployment, reader))
    assert refused.value.opens_at == landed.announced_at + timedelta(seconds=WINDOW_SECONDS)
    assert refused.value.opens_at.isoformat() in str(refused.value)

    _advance(chain, WINDOW_SECONDS + 1)
    authorization = _sign(deployment, _evidence(deployment, reader))
    assert authorization.institutions == ("CB", "MOF")


def test_a_spend_below_the_signed_threshold_needs_no_announcement(
    chain: EthChain, registry: str, deployment: Deployment
) -> None:
    """The threshold is the signed policy's: a small spend signs at once, even with no chain."""
    small = replace(SPEND, amount=THRESHOLD_SATS - 1)
    statements = tuple(
        replace(s, amount=small.amount, proposal_id="18") for s in _approvals(deployment)
    )
    plain = deployment.evidence(*statements)
    for reader in (None, ServicesChainWindow(chain, registry)):
        evidence = AuthorityEvidence(plain.records, plain.statements, reader)
        assert _sign(deployment, evidence, small).proposal_id == "18"


def test_a_genuine_veto_on_chain_stops_the_spend_for_good_and_a_forged_one_does_not(
    chain: EthChain, registry: str, deployment: Deployment
) -> None:
    """Anyone may submit a veto; the signer ignores ones that do not verify against the roster,
    and after a genuine one nothing is signed, window over or not."""
    reader = ServicesChainWindow(chain, registry)
    submitter = chain.accounts()[5]  # not the publisher: a veto needs nobody's permission
    announce_spend(chain, registry, chain.accounts()[0], SpendAnnouncement.for_spend("19", SPEND))
    veto = deployment.statement("sao-olga", kind=StatementKind.VETO, proposal_id="19")
    forged = deployment.signed(veto)
    forged = replace(forged, signature=k1_sign(b"\x07" * 32, veto.digest()))
    submit_veto(chain, registry, submitter, forged)
    other = deployment.signed(replace(veto, proposal_id="20"))
    submit_veto(chain, registry, submitter, other)
    _advance(chain, WINDOW_SECONDS + 1)
    assert _sign(deployment, _evidence(deployment, reader, "19")).proposal_id == "19"

    submit_veto(chain, registry, submitter, deployment.signed(veto))
    with pytest.raises(VetoedOnChainError, match="sao-olga"):
        _sign(deployment, _evidence(deployment, reader, "19"))
    _advance(chain, 10 * WINDOW_SECONDS)
    with pytest.raises(VetoedOnChainError):
        _sign(deployment, _evidence(deployment, reader, "19"))
    with pytest.raises(SignatureError):
        verify_veto(deployment.state(), forged)


def test_a_roster_edited_to_drop_the_window_is_refused(
    chain: EthChain, registry: str, deployment: Deployment
) -> None:
    """The database holds the roster chain the signer is shown: dropping the window policy
    record, or adding an unwindowed policy signed by one institution, gets no signature."""
    reader = ServicesChainWindow(chain, registry)
    full = _evidence(deployment, reader, "21")
    policy_index = next(
        i
        for i, record in enumerate(deployment.records)
        if record.kind is RecordKind.POLICY_SET and policy_hash_of(WINDOW_POLICY) in str(record)
    )
    truncated = AuthorityEvidence(full.records[:policy_index], full.statements, reader)
    with pytest.raises(PolicyMismatchError):
        _sign(deployment, truncated)
    no_window = WINDOW_POLICY.replace(f',"veto_window_seconds":{WINDOW_SECONDS}', "")
    lax = deployment.make(
        RecordKind.POLICY_SET, PolicySet(policy_hash_of(no_window), no_window), ["cb-admin"]
    )
    with pytest.raises(ChangeQuorumError):
        _sign(deployment, AuthorityEvidence((*full.records, lax), full.statements, reader))
    with pytest.raises(NotAnnouncedError):
        _sign(deployment, full)


def test_the_signer_refuses_a_registry_address_with_other_code(
    chain: EthChain, registry: str, deployment: Deployment
) -> None:
    """A services-chain address whose code is not the committed registry's is not believed."""
    impostor = chain.accounts()[7]
    chain.set_code(impostor, chain.code(registry) + b"\x00")
    with pytest.raises(RegistryCodeMismatchError):
        _sign(deployment, _evidence(deployment, ServicesChainWindow(chain, impostor)))


def test_only_the_publisher_announces_and_each_spend_once(chain: EthChain, registry: str) -> None:
    """The registry refuses an announcement from another account, and a repeat (nothing sent)."""
    announcement = SpendAnnouncement.for_spend("22", SPEND)
    with pytest.raises(EthereumError):
        announce_spend(chain, registry, chain.accounts()[3], announcement)
    announce_spend(chain, registry, chain.accounts()[0], announcement)
    with pytest.raises(EthereumError):
        announce_spend(chain, registry, chain.accounts()[0], announcement)

"""The signer's quorum check: exactly this spend, by active approvers of enough institutions."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from authority_support import NOW, SPEND, Deployment, k1_public, private_key

from custody.authority import (
    AboveDecreeCeilingError,
    AllowlistAdded,
    DecreeAdded,
    DestinationNotAllowlistedError,
    ExpiredStatementError,
    FeeAboveMaximumError,
    InsufficientApprovalsError,
    KeyRotated,
    LegalBasisExpiredError,
    MissingRoleError,
    OfficerRemoved,
    PolicyMismatchError,
    PolicySet,
    RecordKind,
    SignatureError,
    SignedStatement,
    StatementKind,
    StatementMismatchError,
    UnknownLegalBasisError,
    UnknownSignerError,
    VetoedError,
    WebAuthnAssertionError,
    policy_hash_of,
    verify_authorization,
)

DECREE = "Decree 2026/14"
"""The legal basis ``Deployment.statement`` cites."""
CEILING_DECREE = "Decree 2026/99"
"""A decree with small, known ceilings, for the ceiling and expiry checks."""
CEILING_SATS = 200_000
CEILING_EXPIRES = NOW + timedelta(days=1)
SAFE = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
EVM_PAYEE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
"""Allowlisted in its EIP-55 spelling; spends may name it in lower case."""


def _deployment() -> Deployment:
    """The test roster with the chain facts the spends here use: the decree they cite and the
    destinations they pay, each signed in by admins of two institutions (added only if the
    shared ``Deployment`` does not already sign them in)."""
    d = Deployment.build()
    state = d.state()
    admins = ["cb-admin", "mof-admin"]
    if DECREE not in state.decrees:
        d.append(
            RecordKind.DECREE_ADDED,
            DecreeAdded(DECREE, "Reserve rebalancing", NOW + timedelta(days=30), {"BTC": 10**8}),
            admins,
        )
    d.append(
        RecordKind.DECREE_ADDED,
        DecreeAdded(
            CEILING_DECREE,
            "Small purchases",
            CEILING_EXPIRES,
            {"BTC": CEILING_SATS, "LBTC": CEILING_SATS, "ETH": 10**19},
        ),
        admins,
    )
    if not state.allows_destination(SPEND.asset, SPEND.destination):
        d.append(
            RecordKind.ALLOWLIST_ADDED,
            AllowlistAdded(SPEND.asset, SPEND.destination, "Supplier"),
            admins,
        )
    d.append(RecordKind.ALLOWLIST_ADDED, AllowlistAdded("ETH", EVM_PAYEE, "EVM supplier"), admins)
    return d


DEPLOYMENT = _deployment()
STATE = DEPLOYMENT.state()


def _approvals(*officers: str, **changes: object) -> list[SignedStatement]:
    return [DEPLOYMENT.signed(DEPLOYMENT.statement(o, **changes)) for o in officers]


def test_two_institutions_authorise_and_names_are_reported() -> None:
    """A CLI-key approval (CB) and a passkey approval (MOF) authorise the spend."""
    result = verify_authorization(STATE, _approvals("cb-alice", "mof-carol"), SPEND, NOW)
    assert result.institutions == ("CB", "MOF")
    assert [(a.name, a.institution) for a in result.approvers] == [
        ("Alice", "CB"),
        ("Carol", "MOF"),
    ]
    assert result.policy_hash == STATE.policy_hash
    assert result.roster_head == STATE.head_hash


def test_two_approvals_from_one_institution_are_not_enough() -> None:
    """Two CB approvers count as one institution."""
    with pytest.raises(InsufficientApprovalsError, match="1 institution"):
        verify_authorization(STATE, _approvals("cb-alice", "cb-bob"), SPEND, NOW)
    with pytest.raises(InsufficientApprovalsError):
        verify_authorization(STATE, [], SPEND, NOW)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tx_hash", "cd" * 32),
        ("amount", 9_000_000),
        ("destination", "bcrt1qattacker"),
        ("vault_id", "wsh(other)"),
        ("asset", "LBTC"),
        ("chain", "bitcoin:main"),
    ],
)
def test_approval_for_another_spend_is_refused(field: str, value: object) -> None:
    """A genuine approval of a different tx hash/amount/destination/vault does not transfer."""
    approvals = _approvals("cb-alice", "mof-carol", **{field: value})
    with pytest.raises(StatementMismatchError, match=field):
        verify_authorization(STATE, approvals, SPEND, NOW)


def test_repointed_transaction_is_refused() -> None:
    """The approved statements do not cover a transaction a DB writer re-pointed."""
    approvals = _approvals("cb-alice", "mof-carol")
    for spend in (
        replace(SPEND, destination="bcrt1qattacker"),
        replace(SPEND, amount=SPEND.amount * 60),
        replace(SPEND, tx_hash="ee" * 32),
    ):
        with pytest.raises(StatementMismatchError):
            verify_authorization(STATE, approvals, spend, NOW)


def test_fee_above_the_approved_maximum_is_refused() -> None:
    """The fee may be lower than max_fee, never higher."""
    approvals = _approvals("cb-alice", "mof-carol")
    verify_authorization(STATE, approvals, replace(SPEND, fee=1_000), NOW)
    with pytest.raises(FeeAboveMaximumError):
        verify_authorization(STATE, approvals, replace(SPEND, fee=1_001), NOW)


def test_a_valid_veto_refuses() -> None:
    """An oversight officer's veto refuses the spend even with a full quorum of approvals."""
    veto = DEPLOYMENT.signed(DEPLOYMENT.statement("sao-olga", kind=StatementKind.VETO))
    with pytest.raises(VetoedError, match="Olga"):
        verify_authorization(STATE, [*_approvals("cb-alice", "mof-carol"), veto], SPEND, NOW)
    expired = DEPLOYMENT.signed(
        DEPLOYMENT.statement(
            "sao-olga", kind=StatementKind.VETO, expires_at=NOW - timedelta(seconds=1)
        )
    )
    with pytest.raises(VetoedError):
        verify_authorization(STATE, [*_approvals("cb-alice", "mof-carol"), expired], SPEND, NOW)


def test_tampered_veto_is_refused_loudly() -> None:
    """A veto whose signature was tampered is refused loudly, not skipped."""
    veto = DEPLOYMENT.signed(DEPLOYMENT.statement("sao-olga", kind=StatementKind.VETO))
    forged = replace(veto, statement=replace(veto.statement, officer_id="sao-olga", amount=1))
    with pytest.raises(SignatureError):
        verify_authorization(STATE, [*_approvals("cb-alice", "mof-carol"), forged], SPEND, NOW)


def test_oversight_officer_cannot_approve() -> None:
    """Only approvers approve; oversight may only veto."""
    with pytest.raises(MissingRoleError):
        verify_authorization(STATE, _approvals("cb-alice", "sao-olga"), SPEND, NOW)


def test_expired_statement_is_refused() -> None:
    """An approval at or past its expiry counts for nothing."""
    approvals = _approvals("cb-alice", "mof-carol", expires_at=NOW)
    with pytest.raises(ExpiredStatementError):
        verify_authorization(STATE, approvals, SPEND, NOW)


def test_statement_under_another_policy_is_refused() -> None:
    """Approvals name the policy in force; a new policy version voids older approvals."""
    approvals = _approvals("cb-alice", "mof-carol")
    d = Deployment(list(DEPLOYMENT.records), dict(DEPLOYMENT.secrets), dict(DEPLOYMENT.passkeys))
    d.append(
        RecordKind.POLICY_SET,
        PolicySet(policy_hash_of('{"raised":"yes"}'), '{"raised":"yes"}'),
        ["cb-admin", "sao-admin"],
    )
    with pytest.raises(PolicyMismatchError):
        verify_authorization(d.state(), approvals, SPEND, NOW)


def test_revoked_key_and_removed_officer_are_refused() -> None:
    """A key revoked by rotation, or any key of a removed officer, no longer signs."""
    approvals = _approvals("cb-alice", "mof-carol")
    d = Deployment(list(DEPLOYMENT.records), dict(DEPLOYMENT.secrets), dict(DEPLOYMENT.passkeys))
    old_key = d.key_of("cb-alice").key_id
    d.append(
        RecordKind.KEY_ROTATED,
        KeyRotated("cb-alice", (k1_public(private_key("alice 2")),), (old_key,)),
        ["cb-admin"],
    )
    with pytest.raises(UnknownSignerError, match="not one of their active keys"):
        verify_authorization(d.state(), approvals, SPEND, NOW)
    d.append(RecordKind.OFFICER_REMOVED, OfficerRemoved("mof-carol"), ["mof-admin"])
    with pytest.raises(UnknownSignerError, match="mof-carol"):
        verify_authorization(d.state(), _approvals("mof-carol", "cb-bob"), SPEND, NOW)


def test_unknown_officer_or_wrong_institution_is_refused() -> None:
    """An officer absent from the roster, or claiming another institution, does not count."""
    stranger = replace(DEPLOYMENT.statement("cb-alice"), officer_id="cb-mallory")
    signed = SignedStatement(stranger, "k1:00", DEPLOYMENT.sign("cb-alice", stranger.digest()))
    with pytest.raises(UnknownSignerError):
        verify_authorization(STATE, [signed, *_approvals("mof-carol")], SPEND, NOW)
    moved = _approvals("cb-alice", institution="MOF")
    with pytest.raises(UnknownSignerError, match="roster has them at CB"):
        verify_authorization(STATE, [*moved, *_approvals("mof-carol")], SPEND, NOW)


def test_signature_by_another_officer_key_is_refused() -> None:
    """Bob's signature presented as Alice's (with Alice's key id) does not verify."""
    statement = DEPLOYMENT.statement("cb-alice")
    fake = SignedStatement(
        statement,
        DEPLOYMENT.key_of("cb-alice").key_id,
        DEPLOYMENT.sign("cb-bob", statement.digest()),
    )
    with pytest.raises(SignatureError):
        verify_authorization(STATE, [fake, *_approvals("mof-carol")], SPEND, NOW)


def test_webauthn_approval_with_altered_statement_is_refused() -> None:
    """Carol's passkey signed one statement; the same assertion on an altered one fails."""
    [carol] = _approvals("mof-carol")
    altered = replace(carol, statement=replace(carol.statement, legal_basis="Decree 666"))
    with pytest.raises(WebAuthnAssertionError):
        verify_authorization(STATE, [*_approvals("cb-alice"), altered], SPEND, NOW)


def test_statements_of_several_proposals_are_refused() -> None:
    """One spend is authorised by the statements of one proposal."""
    mixed = [*_approvals("cb-alice"), *_approvals("mof-carol", proposal_id="18")]
    with pytest.raises(StatementMismatchError, match="several proposals"):
        verify_authorization(STATE, mixed, SPEND, NOW)


def test_evm_spend_checks_the_safe_nonce() -> None:
    """On an EVM chain the Safe nonce is part of what is approved (and the allowlisted payee
    matches in any letter case)."""
    safe = SAFE
    spend = replace(
        SPEND,
        chain="eip155:31337",
        vault_id=safe,
        asset="ETH",
        destination=EVM_PAYEE.lower(),
        tx_hash="0x" + "ab" * 32,
        fee=None,
        safe_nonce=4,
    )
    evm = {
        "chain": "eip155:31337",
        "vault_id": safe,
        "asset": "ETH",
        "destination": EVM_PAYEE.lower(),
        "tx_hash": "0x" + "ab" * 32,
        "max_fee": None,
        "safe_nonce": 4,
    }
    approvals = _approvals("cb-alice", "mof-carol", legal_basis=CEILING_DECREE, **evm)
    verify_authorization(STATE, approvals, spend, NOW)
    with pytest.raises(StatementMismatchError, match="safe_nonce"):
        verify_authorization(STATE, approvals, replace(spend, safe_nonce=5), NOW)


# --- What the roster chain says about destinations and legal bases ----------------------------


def test_a_destination_missing_from_the_chains_allowlist_is_refused() -> None:
    """Genuine approvals of a spend to an address no signed allowlist record lists sign nothing
    (the treasury's allowlist table is a database row and counts for nothing here)."""
    spend = replace(SPEND, destination="bcrt1qinsertedbyadatabasewriter")
    approvals = _approvals("cb-alice", "mof-carol", destination=spend.destination)
    with pytest.raises(DestinationNotAllowlistedError, match="bcrt1qinsertedbyadatabasewriter"):
        verify_authorization(STATE, approvals, spend, NOW)


def test_an_address_allowlisted_for_another_asset_is_refused() -> None:
    """An allowlist entry counts for its own asset only."""
    spend = replace(SPEND, asset="LBTC")
    approvals = _approvals("cb-alice", "mof-carol", asset="LBTC", legal_basis=CEILING_DECREE)
    assert STATE.allows_destination("BTC", SPEND.destination)
    with pytest.raises(DestinationNotAllowlistedError, match="LBTC"):
        verify_authorization(STATE, approvals, spend, NOW)


def test_a_legal_basis_missing_from_the_chain_is_refused() -> None:
    """Statements citing a decree that no signed record holds sign nothing."""
    approvals = _approvals("cb-alice", "mof-carol", legal_basis="Decree 2026/666")
    with pytest.raises(UnknownLegalBasisError, match="Decree 2026/666"):
        verify_authorization(STATE, approvals, SPEND, NOW)


def test_the_decree_ceiling_bounds_the_amount() -> None:
    """A spend up to the cited decree's ceiling for its asset passes; one unit more is refused."""
    at_ceiling = replace(SPEND, amount=CEILING_SATS)
    approvals = _approvals("cb-alice", "mof-carol", legal_basis=CEILING_DECREE, amount=CEILING_SATS)
    verify_authorization(STATE, approvals, at_ceiling, NOW)
    above = replace(SPEND, amount=CEILING_SATS + 1)
    approvals = _approvals(
        "cb-alice", "mof-carol", legal_basis=CEILING_DECREE, amount=CEILING_SATS + 1
    )
    with pytest.raises(AboveDecreeCeilingError, match=str(CEILING_SATS)):
        verify_authorization(STATE, approvals, above, NOW)


def test_a_decree_without_a_ceiling_for_the_asset_authorises_none_of_it() -> None:
    """A decree sets ceilings per asset; an asset it does not name may not be spent under it."""
    spend = replace(SPEND, asset="USDT")
    approvals = _approvals("cb-alice", "mof-carol", asset="USDT", legal_basis=CEILING_DECREE)
    with pytest.raises(AboveDecreeCeilingError, match="no ceiling for USDT"):
        verify_authorization(STATE, approvals, spend, NOW)


def test_an_expired_decree_is_refused() -> None:
    """At or after the decree's expiry, unexpired statements citing it authorise nothing."""
    approvals = _approvals(
        "cb-alice", "mof-carol", legal_basis=CEILING_DECREE, expires_at=NOW + timedelta(days=2)
    )
    verify_authorization(STATE, approvals, SPEND, CEILING_EXPIRES - timedelta(seconds=1))
    with pytest.raises(LegalBasisExpiredError, match=CEILING_DECREE):
        verify_authorization(STATE, approvals, SPEND, CEILING_EXPIRES)


def test_every_approval_must_cite_a_decree_of_the_chain() -> None:
    """One approval citing an unknown basis is refused even if the other cites a valid one."""
    approvals = [
        *_approvals("cb-alice"),
        *_approvals("mof-carol", legal_basis="Decree of nobody"),
    ]
    with pytest.raises(UnknownLegalBasisError, match="mof-carol"):
        verify_authorization(STATE, approvals, SPEND, NOW)

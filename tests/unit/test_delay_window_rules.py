"""The delay window's pure rules: which spends the signed policy puts under a window, the one
canonical announcement of a spend, the submitted veto's encoding, and the committed registry
artifact matching its source. (The window against a real services chain: tests/integration/
test_delay_window.py.)"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from authority_support import SPEND, Deployment

from custody.authority import canonical
from custody.authority.delay import (
    DelayWindowError,
    SpendAnnouncement,
    decode_veto,
    delay_rule,
    encode_veto,
    proposal_key,
)
from custody.authority.errors import EncodingError
from custody.authority.statement import StatementKind
from custody.ethereum.contracts.build import ARTIFACT_PATH, compile_window_registry, render


def _policy(**changes: object) -> str:
    document: dict[str, object] = {
        "assets": {"BTC": {"veto_threshold": 100}, "ETH": {"veto_threshold": 10**18}},
        "veto_window_seconds": 3600,
    }
    document.update(changes)
    return json.dumps(document)


def test_the_signed_policy_sets_the_threshold_per_asset_and_fails_closed_for_others() -> None:
    """At or above an asset's threshold the window applies, below it not; an asset the policy
    does not name is always under the window."""
    rule = delay_rule(_policy())
    assert rule is not None
    assert rule.window_seconds == 3600
    assert rule.applies("BTC", 100)
    assert not rule.applies("BTC", 99)
    assert rule.applies("ERC20:0x" + "11" * 20, 1)


@pytest.mark.parametrize("document", [None, "not json", '{"limits":{"BTC":"1"}}', "[]"])
def test_a_document_without_a_window_sets_none(document: str | None) -> None:
    """Documents of other shapes (older test rosters) set no window."""
    assert delay_rule(document) is None


@pytest.mark.parametrize(
    "document",
    [
        _policy(veto_window_seconds=-1),
        _policy(veto_window_seconds="3600"),
        _policy(veto_window_seconds=True),
        _policy(assets={"BTC": {}}),
        _policy(assets=[]),
        _policy(assets={"BTC": {"veto_threshold": 1.5}}),
    ],
)
def test_a_malformed_window_is_refused_not_read_as_none(document: str) -> None:
    """A policy that sets a window but states it badly stops the signer."""
    with pytest.raises(DelayWindowError):
        delay_rule(document)


def test_an_announcement_has_one_encoding_and_names_every_field_of_the_spend() -> None:
    """Round trip through the canonical bytes; a different amount, destination or transaction
    is a different digest; a re-encoding with spaces is refused."""
    announcement = SpendAnnouncement.for_spend("17", SPEND)
    assert SpendAnnouncement.parse(announcement.encode()) == announcement
    for change in (
        {"amount": SPEND.amount + 1},
        {"destination": "bcrt1qother"},
        {"tx_hash": "cd" * 32},
    ):
        other = SpendAnnouncement.for_spend("17", replace(SPEND, **change))  # type: ignore[arg-type]
        assert other.digest() != announcement.digest()
    spaced = json.dumps(json.loads(announcement.encode()), indent=1).encode()
    with pytest.raises(EncodingError):
        SpendAnnouncement.parse(spaced)
    assert proposal_key("17") != proposal_key("18")


def test_a_submitted_veto_round_trips_and_an_approval_is_not_a_veto() -> None:
    """Only VETO statements are encoded for the registry, and decoded back exactly."""
    d = Deployment.build()
    veto = d.signed(d.statement("sao-olga", kind=StatementKind.VETO))
    assert decode_veto(encode_veto(veto)) == veto
    approval = d.signed(d.statement("cb-alice"))
    with pytest.raises(EncodingError):
        encode_veto(approval)
    forged = canonical.encode(
        {
            "statement": approval.statement.to_json(),
            "key_id": approval.key_id,
            "signature": approval.signature.to_json(),
        }
    )
    with pytest.raises(EncodingError):
        decode_veto(forged)


def test_the_committed_registry_artifact_matches_its_source() -> None:
    """The JSON the signers deploy and compare code with is a fresh compile of the .vy source."""
    assert ARTIFACT_PATH.read_text(encoding="utf-8") == render(compile_window_registry())

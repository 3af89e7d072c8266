"""The story's public delay window: a large spend waits out its window, another is vetoed.

The window registry is deployed on the services chain and the signers are given that chain to
read (``windowed_spenders``). A large ether spend is approved and announced; once the story's
clock (and so the treasury's own rule) says the window is over, the signer still refuses,
because the services chain's time says otherwise, and names when it opens; when that chain's
time passes it, the spend is signed, broadcast and confirmed. A large bitcoin spend is approved
and announced, and the audit chamber's oversight officer vetoes it on the services chain with
their own key: the veto is final there, and the workflow records it.

The story's clock runs ahead of real time (it skips the allowlist's delay), so before each
announcement the services chain's time is brought up to the story's (``sync_services_clock``):
the window is then judged on one time line by the treasury, the signers and the site.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from custody.authority.delay import SpendAnnouncement, WindowOpenError
from custody.authority.statement import StatementKind
from custody.devnet import EvmNode
from custody.ethereum import EthChain, SigningPolicy
from custody.ethereum.announcements import ServicesChainWindow, deploy_window_registry
from treasury.announcements import AnnouncementRow, Publisher, announce, relay_veto
from treasury.authority.statements import coin_units
from treasury.authority.store import require_roster_state, statements_for
from treasury.proposals import ProposalView, Workflow
from treasury.spenders import BitcoinSpender, SafeSpender
from treasury.story.cast import (
    APPROVERS,
    FEE_RATE_SAT_VB,
    MAX_FEE_SATS,
    OVERSIGHT,
    POLICY,
    SAFE_VAULT,
    SATS_PER_BTC,
    WEI_PER_ETH,
)
from treasury.story.reserve import Reserve
from treasury.story.units import human_duration

__all__ = [
    "LARGE_BTC_SATS",
    "LARGE_ETH_WEI",
    "WindowStory",
    "open_window_registry",
    "sync_services_clock",
    "vetoed_spend",
    "waited_spend",
    "windowed_spenders",
]

Echo = Callable[[str], None]

LARGE_ETH_WEI = 6 * WEI_PER_ETH
"""At or above the policy's ether veto threshold (5 ETH), within its per-spend limit."""
LARGE_BTC_SATS = 60 * SATS_PER_BTC // 100
"""At or above the policy's bitcoin veto threshold (0.5 BTC), within its per-spend limit."""
PUBLISHER_ACCOUNT_INDEX = 3
"""The services chain's development account that announces (not the attestation publisher's)."""
WINDOW_SECONDS = int(POLICY["veto_window_seconds"])


@dataclass(frozen=True)
class WindowStory:
    """The window registry, its publisher and the services node the story drives."""

    publisher: Publisher
    services: EvmNode

    @property
    def window(self) -> ServicesChainWindow:
        return self.publisher.window


def open_window_registry(services: EvmNode, echo: Echo) -> WindowStory:
    """Deploy the window registry on the services chain from its committed artifact."""
    chain = EthChain(services.rpc)
    sender = chain.accounts()[PUBLISHER_ACCOUNT_INDEX]
    registry = deploy_window_registry(chain, sender, sender)
    echo(
        f"   window registry at {registry} on the services chain (chain id {chain.chain_id}); "
        f"announcer {sender}; anyone may submit a veto"
    )
    return WindowStory(Publisher(ServicesChainWindow(chain, registry), sender), services)


def sync_services_clock(story: WindowStory, now: datetime) -> None:
    """Mine a services-chain block at the story's time if that chain is behind it."""
    rpc = story.services.rpc
    latest = int(rpc.call("eth_getBlockByNumber", "latest", False)["timestamp"], 16)
    target = int(now.timestamp())
    if target > latest:
        rpc.call("evm_setNextBlockTimestamp", target)
    rpc.call("evm_mine")


def windowed_spenders(
    reserve: Reserve, story: WindowStory
) -> dict[str, BitcoinSpender | SafeSpender]:
    """``Reserve.spenders`` whose signers read the services chain's window registry."""
    return {
        "BTC": BitcoinSpender(  # services: see H4's spenders.py edit
            reserve.sessions,
            reserve.bitcoin.rpc,
            reserve.btc_vault,
            reserve.institutions,
            fee_rate_sat_vb=FEE_RATE_SAT_VB,
            max_fee_sats=MAX_FEE_SATS,
            on_verified=reserve._verified,
            services=story.window,
        ),
        "ETH": SafeSpender(  # services: see H4's spenders.py edit
            reserve.safes,
            SAFE_VAULT,
            reserve.institutions,
            sessions=reserve.sessions,
            relayer=reserve.relayer,
            policy=SigningPolicy(),
            on_verified=reserve._verified,
            services=story.window,
        ),
    }


def _announce(
    reserve: Reserve, story: WindowStory, view: ProposalView, echo: Echo
) -> AnnouncementRow:
    sync_services_clock(story, reserve.clock())
    with reserve.sessions.begin() as session:
        statement = statements_for(session, view.id)[0].statement
        row = announce(
            session,
            story.publisher,
            view.id,
            SpendAnnouncement.for_statement(statement),
            WINDOW_SECONDS,
        )
    echo(
        f"   announced on the services chain in tx {row.services_tx}: proposal {view.id}, "
        f"{coin_units(view.asset, view.amount)} to {view.destination}, tx {view.tx_hash}; "
        f"window of {human_duration(timedelta(seconds=WINDOW_SECONDS))} until "
        f"{row.opens_at.isoformat()}"
    )
    return row


def _sign(
    reserve: Reserve, wf: Workflow, view: ProposalView, spender: BitcoinSpender | SafeSpender
) -> ProposalView:
    for code, approver in APPROVERS.items():
        words, passphrase = reserve.shares_of(code)
        view = wf.sign(reserve.officers[approver], view.id, spender, words, passphrase)
    return view


def waited_spend(reserve: Reserve, story: WindowStory, payee: str, echo: Echo) -> ProposalView:
    """A large ether spend: announced, refused by the signer inside its window, signed after."""
    wf = reserve.workflow()
    spender = windowed_spenders(reserve, story)["ETH"]
    view = reserve.propose_and_approve(wf, "ETH", LARGE_ETH_WEI, payee)
    echo(f"   proposal {view.id}: {coin_units('ETH', LARGE_ETH_WEI)}, at or above the threshold")
    row = _announce(reserve, story, view, echo)
    reserve.pass_time(timedelta(seconds=WINDOW_SECONDS) + timedelta(hours=1), echo)
    try:
        _sign(reserve, wf, view, spender)
    except WindowOpenError as refused:
        echo(
            "   the treasury's clock says the window is over, but the services chain's does not: "
            f"the signer refuses and signs nothing ({refused})"
        )
    else:
        raise RuntimeError("The signer signed a large spend inside its public window.")
    # The services chain may already be ahead of the story's clock (it is anyone's chain, and
    # a shared devnet may have been moved on): its time must pass the window, not ours alone.
    sync_services_clock(story, max(reserve.clock(), row.opens_at + timedelta(seconds=1)))
    view = _sign(reserve, wf, view, spender)
    echo(
        f"   the services chain's time passed {row.opens_at.isoformat()} with no veto: "
        f"signed by {', '.join(view.signed_by)}"
    )
    view = wf.broadcast(view.id, spender)
    view = wf.refresh(view.id, spender)
    echo(f"   broadcast as {view.txid}; {view.state.value}")
    return view


def vetoed_spend(reserve: Reserve, story: WindowStory, payee: str, echo: Echo) -> ProposalView:
    """A large bitcoin spend: announced, then vetoed on the services chain by the oversight
    officer's own key, and cancelled in the workflow."""
    wf = reserve.workflow()
    view = reserve.propose_and_approve(wf, "BTC", LARGE_BTC_SATS, payee)
    echo(f"   proposal {view.id}: {coin_units('BTC', LARGE_BTC_SATS)}, at or above the threshold")
    _announce(reserve, story, view, echo)
    officer = reserve.officers[OVERSIGHT]
    signed = reserve.officer_keys[OVERSIGHT].sign_statement(
        wf.statement(officer, view.id, StatementKind.VETO)
    )
    with reserve.sessions.begin() as session:
        state = require_roster_state(session)
        veto = relay_veto(
            session,
            story.window,
            story.window.chain.accounts()[PUBLISHER_ACCOUNT_INDEX + 1],
            state,
            signed,
            reserve.clock(),
        )
    echo(
        f"   {OVERSIGHT} vetoes with their own key on the services chain (tx {veto.services_tx}): "
        "every signer reads it there and will never sign this spend"
    )
    view = wf.veto(officer, view.id, "Vetoed on the services chain", signed)
    echo(f"   the workflow records the veto: proposal {view.id} is {view.state.value}")
    return view

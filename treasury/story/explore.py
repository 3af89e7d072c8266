"""The demo left running to explore: ``treasury demo --serve`` (``make demo-serve``).

After the story, the devnets stay up and two spends wait for the officers: a small payment to
approve and a large one that oversight may veto. The API with the officers' console and the
parliament site are served on loopback until Ctrl-C. Each officer who acts gets a login token,
printed once, and the path and passphrase of their key file, so a newcomer can log into the
console and sign an approval in the browser with no other step.

The passphrases printed here are the devnet story's own, drawn at random for this run (see
``officer_keys``); a real officer's passphrase is never shown by any command.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import uvicorn

from reporting.site import PublishedSite, site_server
from treasury.api import create_app
from treasury.authority.statements import coin_units
from treasury.officers import issue_token
from treasury.proposals import ProposalView
from treasury.story.cast import (
    ADMINS,
    APPROVERS,
    DECREE,
    OVERSIGHT,
    PROPOSER,
    SATS_PER_BTC,
    WEI_PER_ETH,
)
from treasury.story.reserve import Reserve
from treasury.story.translated import translate_purpose

Echo = Callable[[str], None]

LOOPBACK = "127.0.0.1"
API_PORT = 8080
"""The API's usual port (``treasury api serve``); a free one is taken when it is busy."""
SITE_PORT = 8081
LOGIN_TTL = timedelta(hours=12)
"""How long the printed logins work: the length of an afternoon spent exploring."""
SMALL_BTC_SPEND = SATS_PER_BTC // 10
LARGE_ETH_SPEND = 6 * WEI_PER_ETH
"""Above the story policy's ETH veto threshold (5 ETH), so oversight may veto it."""
STARTUP_SECONDS = 15.0


@dataclass(frozen=True)
class Login:
    """What one officer needs to act in the console: their token and their key file."""

    officer: str
    role: str
    token: str
    key_file: Path
    passphrase: str

    def __repr__(self) -> str:
        return f"Login(officer={self.officer!r}, role={self.role!r})"


def pending_spends(reserve: Reserve) -> list[ProposalView]:
    """Two prepared spends under the decree, awaiting the officers' decisions: a small BTC
    payment to approve, and a large ETH one inside oversight's veto reach."""
    wf = reserve.workflow()
    proposer = reserve.officers[PROPOSER]
    waiting = []
    for asset, amount, purpose in (
        ("BTC", SMALL_BTC_SPEND, "Medical equipment for the Osh regional hospital"),
        ("ETH", LARGE_ETH_SPEND, "Settlement of the services chain's operating costs"),
    ):
        view = wf.propose(
            proposer,
            asset=asset,
            amount=amount,
            destination=reserve.payees[asset],
            purpose=purpose,
            legal_basis=DECREE,
        )
        with reserve.sessions.begin() as session:
            translate_purpose(session, proposer, reserve.clock, view.id, purpose)
        waiting.append(wf.prepare(proposer, view.id, reserve.spenders()[asset]))
    return waiting


def logins(reserve: Reserve) -> list[Login]:
    """A token (issued by each officer's own institution admin) and the key file of the two
    approvers and the oversight officer."""
    people = [(name, "approver") for name in APPROVERS.values()] + [(OVERSIGHT, "oversight")]
    found = []
    now = reserve.clock()
    with reserve.sessions.begin() as session:
        for name, role in people:
            officer = reserve.officers[name]
            admin = reserve.officers[ADMINS[officer.institution_code]]
            token = issue_token(session, officer.id, actor=admin, now=now, ttl=LOGIN_TTL)
            key = reserve.officer_keys[name]  # approvers and oversight all hold keys
            found.append(
                Login(
                    officer=name,
                    role=role,
                    token=token,
                    key_file=key.key_file.resolve(),
                    passphrase=key.passphrase_file.read_text(encoding="utf-8"),
                )
            )
    return found


def _free_port(preferred: int) -> int:
    """``preferred`` if nothing listens there, else any free loopback port."""
    for port in (preferred, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((LOOPBACK, port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise OSError("No free loopback port for the demo's servers.")


@contextmanager
def _api_server(reserve: Reserve, port: int) -> Iterator[str]:
    """The API (console at /console) over the demo's database and nodes, on the story clock."""
    app = create_app(
        reserve.workflow(), reserve.sessions, spenders=reserve.spenders(), clock=reserve.clock
    )
    server = uvicorn.Server(uvicorn.Config(app, host=LOOPBACK, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="demo-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"The demo's API did not start on {LOOPBACK}:{port}.")
        time.sleep(0.05)
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=STARTUP_SECONDS)


@contextmanager
def _site_server(site: PublishedSite, port: int) -> Iterator[str]:
    server = site_server(site.folder, port)
    thread = threading.Thread(target=server.serve_forever, name="demo-site", daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def explore(
    reserve: Reserve, site: PublishedSite, echo: Echo, *, until: Callable[[], None]
) -> None:
    """Leave spends pending, serve the console and the site, print the logins, and return when
    ``until`` returns (the CLI waits for Ctrl-C)."""
    echo("== 11. Explore: the devnets stay up with two spends waiting for the officers")
    for view in pending_spends(reserve):
        echo(
            f"   proposal {view.id}: {coin_units(view.asset, view.amount)} to "
            f"{view.destination}, {view.state.value}, awaiting two institutions' approvals"
        )
    people = logins(reserve)
    with (
        _api_server(reserve, _free_port(API_PORT)) as api,
        _site_server(site, _free_port(SITE_PORT)) as public,
    ):
        echo(f"   officers' console: {api}/console  (API: {api}/docs)")
        echo(f"   parliament site:   {public}/")
        echo(f"   logins (valid {int(LOGIN_TTL.total_seconds() // 3600)} hours; paste the token "
             "on the console's login page, then sign with the key file and its passphrase):")  # fmt: skip
        for login in people:
            echo(f"   - {login.officer}, {login.role}")
            echo(f"       token:      {login.token}")
            echo(f"       key file:   {login.key_file}")
            echo(f"       passphrase: {login.passphrase}")
        echo(
            "   try: log in as an approver and approve the BTC spend; log in as the other "
            "approver to reach the quorum; log in as oversight and veto the ETH spend"
        )
        echo("   press Ctrl-C to stop the servers and the devnets")
        until()

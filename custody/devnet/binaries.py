"""Find or fetch the node binaries the devnets run on.

A user's own binaries win: an environment variable first, then PATH. Only when neither has one do
we fetch into a private cache (``.nodes/`` beside the project, or ``$TREASURY_NODES_DIR``):

* Bitcoin: Debian's ``bitcoin-knots`` (a Bitcoin Core derivative) from the ``sid`` suite. It needs a
  newer glibc than the host may have, so it runs through sid's own ``ld-linux`` loader and nothing
  is installed into the system.
* Ethereum: ``anvil`` from the npm package ``@foundry-rs/anvil-linux-amd64``.

Every step is idempotent (a ``READY`` marker per tool) and every failure says which step, which
command, and which variable to set instead.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from custody.exceptions import ProvisioningError

BITCOIND_ENV = "BITCOIND"
BITCOIN_CLI_ENV = "BITCOIN_CLI"
ANVIL_ENV = "ANVIL"
NODES_DIR_ENV = "TREASURY_NODES_DIR"

ANVIL_NPM_PACKAGE = "@foundry-rs/anvil-linux-amd64"
ANVIL_VERSION = "1.7.1"

SID_PACKAGES = (
    "bitcoin-knots",
    "libc6",
    "libstdc++6",
    "libgcc-s1",
    "libevent-core-2.1-7t64",
    "libevent-extra-2.1-7t64",
    "libevent-pthreads-2.1-7t64",
    "libzmq5",
    "libsodium26",
    "libpgm-5.3-0t64",
    "libnorm1t64",
)
"""sid packages extracted into the private root: bitcoind plus the libraries the host lacks."""

DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
APT_SOURCES_DIR = Path("/etc/apt/sources.list.d")
APT_SOURCES_LIST = Path("/etc/apt/sources.list")
STEP_TIMEOUT_S = 300.0
"""Upper bound for one provisioning command (an apt update, a download, an npm install)."""
VERSION_TIMEOUT_S = 20.0
"""Upper bound for ``--version`` of a binary we are about to trust."""

Log = Callable[[str], None]


@dataclass(frozen=True)
class Binary:
    """How to run one tool: the argv prefix (a loader may come first) and where it came from."""

    name: str
    argv: tuple[str, ...]
    source: str

    def command(self, *args: str) -> list[str]:
        """The full argv to run this tool with ``args``."""
        return [*self.argv, *args]

    def version(self) -> str:
        """First line of ``--version``; raises ``ProvisioningError`` if the binary is broken."""
        out = _run(
            f"check {self.name}",
            self.command("--version"),
            timeout_s=VERSION_TIMEOUT_S,
            hint=_hint_for(self.name),
        )
        return out.strip().splitlines()[0] if out.strip() else "(no version output)"


@dataclass(frozen=True)
class NodeBinaries:
    """The three tools the devnets need."""

    bitcoind: Binary
    bitcoin_cli: Binary
    anvil: Binary


def project_root() -> Path:
    """The source checkout this package runs from, or the working folder for a plain install."""
    here = Path(__file__).resolve().parents[2]
    return here if (here / "pyproject.toml").is_file() else Path.cwd()


def nodes_dir() -> Path:
    """The ignored cache folder that fetched binaries live in."""
    configured = os.environ.get(NODES_DIR_ENV)
    return Path(configured).resolve() if configured else project_root() / ".nodes"


def _hint_for(name: str) -> str:
    env = {"bitcoind": BITCOIND_ENV, "bitcoin-cli": BITCOIN_CLI_ENV, "anvil": ANVIL_ENV}[name]
    return (
        f"Set {env} to the path of a working {name} (or put one on PATH), "
        f"or delete {nodes_dir()} and run `treasury devnet install` again."
    )


def _run(
    step: str, argv: Sequence[str], *, timeout_s: float, hint: str, cwd: Path | None = None
) -> str:
    """Run one provisioning command; any failure becomes one readable paragraph."""
    shown = " ".join(argv)
    try:
        done = subprocess.run(
            list(argv),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError as exc:
        raise ProvisioningError(
            f"Step '{step}' failed: `{shown}` could not be started ({exc.strerror}). {hint}"
        ) from None
    except subprocess.TimeoutExpired:
        raise ProvisioningError(
            f"Step '{step}' failed: `{shown}` did not finish within {timeout_s:.0f} s. {hint}"
        ) from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise ProvisioningError(
            f"Step '{step}' failed: `{shown}` exited with {done.returncode}: "
            f"{' | '.join(tail) or '(no output)'}. {hint}"
        )
    return done.stdout


def _from_env_or_path(name: str, env: str) -> Binary | None:
    configured = os.environ.get(env)
    if configured:
        path = Path(configured).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ProvisioningError(
                f"{env} is set to {configured!r}, which is not an executable file. "
                f"Point {env} at a working {name}, or unset it to use PATH or the fetched copy."
            )
        return Binary(name, (str(path),), f"${env}")
    found = shutil.which(name)
    return Binary(name, (found,), "PATH") if found else None


# --- Bitcoin: bitcoin-knots from Debian sid, run through sid's own loader --------------------


def _knots_root() -> Path:
    return nodes_dir() / "bitcoin-knots" / "root"


def _knots_binary(name: str) -> Binary:
    root = _knots_root()
    libdir = root / "usr/lib/x86_64-linux-gnu"
    loader = libdir / "ld-linux-x86-64.so.2"
    library_path = f"{libdir}:/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu"
    argv = (str(loader), "--library-path", library_path, str(root / "usr/bin" / name))
    return Binary(name, argv, f"Debian sid bitcoin-knots in {root.parent}")


def debian_archive_uri() -> str:
    """The Debian archive URI this machine's own apt sources use (never a hard-coded mirror)."""
    texts = [p.read_text() for p in sorted(APT_SOURCES_DIR.glob("*.sources"))]
    texts += [p.read_text() for p in sorted(APT_SOURCES_DIR.glob("*.list"))]
    if APT_SOURCES_LIST.is_file():
        texts.append(APT_SOURCES_LIST.read_text())
    for text in texts:
        for line in text.splitlines():
            line = line.strip()
            deb822 = re.match(r"URIs:\s*(\S+)", line)
            one_line = re.match(r"deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+\S+", line)
            match = deb822 or one_line
            if match and match.group(1).rstrip("/").endswith("/debian"):
                return match.group(1)
    raise ProvisioningError(
        "Step 'find the Debian archive' failed: no apt source on this machine points at a Debian "
        f"archive (looked in {APT_SOURCES_DIR} and {APT_SOURCES_LIST}). "
        f"Install Bitcoin Core yourself and set {BITCOIND_ENV} and {BITCOIN_CLI_ENV}."
    )


def fetch_bitcoin_knots(log: Log) -> None:
    """Download bitcoin-knots and its libraries from sid and extract them into the cache."""
    hint = (
        f"Install Bitcoin Core yourself and set {BITCOIND_ENV} and {BITCOIN_CLI_ENV} "
        "(or put bitcoind and bitcoin-cli on PATH)."
    )
    if platform.system() != "Linux" or platform.machine() not in {"x86_64", "AMD64"}:
        raise ProvisioningError(
            f"Step 'fetch bitcoin-knots' needs Linux on x86_64, not "
            f"{platform.system()} {platform.machine()}. {hint}"
        )
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise ProvisioningError(
                f"Step 'fetch bitcoin-knots' needs `{tool}`, which is not on PATH "
                f"(this fetch works on Debian-based machines only). {hint}"
            )
    base = nodes_dir() / "bitcoin-knots"
    apt_dir, debs, root = base / "apt", base / "debs", _knots_root()
    for folder in (apt_dir / "lists/partial", apt_dir / "cache/archives/partial", debs):
        folder.mkdir(parents=True, exist_ok=True)
    (apt_dir / "sid.sources").write_text(
        "Types: deb\n"
        f"URIs: {debian_archive_uri()}\n"
        "Suites: sid\n"
        "Components: main\n"
        f"Signed-By: {DEBIAN_KEYRING}\n"
    )
    apt = [
        "apt-get",
        "-q",
        "-o", "Dir::Etc::sourcelist=/dev/null",
        "-o", f"Dir::Etc::sourceparts={apt_dir}",
        "-o", f"Dir::State::Lists={apt_dir / 'lists'}",
        "-o", f"Dir::Cache={apt_dir / 'cache'}",
        "-o", "APT::Sandbox::User=root",
    ]  # fmt: skip
    log("bitcoin: reading the Debian sid package index (private apt folder, system untouched)")
    _run("apt update (sid index)", [*apt, "update"], timeout_s=STEP_TIMEOUT_S, hint=hint)
    log(f"bitcoin: downloading {len(SID_PACKAGES)} packages from sid")
    for old in debs.glob("*.deb"):
        old.unlink()
    _run(
        "apt download",
        [*apt, "download", *SID_PACKAGES],
        timeout_s=STEP_TIMEOUT_S,
        hint=hint,
        cwd=debs,
    )
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    log("bitcoin: extracting packages")
    for deb in sorted(debs.glob("*.deb")):
        _run(
            f"extract {deb.name}",
            ["dpkg-deb", "-x", str(deb), str(root)],
            timeout_s=STEP_TIMEOUT_S,
            hint=hint,
        )
    bitcoind = _knots_binary("bitcoind")
    listing = _run(
        "check shared libraries",
        [bitcoind.argv[0], "--library-path", bitcoind.argv[2], "--list", bitcoind.argv[3]],
        timeout_s=VERSION_TIMEOUT_S,
        hint=hint,
    )
    missing = sorted({line.split()[0] for line in listing.splitlines() if "not found" in line})
    if missing:
        raise ProvisioningError(
            f"Step 'check shared libraries' failed: bitcoind from sid still lacks {', '.join(missing)}; "
            f"sid's package names may have changed (update SID_PACKAGES in {__name__}). {hint}"
        )


def _cached(
    marker: Path, make: Callable[[], Binary], fetch: Callable[[], None], log: Log
) -> Binary:
    """Reuse the cached copy when its marker exists and it still runs; otherwise fetch it again."""
    if marker.is_file():
        binary = make()
        try:
            binary.version()
            return binary
        except ProvisioningError:
            log(f"{binary.name}: cached copy is broken, fetching it again")
            marker.unlink()
    fetch()
    binary = make()
    marker.write_text(binary.version() + "\n")
    return binary


def find_bitcoin(*, install: bool, log: Log = lambda _msg: None) -> tuple[Binary, Binary]:
    """bitcoind and bitcoin-cli: env vars, then PATH, then the cache (fetched if ``install``)."""
    daemon = _from_env_or_path("bitcoind", BITCOIND_ENV)
    cli = _from_env_or_path("bitcoin-cli", BITCOIN_CLI_ENV)
    if daemon and cli:
        return daemon, cli
    if daemon or cli:
        have, lack = ("bitcoind", "bitcoin-cli") if daemon else ("bitcoin-cli", "bitcoind")
        raise ProvisioningError(
            f"Found {have} but not {lack}. Set both {BITCOIND_ENV} and {BITCOIN_CLI_ENV} "
            "to one Bitcoin Core installation, or neither to use the fetched bitcoin-knots."
        )
    marker = nodes_dir() / "bitcoin-knots" / "READY"
    if not install and not marker.is_file():
        raise ProvisioningError(
            f"No bitcoind found: ${BITCOIND_ENV} is unset, none is on PATH, and {marker.parent} "
            "holds no fetched copy. Run `treasury devnet install` (or `make nodes`), "
            f"or set {BITCOIND_ENV} and {BITCOIN_CLI_ENV}."
        )
    daemon = _cached(
        marker, lambda: _knots_binary("bitcoind"), lambda: fetch_bitcoin_knots(log), log
    )
    return daemon, _knots_binary("bitcoin-cli")


# --- Ethereum: anvil from npm ------------------------------------------------------------------


def _anvil_dir() -> Path:
    return nodes_dir() / "anvil"


def _anvil_binary() -> Binary:
    path = _anvil_dir() / "node_modules" / ANVIL_NPM_PACKAGE / "bin" / "anvil"
    return Binary(
        "anvil", (str(path),), f"npm {ANVIL_NPM_PACKAGE}@{ANVIL_VERSION} in {_anvil_dir()}"
    )


def fetch_anvil(log: Log) -> None:
    """Install the anvil npm package into the private cache folder."""
    hint = f"Install Foundry's anvil yourself and set {ANVIL_ENV} (or put anvil on PATH)."
    if shutil.which("npm") is None:
        raise ProvisioningError(f"Step 'fetch anvil' needs `npm`, which is not on PATH. {hint}")
    folder = _anvil_dir()
    folder.mkdir(parents=True, exist_ok=True)
    log(f"anvil: installing {ANVIL_NPM_PACKAGE}@{ANVIL_VERSION} from npm")
    _run(
        "npm install anvil",
        ["npm", "install", "--prefix", str(folder), "--no-audit", "--no-fund", "--no-save",
         f"{ANVIL_NPM_PACKAGE}@{ANVIL_VERSION}"],
        timeout_s=STEP_TIMEOUT_S,
        hint=hint,
    )  # fmt: skip


def find_anvil(*, install: bool, log: Log = lambda _msg: None) -> Binary:
    """anvil: the env var, then PATH, then the cache (fetched if ``install``)."""
    found = _from_env_or_path("anvil", ANVIL_ENV)
    if found:
        return found
    marker = _anvil_dir() / "READY"
    if not install and not marker.is_file():
        raise ProvisioningError(
            f"No anvil found: ${ANVIL_ENV} is unset, none is on PATH, and {marker.parent} holds no "
            f"fetched copy. Run `treasury devnet install` (or `make nodes`), or set {ANVIL_ENV}."
        )
    return _cached(marker, _anvil_binary, lambda: fetch_anvil(log), log)


def find_binaries(*, install: bool = False, log: Log = lambda _msg: None) -> NodeBinaries:
    """All node binaries, fetching the missing ones into the cache when ``install`` is true."""
    bitcoind, bitcoin_cli = find_bitcoin(install=install, log=log)
    return NodeBinaries(bitcoind, bitcoin_cli, find_anvil(install=install, log=log))

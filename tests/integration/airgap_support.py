"""Test support for air-gapped signing: an offline signer's virtualenv, and a coordinator that
provably never touches a share.

``OfflineSigner`` is a fresh ``python -m venv`` whose only path to our code is a ``.pth`` naming a
folder that holds ``custody`` alone (a symlink) and the third-party libraries; ``import treasury``
fails in it. Its ``sitecustomize`` makes every socket connection raise, and where the kernel lets
us, the command also runs in a new network namespace (``unshare -n``): no loopback to any node.

``ShareGuard`` watches the coordinator (this test process): an audit hook records every ``open``
of a share file, and the functions that read share files or recombine shares are replaced by ones
that count and raise. A test runs the coordinator's commands inside ``guard.watching()`` and then
asserts that nothing was opened or called.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import custody

SITECUSTOMIZE = '''"""The offline signer's machine has no network: every connection attempt fails."""
import socket


def _no_network(*args, **kwargs):
    raise OSError("network disabled: this is the offline signer")


socket.socket.connect = _no_network
socket.socket.connect_ex = _no_network
socket.create_connection = _no_network
'''


def _unshare_works() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    return subprocess.run([unshare, "-n", "true"], capture_output=True, check=False).returncode == 0


@dataclass(frozen=True)
class OfflineSigner:
    """``python`` of the offline virtualenv, run in an empty folder without network."""

    python: Path
    workdir: Path
    isolate: bool

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``python *args`` offline; ``check`` asserts a zero exit status."""
        argv = [str(self.python), *args]
        if self.isolate:
            argv = ["unshare", "-n", *argv]
        env = {"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8", "HOME": str(self.workdir)}
        done = subprocess.run(
            argv, cwd=self.workdir, env=env, capture_output=True, text=True, check=False
        )
        if check:
            assert done.returncode == 0, done.stderr
        return done

    def sign(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``custody-sign *args`` (as ``python -m custody.airgap``)."""
        return self.run("-m", "custody.airgap", *args, check=check)


def make_offline_signer(root: Path) -> OfflineSigner:
    """A virtualenv with custody and its libraries but no treasury, and no network."""
    env_dir, packages, workdir = root / "venv", root / "packages", root / "work"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(env_dir)
    packages.mkdir()
    workdir.mkdir()
    (packages / "custody").symlink_to(Path(custody.__file__).parent, target_is_directory=True)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    # Only custody, then the libraries (a plain path: the editable installs' .pth finders in it
    # are not run, so neither treasury nor the project root become importable).
    third_party = sysconfig.get_paths()["purelib"]
    (Path(site) / "offline.pth").write_text(f"{packages}\n{third_party}\n", encoding="utf-8")
    (Path(site) / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    assert sys.prefix != str(env_dir)
    return OfflineSigner(python, workdir, _unshare_works())


@dataclass
class ShareGuard:
    """Records every share file opened and every share recombination in this process."""

    share_files: set[str] = field(default_factory=set)
    opened: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    active: bool = False

    def audit(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.active or event != "open" or not args:
            return
        path = args[0]
        if isinstance(path, (str, bytes, os.PathLike)):
            resolved = os.path.realpath(os.fsdecode(path))
            if resolved in self.share_files:
                self.opened.append(resolved)

    def _refuse(self, name: str) -> Any:
        def refused(*args: object, **kwargs: object) -> None:
            self.calls.append(name)
            raise AssertionError(f"the coordinator called {name}: it must never handle a share")

        return refused

    @contextlib.contextmanager
    def watching(self, monkeypatch: pytest.MonkeyPatch, share_files: list[Path]) -> Iterator[None]:
        """Inside: share reading and recombining raise (and are counted); opens are recorded."""
        self.share_files |= {os.path.realpath(p) for p in share_files}
        with monkeypatch.context() as patch:
            for target in (
                "custody.shamir.combine_shares",
                "custody.shamir._recover",
                "custody.bitcoin.spend.combine_shares",
                "custody.ethereum.signer.combine_shares",
                "treasury.spenders.combine_shares",
                "custody.ceremony.read_share_file",
                "treasury.cli.share_input.read_share_file",
            ):
                patch.setattr(target, self._refuse(target))
            self.active = True
            try:
                yield
            finally:
                self.active = False


_GUARD = ShareGuard()
sys.addaudithook(_GUARD.audit)  # audit hooks cannot be removed: one per process, switched on/off


def share_guard() -> ShareGuard:
    """The process's one guard (cleared)."""
    _GUARD.opened.clear()
    _GUARD.calls.clear()
    return _GUARD

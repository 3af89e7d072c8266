"""What the commands of one ``treasury`` run share: its settings, read once, and its error line.

The root command (``treasury.cli``) makes an ``Invocation`` the typer context object and the
current one for the run (``running``), so helpers deep in a command find it without a context
argument. The settings are read from the environment the first time a command asks for them
(so ``--help`` works whatever the environment holds) and then kept for the rest of the run.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import typer
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from treasury.db import make_engine, session_factory
from treasury.exceptions import DatabaseConfigError
from treasury.settings import Settings, SettingsError

SETTINGS_EXIT_CODE = 2
"""Exit code when a setting cannot be used: the command could not run at all."""


@dataclass(frozen=True)
class Invocation:
    """One run of ``treasury``: the environment it started with and the log level asked for."""

    environ: Mapping[str, str]
    log_level: int = logging.WARNING

    @classmethod
    def now(cls, log_level: int = logging.WARNING) -> Invocation:
        """An invocation over this process's environment as it is now."""
        return cls(dict(os.environ), log_level)

    @cached_property
    def settings(self) -> Settings:
        """The settings, read from ``environ`` on first use."""
        return Settings.from_env(self.environ)


def fail(message: object, code: int = 1) -> typer.Exit:
    """Print a one-line error and return the Exit to raise."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=code)


_current: ContextVar[Invocation | None] = ContextVar("treasury_cli_invocation", default=None)


@contextlib.contextmanager
def running() -> Iterator[None]:
    """Scope one run of the root command: ``start`` inside it sets its invocation."""
    token = _current.set(None)
    try:
        yield
    finally:
        _current.reset(token)


def start(ctx: typer.Context, log_level: int) -> Invocation:
    """Begin a run: its invocation becomes the typer context object and the current one."""
    begun = Invocation.now(log_level)
    ctx.obj = begun
    _current.set(begun)
    return begun


def invocation() -> Invocation:
    """The running command's invocation; outside a run of the root command (a sub-command group
    or a helper called on its own), a fresh one over the environment as it is now."""
    current = _current.get()
    return Invocation.now() if current is None else current


def settings() -> Settings:
    """The settings of this run; a setting that cannot be used ends it with one error line."""
    try:
        return invocation().settings
    except (SettingsError, DatabaseConfigError) as exc:
        raise fail(exc, SETTINGS_EXIT_CODE) from None


__all__ = [
    "SETTINGS_EXIT_CODE",
    "Invocation",
    "fail",
    "invocation",
    "key_passphrase",
    "running",
    "settings",
    "start",
]


@contextlib.contextmanager
def committed_session() -> Iterator[Session]:
    """A session on the configured database that commits on success; database errors are one
    line (custody's and the treasury's own errors are printed by the root command)."""
    engine = make_engine(settings().database_url)
    try:
        with session_factory(engine)() as session, session.begin():
            yield session
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise fail(
            f"the database refused the operation ({reason}); is its schema current "
            "(`treasury db upgrade`)?"
        ) from None
    finally:
        engine.dispose()


def key_passphrase(path: Path | None) -> str:
    """An officer key file's passphrase: from its file (one line), else prompted without echo."""
    if path is not None:
        try:
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise fail(f"cannot read the passphrase file {path}: {exc.strerror}.") from None
    return str(typer.prompt("Passphrase of your officer key file", hide_input=True))

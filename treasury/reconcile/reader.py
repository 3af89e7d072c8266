"""What the Bitcoin and Ethereum readers share: the node, the confirmation depth, what is left
to read, and how a node that does not answer is told from one that answers with an error.

Both read a vault up to the confirmed height (tip minus ``min_confirmations`` plus one), from
where the cursor says to resume; when nothing new is confirmed the read is an empty observation
that still carries the reorg finding, so orphaned bookings are reversed even on a quiet chain.
The chain reads themselves are custody's (``custody.bitcoin.observe``, ``custody.ethereum``);
a node that did not answer becomes a ``NodeUnavailableError`` (the run retries it later).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import ClassVar, Generic, Protocol, TypeVar

from custody.exceptions import RPCError
from treasury.reconcile.cursor import Resume, resume_point
from treasury.reconcile.errors import NodeUnavailableError, ReconcileError
from treasury.reconcile.observation import (
    BlockRef,
    BookedState,
    Observation,
    Progress,
    no_progress,
)


class NodeClient(Protocol):
    """An RPC client of one node: the readers name its URL when it does not answer."""

    @property
    def url(self) -> str: ...


Client = TypeVar("Client", bound=NodeClient)


@dataclass(frozen=True)
class ChainNode:
    """What sets one chain's reader apart from another's."""

    chain: str
    """The chain named in the reader's observations."""
    node: str
    """How errors name the node (``bitcoind``, ``The EVM node``)."""
    default_min_confirmations: int
    unreachable: Callable[[RPCError], bool]
    """Whether an RPC error means the node did not answer (rather than answered with an error)."""


class ConfirmedReader(ABC, Generic[Client]):
    """A chain reader that books only blocks with ``min_confirmations`` (at least 1)."""

    kind: ClassVar[ChainNode]

    def __init__(
        self,
        rpc: Client,
        *,
        min_confirmations: int | None = None,
        progress: Progress = no_progress,
    ) -> None:
        if min_confirmations is None:
            min_confirmations = self.kind.default_min_confirmations
        if min_confirmations < 1:
            raise ReconcileError("The min_confirmations setting must be at least 1.")
        self._rpc = rpc
        self._min_conf = min_confirmations
        self._progress = progress

    @property
    def chain(self) -> str:
        """The chain named in this reader's observations."""
        return self.kind.chain

    @property
    def min_confirmations(self) -> int:
        """Blocks a movement must be deep before it is booked."""
        return self._min_conf

    def answering(self) -> AbstractContextManager[None]:
        """``_node_answers`` for readers of the same node outside this class (the relayer's)."""
        return self._node_answers()

    @contextmanager
    def _node_answers(self) -> Iterator[None]:
        """Turn an RPC error of a node that did not answer into ``NodeUnavailableError``."""
        try:
            yield
        except RPCError as exc:
            if self.kind.unreachable(exc):
                raise NodeUnavailableError(
                    f"{self.kind.node} at {self._rpc.url} did not answer {exc.method}: {exc}"
                ) from None
            raise

    @abstractmethod
    def _canonical(self, height: int) -> str | None:
        """The best chain's block hash at ``height`` (``None`` above the tip)."""

    def _window(self, state: BookedState, tip: int) -> tuple[int, Resume]:
        """The confirmed height to read up to, and where reading resumes below it."""
        height = tip - self._min_conf + 1
        return height, resume_point(state.cursor, state.booked_blocks, self._canonical)

    def _nothing_new(self, scope: str, height: int, resume: Resume) -> Observation | None:
        """An empty observation at the resume block if no block above it is confirmed yet."""
        if height >= 0 and (resume.start is None or resume.start.height < height):
            return None
        target = resume.start or BlockRef(-1, "")
        return Observation(scope, self.chain, target, resume.orphaned_above, (), (), ())

"""A buffer for key material that can be wiped and never prints itself.

Python cannot promise that no copy survives (``bytes`` objects handed to libraries are immutable
and collected when the interpreter pleases), so this is defence in depth: our own buffer is zeroed
as soon as the signing call ends, and no repr, str, log line or pickle can carry it.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

from custody.exceptions import SecretWipedError


class SecretBytes:
    """Seed or private-key bytes: ``reveal()`` for the one call that needs them, then ``wipe()``."""

    __slots__ = ("_buffer", "_wiped")

    def __init__(self, data: bytes | bytearray) -> None:
        self._buffer = bytearray(data)
        self._wiped = False

    def reveal(self) -> bytes:
        """The secret bytes; raises ``SecretWipedError`` once wiped."""
        if self._wiped:
            raise SecretWipedError("This secret was wiped after use; recombine the shares again.")
        return bytes(self._buffer)

    def wipe(self) -> None:
        """Overwrite the buffer with zeros; further ``reveal()`` calls fail."""
        for i in range(len(self._buffer)):
            self._buffer[i] = 0
        self._wiped = True

    @property
    def wiped(self) -> bool:
        return self._wiped

    def __len__(self) -> int:
        return len(self._buffer)

    def __repr__(self) -> str:
        state = "wiped" if self._wiped else "redacted"
        return f"SecretBytes(<{len(self._buffer)} bytes, {state}>)"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("Secrets are not picklable: they must not leave this process.")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.wipe()

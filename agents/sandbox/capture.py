"""Bounded capture of a command's output: keep the head and the tail, count what was dropped."""

from __future__ import annotations

import asyncio

_READ_CHUNK = 65_536


class BoundedOutput:
    """Keeps at most `limit` bytes: the first half and the last half of everything fed to it.

    Memory stays bounded however much a command prints, and the start (where a command says what it
    is doing) and the end (where errors and summaries land) both survive.
    """

    def __init__(self, limit: int) -> None:
        if limit < 2:
            raise ValueError("output limit must be at least 2 bytes")
        self._head_limit = limit // 2
        self._tail_limit = limit - self._head_limit
        self._head = bytearray()
        self._tail = bytearray()
        self._total = 0

    def feed(self, data: bytes) -> None:
        self._total += len(data)
        room = self._head_limit - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if data:
            self._tail += data
            if len(self._tail) > self._tail_limit:
                del self._tail[: len(self._tail) - self._tail_limit]

    @property
    def truncated(self) -> bool:
        return self._total > len(self._head) + len(self._tail)

    def text(self) -> str:
        if not self.truncated:
            return (bytes(self._head) + bytes(self._tail)).decode("utf-8", errors="replace")
        omitted = self._total - len(self._head) - len(self._tail)
        return (
            bytes(self._head).decode("utf-8", errors="replace")
            + f"\n[... {omitted} bytes of output omitted ...]\n"
            + bytes(self._tail).decode("utf-8", errors="replace")
        )


async def pump(stream: asyncio.StreamReader, sink: BoundedOutput) -> None:
    while chunk := await stream.read(_READ_CHUNK):
        sink.feed(chunk)

"""Raw delivery bodies kept on disk for a while, so a delivery can be replayed.

The database keeps only a digest of each payload (payloads run to 25 MB and are rarely read
again). Bodies are appended byte for byte to one segment file per UTC day,
``<root>/<YYYY-MM-DD>.deliveries``, each record a header line ``<delivery id> <event>
<length>`` followed by the body and a newline. Appending costs a tenth of creating a file per
delivery, a busy installation does not fill a directory with inodes, and pruning deletes
whole days: it runs when a process starts writing a new day's segment.

Each record is one ``write`` on a file opened with ``O_APPEND``, so several server processes
can append to the same segment without interleaving records.
"""

from __future__ import annotations

import os
import time
import weakref
from datetime import UTC, datetime, timedelta
from pathlib import Path

DEFAULT_KEEP_DAYS = 14
SUFFIX = ".deliveries"


class PayloadArchive:
    def __init__(self, root: Path, *, keep_days: int = DEFAULT_KEEP_DAYS) -> None:
        self.root = root
        self.keep_days = keep_days
        # The open segment: its fd and the day span it covers. Kept open because opening a
        # file per delivery costs more than the write itself.
        self._fd = _OpenSegment()
        self._day_span = (0.0, 0.0)
        self._finalizer = weakref.finalize(self, self._fd.close)

    def segment(self, day: str) -> Path:
        return self.root / f"{day}{SUFFIX}"

    def save(self, delivery_id: str, event: str, body: bytes, *, now: float | None = None) -> None:
        """Append the body; ``delivery_id`` and ``event`` must not contain spaces."""
        timestamp = time.time() if now is None else now
        start, end = self._day_span
        if not start <= timestamp < end:
            self._open_day(timestamp)
        header = f"{delivery_id} {event} {len(body)}\n".encode()
        os.write(self._fd.fd, header + body + b"\n")

    def close(self) -> None:
        self._fd.close()
        self._day_span = (0.0, 0.0)

    def load(self, delivery_id: str) -> bytes | None:
        """The body archived for ``delivery_id`` (newest days first), or None."""
        for segment in sorted(self._segments(), reverse=True):
            body = _find(segment, delivery_id)
            if body is not None:
                return body
        return None

    def prune(self, *, now: float | None = None) -> int:
        """Delete segments older than ``keep_days``; returns how many were deleted."""
        oldest_kept = _day((time.time() if now is None else now) - self.keep_days * 86400)
        removed = 0
        for segment in self._segments():
            if segment.name.removesuffix(SUFFIX) < oldest_kept:
                segment.unlink(missing_ok=True)
                removed += 1
        return removed

    def _open_day(self, timestamp: float) -> None:
        self._fd.close()
        self.root.mkdir(parents=True, exist_ok=True)
        self.prune(now=timestamp)
        day_start = timestamp - timestamp % 86400
        # Payloads can quote private repositories: readable by the bot's user only.
        self._fd.fd = os.open(
            self.segment(_day(timestamp)), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600
        )
        self._day_span = (day_start, day_start + 86400)

    def _segments(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return [path for path in self.root.iterdir() if path.name.endswith(SUFFIX)]


class _OpenSegment:
    """Holds the fd apart from the archive so the finalizer does not keep the archive alive."""

    def __init__(self) -> None:
        self.fd = -1

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _day(timestamp: float) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=timestamp)).strftime("%Y-%m-%d")


def _find(segment: Path, delivery_id: str) -> bytes | None:
    wanted = delivery_id.encode()
    with segment.open("rb") as stream:
        for header in iter(stream.readline, b""):
            parts = header.split()
            if len(parts) != 3 or not parts[2].isdigit():
                return None  # a torn tail (crash mid-write): nothing after it is readable
            length = int(parts[2])
            if parts[0] == wanted:
                body = stream.read(length)
                return body if len(body) == length else None
            stream.seek(length + 1, os.SEEK_CUR)
    return None

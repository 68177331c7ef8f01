"""Raw delivery bodies kept on disk for a while, so a delivery can be replayed.

The database keeps only a digest of each payload (payloads run to 25 MB and are mostly
unused); the body is written once, byte for byte, to ``<root>/<delivery_id>.json`` and
pruned after ``keep_days``. Pruning runs in a thread at most once per ``prune_every_s``,
started by a write, so the archive needs no scheduler.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_KEEP_DAYS = 14


class PayloadArchive:
    def __init__(
        self, root: Path, *, keep_days: float = DEFAULT_KEEP_DAYS, prune_every_s: float = 3600
    ) -> None:
        self.root = root
        self.keep_s = keep_days * 86400
        self.prune_every_s = prune_every_s
        self._next_prune = 0.0
        self._pruning: asyncio.Task[int] | None = None

    def path_for(self, delivery_id: str) -> Path:
        # Delivery ids are checked against a strict pattern before they get here.
        return self.root / f"{delivery_id}.json"

    def save(self, delivery_id: str, body: bytes) -> None:
        """Write the body; called only by the request that recorded the delivery."""
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.path_for(delivery_id)
        partial = target.with_suffix(".part")
        partial.write_bytes(body)
        os.replace(partial, target)
        self._maybe_prune()

    def load(self, delivery_id: str) -> bytes | None:
        try:
            return self.path_for(delivery_id).read_bytes()
        except FileNotFoundError:
            return None

    def prune(self, *, now: float | None = None) -> int:
        """Delete bodies older than ``keep_days``; returns how many were deleted."""
        cutoff = (time.time() if now is None else now) - self.keep_s
        removed = 0
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return 0
        for entry in entries:
            try:
                if entry.is_file() and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    def _maybe_prune(self) -> None:
        now = time.monotonic()
        if now < self._next_prune or (self._pruning is not None and not self._pruning.done()):
            return
        self._next_prune = now + self.prune_every_s
        self._pruning = asyncio.get_running_loop().create_task(asyncio.to_thread(self.prune))
        self._pruning.add_done_callback(_log_prune)


def _log_prune(task: asyncio.Task[int]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.warning("pruning archived webhook payloads failed: %s", error)
    elif task.result():
        log.info("pruned %d archived webhook payloads", task.result())

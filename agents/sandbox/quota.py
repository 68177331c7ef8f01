"""Disk quotas for a workspace and for each command run in it.

No filesystem quota is available to an unprivileged bot on an ordinary disk, so the workspace is
measured while a command runs and the command is stopped once it passes either limit: the
workspace's total size, or what this one command has added. Between two measurements a command
can write at most the file-size limit per file (RLIMIT_FSIZE, set to the command quota) times the
files it opens, so the overshoot is bounded by the poll interval, which adapts to the tree's size.
`/tmp` inside the sandbox is a tmpfs with a size of its own.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path

_MB = 1024 * 1024
_MIN_INTERVAL_S = 0.2
_MAX_INTERVAL_S = 5.0


@dataclass(frozen=True, slots=True)
class DiskQuota:
    workspace_mb: int = 4096
    command_mb: int = 2048

    def __post_init__(self) -> None:
        if self.workspace_mb < 1 or self.command_mb < 1:
            raise ValueError("disk quotas must be at least 1 MB")


def disk_usage(tree: Path) -> int:
    """Bytes the tree occupies on disk (allocated blocks, so sparse files count as what they use)."""
    total = 0
    for directory, dirnames, filenames in os.walk(tree):
        for name in (*dirnames, *filenames):
            try:
                total += os.lstat(os.path.join(directory, name)).st_blocks * 512
            except FileNotFoundError:
                continue  # removed while we count
    return total


class QuotaWatch:
    """Measure `tree` (and the package cache, if any) until cancelled; `exceeded` says which
    quota a command passed, if any."""

    def __init__(
        self,
        tree: Path,
        quota: DiskQuota,
        *,
        cache: Path | None = None,
        cache_mb: int = 4096,
    ) -> None:
        self.tree = tree
        self.quota = quota
        self.cache = cache
        self.cache_mb = cache_mb
        self.exceeded: str | None = None
        self._start = 0

    async def baseline(self) -> None:
        used, cached = await asyncio.to_thread(self._measure)
        self._start = used + cached

    async def run(self) -> None:
        """Returns as soon as a quota is passed (the caller then stops the command)."""
        while True:
            started = time.monotonic()
            used, cached = await asyncio.to_thread(self._measure)
            spent = time.monotonic() - started
            message = self.check(used, cached)
            if message is not None:
                self.exceeded = message
                return
            await asyncio.sleep(min(_MAX_INTERVAL_S, max(_MIN_INTERVAL_S, 2 * spent)))

    def _measure(self) -> tuple[int, int]:
        return disk_usage(self.tree), disk_usage(self.cache) if self.cache is not None else 0

    def check(self, used: int, cached: int = 0) -> str | None:
        if cached > self.cache_mb * _MB:
            return (
                f"disk quota exceeded: the package cache grew to {cached // _MB:,} MB, over its "
                f"quota of {self.cache_mb:,} MB; the command was stopped"
            )
        if used > self.quota.workspace_mb * _MB:
            return (
                f"disk quota exceeded: the workspace grew to {used // _MB:,} MB, over its quota of "
                f"{self.quota.workspace_mb:,} MB; the command was stopped"
            )
        added = used + cached - self._start
        if added > self.quota.command_mb * _MB:
            return (
                f"disk quota exceeded: the command wrote {added // _MB:,} MB, over the "
                f"{self.quota.command_mb:,} MB one command may write; it was stopped"
            )
        return None

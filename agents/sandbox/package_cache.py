"""A package cache per repository, so setup steps after the first download almost nothing.

Each repository (per installation) gets a cache directory of its own on the bot's disk, mounted
writable at CACHE_MOUNT in every sandbox of that repository, and the package managers are
pointed at it through their usual variables. It is never shared between repositories: what one
repository's setup steps leave there (repository content, so untrusted) is only ever read by
that same repository's later commands. Its size is bounded like the work tree's.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

CACHE_MOUNT = Path("/var/cache/factory")

# Where each tool keeps its downloads, under the mount.
CACHE_ENV: dict[str, str] = {
    "PIP_CACHE_DIR": f"{CACHE_MOUNT}/pip",
    "UV_CACHE_DIR": f"{CACHE_MOUNT}/uv",
    "npm_config_cache": f"{CACHE_MOUNT}/npm",
    "YARN_CACHE_FOLDER": f"{CACHE_MOUNT}/yarn",
    "GOMODCACHE": f"{CACHE_MOUNT}/go/mod",
    "GOCACHE": f"{CACHE_MOUNT}/go/build",
    "CARGO_HOME": f"{CACHE_MOUNT}/cargo",
    "XDG_CACHE_HOME": f"{CACHE_MOUNT}/xdg",
}


@dataclass(frozen=True, slots=True)
class PackageCache:
    """One repository's cache directory on the host, and how large it may grow."""

    path: Path
    limit_mb: int = 4096

    @classmethod
    def for_repository(cls, root: Path, key: str, limit_mb: int = 4096) -> PackageCache:
        """The cache of `key` (installation and repository) under `root`, created if missing."""
        digest = hashlib.sha256(key.encode()).hexdigest()[:24]
        path = root / digest
        path.mkdir(parents=True, exist_ok=True)
        return cls(path.resolve(), limit_mb)

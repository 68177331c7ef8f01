"""Who a sandboxed command runs as: never root.

A command running as root, even without capabilities, still owns every root-owned file its
mounts show (a 0600 key is readable by its owner), and the kernel does not enforce the process
limit for root. So when the bot itself runs as root, each workspace gets an unprivileged user id
of its own, picked from a range by the workspace's path; its files are handed to that id before
each command. When the bot runs as an ordinary user, commands run as that user.

A uid per workspace, rather than one shared `nobody`, keeps the process limit per workspace: one
run's fork bomb cannot starve another run's commands of processes.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_UID_BASE = 200_000
DEFAULT_UID_COUNT = 50_000


@dataclass(frozen=True, slots=True)
class UidRange:
    base: int = DEFAULT_UID_BASE
    count: int = DEFAULT_UID_COUNT

    def __post_init__(self) -> None:
        if self.base < 1000 or self.count < 1:
            raise ValueError("the sandbox uid range must start at 1000 or above and be non-empty")

    def for_workspace(self, work_tree: Path) -> int:
        """A stable uid for one workspace, so every command in it owns the same files."""
        return self.for_key(str(work_tree.resolve()))

    def for_key(self, key: str) -> int:
        """A stable uid for anything else that owns files across workspaces (a repository, whose
        package cache every one of its workspaces writes to)."""
        digest = hashlib.sha256(key.encode()).digest()
        return self.base + int.from_bytes(digest[:8], "big") % self.count


def bot_is_root() -> bool:
    return os.geteuid() == 0


def hand_over(tree: Path, uid: int) -> int:
    """Give every entry under `tree` (and `tree` itself) to `uid`; returns how many changed.

    Only entries not already owned by `uid` are touched, so after the first command this is a walk
    with one lstat per file. Symlinks are changed themselves (lchown), never their targets.
    """
    changed = 0
    for directory, dirnames, filenames in os.walk(tree):
        for name in (*dirnames, *filenames):
            changed += _chown(Path(directory, name), uid)
    return changed + _chown(tree, uid)


def _chown(path: Path, uid: int) -> int:
    try:
        if path.lstat().st_uid == uid:
            return 0
        os.lchown(path, uid, uid)
    except FileNotFoundError:
        return 0
    return 1

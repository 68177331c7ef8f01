"""What a sandboxed command may see of the host: a short list of system paths, never the rest.

A command starts from an empty root and gets, read-only, the operating system (`/usr` and the
`/bin`-style links or directories beside it, `/etc`), the bot's Python (so gates can say
`python -m pytest`) and any toolchains the operator names. Everything else on the host (homes,
`/opt`, `/srv`, `/var`, the bot's data dir, other workspaces) simply is not there.

Hidden paths are the second line: the bot's own state and the usual credential stores are
covered even when they happen to lie inside one of the visible trees (a data dir under the
Python prefix, say). The defaults are always part of the list; operators can only add to it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# Credential stores under a home directory.
CREDENTIALS_IN_HOME: tuple[str, ...] = (
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".config",
    ".docker",
    ".kube",
    ".netrc",
    ".git-credentials",
    ".gitconfig",
    ".pypirc",
    ".npmrc",
    ".yarnrc",
    ".gem/credentials",
    ".cargo/credentials",
    ".cargo/credentials.toml",
    ".terraform.d",
    ".vault-token",
    ".env",
)

# Top-level entries that are the operating system on a Debian-like host (merged /usr or not).
_SYSTEM_DIRS: tuple[str, ...] = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc")


@dataclass(frozen=True, slots=True)
class Mount:
    """One read-only host path shown at the same place in the sandbox (or a symlink kept as one)."""

    path: Path
    symlink_target: str | None = None


def system_mounts(extra: Iterable[Path] = ()) -> list[Mount]:
    """The host paths a command sees read-only: the OS, the bot's Python, and `extra`.

    Paths are resolved, deduplicated, and dropped when an earlier one already contains them.
    """
    mounts: list[Mount] = []
    for name in _SYSTEM_DIRS:
        entry = Path("/") / name
        if entry.is_symlink():
            mounts.append(Mount(entry, symlink_target=str(entry.readlink())))
        elif entry.is_dir():
            mounts.append(Mount(entry))
    shown: list[Path] = [m.path for m in mounts if m.symlink_target is None]
    for candidate in (*python_roots(), *extra):
        resolved = candidate.resolve()
        if not resolved.exists() or any(resolved.is_relative_to(p) for p in shown):
            continue
        shown.append(resolved)
        mounts.append(Mount(resolved))
    return mounts


def python_roots() -> list[Path]:
    """The bot's interpreter: its virtualenv and the installation the virtualenv points at."""
    return list(dict.fromkeys(Path(p).resolve() for p in (sys.prefix, sys.base_prefix)))


def default_hidden_paths(home: Path | None = None) -> list[Path]:
    """The credential stores of the bot user's home: hidden whatever the operator configures."""
    base = home if home is not None else Path.home()
    return [base / name for name in CREDENTIALS_IN_HOME]


def merged_hidden_paths(extra: Sequence[Path] | None, *, home: Path | None = None) -> list[Path]:
    """Defaults first, then `extra`; an operator's list adds to the defaults, never replaces them."""
    return list(dict.fromkeys([*default_hidden_paths(home), *(extra or [])]))


def sqlite_files(database: Path) -> list[Path]:
    """A SQLite database and the files SQLite keeps beside it (write-ahead log, shared memory)."""
    return [
        database,
        *(database.with_name(database.name + s) for s in ("-wal", "-shm", "-journal")),
    ]


def visible_hidden_paths(hidden: Iterable[Path], mounts: Sequence[Mount]) -> list[Path]:
    """The hidden paths that exist and would otherwise show through one of `mounts`, resolved.

    Checked per command, so a credential file created after start-up is covered too; resolved, so
    a symlinked store is covered where its contents really live.
    """
    shown = [m.path for m in mounts if m.symlink_target is None]
    found: dict[Path, None] = {}
    for path in hidden:
        try:
            resolved = path.resolve()
        except OSError:
            continue
        if resolved.exists() and any(resolved.is_relative_to(p) for p in shown):
            found.setdefault(resolved, None)
    # A path inside a hidden directory is gone with it; covering it again would only bring its
    # name back (as an empty mount point).
    directories = [p for p in found if p.is_dir()]
    return [p for p in found if not any(p != d and p.is_relative_to(d) for d in directories)]

"""Walk the workdir's text files for the in-process search tools."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from agents.tools.paths import WorkspacePaths

# Version control internals, dependencies and build output: never what the model is looking for,
# and often most of the bytes.
SKIPPED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        ".venv",
        "venv",
        "__pycache__",
        ".tox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        "dist",
        "build",
        "target",
        "vendor",
    }
)
MAX_FILE_BYTES = 2 * 1024 * 1024


def iter_files(paths: WorkspacePaths, start: Path) -> Iterator[tuple[Path, str]]:
    """Yield (path, workdir-relative name) for files under start, sorted, inside the root."""
    if start.is_file():
        yield start, paths.relative(start)
        return
    for directory, dirnames, filenames in os.walk(start):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS)
        for filename in sorted(filenames):
            if filename == ".git":
                continue  # the work tree's link to its git dir
            path = Path(directory, filename)
            if path.is_symlink() and not _links_to_file_inside(paths, path):
                continue
            yield path, paths.relative(path)


def _links_to_file_inside(paths: WorkspacePaths, link: Path) -> bool:
    try:
        resolved = link.resolve()
    except (OSError, RuntimeError):  # a loop; Python 3.11 raises RuntimeError for it
        return False
    return paths.root in resolved.parents and resolved.is_file()


def read_text(path: Path) -> str | None:
    """The file's text, or None for binary, oversized or unreadable files."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None
        raw = path.read_bytes()
    except OSError:
        return None
    if b"\0" in raw[:8192]:
        return None
    return raw.decode("utf-8", errors="replace")

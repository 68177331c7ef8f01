"""Confine tool paths to the workdir and refuse writes to protected paths."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path, PurePosixPath

from agents.tools.errors import ToolInputError

# The bot must never rewrite git's own state, whatever the repository's config says.
ALWAYS_PROTECTED: tuple[str, ...] = (".git", ".git/**")


@lru_cache(maxsize=256)
def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Translate a gitignore-style glob: `*` and `?` stay in one segment, `**` spans segments."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif char == "*":
            out.append("[^/]*")
            i += 1
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(char))
                i += 1
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end + 1
        else:
            out.append(re.escape(char))
            i += 1
    return re.compile("".join(out) + r"\Z")


def glob_matches(pattern: str, relative: str) -> bool:
    """Match a workdir-relative POSIX path; a pattern without `/` matches a name at any depth."""
    pattern = pattern.strip().removeprefix("./").rstrip("/")
    if not pattern:
        return False
    if "/" not in pattern:
        return glob_to_regex(pattern).match(PurePosixPath(relative).name) is not None
    return glob_to_regex(pattern.lstrip("/")).match(relative) is not None


class WorkspacePaths:
    """Turns a model-supplied path into a real path inside `workdir`, or refuses with a reason."""

    def __init__(self, workdir: Path, protected_paths: Sequence[str] = ()) -> None:
        self.root = workdir.resolve()
        self.protected = tuple(dict.fromkeys((*ALWAYS_PROTECTED, *protected_paths)))

    def resolve(self, raw: str) -> Path:
        if not isinstance(raw, str) or not raw.strip():
            raise ToolInputError("path must be a non-empty string relative to the repository root")
        if "\0" in raw:
            raise ToolInputError("path must not contain NUL characters")
        candidate = PurePosixPath(raw.strip())
        if candidate.is_absolute():
            raise ToolInputError(
                f"path {raw!r} is absolute; use a path relative to the repository root"
            )
        if ".." in candidate.parts:
            raise ToolInputError(
                f"path {raw!r} contains '..'; paths must stay inside the repository"
            )
        try:
            resolved = (self.root / candidate).resolve()
        except (OSError, RuntimeError) as exc:  # Python 3.11 raises RuntimeError for a loop
            raise ToolInputError(f"path {raw!r} cannot be resolved: {exc}") from exc
        if not self._inside(resolved):
            raise ToolInputError(
                f"path {raw!r} resolves outside the repository (through a symlink); refused"
            )
        return resolved

    def resolve_for_write(self, raw: str) -> Path:
        """Like resolve, and refuses protected paths; checks the given and the resolved name."""
        resolved = self.resolve(raw)
        literal = PurePosixPath(raw.strip()).as_posix().removeprefix("./")
        for name in (literal, self.relative(resolved)):
            pattern = self.protected_pattern(name)
            if pattern is not None:
                raise ToolInputError(
                    f"path {raw!r} is protected (matches {pattern!r}); the bot may not create, "
                    "change or delete it"
                )
        return resolved

    def protected_pattern(self, relative: str) -> str | None:
        """The first protected pattern matching the path or any directory above it."""
        parts = PurePosixPath(relative).parts
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        for pattern in self.protected:
            if any(glob_matches(pattern, prefix) for prefix in prefixes):
                return pattern
        return None

    def relative(self, path: Path) -> str:
        relative = path.relative_to(self.root).as_posix()
        return relative or "."

    def _inside(self, path: Path) -> bool:
        return path == self.root or self.root in path.parents

"""Text search: ripgrep or git grep inside the sandbox when available, else Python's re."""

from __future__ import annotations

import asyncio
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from agents.sandbox import Sandbox
from agents.tools.errors import ToolInputError
from agents.tools.paths import WorkspacePaths, glob_matches
from agents.tools.walk import iter_files, read_text

MAX_MATCHES = 100
MAX_MATCH_CHARS = 300
_SEARCH_TIMEOUT_S = 60.0
# Exit status the search script uses to say "no external search tool here".
_NO_TOOL = 127


@dataclass(frozen=True)
class Match:
    path: str
    line: int
    text: str


async def search_text(
    paths: WorkspacePaths, sandbox: Sandbox, pattern: str, path: str, glob: str | None
) -> str:
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ToolInputError(f"invalid regular expression {pattern!r}: {exc}") from exc
    target = paths.resolve(path)
    if not target.exists():
        raise ToolInputError(f"{path!r} does not exist")
    matches = await _external_search(paths, sandbox, pattern, paths.relative(target), glob)
    if matches is None:
        matches = await asyncio.to_thread(_python_search, paths, regex, target, glob)
    return _render(matches, pattern)


async def _external_search(
    paths: WorkspacePaths, sandbox: Sandbox, pattern: str, target: str, glob: str | None
) -> list[Match] | None:
    """Run rg or git grep in the sandbox; None when neither ran or the pattern did not suit them.

    They run in the sandbox rather than in the bot's process because the model can write .git/config
    through run_command, and git configuration can name programs for git to execute.
    """
    quoted_pattern, quoted_target = shlex.quote(pattern), shlex.quote(target)
    rg_glob = f"--glob {shlex.quote(glob)} " if glob else ""
    script = (
        "if command -v rg >/dev/null 2>&1; then "
        "exec rg --line-number --no-heading --with-filename --color never --hidden --sort path "
        f"--glob '!.git' {rg_glob}-e {quoted_pattern} -- {quoted_target}; "
        "elif command -v git >/dev/null 2>&1 && "
        "git rev-parse --is-inside-work-tree >/dev/null 2>&1; then "
        "exec git -c safe.directory='*' --no-pager grep -n -I -P --untracked --no-color "
        f"-e {quoted_pattern} -- {shlex.quote(_git_pathspec(target, glob))}; "
        f"else exit {_NO_TOOL}; fi"
    )
    result = await sandbox.run(script, cwd=paths.root, timeout_s=_SEARCH_TIMEOUT_S)
    if result.timed_out or result.exit_code not in (0, 1):
        return None
    matches: list[Match] = []
    for line in result.stdout.splitlines():
        name, _, rest = line.partition(":")
        number, _, text = rest.partition(":")
        if number.isdigit():
            matches.append(Match(name, int(number), text))
    return matches


def _git_pathspec(target: str, glob: str | None) -> str:
    if not glob:
        return target
    base = "" if target == "." else target.rstrip("/") + "/"
    if "/" in glob:
        return f":(glob){base}{glob.lstrip('/')}"
    return f":(glob){base}**/{glob}"


def _python_search(
    paths: WorkspacePaths, regex: re.Pattern[str], target: Path, glob: str | None
) -> list[Match]:
    matches: list[Match] = []
    for path, relative in iter_files(paths, target):
        if glob and not glob_matches(glob, relative):
            continue
        text = read_text(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            if regex.search(line):
                matches.append(Match(relative, number, line))
                # One past the cap is enough to say "more not shown".
                if len(matches) > MAX_MATCHES:
                    return matches
    return matches


def _render(matches: list[Match], pattern: str) -> str:
    if not matches:
        return f"No matches for {pattern!r}."
    shown = matches[:MAX_MATCHES]
    lines = [f"{m.path}:{m.line}: {_clip(m.text.strip())}" for m in shown]
    if len(matches) > MAX_MATCHES:
        lines.append(
            f"[more than {MAX_MATCHES} matches; only the first {MAX_MATCHES} are shown: "
            "narrow the pattern, path or glob]"
        )
    return "\n".join(lines)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_MATCH_CHARS else text[:MAX_MATCH_CHARS] + " [...]"

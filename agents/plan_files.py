"""The files a plan names, read from the checkout once, for the coder's cached prompt prefix.

A coder's first turns are mostly spent reading the files its plan already names. Showing them up
front, in the fixed part of the prompt, saves those turns, and because that part is byte-identical
on every turn it is read from the prompt cache (a tenth of the price) instead of being paid again
as conversation each time the model re-reads a file.

The listing uses read_file's format (numbered lines), so the model can quote it in edits, and it
is bounded: a file is cut after `max_lines_per_file` lines and the whole after `max_chars`, with a
note saying how to read the rest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from agents.planner import PlanResult
from agents.tools.errors import ToolInputError
from agents.tools.files import read_file
from agents.tools.paths import WorkspacePaths
from agents.untrusted import wrap_untrusted

# About 20,000 tokens: a tenth of the context window, read from the cache at a tenth of the price.
MAX_CHARS = 80_000
MAX_LINES_PER_FILE = 1_000
# A file cut shorter than this is not worth showing: the model would read it anyway.
MIN_LINES = 40
MAX_FILES = 12
# Plans write "src/app.py:10-20", "`src/app.py`" or "src/app.py (the CLI)"; the path is the part
# before a line reference or a note.
_PATH_PREFIX = re.compile(r"^[`'\"]?([^\s`'\"():]+)")

HEADING = "## Files the plan names"
PREAMBLE = (
    "Their content as it was when this run started, numbered as read_file numbers lines. You "
    "need not read these again; after editing one, trust the edit result or read_file, not this "
    "copy."
)


def plan_paths(plan: PlanResult) -> list[str]:
    """The paths the plan names, in the order it names them (context first, then the steps)."""
    named: Iterable[str] = [
        *(ref.path for ref in plan.context),
        *(path for step in plan.steps for path in step.files),
    ]
    seen: dict[str, None] = {}
    for entry in named:
        match = _PATH_PREFIX.match(entry.strip())
        if match:
            seen.setdefault(match.group(1).removeprefix("./").rstrip("/"), None)
    return [path for path in seen if path]


def plan_files_section(
    plan: PlanResult,
    workdir: Path,
    *,
    max_chars: int = MAX_CHARS,
    max_lines_per_file: int = MAX_LINES_PER_FILE,
    max_files: int = MAX_FILES,
) -> str:
    """The named files that exist in `workdir`, numbered and bounded; "" when there are none.

    Paths outside the checkout, directories, binary files and files that do not exist yet (a plan
    names the files it will create too) are left out silently: the model has the tools to look.
    """
    paths = WorkspacePaths(workdir)
    sections: list[str] = []
    used = 0
    left_out: list[str] = []
    for path in plan_paths(plan):
        if len(sections) >= max_files:
            left_out.append(path)
            continue
        section = _file_section(paths, path, max_lines_per_file, max_chars - used)
        if section is None:
            left_out.append(path)
        elif section:
            sections.append(section)
            used += len(section)
    if not sections:
        return ""
    tail = ""
    if left_out:
        tail = "\n\nNot shown, to keep the prompt small (use read_file): " + ", ".join(left_out)
    return f"{HEADING}\n{PREAMBLE}\n\n" + "\n\n".join(sections) + tail


def _file_section(paths: WorkspacePaths, path: str, max_lines: int, room: int) -> str | None:
    """The file's numbered lines, as many as fit in `room` characters; "" when there is nothing
    to show (no such file, binary, outside the checkout), None when too little of it would fit."""
    lines = max_lines
    for _ in range(6):
        if lines < MIN_LINES:
            return None
        try:
            if paths.relative(paths.resolve(path)).split("/")[0] == ".git":
                return ""  # git's own state is not code, and its config names the remote
            body = read_file(paths, path, 1, lines)
        except (ToolInputError, OSError):
            return ""
        section = f"### {path}\n" + wrap_untrusted(body, source=f"file {path}", verbatim=True)
        if len(section) <= room:
            return section
        # Shrink in proportion, a little under, so the next try usually fits.
        lines = int(lines * room / len(section) * 0.95)
    return None

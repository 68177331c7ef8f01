"""The files a plan names, read from the checkout once, for the coder's cached prompt prefix.

A coder's first turns are mostly spent reading the files its plan already names. Showing them up
front, in the fixed part of the prompt, saves those turns, and because that part is byte-identical
on every turn it is read from the prompt cache (a tenth of the price) instead of being paid again
as conversation each time the model re-reads a file.

A short file is shown whole. A long one is shown in part: the definitions the plan names (and the
lines it cites), with a few lines around them and the file's opening imports, plus an outline of
every other definition with its line number, so the model knows what exists and where to read.
Two whole 1,000-line modules would cost ~80,000 characters on every turn for a one-line fix.

The listing uses read_file's format (numbered lines), so the model can quote it in edits, and it
is bounded: the whole after `max_chars`, with a note saying how to read the rest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agents.tools.errors import ToolInputError
from agents.tools.files import read_file
from agents.tools.paths import WorkspacePaths
from agents.untrusted import wrap_untrusted
from bot.contracts.prp import Plan
from knowledge.chunking import Chunk, ChunkKind, chunk_file
from knowledge.signals import STOP_SYMBOLS

# About 6,000 tokens for all named files together.
MAX_CHARS = 24_000
MAX_LINES_PER_FILE = 1_000
# A file up to this size is shown whole: cutting it would save little and cost a read.
WHOLE_FILE_CHARS = 6_000
# Lines shown around each definition the plan names, and at most this many of a long one.
CONTEXT_LINES = 5
MAX_FOCUS_LINES = 150
HEAD_LINES = 25  # the module's imports and constants, when it opens with them
MAX_OUTLINE_ENTRIES = 150
# A file cut shorter than this is not worth showing: the model would read it anyway.
MIN_LINES = 40
MAX_FILES = 12
# Plans write "src/app.py:10-20", "`src/app.py`" or "src/app.py (the CLI)"; the path is the part
# before a line reference or a note.
_PATH_PREFIX = re.compile(r"^[`'\"]?([^\s`'\"():]+)")
_LINE_REFERENCE = re.compile(r"^[`'\"]?[^\s`'\"():]+:(\d+)(?:-(\d+))?")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_DEFINITION_KINDS = (ChunkKind.FUNCTION, ChunkKind.CLASS, ChunkKind.METHOD)

HEADING = "## Files the plan names"
PREAMBLE = (
    "Their content as it was when this run started, numbered as read_file numbers lines. Long "
    "files show the parts the plan names and an outline of the rest: use read_file for any other "
    "part. After editing one, trust the edit result or read_file, not this copy."
)


def plan_paths(plan: Plan) -> list[str]:
    """The paths the plan names, in the order it names them (context first, then the steps)."""
    seen: dict[str, None] = {}
    for entry in _named_entries(plan):
        match = _PATH_PREFIX.match(entry.strip())
        if match:
            seen.setdefault(match.group(1).removeprefix("./").rstrip("/"), None)
    return [path for path in seen if path]


def _named_entries(plan: Plan) -> list[str]:
    return [
        *(ref.path for ref in plan.context),
        *(path for step in plan.steps for path in step.files),
    ]


def _cited_lines(plan: Plan) -> dict[str, list[tuple[int, int]]]:
    """Line ranges the plan cites per path (`src/app.py:10-20`)."""
    cited: dict[str, list[tuple[int, int]]] = {}
    for entry in _named_entries(plan):
        path_match = _PATH_PREFIX.match(entry.strip())
        line_match = _LINE_REFERENCE.match(entry.strip())
        if path_match and line_match:
            start = int(line_match.group(1))
            end = int(line_match.group(2) or start)
            path = path_match.group(1).removeprefix("./").rstrip("/")
            cited.setdefault(path, []).append((start, max(start, end)))
    return cited


def focus_names(text: str) -> set[str]:
    """Identifiers in the plan's text that could name a definition (`send`, `Session.send`)."""
    names: set[str] = set()
    for dotted in _IDENTIFIER.findall(text):
        parts = dotted.split(".")
        names.update(p for p in parts if len(p) >= 3 and p.lower() not in STOP_SYMBOLS)
        names.update(".".join(parts[i:]) for i in range(len(parts) - 1))
    return names


def plan_files_section(
    plan: Plan,
    workdir: Path,
    *,
    max_chars: int = MAX_CHARS,
    max_lines_per_file: int = MAX_LINES_PER_FILE,
    max_files: int = MAX_FILES,
    focus_text: str = "",
) -> str:
    """The named files that exist in `workdir`, numbered and bounded; "" when there are none.

    `focus_text` (the issue, say) adds to the names the plan's own text gives for choosing the
    parts of long files to show. Paths outside the checkout, directories, binary files and files
    that do not exist yet (a plan names the files it will create too) are left out silently: the
    model has the tools to look.
    """
    paths = WorkspacePaths(workdir)
    names = focus_names(f"{plan.for_coder()}\n{focus_text}")
    cited = _cited_lines(plan)
    sections: list[str] = []
    used = 0
    left_out: list[str] = []
    for path in plan_paths(plan):
        if len(sections) >= max_files:
            left_out.append(path)
            continue
        section = _file_section(
            paths, path, max_lines_per_file, max_chars - used, names, cited.get(path, [])
        )
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


def _file_section(
    paths: WorkspacePaths,
    path: str,
    max_lines: int,
    room: int,
    names: set[str],
    cited: Sequence[tuple[int, int]],
) -> str | None:
    """The file, whole or in part, as fits in `room` characters; "" when there is nothing to
    show (no such file, binary, outside the checkout), None when too little of it would fit."""
    try:
        if paths.relative(paths.resolve(path)).split("/")[0] == ".git":
            return ""  # git's own state is not code, and its config names the remote
        read_file(paths, path, 1, 1)  # the same checks (inside, a file, not binary) as the tool
        text = paths.resolve(path).read_bytes().decode("utf-8", errors="replace")
    except (ToolInputError, OSError):
        return ""
    if len(text) > WHOLE_FILE_CHARS:
        focused = _focused_section(path, text, names, cited, room)
        if focused is not None:
            return focused
    return _whole_section(paths, path, max_lines, room)


def _whole_section(paths: WorkspacePaths, path: str, max_lines: int, room: int) -> str | None:
    lines = max_lines
    for _ in range(6):
        if lines < MIN_LINES:
            return None
        try:
            body = read_file(paths, path, 1, lines)
        except (ToolInputError, OSError):
            return ""
        section = _wrap(path, body)
        if len(section) <= room:
            return section
        # Shrink in proportion, a little under, so the next try usually fits.
        lines = int(lines * room / len(section) * 0.95)
    return None


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    label: str


def _focused_section(
    path: str, text: str, names: set[str], cited: Sequence[tuple[int, int]], room: int
) -> str | None:
    """The named definitions and cited lines with their surroundings, and an outline of the
    other definitions; None when the plan names nothing in this file (it is then shown from the
    top, as far as it fits)."""
    lines = text.splitlines()
    chunks = chunk_file(path, text)
    definitions = [c for c in chunks if c.kind in _DEFINITION_KINDS and c.symbol]
    spans = [
        _Span(max(1, start), min(len(lines), end), f"lines {start}-{end} the plan cites")
        for start, end in cited
    ]
    for chunk in definitions:
        if _named(chunk, names):
            end = min(chunk.end_line, chunk.start_line + MAX_FOCUS_LINES - 1)
            spans.append(
                _Span(
                    max(1, chunk.start_line - CONTEXT_LINES),
                    min(len(lines), end + CONTEXT_LINES),
                    f"`{chunk.symbol}`",
                )
            )
    if not spans:
        return None
    head = _head_span(chunks, lines)
    if head is not None:
        spans.append(head)
    merged = _merge(spans)
    shown = {n for span in merged for n in range(span.start, span.end + 1)}
    outline = [
        f"{number:>6}\t{lines[number - 1].rstrip()[:160]}"
        for number in (_definition_line(c, lines) for c in _first_windows(definitions))
        if number not in shown
    ][:MAX_OUTLINE_ENTRIES]
    parts: list[str] = []
    for span in merged:
        parts.append(f"[lines {span.start}-{span.end}: {span.label}]")
        parts.extend(f"{n:>6}\t{_clip(lines[n - 1])}" for n in range(span.start, span.end + 1))
    if outline:
        parts.append(f"[outline of the other definitions in {path}: line and first line]")
        parts.extend(outline)
    parts.append(f"[{len(lines)} lines in all; read_file with start_line for any other part]")
    section = _wrap(path, "\n".join(parts))
    if len(section) <= room:
        return section
    # Too big for what is left: drop the outline first, then give up on this file.
    if outline:
        without = [p for p in parts if p not in outline and not p.startswith("[outline")]
        section = _wrap(path, "\n".join(without))
        if len(section) <= room:
            return section
    return None


def _named(chunk: Chunk, names: set[str]) -> bool:
    leaf = chunk.symbol.rsplit(".", 1)[-1]
    if chunk.kind is ChunkKind.METHOD:
        # `send` alone is a common word; `Session.send` or a rarer method name is a lead.
        return chunk.symbol in names or (leaf in names and "_" in leaf.strip("_"))
    return leaf in names


def _head_span(chunks: Sequence[Chunk], lines: list[str]) -> _Span | None:
    first = chunks[0] if chunks else None
    if first is None or first.kind is not ChunkKind.MODULE:
        return None
    end = min(first.end_line, HEAD_LINES)
    return _Span(first.start_line, end, "the module's opening")


def _definition_line(chunk: Chunk, lines: list[str]) -> int:
    """The chunk's `def`/`class` line, past its decorators."""
    number = chunk.start_line
    while number < chunk.end_line and lines[number - 1].lstrip().startswith("@"):
        number += 1
    return number


def _first_windows(definitions: Iterable[Chunk]) -> list[Chunk]:
    """One entry per definition (a long one is cut into several windows; only the first has a
    signature)."""
    return [c for c in definitions if c.signature]


def _merge(spans: Iterable[_Span]) -> list[_Span]:
    merged: list[_Span] = []
    for span in sorted(spans, key=lambda s: (s.start, s.end)):
        if merged and span.start <= merged[-1].end + 1:
            last = merged[-1]
            label = last.label if span.label in last.label else f"{last.label}, {span.label}"
            merged[-1] = _Span(last.start, max(last.end, span.end), label)
        else:
            merged.append(span)
    return merged


def _clip(line: str, limit: int = 400) -> str:
    return (
        line if len(line) <= limit else line[:limit] + f" [... {len(line) - limit} more characters]"
    )


def _wrap(path: str, body: str) -> str:
    return f"### {path}\n" + wrap_untrusted(body, source=f"file {path}", verbatim=True)

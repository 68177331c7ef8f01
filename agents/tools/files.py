"""The coder's file tools: list, read a window, create, and edit by exact replacement."""

from __future__ import annotations

import os
from pathlib import Path

from agents.tools.errors import ToolInputError
from agents.tools.paths import WorkspacePaths

MAX_LIST_ENTRIES = 500
MAX_LINE_CHARS = 2_000
MAX_READ_BYTES = 20 * 1024 * 1024
_EDIT_CONTEXT_LINES = 3
_EDIT_SNIPPET_LINES = 40
_IGNORED_DIRS = frozenset({".git"})


def list_files(paths: WorkspacePaths, path: str, depth: int) -> str:
    root = paths.resolve(path)
    if not root.is_dir():
        raise ToolInputError(f"{path!r} is not a directory")
    lines: list[str] = []
    omitted = _walk_tree(root, depth, 0, lines)
    header = f"{paths.relative(root)}/"
    if not lines:
        return f"{header}\n(empty)"
    footer = ""
    if omitted:
        footer = f"\n[{omitted} more entries not shown; list a subdirectory or lower depth]"
    return header + "\n" + "\n".join(lines) + footer


def _walk_tree(directory: Path, depth: int, level: int, lines: list[str]) -> int:
    """Append entries to lines, depth-first; return how many were left out by the entry cap."""
    try:
        entries = sorted(os.scandir(directory), key=lambda e: (not _is_dir(e), e.name))
    except OSError as exc:
        lines.append(f"{'  ' * (level + 1)}[unreadable: {exc.strerror}]")
        return 0
    omitted = 0
    for entry in entries:
        if entry.name in _IGNORED_DIRS:
            continue
        if len(lines) >= MAX_LIST_ENTRIES:
            omitted += 1
            continue
        indent = "  " * (level + 1)
        if entry.is_symlink():
            lines.append(f"{indent}{entry.name} -> {os.readlink(entry.path)}")
        elif _is_dir(entry):
            lines.append(f"{indent}{entry.name}/")
            if level + 1 < depth:
                omitted += _walk_tree(Path(entry.path), depth, level + 1, lines)
        else:
            lines.append(f"{indent}{entry.name}")
    return omitted


def _is_dir(entry: os.DirEntry[str]) -> bool:
    return entry.is_dir(follow_symlinks=False)


def read_file(paths: WorkspacePaths, path: str, start_line: int, max_lines: int) -> str:
    target = _existing_file(paths, path)
    if target.stat().st_size > MAX_READ_BYTES:
        raise ToolInputError(f"{path!r} is larger than {MAX_READ_BYTES // (1024 * 1024)} MB")
    raw = target.read_bytes()
    if b"\0" in raw[:8192]:
        raise ToolInputError(f"{path!r} is a binary file")
    lines = raw.decode("utf-8", errors="replace").splitlines()
    total = len(lines)
    if total == 0:
        return f"{path}: empty file"
    if start_line > total:
        raise ToolInputError(f"start_line {start_line} is past the end of {path!r} ({total} lines)")
    end = min(total, start_line + max_lines - 1)
    body = "\n".join(
        f"{number:>6}\t{_clip(lines[number - 1])}" for number in range(start_line, end + 1)
    )
    remaining = total - end
    if remaining:
        footer = (
            f"[lines {start_line}-{end} of {total}; {remaining} more lines: "
            f"read_file with start_line={end + 1}]"
        )
    else:
        footer = f"[lines {start_line}-{end} of {total}; end of file]"
    return f"{body}\n{footer}"


def _clip(line: str) -> str:
    if len(line) <= MAX_LINE_CHARS:
        return line
    return line[:MAX_LINE_CHARS] + f" [... {len(line) - MAX_LINE_CHARS} more characters]"


def _existing_file(paths: WorkspacePaths, path: str) -> Path:
    target = paths.resolve(path)
    if target.is_dir():
        raise ToolInputError(f"{path!r} is a directory; use list_files")
    if not target.is_file():
        raise ToolInputError(f"{path!r} does not exist")
    return target


def create_file(paths: WorkspacePaths, path: str, content: str, overwrite: bool) -> str:
    target = paths.resolve_for_write(path)
    if target.is_dir():
        raise ToolInputError(f"{path!r} is a directory")
    existed = target.exists()
    if existed and not overwrite:
        raise ToolInputError(
            f"{path!r} already exists; use edit_file to change it, or pass overwrite: true "
            "to replace it entirely"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    _write_exact(target, content)
    verb = "Replaced" if existed else "Created"
    return f"{verb} {paths.relative(target)} ({len(content.splitlines())} lines)"


def edit_file(paths: WorkspacePaths, path: str, old_text: str, new_text: str) -> str:
    target = paths.resolve_for_write(path)
    if not target.is_file():
        raise ToolInputError(f"{path!r} does not exist; use create_file to make a new file")
    if old_text == "":
        raise ToolInputError("old_text is empty; give the exact text to replace")
    if old_text == new_text:
        raise ToolInputError("old_text and new_text are identical; nothing to change")
    text = _read_exact(target, path)
    count = text.count(old_text)
    if count == 0:
        raise ToolInputError(
            f"old_text was not found in {path!r} (0 matches). It must match exactly, including "
            "whitespace and indentation; read_file shows the current text."
        )
    if count > 1:
        raise ToolInputError(
            f"old_text matches {count} times in {path!r}; it must match exactly once. Include "
            "more surrounding lines to make it unique."
        )
    offset = text.index(old_text)
    updated = text[:offset] + new_text + text[offset + len(old_text) :]
    _write_exact(target, updated)
    first = updated.count("\n", 0, offset) + 1
    last = first + new_text.count("\n")
    return f"Edited {paths.relative(target)}. The region now reads:\n" + _snippet(
        updated, first, last
    )


def _read_exact(target: Path, path: str) -> str:
    # newline="" keeps CRLF files CRLF: an edit must not rewrite every line ending in the file.
    try:
        with target.open(encoding="utf-8", newline="") as handle:
            return handle.read()
    except UnicodeDecodeError as exc:
        raise ToolInputError(f"{path!r} is not UTF-8 text; edit_file cannot change it") from exc


def _write_exact(target: Path, text: str) -> None:
    with target.open("w", encoding="utf-8", newline="") as handle:
        handle.write(text)


def _snippet(text: str, first: int, last: int) -> str:
    lines = text.splitlines()
    start = max(1, first - _EDIT_CONTEXT_LINES)
    end = min(len(lines), last + _EDIT_CONTEXT_LINES, start + _EDIT_SNIPPET_LINES - 1)
    return "\n".join(f"{n:>6}\t{_clip(lines[n - 1])}" for n in range(start, end + 1))

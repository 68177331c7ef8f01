"""Which lines of a pull request can carry an inline review comment.

GitHub rejects a whole review (422 "Line could not be resolved") if one comment points at a
line outside the diff. The PR's files carry unified-diff ``patch`` text; a comment fits when
its line is in a hunk on the side it names (RIGHT: added or context lines of the new file;
LEFT: removed or context lines of the old one), and a multi-line comment fits when both ends
are in the same hunk.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .models import PullFile, ReviewComment

_HUNK_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclass(frozen=True, slots=True)
class Hunk:
    left: frozenset[int]
    right: frozenset[int]


def parse_patch(patch: str) -> tuple[Hunk, ...]:
    """The commentable old-file (left) and new-file (right) line numbers of each hunk."""
    hunks: list[Hunk] = []
    left: set[int] = set()
    right: set[int] = set()
    old_line = new_line = 0
    in_hunk = False
    for raw in patch.splitlines():
        header = _HUNK_HEADER.match(raw)
        if header:
            if in_hunk:
                hunks.append(Hunk(frozenset(left), frozenset(right)))
            left, right = set(), set()
            old_line, new_line = int(header.group(1)), int(header.group(3))
            in_hunk = True
            continue
        if not in_hunk or raw.startswith("\\"):  # "\ No newline at end of file"
            continue
        marker = raw[:1]
        if marker == "+":
            right.add(new_line)
            new_line += 1
        elif marker == "-":
            left.add(old_line)
            old_line += 1
        else:  # context (a blank line in a patch is context whose own text is empty)
            left.add(old_line)
            right.add(new_line)
            old_line += 1
            new_line += 1
    if in_hunk:
        hunks.append(Hunk(frozenset(left), frozenset(right)))
    return tuple(hunks)


class DiffIndex:
    """The commentable lines of every file in a pull request."""

    def __init__(self, files: Iterable[PullFile]) -> None:
        self._hunks = {f.filename: parse_patch(f.patch) if f.patch else () for f in files}

    def accepts(self, comment: ReviewComment) -> bool:
        first = comment.start_line if comment.start_line is not None else comment.line
        if first > comment.line:
            return False
        for hunk in self._hunks.get(comment.path, ()):
            lines = hunk.right if comment.side == "RIGHT" else hunk.left
            if first in lines and comment.line in lines:
                return True
        return False

    def split(
        self, comments: Iterable[ReviewComment]
    ) -> tuple[tuple[ReviewComment, ...], tuple[ReviewComment, ...]]:
        """(comments that can go inline, comments that must go in the review body)."""
        inline: list[ReviewComment] = []
        outside: list[ReviewComment] = []
        for comment in comments:
            (inline if self.accepts(comment) else outside).append(comment)
        return tuple(inline), tuple(outside)

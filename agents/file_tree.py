"""The repository's files as the agents' prompts show them: one listing that fits a budget."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence


def render_file_tree(paths: Sequence[str], *, max_entries: int = 400) -> str:
    """A listing of the repository's files that fits in `max_entries` lines.

    Small repositories are listed in full. Larger ones are listed breadth-first: a directory is
    expanded only while the listing stays within budget; the others show as `dir/ (N files)`.
    """
    files = sorted({p.strip("/") for p in paths if p.strip("/")})
    if len(files) <= max_entries:
        return "\n".join(files)
    children: dict[str, set[str]] = defaultdict(set)
    counts: dict[str, int] = defaultdict(int)
    for path in files:
        parts = path.split("/")
        for depth in range(len(parts)):
            parent = "/".join(parts[:depth])
            children[parent].add("/".join(parts[: depth + 1]))
            if depth < len(parts) - 1:
                counts["/".join(parts[: depth + 1])] += 1
    is_dir = set(counts)
    shown: set[str] = set(children[""])
    expanded: set[str] = {""}
    frontier = sorted((d for d in shown if d in is_dir), key=lambda d: (counts[d], d))
    while frontier:
        directory = frontier.pop(0)
        grown = len(shown) + len(children[directory])
        if grown > max_entries:
            continue
        shown |= children[directory]
        expanded.add(directory)
        frontier += [c for c in children[directory] if c in is_dir]
        frontier.sort(key=lambda d: (d.count("/"), counts[d], d))
    lines = []
    for entry in sorted(shown):
        if entry in is_dir and entry not in expanded:
            lines.append(f"{entry}/ ({counts[entry]} files)")
        elif entry not in is_dir:
            lines.append(entry)
    return "\n".join(lines)

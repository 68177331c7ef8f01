"""What an issue's text names explicitly: stack-trace frames, file paths, modules, symbols.

An issue that quotes a traceback or names `Client.send` has already done half the
localisation; these signals are fused with the lexical and semantic rankings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_SOURCE_EXTENSIONS = (
    "py|pyi|js|jsx|mjs|ts|tsx|go|rs|java|kt|rb|php|c|h|cc|cpp|hpp|cs|swift|scala|sh|md|rst|toml|"
    "yaml|yml|json|cfg|ini|html|css|sql"
)
_PY_FRAME = re.compile(r'File "(?P<path>[^"]+)", line (?P<line>\d+)')
_GENERIC_FRAME = re.compile(
    rf"(?P<path>(?:[\w.\-]+/)*[\w.\-]+\.(?:{_SOURCE_EXTENSIONS})):(?P<line>\d+)(?::\d+)?\b"
)
_PATH = re.compile(
    rf"(?<![\w/.\-])(?P<path>(?:[\w.\-]+/)*[\w\-]+(?:\.[\w\-]+)*\.(?:{_SOURCE_EXTENSIONS}))\b"
)
_DOTTED = re.compile(r"(?<![\w.])(?P<dotted>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)(?!\w|\.\w)")
_BACKTICKED = re.compile(r"`([^`\n]{2,80})`")
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
# Looks like code rather than prose: snake_case, camelCase/PascalCase with an inner capital,
# or a name directly followed by a call's parenthesis.
_CODEISH = re.compile(r"^(?:\w*_\w+|[a-z]+[A-Z]\w*|[A-Z][a-z0-9]+[A-Z]\w*|[A-Z]{2,}[a-z]\w*)$")
_CALL = re.compile(r"(?<![\w.])([A-Za-z_]\w*)\(")
_PROSE_CALLS = frozenset({"e", "i", "ie", "eg", "see", "like", "or", "and", "etc"})


@dataclass(frozen=True)
class Frame:
    path: str
    line: int


@dataclass(frozen=True)
class QuerySignals:
    frames: tuple[Frame, ...] = ()  # innermost frame first
    paths: tuple[str, ...] = ()  # path-like mentions, as written
    modules: tuple[str, ...] = ()  # dotted names that may be modules (`pkg.sub`)
    symbols: tuple[str, ...] = ()  # identifiers that look like code

    @property
    def is_empty(self) -> bool:
        return not (self.frames or self.paths or self.modules or self.symbols)


def extract_signals(text: str, *, max_items: int = 24) -> QuerySignals:
    frames: dict[Frame, None] = {}
    for match in _PY_FRAME.finditer(text):
        frames.setdefault(Frame(match.group("path"), int(match.group("line"))), None)
    for match in _GENERIC_FRAME.finditer(text):
        frames.setdefault(Frame(match.group("path"), int(match.group("line"))), None)
    # Python prints the innermost frame last; it is where the error surfaced.
    ordered_frames = tuple(reversed(list(frames)))[:max_items]

    frame_paths = {frame.path for frame in ordered_frames}
    paths = _unique(
        (m.group("path") for m in _PATH.finditer(text) if m.group("path") not in frame_paths),
        max_items,
    )

    dotted = [m.group("dotted") for m in _DOTTED.finditer(text)]
    modules = _unique(
        (d for d in dotted if not _PATH.fullmatch(d) and not d[0].isupper()), max_items
    )

    symbols: list[str] = []
    for snippet in _BACKTICKED.findall(text):
        symbols.extend(_IDENTIFIER.findall(snippet))
    for name in _IDENTIFIER.findall(text):
        if _CODEISH.match(name):
            symbols.append(name)
    symbols.extend(name for name in _CALL.findall(text) if name.lower() not in _PROSE_CALLS)
    for name in dotted:
        symbols.extend(name.split(".")[1:])
    return QuerySignals(
        frames=ordered_frames,
        paths=paths,
        modules=modules,
        symbols=_unique((s for s in symbols if len(s) >= 3 and not s.isdigit()), max_items),
    )


def module_path_candidates(dotted: str) -> tuple[str, ...]:
    """`pkg.sub.mod` -> ('pkg/sub/mod.py', 'pkg/sub/mod/__init__.py')."""
    base = dotted.replace(".", "/")
    return (f"{base}.py", f"{base}/__init__.py")


def _unique(items: Iterable[str], limit: int) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item, None)
        if len(seen) >= limit:
            break
    return tuple(seen)

"""What an issue's text names explicitly: stack-trace frames, file paths, modules, symbols.

An issue that quotes a traceback or names `Client.send` has already done half the
localisation; these signals are fused with the lexical and semantic rankings.

Symbols are read the way a person reads markdown: fenced blocks are code until their closing
fence, inline code spans pair backtick runs of the same length, and prose only yields names that
look like code. Names the reporter's own snippet defines (`class Book(models.Model)`) say nothing
about the repository, and neither do builtins and everyday words (`list`, `type`, `lower`).
"""

from __future__ import annotations

import builtins
import keyword
import re
from collections.abc import Iterable
from dataclasses import dataclass

_SOURCE_EXTENSIONS = (
    "py|pyi|pyx|js|jsx|mjs|ts|tsx|go|rs|java|kt|rb|php|c|h|cc|cpp|hpp|cs|swift|scala|sh|md|rst|"
    "toml|yaml|yml|json|cfg|ini|html|css|sql"
)
_PY_FRAME = re.compile(r'File "(?P<path>[^"]+)", line (?P<line>\d+)')
_GENERIC_FRAME = re.compile(
    rf"(?P<path>(?:[\w.\-]+/)*[\w.\-]+\.(?:{_SOURCE_EXTENSIONS})):(?P<line>\d+)(?::\d+)?\b"
)
_PATH = re.compile(
    rf"(?<![\w/.\-])(?P<path>(?:[\w.\-]+/)*[\w\-]+(?:\.[\w\-]+)*\.(?:{_SOURCE_EXTENSIONS}))\b"
)
_DOTTED = re.compile(r"(?<![\w.])(?P<dotted>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)(?!\w|\.\w)")
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
# Looks like code rather than prose: snake_case, camelCase/PascalCase with an inner capital,
# or a name directly followed by a call's parenthesis.
_CODEISH = re.compile(r"^(?:\w*_\w+|[a-z]+[A-Z]\w*|[A-Z][a-z0-9]+[A-Z]\w*|[A-Z]{2,}[a-z]\w*)$")
_CALL = re.compile(r"(?<![\w.])([A-Za-z_]\w*)\(")
_ATTRIBUTE = re.compile(r"\.([A-Za-z_]\w*)")
_IMPORTED = re.compile(r"^\s*from\s+[\w.]+\s+import\s+\(?([\w\s,]+)\)?", re.MULTILINE)
# What a reporter's snippet defines: its own classes, functions and variables.
_DEFINED = re.compile(
    r"^\s*(?:class|def|async\s+def)\s+([A-Za-z_]\w*)|^\s*([A-Za-z_]\w*)\s*(?::[^=\n]+)?=(?!=)",
    re.MULTILINE,
)
_FENCE_OPEN = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})")
_BACKTICK_RUN = re.compile(r"`+")
_PROSE_CALLS = frozenset({"e", "i", "ie", "eg", "see", "like", "or", "and", "etc"})

# Words that name nothing in particular: Python's builtins and keywords, methods every
# container and string has, and words of issue prose, markup and examples. A name from this list
# is not a lead even when the issue puts it in backticks (`list`, `type`, `rst`).
_COMMON_TEXT = """
    self cls args kwargs obj object value values key keys item items data name names result
    results func function method attr attribute default kind instance other args_ kw param params
    append extend insert remove pop clear copy update get set setdefault add discard index count
    sort sorted reverse lower upper strip lstrip rstrip split rsplit join replace format startswith
    endswith find encode decode read write open close run main start stop init call apply load
    dump dumps loads save test tests setup setUp tearDown example examples foo bar baz qux spam
    eggs ham tmp temp var val res ret out inp input output file files path line lines text string
    number size length width height shape dtype array list dict tuple str int float bool bytes
    none null true false nan inf rst md html json xml yaml csv txt py pyi toml cfg ini http https
    www com org url todo fixme note warning error errors exception info debug version python pip
    code bug issue fix docs doc example_ readme changelog master main branch commit
"""
STOP_SYMBOLS = frozenset(
    {name.lower() for name in _COMMON_TEXT.split()}
    | {name.lower() for name in dir(builtins)}
    | {name.lower() for name in keyword.kwlist}
    | {name.lower() for name in keyword.softkwlist}
)


@dataclass(frozen=True)
class Frame:
    path: str
    line: int


@dataclass(frozen=True)
class QuerySignals:
    frames: tuple[Frame, ...] = ()  # innermost frame first
    paths: tuple[str, ...] = ()  # path-like mentions, as written
    modules: tuple[str, ...] = ()  # dotted names that may be modules (`pkg.sub`)
    symbols: tuple[str, ...] = ()  # identifiers that look like code, strongest evidence first

    @property
    def is_empty(self) -> bool:
        return not (self.frames or self.paths or self.modules or self.symbols)


@dataclass(frozen=True)
class MarkdownParts:
    """An issue's text split the way markdown reads it."""

    prose: str  # outside code: inline spans replaced by a space
    spans: tuple[str, ...]  # inline code spans
    blocks: tuple[str, ...]  # fenced code blocks' content (an unclosed fence runs to the end)


def split_markdown(text: str) -> MarkdownParts:
    prose_lines: list[str] = []
    blocks: list[str] = []
    block: list[str] | None = None
    fence = ""
    for line in text.splitlines():
        opened = _FENCE_OPEN.match(line)
        if block is None:
            if opened is not None:
                fence, block = opened.group("fence"), []
            else:
                prose_lines.append(line)
            continue
        # A closing fence is the same character, at least as long, and nothing after it.
        stripped = line.strip()
        if (
            stripped
            and stripped[0] == fence[0]
            and len(stripped) >= len(fence)
            and set(stripped) == {fence[0]}
        ):
            blocks.append("\n".join(block))
            block = None
        else:
            block.append(line)
    if block is not None:
        blocks.append("\n".join(block))
    prose, spans = _code_spans("\n".join(prose_lines))
    return MarkdownParts(prose=prose, spans=tuple(spans), blocks=tuple(blocks))


def _code_spans(text: str) -> tuple[str, list[str]]:
    """Inline code: a run of n backticks closes at the next run of exactly n (CommonMark); a run
    that never closes is literal text."""
    spans: list[str] = []
    prose: list[str] = []
    position = 0
    runs = list(_BACKTICK_RUN.finditer(text))
    index = 0
    while index < len(runs):
        opening = runs[index]
        closing = next(
            (
                j
                for j in range(index + 1, len(runs))
                if len(runs[j].group()) == len(opening.group())
            ),
            None,
        )
        if closing is None:
            index += 1
            continue
        prose.append(text[position : opening.start()])
        prose.append(" ")
        span = text[opening.end() : runs[closing].start()]
        if "\n\n" not in span:  # a span does not cross a paragraph
            spans.append(span.strip())
        else:
            prose.append(span)
        position = runs[closing].end()
        index = closing + 1
    prose.append(text[position:])
    return "".join(prose), spans


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
    return QuerySignals(
        frames=ordered_frames,
        paths=paths,
        modules=modules,
        symbols=_unique(named_symbols(text), max_items),
    )


def named_symbols(text: str) -> list[str]:
    """Names the issue uses as code, strongest evidence first: inline code spans, then names
    that look like code in prose, then what the reporter's snippets use from the library."""
    parts = split_markdown(text)
    own = {m.group(1) or m.group(2) for block in parts.blocks for m in _DEFINED.finditer(block)}
    symbols: list[str] = []
    for span in parts.spans:
        symbols.extend(_IDENTIFIER.findall(span))
    for name in _IDENTIFIER.findall(parts.prose):
        if _CODEISH.match(name):
            symbols.append(name)
    symbols.extend(name for name in _CALL.findall(parts.prose) if name.lower() not in _PROSE_CALLS)
    for dotted in _DOTTED.findall(parts.prose):
        symbols.extend(dotted.split(".")[1:])
    for block in parts.blocks:
        # A traceback's frames point at files on their own; the calls they quote are not leads.
        block = _without_frames(block)
        for imported in _IMPORTED.findall(block):
            symbols.extend(_IDENTIFIER.findall(imported))
        symbols.extend(_ATTRIBUTE.findall(block))
        symbols.extend(_CALL.findall(block))
    short = {  # `Q`, `F`: short class names are code when the issue writes them as code
        s
        for s in [*(n for span in parts.spans for n in _IDENTIFIER.findall(span))]
        + [n for block in parts.blocks for n in _CALL.findall(block)]
        if s[:1].isupper() and len(s) < 3
    }
    return [
        s
        for s in symbols
        if (len(s) >= 3 or s in short)
        and not s.isdigit()
        and s not in own
        and s.lower() not in STOP_SYMBOLS
    ]


def _without_frames(block: str) -> str:
    kept: list[str] = []
    after_frame = False
    for line in block.splitlines():
        if _PY_FRAME.search(line):
            after_frame = True
            continue
        if after_frame and line.startswith((" ", "\t")) and line.strip():
            after_frame = False
            continue  # the source line Python prints under a frame
        after_frame = False
        kept.append(line)
    return "\n".join(kept)


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

"""What a reader sees of a text on GitHub, kept as the source the model can read.

Anyone who can open an issue can put text in it that the page never shows: invisible and
bidirectional-control characters, HTML comments, link reference definitions nobody uses
(`[//]: # (...)`), footnotes nobody cites, elements GitHub strips or the browser hides
(`<script>`, `hidden`, `display:none`), and attribute text (image alt, link and `title`
attributes, `aria-label`). A model reading the source would see instructions the maintainer
never saw. `visible_markdown` removes what is never shown and marks in place what shows only on
hover, when an image fails, or to a screen reader (`[image: ...]`, `(title: ...)`), so nothing
is there secretly. Where GitHub's behaviour is uncertain, the choice shows the model less.

Code is shown verbatim on GitHub, so fenced and indented code blocks and inline code spans are
kept exactly (a `<!-- -->` in a code block IS visible). Blocks come from markdown-it-py, which
follows CommonMark as GitHub's cmark-gfm does; the rest is single passes and regexes without
nested ambiguity, so adversarial input stays linear. Text longer than `MAX_PARSED_CHARS` (twice
GitHub's 65,536-character body limit) is not parsed: all of it is treated as prose and every
definition-looking line goes, which can only show the model less.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.common.utils import normalizeReference

from agents.visible_text.html import (
    _AUTOLINK,
    _RAW_TEXT,
    _TAG,
    _mark,
    _visible_text,
    reveal_attributes,
    strip_hidden_elements,
    strip_never_shown_markup,
)
from agents.visible_text.links import (
    Edit,
    _apply_edits,
    reveal_links_and_images,
    reveal_math_phantoms,
    strip_invisible_entities,
)

MAX_PARSED_CHARS = 131_072

# --------------------------------------------------------------------------------------------
# The source's layout: code kept verbatim, definitions and footnotes a reader never sees

# Holes stand in for the spans the prose steps must not touch. Private-use characters cannot
# occur in the text: `strip_invisible` removed them, and `visible_markdown` drops strays.
_HOLE_OPEN, _HOLE_CLOSE = "\ue000", "\ue001"
_HOLE = re.compile(f"{_HOLE_OPEN}([0-9]+){_HOLE_CLOSE}")
_BACKTICK_RUN = re.compile(r"`+")
_INLINE_EVENT = re.compile(r"\\[\s\S]|[<`]")
_CELL_BAR = re.compile(r"(?<!\\)\|")
# Each run of spaces can be matched one way only, so a near miss cannot backtrack quadratically.
_DELIMITER_ROW = re.compile(
    r"[ \t>]*(?:\|[ \t]*)?:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*(?:\|[ \t]*)?\n?"
)
_CONTAINER = r"[ \t>]*(?:(?:[-*+]|[0-9]{1,9}[.)])[ \t]+)?"
_FOOTNOTE_START = re.compile(rf"{_CONTAINER}\[\^([^\]\n]{{1,999}})\]:")
_FOOTNOTE_REFERENCE = re.compile(r"\[\^([^\[\]\n]{1,999})\]")
_BRACKETED = re.compile(r"\[([^\[\]]{1,999})\]")
_DEFINITION_HEAD = re.compile(
    rf"({_CONTAINER})\[((?:[^\[\]\\\n]|\\.){{1,999}})\]:[ \t]*(<[^<>\n]*>|[^\s<]\S*)"
)
_DEFINITION_LINE = re.compile(r"^[ \t>]*\[(?:[^\[\]\\\n]|\\.){1,999}\]:.*(?:\n|\Z)", re.MULTILINE)
_MERMAID_COMMENT = re.compile(r"^[ \t>]*%%.*(?:\n|\Z)", re.MULTILINE)
# The opening fence: what follows the language word is never shown (nor is a language name that
# is not one).
_BROWSER_TAG_START = re.compile(r"<!--|<(/?)([A-Za-z][^\s/>]*)")
_BROWSER_GAP = re.compile(r"[\s/]*")
_BROWSER_SPACE = re.compile(r"\s*")
_BROWSER_NAME = re.compile(r"[^\s/>=]*")
_BROWSER_VALUE = re.compile(r"[^\s>]*")
_ATTRIBUTE_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_.:-]*")
_FENCE_INFO = re.compile(r"^([^`~\n]*(?:`{3,}|~{3,})[ \t]*)([\w+#.-]{1,24}(?![^\s]))?[^\n]*")


def visible_markdown(text: str) -> str:
    """GitHub-rendered Markdown as its reader sees it, still as Markdown source.

    Removed: HTML comments and other never-shown markup, hidden elements (see
    `strip_hidden_elements`), unused link reference definitions (`[//]: # (...)`), footnotes
    nobody cites, fence info strings, invisible character references, Mermaid `%%` comments.
    Marked in place: image alt text, link and `title` attributes, `aria-label`, links without
    text, LaTeX phantoms. Kept exactly: code blocks and code spans, and everything else. Tags in
    raw HTML blocks are first read as a browser reads them (`_as_the_browser_reads`).
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace(_HOLE_OPEN, "").replace(_HOLE_CLOSE, "")
    layout = _Layout(text) if len(text) <= MAX_PARSED_CHARS else None
    if layout is not None and layout.html_blocks:
        normal = _as_the_browser_reads(text, layout.html_blocks)
        if normal != text:
            text, layout = normal, _Layout(normal)
    fills: list[str] = []
    prose = _punch(text, _set_aside(text, layout), fills)
    for step in _PROSE_STEPS:
        prose = step(prose)
    restored = _HOLE.sub(lambda hole: fills[int(hole[1])], prose)
    return restored.replace(_HOLE_OPEN, "").replace(_HOLE_CLOSE, "")


_PROSE_STEPS: tuple[Callable[[str], str], ...] = (
    strip_never_shown_markup,
    strip_hidden_elements,
    reveal_attributes,
    reveal_links_and_images,
    strip_invisible_entities,
    reveal_math_phantoms,
)


def _punch(text: str, spans: list[Edit], fills: list[str]) -> str:
    """Replace each span with a hole that will be filled with its replacement text."""
    holes: list[Edit] = []
    for start, end, fill in spans:
        holes.append((start, end, f"{_HOLE_OPEN}{len(fills)}{_HOLE_CLOSE}"))
        fills.append(fill)
    return _apply_edits(text, holes)


def _set_aside(text: str, layout: _Layout | None) -> list[Edit]:
    """Spans that are not prose, with what replaces each: code (itself), definitions, footnotes.

    Without a layout (text too long to parse) every definition-looking line goes.
    """
    if layout is None:
        return [(line.start(), line.end(), "") for line in _DEFINITION_LINE.finditer(text)]
    code = layout.code + [
        (s, e, text[s:e]) for start, end in layout.inline for s, e in _code_spans(text, start, end)
    ]
    footnotes = layout.footnotes()
    at = layout.at
    # What the text refers to: read where a reader can see it, not in code, definitions,
    # footnote heads, raw HTML blocks (no Markdown there), comments, hidden elements, attributes.
    blanked = _blank(
        text,
        [(s, e) for s, e, _ in code]
        + [(at(d.first), at(d.end)) for d in layout.definitions]
        + [(at(first), head) for first, _, _, head in footnotes]
        + layout.html_blocks,
    )
    seen = _TAG.sub(" ", strip_hidden_elements(strip_never_shown_markup(blanked)))
    cited = {normalizeReference(m[1]) for m in _FOOTNOTE_REFERENCE.finditer(seen)}
    used = {normalizeReference(m[1]) for m in _BRACKETED.finditer(seen)}

    spans = [*code]
    spans += [(at(first), at(end), "") for first, end, label, _ in footnotes if label not in cited]
    for definition in layout.definitions:
        if definition.label.startswith("^"):
            continue  # a footnote: see above
        span = at(definition.first), at(definition.end)
        if definition.duplicate or definition.label not in used:
            spans.append((*span, ""))
        elif definition.title:
            source = text[span[0] : span[1]]
            spans.append((*span, _titled_definition(source, definition.label, definition.title)))
    return _outermost(spans)


@dataclass(frozen=True)
class _Definition:
    label: str  # normalised, as markdown-it keys it
    first: int
    end: int
    title: str
    duplicate: bool  # a later definition of a label: never used


class _Layout:
    """The block structure markdown-it finds, in the lines and characters of `text`."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._starts = [0, *(newline.end() for newline in re.finditer("\n", text))]
        env: dict[str, Any] = {}
        self.code: list[Edit] = []
        self.inline: list[tuple[int, int]] = []  # where code spans can be
        self.paragraphs: list[tuple[int, int]] = []
        self.code_blocks: dict[int, int] = {}  # first line -> end line of indented code
        self.html_blocks: list[tuple[int, int]] = []  # raw HTML: no Markdown inside
        in_paragraph = False
        for token in _block_parser().parse(_OTHER_SPACE.sub("x", text), env):
            if not token.map:
                continue
            first, end = token.map
            if token.type in ("fence", "code_block"):
                source = text[self.at(first) : self.at(end)]
                shown = _rendered_fence(source, token.info) if token.type == "fence" else source
                self.code.append((self.at(first), self.at(end), shown))
                if token.type == "code_block":
                    self.code_blocks[first] = end
            elif token.type == "html_block":
                self.html_blocks.append((self.at(first), self.at(end)))
            elif token.type == "inline":
                self.inline += (
                    self._segments(first, end) if in_paragraph else [self._span(first, end)]
                )
            if token.type in ("paragraph_open", "heading_open"):
                in_paragraph = token.type == "paragraph_open"
                if in_paragraph:
                    self.paragraphs.append((first, end))
        references = [(label, ref, False) for label, ref in (env.get("references") or {}).items()]
        references += [(ref["label"], ref, True) for ref in env.get("duplicate_refs") or []]
        self.definitions = [
            _Definition(label, ref["map"][0], ref["map"][1], ref.get("title") or "", duplicate)
            for label, ref, duplicate in references
        ]

    def at(self, line: int) -> int:
        return self._starts[line] if line < len(self._starts) else len(self.text)

    def _span(self, first: int, end: int) -> tuple[int, int]:
        return self.at(first), self.at(end)

    def _segments(self, first: int, end: int) -> list[tuple[int, int]]:
        """Where a paragraph's code spans can be: all of it, or, from a GFM table's header row
        on, each cell of each row (GFM splits rows into cells before it reads code spans)."""
        table = next(
            (
                line
                for line in range(first, end - 1)
                if _DELIMITER_ROW.fullmatch(self._line(line + 1))
                and "|" in self._line(line) + self._line(line + 1)
                and _cell_count(self._line(line)) == _cell_count(self._line(line + 1))
            ),
            None,
        )
        if table is None:
            return [self._span(first, end)]
        segments = [self._span(first, table)] if table > first else []
        for line in range(table, end):
            start, stop = self._span(line, line + 1)
            segments += _cells(self.text, start, stop)
        return segments

    def footnotes(self) -> list[tuple[int, int, str, int]]:
        """GitHub footnote definitions: (first line, end line, normalised label, head end).

        `[^label]: text` reads as a link reference definition or as a paragraph line in
        CommonMark; on GitHub it runs to the next one or the paragraph's end, and on over the
        blocks indented under it (which CommonMark reads as indented code).
        """
        found: list[tuple[int, int, str, int]] = []
        heads = [(d.first, d.end) for d in self.definitions if d.label.startswith("^")]
        for first, end in self.paragraphs:
            lines = [line for line in range(first, end) if self._footnote_head(line)]
            heads += zip(lines, [*lines[1:], end], strict=False)  # each to the next head
        for first, end in heads:
            head = self._footnote_head(first)
            if head is not None:
                label = normalizeReference(head[1])
                found.append((first, self._past_indented_code(end), label, head.end()))
        return found

    def _footnote_head(self, line: int) -> re.Match[str] | None:
        return _FOOTNOTE_START.match(self.text, self.at(line), self.at(line + 1))

    def _past_indented_code(self, end: int) -> int:
        while True:
            line = end
            while self.at(line) < len(self.text) and not self._line(line).strip():
                line += 1
            if line == end or line not in self.code_blocks:
                return end
            end = self.code_blocks[line]

    def _line(self, line: int) -> str:
        return self.text[self.at(line) : self.at(line + 1)]


def _as_the_browser_reads(text: str, html_blocks: list[tuple[int, int]]) -> str:
    """Raw HTML blocks with every tag rewritten the way a browser's parser reads it.

    GitHub passes an HTML block through as written, and browsers accept tags CommonMark would
    not (`<div x="y"hidden>`, `<div/hidden>`), so the passes after this, which read tags the
    CommonMark way, get each tag in a canonical form: `<name a="v" b>`. A tag left open at the end
    of its block swallows what follows into its attributes in the rendered page: everything from
    it on goes.
    """
    edits: list[Edit] = []
    for start, end in html_blocks:
        pos = start
        while (tag := _BROWSER_TAG_START.search(text, pos, end)) is not None:
            if tag[0] == "<!--":
                close = text.find("-->", tag.end(), end)
                pos = end if close < 0 else close + 3  # the comment step removes it whole
                continue
            parsed = _browser_tag(text, tag.end(), end)
            if parsed is None:
                edits.append((tag.start(), len(text), ""))
                return _apply_edits(text, edits)
            pos, attributes = parsed
            closing, name = tag[1], re.sub(r"[^A-Za-z0-9-]", "-", tag[2]).lower()
            canonical = f"<{closing}{name}{'' if closing else attributes}>"
            if canonical != text[tag.start() : pos]:
                edits.append((tag.start(), pos, canonical))
            if name in _RAW_TEXT and not closing:  # raw text: no tags inside
                raw_end = re.compile(rf"</{name}(?![A-Za-z0-9-])", re.IGNORECASE)
                found = raw_end.search(text, pos, end)
                pos = end if found is None else found.start()
    return _apply_edits(text, edits)


def _browser_tag(text: str, pos: int, end: int) -> tuple[int, str] | None:
    """After `<name`: where the tag ends and its attributes as ` a="v" b`; None if it never ends.

    HTML's tokenizer, reduced to what decides attributes: names run to whitespace, `/`, `>` or
    `=`; a value is quoted or runs to whitespace or `>`. Names CommonMark could not read are left
    out (they cannot hide anything).
    """
    attributes: list[str] = []
    while True:
        pos = _skip(_BROWSER_GAP, text, pos, end)
        if pos >= end:
            return None
        if text[pos] == ">":
            return pos + 1, "".join(attributes)
        name_end = _skip(_BROWSER_NAME, text, pos + 1, end)
        name, pos = text[pos:name_end], name_end
        after = _skip(_BROWSER_SPACE, text, pos, end)
        value: str | None = None
        if text.startswith("=", after):
            pos = _skip(_BROWSER_SPACE, text, after + 1, end)
            if pos < end and text[pos] in ("'", '"'):
                close = text.find(text[pos], pos + 1, end)
                if close < 0:
                    return None
                value, pos = text[pos + 1 : close], close + 1
            else:
                value_end = _skip(_BROWSER_VALUE, text, pos, end)
                value, pos = text[pos:value_end], value_end
        if _ATTRIBUTE_NAME.fullmatch(name):
            quoted = "" if value is None else '="' + value.replace('"', "&quot;") + '"'
            attributes.append(f" {name.lower()}{quoted}")


def _skip(pattern: re.Pattern[str], text: str, pos: int, end: int) -> int:
    found = pattern.match(text, pos, end)
    return found.end() if found else pos


# Whitespace other than space, tab and newline never shapes CommonMark blocks, and it makes
# markdown-it-py's HTML-tag regex backtrack exponentially (an unquoted attribute value may hold a
# no-break space that `\s` matches too: 1 KB took 4 s). The parser gets a copy with a letter in
# its place (same length, same lines).
_OTHER_SPACE = re.compile(r"[^\S \t\n]")


def _block_parser() -> MarkdownIt:
    # Blocks only: inline parsing is the slow part of markdown-it and code spans are found below.
    # Without GFM tables too (markdown-it's table rule is slow on long tables): a table is read as
    # a paragraph, and `_Layout._segments` splits its rows into cells as GFM does.
    return MarkdownIt("commonmark").disable("inline")


def _titled_definition(source: str, label: str, title: str) -> str:
    head = _DEFINITION_HEAD.match(source)
    prefix, written, destination = head.groups() if head else ("", label.lower(), "")
    ending = "\n" if source.endswith("\n") else ""
    return f"{prefix}[{written}]: {destination} {_mark('title', _visible_text(title))}{ending}"


def _rendered_fence(source: str, info: str) -> str:
    """A fenced code block as shown: verbatim, but the info string after the language is never
    shown, and the languages GitHub draws as pictures hide their comments."""
    source = _FENCE_INFO.sub(r"\1\2", source, count=1)
    language = (info.split() or [""])[0].lower()
    if language == "mermaid":
        return _MERMAID_COMMENT.sub("", source)
    if language == "math":
        return reveal_math_phantoms(source)
    return source


def _code_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Inline code spans in `text[start:end]`, CommonMark's way and in linear time.

    Left to right, the first construct to begin wins: a backslash escapes the next character,
    raw HTML and autolinks are skipped whole, and a backtick run opens a span closed by the next
    run of the same length (runs are indexed up front, so a missing closer costs no rescan).
    """
    runs: dict[int, list[int]] = {}
    for run in _BACKTICK_RUN.finditer(text, start, end):
        runs.setdefault(run.end() - run.start(), []).append(run.start())
    if not runs:
        return []
    spans: list[tuple[int, int]] = []
    misses: dict[str, int] = {}
    pos = start
    while (event := _INLINE_EVENT.search(text, pos, end)) is not None:
        if event[0][0] == "\\":
            pos = event.end()
        elif event[0] == "<":
            pos = _raw_html_end(text, event.start(), end, misses) or event.end()
        else:
            run_end = event.start()
            while run_end < end and text[run_end] == "`":
                run_end += 1
            closers = runs.get(run_end - event.start(), [])
            index = bisect_right(closers, event.start())
            if index < len(closers):
                pos = closers[index] + run_end - event.start()
                spans.append((event.start(), pos))
            else:
                pos = run_end
    return spans


def _raw_html_end(text: str, pos: int, end: int, misses: dict[str, int]) -> int | None:
    if text.startswith("<!--", pos):
        return _find_after(text, "-->", pos + 4, end, misses)
    if text.startswith("<?", pos):
        return _find_after(text, "?>", pos + 2, end, misses)
    if text.startswith("<![CDATA[", pos):
        return _find_after(text, "]]>", pos + 9, end, misses)
    if text.startswith("<!", pos) and text[pos + 2 : pos + 3].isalpha():
        return _find_after(text, ">", pos + 2, end, misses)
    found = _TAG.match(text, pos, end) or _AUTOLINK.match(text, pos, end)
    return found.end() if found else None


def _find_after(text: str, marker: str, pos: int, end: int, misses: dict[str, int]) -> int | None:
    # Once a marker is missing after some position it is missing after every later one.
    if pos >= misses.get(marker, end + 1):
        return None
    found = text.find(marker, pos, end)
    if found < 0:
        misses[marker] = pos
        return None
    return found + len(marker)


def _cells(text: str, start: int, end: int) -> list[tuple[int, int]]:
    cells: list[tuple[int, int]] = []
    pos = start
    for bar in _CELL_BAR.finditer(text, start, end):
        cells.append((pos, bar.start()))
        pos = bar.end()
    return [*cells, (pos, end)]


def _cell_count(row: str) -> int:
    row = row.strip().lstrip("> \t")
    row = row.removeprefix("|")
    if row.endswith("|") and not row.endswith("\\|"):
        row = row[:-1]
    return len(_CELL_BAR.findall(row)) + 1


def _blank(text: str, spans: list[tuple[int, int]]) -> str:
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def _outermost(spans: list[Edit]) -> list[Edit]:
    """Sorted spans without those inside another (code inside a removed footnote)."""
    kept: list[Edit] = []
    for span in sorted(spans, key=lambda s: (s[0], -s[1])):
        if not kept or span[0] >= kept[-1][1]:
            kept.append(span)
    return kept

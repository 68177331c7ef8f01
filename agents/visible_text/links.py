"""Markdown inline text a reader sees only on hover or when an image fails: image alt text, link
titles, empty links; invisible character references; math phantoms."""

from __future__ import annotations

import re
from bisect import bisect_right
from html.entities import html5 as HTML5_ENTITIES

from markdown_it.common.utils import unescapeAll

from agents.visible_text.html import _mark, _visible_text
from agents.visible_text.invisible import is_invisible

_BRACKET_EVENT = re.compile(r"\\[\s\S]|[\[\]]|\n[ \t]*(?=\n)")
_LINK_SPACE = re.compile(r"[ \t]*(?:\n[ \t]*)?")
_WORD = re.compile(r"\S+")
_ANGLED_DESTINATION = re.compile(r"<(?:[^<>\n\\]|\\.)*>")
_LINK_TITLE = re.compile(
    r'"(?:[^"\\]|\\[\s\S])*"|\'(?:[^\'\\]|\\[\s\S])*\'|\((?:[^()\\]|\\[\s\S])*\)'
)
_ENTITY = re.compile(r"&(?:#[xX]([0-9A-Fa-f]{1,6})|#([0-9]{1,7})|([A-Za-z][A-Za-z0-9]{1,31}));")
_MATH_PHANTOM = re.compile(r"\\[hv]?phantom\b")

Edit = tuple[int, int, str]


def reveal_links_and_images(text: str) -> str:
    """Show what Markdown links and images hide: alt text, titles, links without text.

    `![alt](x.png "t")` becomes `[image: alt](x.png) (title: t)`, `[a](u "t")` becomes
    `[a](u) (title: t)` and `[](u)` becomes `[(empty link)](u)`. A reference link's title lives
    in its definition, which `visible_markdown` rewrites the same way.
    """
    edits: list[Edit] = []
    words, titles = _Words(text), dict[int, _Title]()
    for open_, close in _bracket_pairs(text):
        empty = not text[open_ + 1 : close].strip()
        if text[open_ - 1 : open_] == "!" and text[open_ - 2 : open_ - 1] != "\\":
            edits.append((open_ - 1, open_ + 1, "[image" if empty else "[image: "))
        elif empty and text.startswith("(", close + 1):
            edits.append((open_ + 1, close, "(empty link)"))
        titled = _inline_link_title(text, close, words, titles)
        if titled is not None:
            start, end, title = titled
            shown = _visible_text(title)
            edits.append((start, end, f") {_mark('title', shown)}" if shown else ")"))
    return _apply_edits(text, edits)


def strip_invisible_entities(text: str) -> str:
    """Remove character references to invisible characters (`&#8203;`, `&zwj;`, `&#xE0041;`)."""

    def drop(entity: re.Match[str]) -> str:
        if entity[3] is not None:
            chars = HTML5_ENTITIES.get(f"{entity[3]};", "")
        else:
            code = int(entity[1], 16) if entity[1] else int(entity[2])
            chars = chr(code) if 0 < code <= 0x10FFFF else ""
        return "" if chars and all(map(is_invisible, chars)) else entity[0]

    return _ENTITY.sub(drop, text)


def reveal_math_phantoms(text: str) -> str:
    r"""Mark LaTeX `\phantom{...}` (GitHub math renders it as blank space)."""
    return _MATH_PHANTOM.sub("(invisible:)", text)


def _bracket_pairs(text: str) -> list[tuple[int, int]]:
    """Matching `[` `]` positions in one pass; a blank line ends every open bracket."""
    stack: list[int] = []
    pairs: list[tuple[int, int]] = []
    for event in _BRACKET_EVENT.finditer(text):
        char = event[0]
        if char == "[":
            stack.append(event.start())
        elif char == "]":
            if stack:
                pairs.append((stack.pop(), event.start()))
        elif char[0] == "\n":
            stack.clear()
    return sorted(pairs)


def _inline_link_title(
    text: str, close: int, words: _Words, titles: dict[int, _Title]
) -> Edit | None:
    """For `](dest "title")` after position `close`: the span from the end of dest to `)`.

    A bare destination has no whitespace, so it ends where its run of non-space characters does
    (`words` knows where, without rescanning a run for every `](` inside it); a title is
    matched once per position however many links end there (`titles`).
    """
    if not text.startswith("(", close + 1):
        return None
    start = _skip_link_space(text, close + 2)
    if text.startswith("<", start):
        angled = _ANGLED_DESTINATION.match(text, start)
        if angled is None:
            return None
        end = angled.end()
    else:
        word_end = words.end_of(start)
        if word_end is None:
            return None
        end = word_end
    pos = _skip_link_space(text, end)
    if pos == end:
        return None
    if pos not in titles:
        titles[pos] = _title_at(text, pos)
    found = titles[pos]
    return None if found is None else (end, found[0], found[1])


_Title = tuple[int, str] | None


def _title_at(text: str, pos: int) -> _Title:
    title = _LINK_TITLE.match(text, pos)
    if title is None:
        return None
    close = _skip_link_space(text, title.end())
    if not text.startswith(")", close):
        return None
    return close + 1, unescapeAll(title[0][1:-1])


class _Words:
    """Where each run of non-space characters ends, found in one pass."""

    def __init__(self, text: str) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        for word in _WORD.finditer(text):
            self._starts.append(word.start())
            self._ends.append(word.end())

    def end_of(self, pos: int) -> int | None:
        index = bisect_right(self._starts, pos) - 1
        if index < 0 or pos >= self._ends[index]:
            return None
        return self._ends[index]


def _skip_link_space(text: str, pos: int) -> int:
    found = _LINK_SPACE.match(text, pos)
    return found.end() if found else pos


def _apply_edits(text: str, edits: list[Edit]) -> str:
    out: list[str] = []
    pos = 0
    for start, end, replacement in sorted(edits, key=lambda edit: (edit[0], -edit[1])):
        if start < pos:
            continue  # inside an edit already made
        out += [text[pos:start], replacement]
        pos = end
    out.append(text[pos:])
    return "".join(out)

"""HTML in Markdown: markup the page never shows, elements whose content is hidden, and attribute
text a reader sees only on hover or through a screen reader."""

from __future__ import annotations

import html
import re

from agents.visible_text.invisible import strip_invisible

# Comments, processing instructions, CDATA and declarations: the page shows none of them. An
# unclosed one hides the rest of the text, as a comment opening an HTML block does on GitHub.
_NEVER_SHOWN = re.compile(
    r"<!--.*?(?:-->|\Z)|<\?.*?(?:\?>|\Z)|<!\[CDATA\[.*?(?:\]\]>|\Z)|<![A-Za-z][^>]*(?:>|\Z)",
    re.DOTALL,
)
# CommonMark's raw HTML tag; the attribute list cannot backtrack far (names and values never
# contain whitespace, `<`, `>` or `=` unquoted).
_ATTRIBUTE = re.compile(
    r"""([A-Za-z_:][A-Za-z0-9_.:-]*)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s"'=<>`]+))?"""
)
_ATTRIBUTES = r"""(?:\s+[A-Za-z_:][A-Za-z0-9_.:-]*(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?)*"""
_TAG = re.compile(
    rf"<(?:(?P<name>[A-Za-z][A-Za-z0-9-]*)(?P<attrs>{_ATTRIBUTES})\s*(?P<slash>/?)>"
    r"|/(?P<closing>[A-Za-z][A-Za-z0-9-]*)\s*>)"
)
_AUTOLINK = re.compile(
    r"<(?:[A-Za-z][A-Za-z0-9+.-]{1,31}:[^\s<>]*"
    r"|[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>"
)

# Elements GitHub drops with their content (or, for the tag filter's list, shows as escaped text:
# either way the model need not see the content as markup).
_CONTENT_NEVER_SHOWN = frozenset(
    [
        "script",
        "style",
        "template",
        "noscript",
        "title",
        "textarea",
        "iframe",
        "noembed",
        "noframes",
        "xmp",
        "object",
        "applet",
    ]
)
# Their content is raw text: it ends at the first closing tag, whatever looks like a tag inside.
_RAW_TEXT = frozenset(
    ["script", "style", "title", "textarea", "iframe", "noembed", "noframes", "xmp", "noscript"]
)
_VOID = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    ]
)
_HIDING_STYLE = re.compile(
    r"display\s*:\s*none|visibility\s*:\s*(?:hidden|collapse)"
    r"|(?:opacity|font-size)\s*:\s*[0.]+[a-z%]*\s*(?:[;!]|$)",
    re.IGNORECASE,
)

# Attribute text a reader can see somehow (on hover, when an image fails, through a screen
# reader) is shown in the text as `[image: ...]` or `(title: ...)`; URLs stay (a link shows its
# target on hover, as a Markdown link does); a few presentational values stay when they are what
# they claim to be; any other attribute value is text nobody sees, so it goes.
_MARKED_ATTRIBUTES = {
    "alt": "image",
    "title": "title",
    "aria-label": "label",
    "aria-description": "description",
}
_URL_ATTRIBUTES = frozenset({"href", "src", "srcset", "cite"})
_SIZE = r"\d{1,5}(?:\.\d{1,3})?(?:%|px)?"
_PRESENTATION = {
    name: re.compile(pattern, re.IGNORECASE)
    for name, pattern in {
        "width": _SIZE,
        "height": _SIZE,
        "align": "left|right|center|justify|top|middle|bottom",
        "valign": "top|middle|bottom|baseline",
        "colspan": r"\d{1,3}",
        "rowspan": r"\d{1,3}",
        "start": r"-?\d{1,9}",
        "type": "1|a|i|checkbox",
        "dir": "ltr|rtl|auto",
        "lang": r"[a-z]{2,3}(?:-[a-z0-9]{2,8})?",
        "datetime": r"[0-9][0-9T:.+\-Z ]{0,34}",
        "media": r"\(prefers-color-scheme:\s?(?:light|dark)\)",
        "scope": "row|col|rowgroup|colgroup",
        "open": "|open",
        "reversed": "|reversed",
        "checked": "|checked",
        "disabled": "|disabled",
    }.items()
}


def strip_never_shown_markup(text: str) -> str:
    """Remove `<!-- -->` comments, `<? ?>`, `<![CDATA[ ]]>` and `<!DECLARATIONS>`."""
    return _NEVER_SHOWN.sub("", text)


def strip_hidden_elements(text: str) -> str:
    """Remove elements a reader never sees, with their content.

    That is `<script>`, `<style>`, `<template>`, `<noscript>`, `<object>` and their kin, any
    element with the `hidden` attribute or a hiding `style` (`display:none`, `visibility:hidden`,
    zero opacity or font size), and `<input type="hidden">`. `aria-hidden` content stays: it is
    only hidden from screen readers, sighted readers see it. An element that is never closed
    hides the rest of the text.
    """
    out: list[str] = []
    pos = 0
    while (tag := _TAG.search(text, pos)) is not None:
        name = (tag["name"] or "").lower()
        if not name or not _hides_content(name, _attributes(tag["attrs"])):
            out.append(text[pos : tag.end()])
            pos = tag.end()
            continue
        out.append(text[pos : tag.start()])
        pos = tag.end() if name in _VOID else _element_end(text, name, tag.end())
    out.append(text[pos:])
    return "".join(out)


def reveal_attributes(text: str) -> str:
    """Show attribute text a reader can reach (alt, title, aria-label); drop the rest.

    `<img src="a.png" alt="A cat">` becomes `<img src="a.png">[image: A cat]`; a tag whose
    attributes are all kept (URLs, honest presentational values) stays exactly as written.
    """

    def rewrite(tag: re.Match[str]) -> str:
        if tag["name"] is None:
            return tag[0]
        kept: list[str] = []
        marks: list[str] = []
        changed = False
        for attribute in _ATTRIBUTE.finditer(tag["attrs"]):
            name, value = attribute[1].lower(), _attribute_value(attribute)
            if name in _URL_ATTRIBUTES or _presentational(name, value):
                kept.append(attribute[0])
                continue
            changed = True
            shown = _visible_text(value)
            if name in _MARKED_ATTRIBUTES and shown:
                marks.append(_mark(_MARKED_ATTRIBUTES[name], shown))
        if not changed:
            return tag[0]
        attributes = "".join(f" {a}" for a in kept)
        return f"<{tag['name']}{attributes}{' /' if tag['slash'] else ''}>{' '.join(marks)}"

    return _TAG.sub(rewrite, text)


def _hides_content(name: str, attributes: dict[str, str]) -> bool:
    return (
        name in _CONTENT_NEVER_SHOWN
        or "hidden" in attributes
        or (name == "dialog" and "open" not in attributes)
        or (name == "input" and attributes.get("type", "").strip().lower() == "hidden")
        or _HIDING_STYLE.search(attributes.get("style", "")) is not None
    )


def _element_end(text: str, name: str, pos: int) -> int:
    """Where the element opened just before `pos` ends (after its matching closing tag)."""
    depth = 1
    for tag in _TAG.finditer(text, pos):
        if (tag["closing"] or "").lower() == name:
            depth -= 1
            if depth == 0:
                return tag.end()
        elif name not in _RAW_TEXT and (tag["name"] or "").lower() == name:
            depth += 1
    return len(text)


def _attributes(source: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for attribute in _ATTRIBUTE.finditer(source):
        found.setdefault(attribute[1].lower(), _attribute_value(attribute))
    return found


def _attribute_value(attribute: re.Match[str]) -> str:
    raw = attribute[2] or ""
    if raw[:1] in ("'", '"'):
        raw = raw[1:-1]
    return html.unescape(raw)


def _presentational(name: str, value: str) -> bool:
    pattern = _PRESENTATION.get(name)
    return pattern is not None and pattern.fullmatch(value.strip()) is not None


def _visible_text(value: str) -> str:
    return " ".join(strip_invisible(value).split())


def _mark(kind: str, text: str) -> str:
    # A mark read again (text sanitised twice) is not marked twice.
    text = text.removeprefix(f"{kind}: ")
    return f"[image: {text}]" if kind == "image" else f"({kind}: {text})"

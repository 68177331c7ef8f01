"""What a reader sees of a text on GitHub (see `markdown` for the whole story).

`invisible`: characters that render as nothing; `html`: markup and elements the page hides;
`links`: alt text, titles, entities; `markdown`: the source's layout, and `visible_markdown`.
"""

from __future__ import annotations

from agents.visible_text.invisible import is_invisible, strip_invisible
from agents.visible_text.markdown import MAX_PARSED_CHARS, visible_markdown

__all__ = ["MAX_PARSED_CHARS", "is_invisible", "strip_invisible", "visible_markdown"]

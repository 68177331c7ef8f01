"""Characters that render as nothing: zero-width, bidirectional controls, Unicode tags."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_KEPT_CONTROLS = frozenset("\n\t")

# Invisible characters outside the `Cf` (format) category, which `is_invisible` catches wholesale
# (zero-width spaces and joiners, bidi embeddings/overrides/isolates, soft hyphen, BOM, tag
# characters U+E0000-E007F, interlinear annotations ...).
_INVISIBLE_RANGES: tuple[tuple[int, int], ...] = (
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x115F, 0x1160),  # Hangul choseong/jungseong fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels
    (0x180B, 0x180F),  # Mongolian variation selectors and vowel separator
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFFA0, 0xFFA0),  # halfwidth Hangul filler
    (0xE0000, 0xE007F),  # tags (also Cf; kept here so the intent is explicit)
    (0xE0100, 0xE01EF),  # variation selectors supplement
)


@lru_cache(maxsize=4096)
def is_invisible(char: str) -> bool:
    if char in _KEPT_CONTROLS:
        return False
    if unicodedata.category(char) in ("Cf", "Cc", "Co", "Cn"):
        return True
    code = ord(char)
    return any(low <= code <= high for low, high in _INVISIBLE_RANGES)


# Printable ASCII is always visible: only runs of anything else are looked at, char by char.
_MAYBE_INVISIBLE = re.compile(r"[^\x20-\x7e\n]+")


def strip_invisible(text: str) -> str:
    """Remove characters that render as nothing (carriage returns become plain newlines)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _MAYBE_INVISIBLE.sub(
        lambda run: "".join(char for char in run[0] if not is_invisible(char)), text
    )

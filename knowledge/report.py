"""A bug report reduced to what can point at code, before its terms are searched.

Long reports bury their signal: a pasted `pip freeze`, a "System information" section, an issue
template's headings and checklist, comment blocks the template asked the reporter to keep. Those
add rare-looking words (package names, version strings, operating systems) that out-rank the
words that matter. What stays: the prose, the reporter's code, and from tracebacks the frames
(file, line, function, source line) and the error itself.
"""

from __future__ import annotations

import re

_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
# A heading that opens an environment listing; the listing runs to the next heading.
_ENVIRONMENT_HEADING = re.compile(
    r"^\s*(?:#{1,6}\s*|\*\*|__)?\s*(?:system\s+info(?:rmation)?|environment|versions?(?:\s+info)?|"
    r"installed\s+(?:packages|versions)|platform|your\s+environment|os\s*/\s*environment|"
    r"installation|dependencies|show_versions|output\s+of\s+\S*show_versions\S*|"
    r"(?:matplotlib|django|python|numpy|scikit-learn|sklearn)\s+version)\b[^\n]*$",
    re.IGNORECASE,
)
_HEADING = re.compile(r"^\s*(?:#{1,6}\s+\S|\*\*[^*\n]+\*\*\s*:?\s*$|__[^_\n]+__\s*:?\s*$)")
# `numpy==1.24.1`, `numpy: 1.24.1`, `Python 3.11.2`, `OS: Ubuntu 22.04`, `numpy  1.24.1`.
_VERSION_LINE = re.compile(
    r"^\s*[-*]?\s*[\w .\-/()]{1,40}?\s*(?:==|:|\s)\s*v?\d+(?:\.\d+)+\S*(?:\s+\S+){0,3}\s*$"
)
_KEY_VALUE_ENV = re.compile(
    r"^\s*[-*]?\s*(?:os|operating\s+system|platform|python|executable|machine|backend|"
    r"pip|conda|installation|blas|lapack|compiler|version|browser)\b\s*[:=]",
    re.IGNORECASE,
)
_CHECKLIST = re.compile(r"^\s*[-*]\s*\[[ xX]\]\s")
_DETAILS = re.compile(r"</?(?:details|summary)[^>]*>", re.IGNORECASE)
_TRACEBACK_FRAME = re.compile(r'^\s*File "[^"]+", line \d+')
_NUMERIC_LINE = re.compile(r"^[\s\d.,:;eE+\-\[\]()|*/%=<>]*$")
# Reports longer than this are cut at the end: a traceback's innermost frames come last, so the
# middle goes first.
MAX_REDUCED_CHARS = 6000


def reduce_report(text: str, *, max_chars: int = MAX_REDUCED_CHARS) -> str:
    """The report without environment listings, template boilerplate and number dumps."""
    text = _HTML_COMMENT.sub("", text)
    text = _DETAILS.sub("", text)
    kept: list[str] = []
    in_environment = False
    in_fence = False
    previous_blank = True
    for line in text.splitlines():
        stripped = line.strip()
        fence = stripped.startswith(("```", "~~~"))
        if in_environment:
            if _HEADING.match(line) and not _ENVIRONMENT_HEADING.match(line) and not in_fence:
                in_environment = False
            else:
                if fence:
                    in_fence = not in_fence
                continue
        if _ENVIRONMENT_HEADING.match(line) and (previous_blank or _HEADING.match(line)):
            in_environment = True
            continue
        if fence:
            in_fence = not in_fence
            kept.append(line)
            continue
        previous_blank = not stripped
        if _TRACEBACK_FRAME.match(line):
            kept.append(line)
            continue
        if (
            _CHECKLIST.match(line)
            or _VERSION_LINE.match(line)
            or _KEY_VALUE_ENV.match(line)
            or (stripped and len(stripped) > 3 and _NUMERIC_LINE.match(stripped))
        ):
            continue
        kept.append(line)
    reduced = re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()
    if len(reduced) <= max_chars:
        return reduced
    head = reduced[: max_chars * 2 // 3]
    tail = reduced[-(max_chars - len(head)) :]
    return f"{head}\n…\n{tail}"

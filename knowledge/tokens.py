"""Code-aware tokens for the lexical index and for queries.

An issue says "the retry delay is ignored"; the code says `retryDelay` or `retry_delay`.
Splitting identifiers into their words, lower-casing and a light stemming let both meet,
while the whole compound identifier is kept as a token too so an exact name still ranks first.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator

_WORD = re.compile(r"[A-Za-z0-9_]+")
_CAMEL_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")

# English function words plus syntax that every source file repeats. Removing them keeps
# OR-queries small (fast) and stops "the"/"self" from matching every chunk.
_STOPWORD_TEXT = """
    a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each either else
    ever few for from further had has have having he her here hers him his how however i if in
    into is it its itself just least less let like ll may me might more most much must my no nor
    not now of off often on once only or other our ours out over own per quite rather re really
    same she should since so some still such than that the their theirs them then there these
    they this those though through thus to too under until up upon us very via was we well were
    what when where whether which while who whom whose why will with within without would yet
    you your yours
    self cls def return import none true false elif pass lambda yield async await
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

_MIN_STEM = 3


def stem(word: str) -> str:
    """Strip common English inflections so parse/parses/parsed/parsing share one token."""
    if len(word) <= 3 or not word.isalpha():
        return word
    for suffix, replacement in (("ies", "y"), ("ied", "y"), ("sses", "ss")):
        if word.endswith(suffix) and len(word) - len(suffix) + len(replacement) >= _MIN_STEM:
            return word[: -len(suffix)] + replacement
    base = word
    for suffix in ("ing", "ed", "ly"):
        if base.endswith(suffix) and len(base) - len(suffix) >= _MIN_STEM:
            base = base[: -len(suffix)]
            break
    else:
        if base.endswith("s") and not base.endswith(("ss", "us", "is")) and len(base) > 3:
            base = base[:-1]
    if base.endswith("e") and len(base) > _MIN_STEM:
        base = base[:-1]
    if (
        len(base) > _MIN_STEM
        and base[-1] == base[-2]
        and base[-1] not in "lsz"
        and base[-1].isalpha()
    ):
        base = base[:-1]  # running -> runn -> run, stopped -> stopp -> stop
    return base


def split_identifier(identifier: str) -> list[str]:
    """`HTTPServerError_v2` -> ['http', 'server', 'error', 'v', '2'] (lower case)."""
    parts: list[str] = []
    for piece in identifier.split("_"):
        parts.extend(p.lower() for p in _CAMEL_PART.findall(piece))
    return parts


def iter_tokens(text: str) -> Iterator[str]:
    """Yield code-aware tokens: stemmed identifier parts, plus each compound identifier whole."""
    for word in _WORD.findall(text):
        yield from word_tokens(word)


@functools.lru_cache(maxsize=1 << 16)
def word_tokens(word: str) -> tuple[str, ...]:
    # Source repeats the same identifiers endlessly; caching per word makes indexing ~3x faster.
    parts = split_identifier(word)
    tokens = [
        stem(part)
        for part in parts
        if len(part) >= 2 and part not in STOPWORDS and not (part.isdigit() and len(part) > 6)
    ]
    if len(parts) > 1:
        compound = "".join(parts)
        if len(compound) >= 4:
            tokens.append(compound)
    return tuple(tokens)


def token_words(text: str) -> dict[str, str]:
    """Each token of `text` -> the word it came from (first seen), to explain matches in
    the reader's words rather than as stems."""
    words: dict[str, str] = {}
    for word in _WORD.findall(text):
        for token in word_tokens(word):
            words.setdefault(token, word)
    return words


def tokenize(text: str) -> list[str]:
    return list(iter_tokens(text))


def query_terms(text: str, *, limit: int = 64) -> list[str]:
    """Distinct tokens of a query in order of first appearance, capped to keep queries fast."""
    seen: dict[str, None] = {}
    for token in iter_tokens(text):
        seen.setdefault(token, None)
        if len(seen) >= limit:
            break
    return list(seen)

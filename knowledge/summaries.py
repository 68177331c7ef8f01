"""The short, meaning-dense texts that get embedded for a file.

Embedding whole code chunks is slow on CPU (~14 chunks/s) and ranked files no better than
BM25 when measured, so a file contributes only: one summary (path, module doc, the symbols it
defines) and one text per documented symbol or documentation section (signature + first
paragraph of the docstring). Everything else is left to the lexical index.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from knowledge.chunking import ChunkKind

SUMMARY_MAX_CHARS = 700
UNIT_MAX_CHARS = 500
MAX_UNITS_PER_FILE = 24


class DescribedChunk(Protocol):
    """What summaries need of a chunk (both `Chunk` and the lexical index's records have it)."""

    @property
    def kind(self) -> ChunkKind: ...

    @property
    def symbol(self) -> str: ...

    @property
    def signature(self) -> str: ...

    @property
    def docstring(self) -> str: ...


class UnitType(StrEnum):
    FILE_SUMMARY = "file_summary"
    SYMBOL = "symbol"
    SECTION = "doc_section"


@dataclass(frozen=True, slots=True)
class EmbeddingUnit:
    """One text to embed, identified by what it says so unchanged texts are never re-embedded."""

    id: str
    path: str
    unit_type: UnitType
    symbol: str
    text: str


def unit_id(repository: str, path: str, unit_type: UnitType, symbol: str, text: str) -> str:
    key = f"{repository}\x00{path}\x00{unit_type.value}\x00{symbol}\x00{text}"
    digest = hashlib.sha1(key.encode("utf-8")).hexdigest()
    return f"{unit_type.value[:3]}-{digest[:32]}"


def first_paragraph(doc: str, max_chars: int = 300) -> str:
    paragraph = doc.strip().split("\n\n", 1)[0]
    flat = " ".join(paragraph.split())
    return flat if len(flat) <= max_chars else flat[: max_chars - 1].rstrip() + "…"


def file_summary(path: str, chunks: Sequence[DescribedChunk]) -> str:
    """`path`, the module's first doc lines and the names it defines, in one short text."""
    lines = [path]
    module_doc = next(
        (c.docstring for c in chunks if c.kind is ChunkKind.MODULE and c.docstring), ""
    )
    if module_doc:
        lines.append(first_paragraph(module_doc, 240))
    names: list[str] = []
    for chunk in chunks:
        if chunk.symbol and chunk.symbol not in names and chunk.kind is not ChunkKind.MODULE:
            names.append(chunk.symbol)
    if names:
        sections = all(c.kind is ChunkKind.SECTION for c in chunks)
        lines.append(("sections: " if sections else "defines: ") + ", ".join(names))
    summary = "\n".join(lines)
    return summary if len(summary) <= SUMMARY_MAX_CHARS else summary[: SUMMARY_MAX_CHARS - 1] + "…"


def embedding_units(
    repository: str, path: str, chunks: Sequence[DescribedChunk]
) -> list[EmbeddingUnit]:
    units = [_unit(repository, path, UnitType.FILE_SUMMARY, "", file_summary(path, chunks))]
    seen = {units[0].id}
    for chunk in chunks:
        if len(units) >= MAX_UNITS_PER_FILE:
            break
        text = _symbol_text(path, chunk)
        if not text:
            continue
        unit_type = UnitType.SECTION if chunk.kind is ChunkKind.SECTION else UnitType.SYMBOL
        unit = _unit(repository, path, unit_type, chunk.symbol, text)
        if unit.id not in seen:
            seen.add(unit.id)
            units.append(unit)
    return units


def _symbol_text(path: str, chunk: DescribedChunk) -> str:
    """Signature plus docstring for a documented symbol or section; empty when undocumented."""
    if not chunk.docstring or not chunk.symbol:
        return ""
    head = chunk.signature or chunk.symbol
    text = f"{path} {chunk.symbol}\n{head}\n{first_paragraph(chunk.docstring)}"
    return text if len(text) <= UNIT_MAX_CHARS else text[: UNIT_MAX_CHARS - 1] + "…"


def _unit(repository: str, path: str, unit_type: UnitType, symbol: str, text: str) -> EmbeddingUnit:
    return EmbeddingUnit(
        id=unit_id(repository, path, unit_type, symbol, text),
        path=path,
        unit_type=unit_type,
        symbol=symbol,
        text=text,
    )

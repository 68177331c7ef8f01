"""Find the files an issue is about, and the lessons of similar past issues, within a budget.

Four rankings are fused by reciprocal rank: BM25 over whole files and over chunks (code-aware
tokens, SQLite FTS5), dense similarity to file summaries and documented symbols, and what the
issue names outright (stack-trace frames, paths, modules, symbols). Each file keeps the
reasons it was chosen. Past patterns and failures come from this repository only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from knowledge.context import (
    FAILURES_HEADING,
    FAILURES_INTRO,
    FILES_HEADING,
    PATTERNS_HEADING,
    PATTERNS_INTRO,
    FileMatch,
    Lesson,
    RetrievedContext,
    Snippet,
    render_file_header,
    render_lesson,
    render_snippet,
)
from knowledge.embeddings import Embedder
from knowledge.lexical import ChunkRecord, LexicalIndex
from knowledge.signals import QuerySignals, extract_signals, module_path_candidates
from knowledge.store import Kind, KnowledgeStore, StoredHit
from knowledge.tokens import query_terms, token_words, tokenize

_QUERY_EMBED_CHARS = 2000
_SNIPPET_MAX_LINES = 60
_LESSON_MAX_CHARS = 1500
# A symbol defined in more files than this is too common to point at any one of them.
_MAX_FILES_PER_SYMBOL = 3


@dataclass(frozen=True)
class FusionWeights:
    """Reciprocal-rank fusion: score = sum(weight / (rrf_k + rank)) over the rankings."""

    lexical_files: float = 1.0
    lexical_chunks: float = 1.0
    dense: float = 1.0
    named: float = 3.0  # an issue that names a file or a frame has said where to look
    rrf_k: int = 60


@dataclass
class _Candidate:
    path: str
    score: float = 0.0
    reasons: list[str] = field(default_factory=list)
    lexical_chunk_ids: list[int] = field(default_factory=list)
    dense_symbol: str | None = None
    frame_lines: list[int] = field(default_factory=list)
    named_symbols: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RankedFile:
    path: str
    score: float
    reasons: tuple[str, ...]


class HybridRetriever:
    def __init__(
        self,
        *,
        store: KnowledgeStore,
        embedder: Embedder,
        lexical: LexicalIndex,
        weights: FusionWeights | None = None,
        candidates: int = 100,
        lesson_min_similarity: float = 0.3,
        max_lessons: int = 3,
        lesson_share: float = 0.35,
    ) -> None:
        self._store = store
        self._embedder = embedder
        self._lexical = lexical
        self._weights = weights or FusionWeights()
        self._candidates = candidates
        self._lesson_min_similarity = lesson_min_similarity
        self._max_lessons = max_lessons
        self._lesson_share = lesson_share

    async def retrieve(
        self, repo: str, query: str, *, token_budget: int = 6000, k_files: int = 10
    ) -> RetrievedContext:
        # Chroma, SQLite and the model block; keep the event loop free.
        return await asyncio.to_thread(
            self.retrieve_sync, repo, query, token_budget=token_budget, k_files=k_files
        )

    def retrieve_sync(
        self, repo: str, query: str, *, token_budget: int = 6000, k_files: int = 10
    ) -> RetrievedContext:
        if not query.strip() or token_budget <= 0:
            return RetrievedContext.empty(repo, query)
        candidates, vector = self._rank(repo, query, k_files)
        patterns = self._lessons(Kind.PATTERN, repo, vector)
        failures = self._lessons(Kind.FAILURE, repo, vector)
        return self._fit(repo, query, candidates, patterns, failures, token_budget)

    def rank_files(self, repo: str, query: str, *, k: int = 10) -> list[RankedFile]:
        """The fused file ranking alone (no snippets, no lessons): what benchmarks measure."""
        candidates, _ = self._rank(repo, query, k)
        return [RankedFile(c.path, c.score, tuple(c.reasons)) for c in candidates]

    # --- ranking --------------------------------------------------------------------------

    def _embed_query(self, query: str) -> np.ndarray:
        return np.asarray(self._embedder.embed([query[:_QUERY_EMBED_CHARS]])[0], dtype=np.float32)

    def _rank(self, repo: str, query: str, k: int) -> tuple[list[_Candidate], np.ndarray]:
        """The top `k` files, and the query's vector (reused for lessons)."""
        weights = self._weights
        terms = query_terms(query)
        pool: dict[str, _Candidate] = {}

        def credit(path: str, rank: int, weight: float) -> _Candidate:
            candidate = pool.setdefault(path, _Candidate(path))
            candidate.score += weight / (weights.rrf_k + rank)
            return candidate

        # The model (torch) and SQLite both release the GIL: embed while BM25 runs.
        with ThreadPoolExecutor(max_workers=1) as background:
            embedding = background.submit(self._embed_query, query)
            file_hits = self._lexical.search_files(repo, terms, self._candidates)
            chunk_hits = self._lexical.search_chunks(repo, terms, self._candidates * 3)
            vector = embedding.result()

        for rank, (path, _score) in enumerate(file_hits, 1):
            credit(path, rank, weights.lexical_files)

        chunk_rank: dict[str, int] = {}
        for hit in chunk_hits:
            if hit.path not in chunk_rank:
                chunk_rank[hit.path] = len(chunk_rank) + 1
                credit(hit.path, chunk_rank[hit.path], weights.lexical_chunks)
            pool[hit.path].lexical_chunk_ids.append(hit.chunk_id)

        for rank, (path, dense_hit) in enumerate(self._dense_files(repo, vector), 1):
            candidate = credit(path, rank, weights.dense)
            candidate.dense_symbol = str(dense_hit.metadata.extra.get("symbol", ""))
            what = f"`{candidate.dense_symbol}`" if candidate.dense_symbol else "the file summary"
            candidate.reasons.append(f"semantic match {dense_hit.similarity:.2f} to {what}")

        for rank, (path, reason, frame_line, symbol) in enumerate(
            self._named(repo, extract_signals(query)), 1
        ):
            candidate = credit(path, rank, weights.named)
            candidate.reasons.insert(0, reason)
            if frame_line is not None:
                candidate.frame_lines.append(frame_line)
            if symbol is not None:
                candidate.named_symbols.append(symbol)

        ranked = sorted(pool.values(), key=lambda c: (-c.score, c.path))[:k]
        self._explain_keywords(ranked, terms, token_words(query))
        return ranked, vector

    def _dense_files(self, repo: str, vector: np.ndarray) -> list[tuple[str, StoredHit]]:
        best: dict[str, StoredHit] = {}
        for kind in (Kind.CODE, Kind.DOCUMENTATION):
            for hit in self._store.query(kind, vector, repository=repo, n=self._candidates // 2):
                path = hit.metadata.paths[0] if hit.metadata.paths else ""
                if path and (path not in best or hit.similarity > best[path].similarity):
                    best[path] = hit
        return sorted(best.items(), key=lambda item: -item[1].similarity)

    def _named(
        self, repo: str, signals: QuerySignals
    ) -> list[tuple[str, str, int | None, str | None]]:
        """(path, reason, frame line, symbol) for what the issue names, strongest first."""
        if signals.is_empty:
            return []
        named: list[tuple[str, str, int | None, str | None]] = []
        seen: set[str] = set()

        def add(path: str, reason: str, line: int | None = None, symbol: str | None = None) -> None:
            if path not in seen:
                seen.add(path)
                named.append((path, reason, line, symbol))

        for frame in signals.frames:
            for path in _best_suffix_matches(self._lexical, repo, frame.path):
                add(path, f"stack-trace frame at line {frame.line}", frame.line)
        for mention in signals.paths:
            for path in _best_suffix_matches(self._lexical, repo, mention):
                add(path, f"named in the issue (`{mention}`)")
        for dotted in signals.modules:
            found = self._lexical.paths_ending_with(repo, module_path_candidates(dotted))
            for paths in found.values():
                for path in paths:
                    add(path, f"module `{dotted}` named in the issue")
        definitions = self._lexical.files_defining(repo, signals.symbols)
        for symbol in signals.symbols:
            paths = definitions.get(symbol, [])
            if 0 < len(paths) <= _MAX_FILES_PER_SYMBOL:
                for path in paths:
                    add(path, f"defines `{symbol}` named in the issue", symbol=symbol)
        return named

    def _explain_keywords(
        self, ranked: list[_Candidate], terms: Sequence[str], words: dict[str, str]
    ) -> None:
        chunk_ids = [cid for c in ranked for cid in c.lexical_chunk_ids[:1]]
        records = self._lexical.chunks_by_id(chunk_ids)
        for candidate in ranked:
            if not candidate.lexical_chunk_ids:
                continue
            record = records.get(candidate.lexical_chunk_ids[0])
            if record is None:
                continue
            present = set(tokenize(f"{record.path} {record.symbol} {record.text}"))
            matched = list(dict.fromkeys(words.get(t, t) for t in terms if t in present))[:6]
            if matched:
                where = f" in `{record.symbol}`" if record.symbol else ""
                candidate.reasons.append(f"keyword match{where}: {', '.join(matched)}")

    # --- lessons --------------------------------------------------------------------------

    def _lessons(self, kind: Kind, repo: str, vector: np.ndarray) -> list[Lesson]:
        lessons: list[Lesson] = []
        seen_texts: set[str] = set()
        for hit in self._store.query(kind, vector, repository=repo, n=self._max_lessons * 2):
            if hit.similarity < self._lesson_min_similarity or hit.text in seen_texts:
                continue
            seen_texts.add(hit.text)
            text = (
                hit.text
                if len(hit.text) <= _LESSON_MAX_CHARS
                else hit.text[: _LESSON_MAX_CHARS - 1] + "…"
            )
            lessons.append(
                Lesson(
                    kind=kind,
                    id=hit.id,
                    text=text,
                    similarity=hit.similarity,
                    pr_number=hit.metadata.pr_number,
                    issue_number=hit.metadata.issue_number,
                    outcome=hit.metadata.outcome,
                )
            )
            if len(lessons) >= self._max_lessons:
                break
        return lessons

    # --- fitting the budget ---------------------------------------------------------------

    def _fit(
        self,
        repo: str,
        query: str,
        candidates: list[_Candidate],
        patterns: list[Lesson],
        failures: list[Lesson],
        token_budget: int,
    ) -> RetrievedContext:
        """Keep what fits in `token_budget` (~4 chars a token), best first.

        Lessons may take up to `lesson_share` of the budget (failures first: repeating a
        rejected approach costs a whole review round); files take the rest, headers before
        snippets, so a long snippet never pushes a relevant file out of the list.
        """
        allowance = token_budget * 4
        used = 0

        def take(text: str, limit: int) -> bool:
            nonlocal used
            cost = len(text) + 2  # the joining newlines
            if used + cost > limit:
                return False
            used += cost
            return True

        lesson_limit = int(allowance * self._lesson_share)
        kept_failures: list[Lesson] = []
        kept_patterns: list[Lesson] = []
        for lessons, kept, heading, intro in (
            (failures, kept_failures, FAILURES_HEADING, FAILURES_INTRO),
            (patterns, kept_patterns, PATTERNS_HEADING, PATTERNS_INTRO),
        ):
            if not lessons or not take(f"{heading}\n{intro}", lesson_limit):
                continue
            kept.extend(lesson for lesson in lessons if take(render_lesson(lesson), lesson_limit))
            if not kept:
                used -= len(f"{heading}\n{intro}") + 2

        files: list[FileMatch] = []
        if candidates and take(FILES_HEADING, allowance):
            chosen = self._snippet_chunks(repo, candidates)
            headers: list[FileMatch] = []
            for index, candidate in enumerate(candidates, 1):
                match = FileMatch(candidate.path, candidate.score, tuple(candidate.reasons))
                if not take(render_file_header(index, match), allowance):
                    break
                headers.append(match)
            for match in headers:
                snippets = tuple(
                    s for s in chosen.get(match.path, []) if take(render_snippet(s), allowance)
                )
                files.append(FileMatch(match.path, match.score, match.reasons, snippets))
        return RetrievedContext(
            repository=repo,
            query=query,
            files=tuple(files),
            patterns=tuple(kept_patterns),
            failures=tuple(kept_failures),
        )

    def _snippet_chunks(self, repo: str, candidates: list[_Candidate]) -> dict[str, list[Snippet]]:
        """Up to two chunks per file: the frame's, the named or semantically matched symbol's,
        and the best keyword chunk, in that order of preference."""
        records = self._lexical.chunks_of(repo, [c.path for c in candidates])
        chosen: dict[str, list[Snippet]] = {}
        for candidate in candidates:
            picks = _pick_chunks(candidate, records.get(candidate.path, []))
            chosen[candidate.path] = [
                _snippet(record) for record in sorted(picks, key=lambda c: c.start_line)
            ]
        return chosen


def _pick_chunks(candidate: _Candidate, chunks: list[ChunkRecord]) -> list[ChunkRecord]:
    by_id = {c.id: c for c in chunks}
    preferred: list[ChunkRecord | None] = []
    for line in candidate.frame_lines:
        preferred.append(next((c for c in chunks if c.start_line <= line <= c.end_line), None))
    for symbol in [*candidate.named_symbols, candidate.dense_symbol or ""]:
        if symbol:
            preferred.append(
                next(
                    (c for c in chunks if c.symbol == symbol or c.symbol.endswith(f".{symbol}")),
                    None,
                )
            )
    preferred.extend(by_id.get(chunk_id) for chunk_id in candidate.lexical_chunk_ids[:2])
    picks: list[ChunkRecord] = []
    for record in preferred:
        if record is not None and record not in picks and len(picks) < 2:
            picks.append(record)
    if not picks and chunks:
        picks.append(next((c for c in chunks if c.docstring), chunks[0]))
    return picks


def _snippet(record: ChunkRecord) -> Snippet:
    lines = record.text.splitlines()
    end = record.end_line
    if len(lines) > _SNIPPET_MAX_LINES:
        lines = [*lines[:_SNIPPET_MAX_LINES], "..."]
        end = record.start_line + _SNIPPET_MAX_LINES - 1
    return Snippet(record.path, record.start_line, end, record.symbol, "\n".join(lines))


def _best_suffix_matches(lexical: LexicalIndex, repo: str, mention: str) -> list[str]:
    """Indexed paths matching a mentioned path by the longest common tail of path components.

    A traceback says `/home/ci/project/src/pkg/mod.py`; the repository has `src/pkg/mod.py`.
    The longest tail that exists wins; a name matching many files is too vague to use.
    """
    parts = [p for p in mention.replace("\\", "/").split("/") if p and p != "."]
    # A path with folders must match at least its folder and name: `asyncio/events.py` in a
    # traceback is not the repository's `app/events.py`.
    min_parts = min(2, len(parts))
    for start in range(len(parts) - min_parts + 1):
        suffix = "/".join(parts[start:])
        found = lexical.paths_ending_with(repo, [suffix]).get(suffix, [])
        if found:
            return found if len(found) <= _MAX_FILES_PER_SYMBOL else []
    # ...unless the repository keeps that file at its root.
    if len(parts) > 1 and parts[-1] in lexical.paths_ending_with(repo, [parts[-1]]).get(
        parts[-1], []
    ):
        return [parts[-1]]
    return []

"""Find the files an issue is about, and the lessons of similar past issues, within a budget.

Rankings are fused by reciprocal rank: BM25 over whole files and over chunks (code-aware tokens,
SQLite FTS5, statistics per repository), dense similarity to file summaries and documented
symbols, and what the issue names outright: stack-trace frames and paths (used directly),
modules, the symbols it uses as code (weighted by how rare they are) and the code that handles a
named class (`_print_Matrix`, `visit_BinOp`). Long reports are first reduced to their signal.
Source files come first; tests, docs and examples are listed apart as related files. Each file
keeps the reasons it was chosen. Past patterns and failures come from this repository only.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from knowledge.context import (
    FAILURES_HEADING,
    FAILURES_INTRO,
    FILES_HEADING,
    PATTERNS_HEADING,
    PATTERNS_INTRO,
    RELATED_HEADING,
    FileMatch,
    Lesson,
    RetrievedContext,
    Snippet,
    render_file_header,
    render_lesson,
    render_related,
    render_snippet,
)
from knowledge.embeddings import Embedder
from knowledge.lexical import ChunkRecord, LexicalIndex
from knowledge.report import reduce_report
from knowledge.roles import RELATED_ROLES, Role, role_of
from knowledge.signals import QuerySignals, extract_signals, module_path_candidates
from knowledge.store import Kind, KnowledgeStore, StoredHit
from knowledge.tokens import iter_tokens, token_words, tokenize, word_tokens

_QUERY_EMBED_CHARS = 2000
_SNIPPET_MAX_LINES = 40
_SNIPPET_MAX_CHARS = 2400
_LESSON_MAX_CHARS = 1500
# A symbol defined in more source files than this is too common to point at any one of them.
_MAX_FILES_PER_SYMBOL = 3
_MAX_QUERY_TERMS = 24
# Stages a benchmark may switch off one at a time (see benchmarks/localization.py).
SWITCHES = ("reduce_report", "sources_first")


@dataclass(frozen=True)
class FusionWeights:
    """Reciprocal-rank fusion: score = sum(weight / (rrf_k + rank)) over the rankings.

    A weight of 0 turns its ranking off."""

    lexical_files: float = 1.0
    lexical_chunks: float = 1.0
    dense: float = 1.0
    # An issue that quotes a frame or names a file has said where to look.
    frames: float = 3.0
    paths: float = 3.0
    modules: float = 2.0
    symbols: float = 2.0
    handlers: float = 1.0
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
    named: bool = False  # the issue names this file (a frame or a path)


@dataclass(frozen=True)
class RankedFile:
    path: str
    score: float
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class _Named:
    path: str
    reason: str
    line: int | None = None
    symbol: str | None = None
    strength: float = 1.0  # 0..1: how much of its ranking's weight this entry earns


@dataclass
class _Pool:
    """The files the rankings found; each ranking credits a file weight / (rrf_k + rank)."""

    rrf_k: int
    candidates: dict[str, _Candidate] = field(default_factory=dict)

    def credit(self, path: str, rank: int, weight: float) -> _Candidate:
        candidate = self.candidates.setdefault(path, _Candidate(path))
        candidate.score += weight / (self.rrf_k + rank)
        return candidate

    def ranked(self) -> list[_Candidate]:
        return sorted(self.candidates.values(), key=lambda c: (-c.score, c.path))


@dataclass
class _Spent:
    """Characters of the context used so far; a part is kept only while it fits its limit."""

    used: int = 0

    def take(self, text: str, limit: int) -> bool:
        cost = len(text) + 2  # the joining newlines
        if self.used + cost > limit:
            return False
        self.used += cost
        return True

    def lessons(self, lessons: list[Lesson], heading: str, intro: str, limit: int) -> list[Lesson]:
        """The lessons that fit under their heading; no heading when none of them fits."""
        if not lessons or not self.take(f"{heading}\n{intro}", limit):
            return []
        kept = [lesson for lesson in lessons if self.take(render_lesson(lesson), limit)]
        if not kept:
            self.used -= len(f"{heading}\n{intro}") + 2
        return kept

    def files(
        self, candidates: list[_Candidate], chosen: dict[str, list[Snippet]], limit: int
    ) -> list[FileMatch]:
        """Every header that fits first, then the snippets that still fit."""
        headers: list[FileMatch] = []
        for index, candidate in enumerate(candidates, 1):
            match = FileMatch(candidate.path, candidate.score, tuple(candidate.reasons))
            if not self.take(render_file_header(index, match), limit):
                break
            headers.append(match)
        files: list[FileMatch] = []
        for match in headers:
            snippets = tuple(
                s for s in chosen.get(match.path, []) if self.take(render_snippet(s), limit)
            )
            files.append(FileMatch(match.path, match.score, match.reasons, snippets))
        return files

    def related(self, related: list[_Candidate], limit: int) -> list[FileMatch]:
        kept: list[FileMatch] = []
        for candidate in related:
            match = FileMatch(candidate.path, candidate.score, tuple(candidate.reasons))
            if not self.take(render_related(match), limit):
                break
            kept.append(match)
        return kept


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
        reduce_report: bool = True,
        sources_first: bool = True,
        max_query_terms: int = _MAX_QUERY_TERMS,
        score_floor: float = 0.3,
        max_related: int = 5,
    ) -> None:
        """`score_floor`: a file scoring under this share of the best file's score is left out
        of the context (a weak keyword match costs the reader more than it tells)."""
        self._store = store
        self._embedder = embedder
        self._lexical = lexical
        self._weights = weights or FusionWeights()
        self._candidates = candidates
        self._lesson_min_similarity = lesson_min_similarity
        self._max_lessons = max_lessons
        self._lesson_share = lesson_share
        self._reduce_report = reduce_report
        self._sources_first = sources_first
        self._max_query_terms = max_query_terms
        self._score_floor = score_floor
        self._max_related = max_related

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
        with ThreadPoolExecutor(max_workers=1) as background:
            # The model (torch) and SQLite both release the GIL: embed while BM25 runs.
            embedding = background.submit(self._embed_query, query)
            sources, related = self._rank(repo, query, k_files, embedding)
            vector = embedding.result()
        patterns = self._lessons(Kind.PATTERN, repo, vector)
        failures = self._lessons(Kind.FAILURE, repo, vector)
        return self._fit(repo, query, sources, related, patterns, failures, token_budget)

    def rank_files(self, repo: str, query: str, *, k: int = 10) -> list[RankedFile]:
        """The fused file ranking alone (no snippets, no lessons): what benchmarks measure.
        Source files first, then related tests and docs."""
        embedding: Future[np.ndarray] | None = None
        with ThreadPoolExecutor(max_workers=1) as background:
            if self._weights.dense > 0:
                embedding = background.submit(self._embed_query, query)
            sources, related = self._rank(repo, query, k, embedding)
        return [RankedFile(c.path, c.score, tuple(c.reasons)) for c in [*sources, *related][:k]]

    # --- ranking --------------------------------------------------------------------------

    def _embed_query(self, query: str) -> np.ndarray:
        return np.asarray(self._embedder.embed([query[:_QUERY_EMBED_CHARS]])[0], dtype=np.float32)

    def query_terms(self, repo: str, text: str) -> list[str]:
        """The report's most telling tokens for this repository: tf-idf over its own files,
        without terms absent from it or present in most of it."""
        counts = Counter(iter_tokens(text))
        frequencies, total = self._lexical.document_frequencies(repo, counts)
        weights: dict[str, float] = {}
        for term, count in counts.items():
            df = frequencies.get(term, 0)
            if df == 0 or (total >= 4 and df > total / 2):
                continue
            idf = math.log(1 + (total - df + 0.5) / (df + 0.5))
            weights[term] = idf * (1 + math.log(count))
        return sorted(weights, key=lambda t: -weights[t])[: self._max_query_terms]

    def _rank(
        self, repo: str, query: str, k: int, embedding: Future[np.ndarray] | None
    ) -> tuple[list[_Candidate], list[_Candidate]]:
        """The top `k` source files (or all files, without `sources_first`) and the top related
        files (tests, docs, examples)."""
        text = reduce_report(query) if self._reduce_report else query
        terms = self.query_terms(repo, text)
        pool = _Pool(self._weights.rrf_k)
        self._credit_lexical(pool, repo, terms)
        if self._weights.dense > 0 and embedding is not None:
            self._credit_dense(pool, repo, embedding.result())
        self._credit_named(pool, repo, query, text)
        sources, related = self._split(pool.ranked(), k)
        self._explain_keywords([*sources, *related], terms, token_words(text))
        return sources, related

    def _credit_lexical(self, pool: _Pool, repo: str, terms: list[str]) -> None:
        weights = self._weights
        if weights.lexical_files > 0:
            for rank, (path, _score) in enumerate(
                self._lexical.search_files(repo, terms, self._candidates, max_terms=len(terms)), 1
            ):
                pool.credit(path, rank, weights.lexical_files)

        if weights.lexical_chunks > 0:
            chunk_rank: dict[str, int] = {}
            for hit in self._lexical.search_chunks(
                repo, terms, self._candidates * 3, max_terms=len(terms)
            ):
                if hit.path not in chunk_rank:
                    chunk_rank[hit.path] = len(chunk_rank) + 1
                    pool.credit(hit.path, chunk_rank[hit.path], weights.lexical_chunks)
                pool.candidates[hit.path].lexical_chunk_ids.append(hit.chunk_id)

    def _credit_dense(self, pool: _Pool, repo: str, vector: np.ndarray) -> None:
        for rank, (path, dense_hit) in enumerate(self._dense_files(repo, vector), 1):
            candidate = pool.credit(path, rank, self._weights.dense)
            candidate.dense_symbol = str(dense_hit.metadata.extra.get("symbol", ""))
            what = f"`{candidate.dense_symbol}`" if candidate.dense_symbol else "the file summary"
            candidate.reasons.append(f"semantic match {dense_hit.similarity:.2f} to {what}")

    def _credit_named(self, pool: _Pool, repo: str, query: str, text: str) -> None:
        """What the issue names: frames (from the whole report), paths, modules, symbols."""
        weights = self._weights
        signals = extract_signals(text)
        named_lists: list[tuple[float, Callable[[], list[_Named]]]] = [
            (weights.frames, lambda: self._frames(repo, extract_signals(query))),
            (weights.paths, lambda: self._paths(repo, signals)),
            (weights.modules, lambda: self._modules(repo, signals)),
            (weights.symbols, lambda: self._symbols(repo, signals.symbols)),
            (weights.handlers, lambda: self._handlers(repo, signals.symbols)),
        ]
        # Weakest first, so that each file's strongest reason ends up first among its reasons.
        for weight, ranking in reversed(named_lists):
            if weight <= 0:
                continue
            for rank, named in enumerate(ranking(), 1):
                candidate = pool.credit(named.path, rank, weight * named.strength)
                candidate.reasons.insert(0, named.reason)
                if named.line is not None:
                    candidate.frame_lines.append(named.line)
                    candidate.named = True
                if named.symbol is not None:
                    candidate.named_symbols.append(named.symbol)
                if named.reason.startswith("named in the issue"):
                    candidate.named = True

    def _split(self, ranked: list[_Candidate], k: int) -> tuple[list[_Candidate], list[_Candidate]]:
        sources: list[_Candidate] = []
        related: list[_Candidate] = []
        for candidate in ranked:
            role = role_of(candidate.path)
            if role is Role.META and not candidate.named:
                continue  # templates, CI and bot config: only when the issue names them
            # A test the issue names is still a test: the fix is rarely there.
            if self._sources_first and (role in RELATED_ROLES or role is Role.META):
                if len(related) < max(k, self._max_related):
                    related.append(candidate)
            elif len(sources) < k:
                sources.append(candidate)
            if len(sources) >= k and len(related) >= max(k, self._max_related):
                break
        return sources, related

    def _dense_files(self, repo: str, vector: np.ndarray) -> list[tuple[str, StoredHit]]:
        best: dict[str, StoredHit] = {}
        for kind in (Kind.CODE, Kind.DOCUMENTATION):
            for hit in self._store.query(kind, vector, repository=repo, n=self._candidates // 2):
                path = hit.metadata.paths[0] if hit.metadata.paths else ""
                if path and (path not in best or hit.similarity > best[path].similarity):
                    best[path] = hit
        return sorted(best.items(), key=lambda item: -item[1].similarity)

    def _frames(self, repo: str, signals: QuerySignals) -> list[_Named]:
        found: dict[str, _Named] = {}
        for frame in signals.frames:
            for path in _best_suffix_matches(self._lexical, repo, frame.path):
                found.setdefault(
                    path, _Named(path, f"stack-trace frame at line {frame.line}", frame.line)
                )
        return list(found.values())

    def _paths(self, repo: str, signals: QuerySignals) -> list[_Named]:
        found: dict[str, _Named] = {}
        for mention in signals.paths:
            for path in _best_suffix_matches(self._lexical, repo, mention):
                found.setdefault(path, _Named(path, f"named in the issue (`{mention}`)"))
        return list(found.values())

    def _modules(self, repo: str, signals: QuerySignals) -> list[_Named]:
        found: dict[str, _Named] = {}
        # `django.db` says less than `django.db.models.fields` in the same report: keep the most
        # specific names only.
        specific = [
            d for d in signals.modules if not any(o.startswith(f"{d}.") for o in signals.modules)
        ]
        for dotted in specific:
            matches = self._lexical.paths_ending_with(repo, module_path_candidates(dotted))
            for paths in matches.values():
                for path in paths:
                    found.setdefault(path, _Named(path, f"module `{dotted}` named in the issue"))
        return list(found.values())

    def _symbols(self, repo: str, symbols: Sequence[str]) -> list[_Named]:
        """Files defining the symbols the issue uses, scored by how rare each symbol is in this
        repository and by how few files define it."""
        return self._by_rarity(
            repo,
            symbols,
            self._lexical.files_defining(repo, symbols),
            "defines `{symbol}` named in the issue",
        )

    def _handlers(self, repo: str, symbols: Sequence[str]) -> list[_Named]:
        classes = [s for s in symbols if s[:1].isupper() and not s.isupper()]
        return self._by_rarity(
            repo,
            classes,
            self._lexical.files_handling(repo, classes),
            "handles `{symbol}` named in the issue",
        )

    def _by_rarity(
        self, repo: str, symbols: Sequence[str], files: dict[str, list[str]], reason: str
    ) -> list[_Named]:
        if not files:
            return []
        keys = {symbol: (word_tokens(symbol) or (symbol.lower(),))[-1] for symbol in files}
        frequencies, total = self._lexical.document_frequencies(repo, keys.values())
        # A compound name (`OneHotEncoder`, `display_for_field`) earns the ranking's whole
        # weight however often the code mentions it; a plain word (`query`, `label`) only as
        # much as it is rare in this repository.
        full = math.log(1 + max(total, 1))
        strength: dict[str, float] = {}
        scores: dict[str, float] = {}
        best: dict[str, tuple[float, str]] = {}
        for symbol, paths in files.items():
            sources = [p for p in paths if role_of(p) is Role.SOURCE]
            if len(sources) > _MAX_FILES_PER_SYMBOL or len(paths) > 3 * _MAX_FILES_PER_SYMBOL:
                continue
            df = max(1, frequencies.get(keys[symbol], 1))
            idf = math.log(1 + total / df)
            weight = idf / max(1, len(sources))
            sure = 1.0 if len(word_tokens(symbol)) > 1 else min(1.0, idf / full)
            for path in paths:
                scores[path] = scores.get(path, 0.0) + weight
                strength[path] = max(strength.get(path, 0.0), sure)
                if weight > best.get(path, (0.0, ""))[0]:
                    best[path] = (weight, symbol)
        ordered = sorted(scores, key=lambda p: (-scores[p], p))
        return [
            _Named(
                path,
                reason.format(symbol=best[path][1]),
                symbol=best[path][1],
                strength=strength[path],
            )
            for path in ordered
        ]

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
        sources: list[_Candidate],
        related: list[_Candidate],
        patterns: list[Lesson],
        failures: list[Lesson],
        token_budget: int,
    ) -> RetrievedContext:
        """Keep what fits in `token_budget` (~4 chars a token), best first.

        Lessons may take up to `lesson_share` of the budget (failures first: repeating a
        rejected approach costs a whole review round); files take the rest, headers before
        snippets, so a long snippet never pushes a relevant file out of the list. Files under
        the score floor are left out; related tests and docs are named, without snippets.
        """
        top = max((c.score for c in [*sources, *related]), default=0.0)
        floor = top * self._score_floor
        candidates = [c for c in sources if c.score >= floor]
        related = [c for c in related if c.score >= floor][: self._max_related]
        allowance = token_budget * 4
        spent = _Spent()
        lesson_limit = int(allowance * self._lesson_share)
        kept_failures = spent.lessons(failures, FAILURES_HEADING, FAILURES_INTRO, lesson_limit)
        kept_patterns = spent.lessons(patterns, PATTERNS_HEADING, PATTERNS_INTRO, lesson_limit)
        files: list[FileMatch] = []
        if candidates and spent.take(FILES_HEADING, allowance):
            files = spent.files(candidates, self._snippet_chunks(repo, candidates), allowance)
        kept_related: list[FileMatch] = []
        if related and spent.take(RELATED_HEADING, allowance):
            kept_related = spent.related(related, allowance)
        return RetrievedContext(
            repository=repo,
            query=query,
            files=tuple(files),
            related=tuple(kept_related),
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
    """The chunk, cut at `_SNIPPET_MAX_LINES` lines and `_SNIPPET_MAX_CHARS` characters."""
    lines = record.text.splitlines()
    kept: list[str] = []
    size = 0
    for line in lines[:_SNIPPET_MAX_LINES]:
        if kept and size + len(line) + 1 > _SNIPPET_MAX_CHARS:
            break
        kept.append(line[:_SNIPPET_MAX_CHARS])
        size += len(kept[-1]) + 1
    end = record.start_line + len(kept) - 1
    if len(kept) < len(lines):
        kept.append("...")
    return Snippet(record.path, record.start_line, end, record.symbol, "\n".join(kept))


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

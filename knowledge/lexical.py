"""The lexical index: full chunk text and BM25 over code-aware tokens, in SQLite FTS5.

It builds in seconds, updates per file, and answers queries before any embedding exists, so a
repository is searchable as soon as its files are read. It also remembers each file's content
hash (to skip unchanged files) and which content's embeddings are already stored.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from knowledge.chunking import Chunk, ChunkKind
from knowledge.tokens import tokenize

_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    repo TEXT NOT NULL,
    path TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    embedded_hash TEXT,
    summary TEXT NOT NULL,
    indexed_at REAL NOT NULL,
    UNIQUE (repo, path)
);
CREATE INDEX IF NOT EXISTS files_pending ON files (repo, embedded_hash);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    file_id INTEGER NOT NULL,
    repo TEXT NOT NULL,
    path TEXT NOT NULL,
    start_line INTEGER NOT NULL,
    end_line INTEGER NOT NULL,
    kind TEXT NOT NULL,
    symbol TEXT NOT NULL,
    name TEXT NOT NULL,
    signature TEXT NOT NULL,
    docstring TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_file ON chunks (file_id);
CREATE INDEX IF NOT EXISTS chunks_path ON chunks (repo, path, start_line);
CREATE INDEX IF NOT EXISTS chunks_name ON chunks (repo, name);
CREATE VIRTUAL TABLE IF NOT EXISTS chunk_fts USING fts5 (scope, path, symbol, body);
CREATE VIRTUAL TABLE IF NOT EXISTS file_fts USING fts5 (scope, path, symbol, body);
CREATE VIRTUAL TABLE IF NOT EXISTS chunk_vocab USING fts5vocab (chunk_fts, row);
CREATE VIRTUAL TABLE IF NOT EXISTS file_vocab USING fts5vocab (file_fts, row);
"""

# bm25() column weights (scope, path, symbol, body): the repository scope column only filters;
# a query word in a file's path or a symbol's name says more than one in its body.
_CHUNK_WEIGHTS = "0.0, 3.0, 2.0, 1.0"
_FILE_WEIGHTS = "0.0, 3.0, 1.5, 1.0"


@dataclass(frozen=True, slots=True)
class IndexedFile:
    path: str
    content_hash: str
    summary: str
    chunks: Sequence[Chunk]


@dataclass(frozen=True, slots=True)
class ChunkRecord:
    id: int
    path: str
    start_line: int
    end_line: int
    kind: ChunkKind
    symbol: str
    signature: str
    docstring: str
    text: str


@dataclass(frozen=True, slots=True)
class LexicalHit:
    chunk_id: int
    path: str
    symbol: str
    start_line: int
    end_line: int
    score: float  # higher is better (negated FTS5 bm25)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _scope(repo: str) -> str:
    # One alphanumeric token per repository, so a repository filter is an index lookup.
    return "r" + hashlib.sha1(repo.encode("utf-8")).hexdigest()[:16]


# A term in more than half of the rows has a BM25 weight of ~0 (FTS5 floors its IDF), yet
# every row containing it must be scored: `app` or `py` in a query would make each search
# score the whole repository. Such terms are dropped, and only the rarest are kept.
_COMMON_TERM_SHARE = 0.5
_MAX_QUERY_TERMS = 16


def _match_expression(repo: str, terms: Sequence[str]) -> str:
    alternatives = " OR ".join(f'"{term}"' for term in terms)
    return f'scope : "{_scope(repo)}" AND ({alternatives})'


class LexicalIndex:
    """SQLite FTS5 index of every repository's chunks and whole files."""

    def __init__(self, path: str | Path) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # Retrieval and indexing call in from worker threads; one lock serialises them.
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- writing ------------------------------------------------------------------------

    def content_hashes(self, repo: str, paths: Iterable[str] | None = None) -> dict[str, str]:
        with self._lock:
            if paths is None:
                rows = self._db.execute(
                    "SELECT path, content_hash FROM files WHERE repo = ?", (repo,)
                ).fetchall()
                return dict(rows)
            found: dict[str, str] = {}
            for group in _groups(list(paths)):
                marks = ",".join("?" * len(group))
                rows = self._db.execute(
                    f"SELECT path, content_hash FROM files WHERE repo = ? AND path IN ({marks})",
                    (repo, *group),
                ).fetchall()
                found.update(rows)
            return found

    def write_files(self, repo: str, files: Sequence[IndexedFile]) -> int:
        """Replace these files' rows; returns the number of chunk rows written."""
        scope = _scope(repo)
        written = 0
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for file in files:
                    self._delete_file(repo, file.path)
                    cursor = self._db.execute(
                        "INSERT INTO files (repo, path, content_hash, embedded_hash, summary, indexed_at)"
                        " VALUES (?, ?, ?, NULL, ?, ?)",
                        (repo, file.path, file.content_hash, file.summary, now),
                    )
                    file_id = cursor.lastrowid
                    path_tokens = " ".join(tokenize(file.path))
                    symbol_words: list[str] = []
                    body_words: list[str] = []
                    for chunk in file.chunks:
                        chunk_id = self._db.execute(
                            "INSERT INTO chunks (file_id, repo, path, start_line, end_line, kind, symbol,"
                            " name, signature, docstring, text) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (
                                file_id,
                                repo,
                                file.path,
                                chunk.start_line,
                                chunk.end_line,
                                chunk.kind.value,
                                chunk.symbol,
                                chunk.symbol.rsplit(".", 1)[-1],
                                chunk.signature,
                                chunk.docstring,
                                chunk.text,
                            ),
                        ).lastrowid
                        symbol_tokens = " ".join(tokenize(f"{chunk.symbol} {chunk.signature}"))
                        body_tokens = " ".join(tokenize(chunk.text))
                        self._db.execute(
                            "INSERT INTO chunk_fts (rowid, scope, path, symbol, body) VALUES (?, ?, ?, ?, ?)",
                            (chunk_id, scope, path_tokens, symbol_tokens, body_tokens),
                        )
                        symbol_words.append(symbol_tokens)
                        body_words.append(body_tokens)
                        written += 1
                    self._db.execute(
                        "INSERT INTO file_fts (rowid, scope, path, symbol, body) VALUES (?, ?, ?, ?, ?)",
                        (file_id, scope, path_tokens, " ".join(symbol_words), " ".join(body_words)),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return written

    def remove_files(self, repo: str, paths: Iterable[str]) -> int:
        removed = 0
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for path in paths:
                    removed += self._delete_file(repo, path)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return removed

    def _delete_file(self, repo: str, path: str) -> int:
        row = self._db.execute(
            "SELECT id FROM files WHERE repo = ? AND path = ?", (repo, path)
        ).fetchone()
        if row is None:
            return 0
        file_id = row[0]
        self._db.execute(
            "DELETE FROM chunk_fts WHERE rowid IN (SELECT id FROM chunks WHERE file_id = ?)",
            (file_id,),
        )
        self._db.execute("DELETE FROM chunks WHERE file_id = ?", (file_id,))
        self._db.execute("DELETE FROM file_fts WHERE rowid = ?", (file_id,))
        self._db.execute("DELETE FROM files WHERE id = ?", (file_id,))
        return 1

    def pending_embedding(self, repo: str, limit: int) -> list[str]:
        """Paths whose current content has no stored embeddings yet, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT path FROM files WHERE repo = ? AND"
                " (embedded_hash IS NULL OR embedded_hash != content_hash) ORDER BY id LIMIT ?",
                (repo, limit),
            ).fetchall()
        return [row[0] for row in rows]

    def mark_embedded(self, repo: str, hashes: Mapping[str, str]) -> None:
        with self._lock:
            self._db.executemany(
                "UPDATE files SET embedded_hash = ? WHERE repo = ? AND path = ? AND content_hash = ?",
                [(digest, repo, path, digest) for path, digest in hashes.items()],
            )

    # --- reading ------------------------------------------------------------------------

    def file_count(self, repo: str) -> int:
        with self._lock:
            return int(
                self._db.execute("SELECT COUNT(*) FROM files WHERE repo = ?", (repo,)).fetchone()[0]
            )

    def chunk_count(self, repo: str) -> int:
        with self._lock:
            return int(
                self._db.execute("SELECT COUNT(*) FROM chunks WHERE repo = ?", (repo,)).fetchone()[
                    0
                ]
            )

    def paths(self, repo: str) -> list[str]:
        with self._lock:
            return [
                r[0]
                for r in self._db.execute(
                    "SELECT path FROM files WHERE repo = ? ORDER BY path", (repo,)
                )
            ]

    def chunks_of(self, repo: str, paths: Iterable[str]) -> dict[str, list[ChunkRecord]]:
        found: dict[str, list[ChunkRecord]] = {}
        with self._lock:
            for group in _groups(list(paths)):
                marks = ",".join("?" * len(group))
                rows = self._db.execute(
                    f"SELECT {_CHUNK_COLUMNS} FROM chunks WHERE repo = ? AND path IN ({marks})"
                    " ORDER BY path, start_line",
                    (repo, *group),
                ).fetchall()
                for row in rows:
                    record = _chunk_record(row)
                    found.setdefault(record.path, []).append(record)
        return found

    def chunks_by_id(self, ids: Iterable[int]) -> dict[int, ChunkRecord]:
        found: dict[int, ChunkRecord] = {}
        with self._lock:
            for group in _groups(list(ids)):
                marks = ",".join("?" * len(group))
                for row in self._db.execute(
                    f"SELECT {_CHUNK_COLUMNS} FROM chunks WHERE id IN ({marks})", group
                ):
                    record = _chunk_record(row)
                    found[record.id] = record
        return found

    def summaries(self, repo: str, paths: Iterable[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        with self._lock:
            for group in _groups(list(paths)):
                marks = ",".join("?" * len(group))
                found.update(
                    self._db.execute(
                        f"SELECT path, summary FROM files WHERE repo = ? AND path IN ({marks})",
                        (repo, *group),
                    ).fetchall()
                )
        return found

    def _informative(self, vocabulary: str, rows_table: str, terms: Sequence[str]) -> list[str]:
        """The query terms worth searching for, rarest first (the lock must be held)."""
        if not terms:
            return []
        # The largest row id bounds the row count without counting 50,000 rows per query.
        total = self._db.execute(f"SELECT COALESCE(MAX(id), 0) FROM {rows_table}").fetchone()[0]
        marks = ",".join("?" * len(terms))
        counts = dict(
            self._db.execute(
                f"SELECT term, doc FROM {vocabulary} WHERE term IN ({marks})", list(terms)
            ).fetchall()
        )
        useful = [
            t
            for t in terms
            if 0 < counts.get(t, 0) <= total * _COMMON_TERM_SHARE or (total < 4 and t in counts)
        ]
        return sorted(useful, key=lambda t: counts[t])[:_MAX_QUERY_TERMS]

    def search_chunks(self, repo: str, terms: Sequence[str], limit: int = 200) -> list[LexicalHit]:
        with self._lock:
            terms = self._informative("chunk_vocab", "chunks", terms)
            if not terms:
                return []
            # Rank inside FTS first, then join only the rows that made the cut.
            rows = self._db.execute(
                "SELECT c.id, c.path, c.symbol, c.start_line, c.end_line, top.s FROM"
                f" (SELECT rowid AS id, bm25(chunk_fts, {_CHUNK_WEIGHTS}) AS s FROM chunk_fts"
                "  WHERE chunk_fts MATCH ? ORDER BY s LIMIT ?) AS top"
                " JOIN chunks c ON c.id = top.id ORDER BY top.s",
                (_match_expression(repo, terms), limit),
            ).fetchall()
        return [LexicalHit(r[0], r[1], r[2], r[3], r[4], -float(r[5])) for r in rows]

    def search_files(
        self, repo: str, terms: Sequence[str], limit: int = 100
    ) -> list[tuple[str, float]]:
        with self._lock:
            terms = self._informative("file_vocab", "files", terms)
            if not terms:
                return []
            rows = self._db.execute(
                "SELECT f.path, top.s FROM"
                f" (SELECT rowid AS id, bm25(file_fts, {_FILE_WEIGHTS}) AS s FROM file_fts"
                "  WHERE file_fts MATCH ? ORDER BY s LIMIT ?) AS top"
                " JOIN files f ON f.id = top.id ORDER BY top.s",
                (_match_expression(repo, terms), limit),
            ).fetchall()
        return [(r[0], -float(r[1])) for r in rows]

    def files_defining(self, repo: str, names: Iterable[str]) -> dict[str, list[str]]:
        """Symbol name (leaf, e.g. `parse` for `Parser.parse`) -> files that define it."""
        found: dict[str, list[str]] = {}
        with self._lock:
            for group in _groups(list(dict.fromkeys(names))):
                marks = ",".join("?" * len(group))
                rows = self._db.execute(
                    f"SELECT DISTINCT name, path FROM chunks INDEXED BY chunks_name WHERE repo = ? AND name IN ({marks})"
                    " AND kind != 'module' ORDER BY path",
                    (repo, *group),
                ).fetchall()
                for name, path in rows:
                    found.setdefault(name, []).append(path)
        return found

    def paths_ending_with(self, repo: str, suffixes: Iterable[str]) -> dict[str, list[str]]:
        """For each path suffix (`client.py`, `pkg/client.py`), the indexed paths that end with it."""
        found: dict[str, list[str]] = {}
        with self._lock:
            for suffix in dict.fromkeys(suffixes):
                pattern = "%/" + suffix.replace("\\", "\\\\").replace("%", "\\%").replace(
                    "_", "\\_"
                )
                rows = self._db.execute(
                    "SELECT path FROM files WHERE repo = ? AND (path = ? OR path LIKE ? ESCAPE '\\')",
                    (repo, suffix, pattern),
                ).fetchall()
                if rows:
                    found[suffix] = [r[0] for r in rows]
        return found


_CHUNK_COLUMNS = "id, path, start_line, end_line, kind, symbol, signature, docstring, text"


def _chunk_record(row: tuple[object, ...]) -> ChunkRecord:
    return ChunkRecord(
        id=int(row[0]),  # type: ignore[call-overload]
        path=str(row[1]),
        start_line=int(row[2]),  # type: ignore[call-overload]
        end_line=int(row[3]),  # type: ignore[call-overload]
        kind=ChunkKind(str(row[4])),
        symbol=str(row[5]),
        signature=str(row[6]),
        docstring=str(row[7]),
        text=str(row[8]),
    )


def _groups(items: list[_T], size: int = 400) -> Iterable[list[_T]]:
    for first in range(0, len(items), size):
        yield items[first : first + size]

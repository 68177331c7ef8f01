"""The lexical index: full chunk text and BM25 over code-aware tokens, in SQLite FTS5.

It builds in seconds, updates per file, and answers queries before any embedding exists, so a
repository is searchable as soon as its files are read. It also remembers each file's content
hash (to skip unchanged files) and which content's embeddings are already stored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
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

# Version 2: full-text tables per repository (see `_fts_tables`), and each chunk's handled name.
SCHEMA_VERSION = 2
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
    handles TEXT NOT NULL,
    signature TEXT NOT NULL,
    docstring TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_file ON chunks (file_id);
CREATE INDEX IF NOT EXISTS chunks_path ON chunks (repo, path, start_line);
CREATE INDEX IF NOT EXISTS chunks_name ON chunks (repo, name);
CREATE INDEX IF NOT EXISTS chunks_handles ON chunks (repo, handles);
"""
# Each repository gets its own FTS5 tables, so BM25's document counts and lengths are that
# repository's: indexing another repository never changes this one's ranking.
_FTS_SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS {chunks} USING fts5 (path, symbol, body);
CREATE VIRTUAL TABLE IF NOT EXISTS {files} USING fts5 (path, symbol, body);
CREATE VIRTUAL TABLE IF NOT EXISTS {chunk_vocab} USING fts5vocab ({chunks}, row);
CREATE VIRTUAL TABLE IF NOT EXISTS {file_vocab} USING fts5vocab ({files}, row);
"""

# bm25() column weights (path, symbol, body): a query word in a file's path or a symbol's name
# says more than one in its body.
_CHUNK_WEIGHTS = "3.0, 2.0, 1.0"
_FILE_WEIGHTS = "3.0, 1.5, 1.0"
# `_print_Matrix`, `visit_BinOp`, `convert_DateField`: code that handles a named class.
_HANDLER_NAME = re.compile(r"^_*(?:[a-z][a-z0-9]*_)+(?P<handled>[A-Z][A-Za-z0-9]*)$")


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


@dataclass(frozen=True, slots=True)
class _FtsTables:
    chunks: str
    files: str
    chunk_vocab: str
    file_vocab: str


def _fts_tables(repo: str) -> _FtsTables:
    # A repository name is not a safe SQL identifier; its hash is.
    scope = hashlib.sha1(repo.encode("utf-8")).hexdigest()[:16]
    return _FtsTables(
        f"chunk_fts_{scope}", f"file_fts_{scope}", f"chunk_vocab_{scope}", f"file_vocab_{scope}"
    )


def handled_name(name: str) -> str:
    """The class a handler function is named for (`_print_Matrix` -> `Matrix`), or ""."""
    match = _HANDLER_NAME.match(name)
    return match.group("handled") if match else ""


# A term in more than half of the rows has a BM25 weight of ~0 (FTS5 floors its IDF), yet
# every row containing it must be scored: `app` or `py` in a query would make each search
# score the whole repository. Such terms are dropped, and only the rarest are kept.
_COMMON_TERM_SHARE = 0.5
_MAX_QUERY_TERMS = 16


def _match_expression(terms: Sequence[str]) -> str:
    return " OR ".join(f'"{term}"' for term in terms)


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
            self._migrate()
            self._db.executescript(_SCHEMA)

    def _migrate(self) -> None:
        """An index of an older layout is dropped: it is a cache of the repositories, and a
        repository with no rows here is indexed again on its next use."""
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        rows = self._db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()

        # Vocabulary tables first (they read an FTS table), then FTS tables (which take their
        # shadow tables with them), then plain tables.
        def order(row: tuple[str, str | None]) -> tuple[int, str]:
            sql = (row[1] or "").upper()
            rank = 0 if "FTS5VOCAB" in sql else 1 if "VIRTUAL" in sql else 2
            return rank, row[0]

        for name, _ in sorted(rows, key=order):
            self._db.execute(f'DROP TABLE IF EXISTS "{name}"')
        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _tables(self, repo: str, *, create: bool = False) -> _FtsTables | None:
        """The repository's FTS tables (the lock must be held); None if it has none yet."""
        tables = _fts_tables(repo)
        exists = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (tables.files,)
        ).fetchone()
        if exists is None:
            if not create:
                return None
            for statement in _FTS_SCHEMA.format(**dataclasses.asdict(tables)).split(";"):
                if statement.strip():
                    self._db.execute(statement)
        return tables

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
        written = 0
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN")
            try:
                tables = self._tables(repo, create=True)
                assert tables is not None
                for file in files:
                    self._delete_file(repo, file.path, tables)
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
                            " name, handles, signature, docstring, text)"
                            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (
                                file_id,
                                repo,
                                file.path,
                                chunk.start_line,
                                chunk.end_line,
                                chunk.kind.value,
                                chunk.symbol,
                                chunk.symbol.rsplit(".", 1)[-1],
                                handled_name(chunk.symbol.rsplit(".", 1)[-1])
                                if chunk.kind in (ChunkKind.FUNCTION, ChunkKind.METHOD)
                                else "",
                                chunk.signature,
                                chunk.docstring,
                                chunk.text,
                            ),
                        ).lastrowid
                        symbol_tokens = " ".join(tokenize(f"{chunk.symbol} {chunk.signature}"))
                        body_tokens = " ".join(tokenize(chunk.text))
                        self._db.execute(
                            f"INSERT INTO {tables.chunks} (rowid, path, symbol, body) VALUES (?, ?, ?, ?)",
                            (chunk_id, path_tokens, symbol_tokens, body_tokens),
                        )
                        symbol_words.append(symbol_tokens)
                        body_words.append(body_tokens)
                        written += 1
                    self._db.execute(
                        f"INSERT INTO {tables.files} (rowid, path, symbol, body) VALUES (?, ?, ?, ?)",
                        (file_id, path_tokens, " ".join(symbol_words), " ".join(body_words)),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return written

    def remove_files(self, repo: str, paths: Iterable[str]) -> int:
        removed = 0
        with self._lock:
            tables = self._tables(repo)
            if tables is None:
                return 0
            self._db.execute("BEGIN")
            try:
                for path in paths:
                    removed += self._delete_file(repo, path, tables)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return removed

    def _delete_file(self, repo: str, path: str, tables: _FtsTables) -> int:
        row = self._db.execute(
            "SELECT id FROM files WHERE repo = ? AND path = ?", (repo, path)
        ).fetchone()
        if row is None:
            return 0
        file_id = row[0]
        self._db.execute(
            f"DELETE FROM {tables.chunks} WHERE rowid IN (SELECT id FROM chunks WHERE file_id = ?)",
            (file_id,),
        )
        self._db.execute("DELETE FROM chunks WHERE file_id = ?", (file_id,))
        self._db.execute(f"DELETE FROM {tables.files} WHERE rowid = ?", (file_id,))
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

    def _row_count(self, table: str, repo: str) -> int:
        return int(
            self._db.execute(f"SELECT COUNT(*) FROM {table} WHERE repo = ?", (repo,)).fetchone()[0]
        )

    def _informative(
        self, vocabulary: str, total: int, terms: Sequence[str], limit: int
    ) -> list[str]:
        """The query terms worth searching for, in the caller's order of preference (the lock
        must be held): present in this repository and not in most of its rows."""
        if not terms:
            return []
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
        return useful[:limit]

    def document_frequencies(self, repo: str, terms: Iterable[str]) -> tuple[dict[str, int], int]:
        """How many of the repository's files hold each token, and how many files it has."""
        wanted = list(dict.fromkeys(terms))
        with self._lock:
            tables = self._tables(repo)
            total = self._row_count("files", repo)
            if tables is None or not wanted:
                return {}, total
            found: dict[str, int] = {}
            for group in _groups(wanted):
                marks = ",".join("?" * len(group))
                found.update(
                    self._db.execute(
                        f"SELECT term, doc FROM {tables.file_vocab} WHERE term IN ({marks})", group
                    ).fetchall()
                )
        return found, total

    def search_chunks(
        self,
        repo: str,
        terms: Sequence[str],
        limit: int = 200,
        *,
        max_terms: int = _MAX_QUERY_TERMS,
    ) -> list[LexicalHit]:
        with self._lock:
            tables = self._tables(repo)
            if tables is None:
                return []
            terms = self._informative(
                tables.chunk_vocab, self._row_count("chunks", repo), terms, max_terms
            )
            if not terms:
                return []
            # Rank inside FTS first, then join only the rows that made the cut.
            rows = self._db.execute(
                "SELECT c.id, c.path, c.symbol, c.start_line, c.end_line, top.s FROM"
                f" (SELECT rowid AS id, bm25({tables.chunks}, {_CHUNK_WEIGHTS}) AS s"
                f"  FROM {tables.chunks} WHERE {tables.chunks} MATCH ? ORDER BY s LIMIT ?) AS top"
                " JOIN chunks c ON c.id = top.id ORDER BY top.s",
                (_match_expression(terms), limit),
            ).fetchall()
        return [LexicalHit(r[0], r[1], r[2], r[3], r[4], -float(r[5])) for r in rows]

    def search_files(
        self,
        repo: str,
        terms: Sequence[str],
        limit: int = 100,
        *,
        max_terms: int = _MAX_QUERY_TERMS,
    ) -> list[tuple[str, float]]:
        with self._lock:
            tables = self._tables(repo)
            if tables is None:
                return []
            terms = self._informative(
                tables.file_vocab, self._row_count("files", repo), terms, max_terms
            )
            if not terms:
                return []
            rows = self._db.execute(
                "SELECT f.path, top.s FROM"
                f" (SELECT rowid AS id, bm25({tables.files}, {_FILE_WEIGHTS}) AS s"
                f"  FROM {tables.files} WHERE {tables.files} MATCH ? ORDER BY s LIMIT ?) AS top"
                " JOIN files f ON f.id = top.id ORDER BY top.s",
                (_match_expression(terms), limit),
            ).fetchall()
        return [(r[0], -float(r[1])) for r in rows]

    def files_defining(self, repo: str, names: Iterable[str]) -> dict[str, list[str]]:
        """Symbol name (leaf, e.g. `parse` for `Parser.parse`) -> files that define it in code
        (a documentation section's title is not a definition)."""
        return self._files_by("name", repo, names)

    def files_handling(self, repo: str, names: Iterable[str]) -> dict[str, list[str]]:
        """Class name -> files with a function named for handling it (`_print_Matrix`,
        `visit_BinOp`): where a fix for how a named class is printed or converted often lives."""
        return self._files_by("handles", repo, names)

    def _files_by(self, column: str, repo: str, names: Iterable[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        with self._lock:
            for group in _groups(list(dict.fromkeys(names))):
                marks = ",".join("?" * len(group))
                rows = self._db.execute(
                    f"SELECT DISTINCT {column}, path FROM chunks INDEXED BY chunks_{column}"
                    f" WHERE repo = ? AND {column} IN ({marks})"
                    " AND kind NOT IN ('module', 'section', 'block') ORDER BY path",
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

"""Index a repository: lexical first (seconds), embeddings after, and only what changed.

A push to the default branch re-indexes only its changed and removed paths. Content hashes
make any re-index idempotent: an unchanged file is not re-chunked, and an embedding text that
is already stored (its id is a hash of the text) is not embedded again.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from knowledge.chunking import (
    MAX_FILE_BYTES,
    chunk_file,
    decode_text,
    is_documentation,
    skip_reason_for_content,
    skip_reason_for_path,
)
from knowledge.embeddings import Embedder
from knowledge.hardened_git import checkout_git_dir, git_argv, git_env
from knowledge.lexical import IndexedFile, LexicalIndex, content_hash
from knowledge.scrub import scrub_credentials
from knowledge.store import Entry, EntryMetadata, Kind, KnowledgeStore
from knowledge.summaries import EmbeddingUnit, embedding_units, file_summary

_CODE_KINDS = (Kind.CODE, Kind.DOCUMENTATION)
# How many skipped paths a report's text names, as examples of each kind.
_EXAMPLES_PER_KIND = 2


def skip_kind(reason: str) -> str:
    """The kind of a skip reason, for counting: `in skipped directory node_modules/` and
    `in skipped directory dist/` are both vendored or built code."""
    for prefix, kind in (
        ("in skipped directory", "vendored or built directory"),
        ("lock file", "lock file"),
        ("generated", "generated"),
        ("minified", "minified"),
        ("binary", "binary"),
        ("larger than", "too large"),
        ("not UTF-8", "not UTF-8 text"),
        ("symlink", "symlink"),
        ("unreadable", "unreadable"),
    ):
        if reason.startswith(prefix):
            return kind
    return "other"


@dataclass
class IndexReport:
    """What one indexing call did: the counts tests and operators check."""

    repository: str
    files_seen: int = 0
    files_written: int = 0
    files_unchanged: int = 0
    files_removed: int = 0
    chunks_written: int = 0
    units_embedded: int = 0
    vectors_deleted: int = 0
    files_embedded: int = 0
    pending_embeddings: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    written_paths: list[str] = field(default_factory=list)
    embedded_paths: list[str] = field(default_factory=list)
    lexical_seconds: float = 0.0
    embedding_seconds: float = 0.0

    @property
    def seconds(self) -> float:
        return self.lexical_seconds + self.embedding_seconds

    def skipped_by_kind(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for reason in self.skipped.values():
            kind = skip_kind(reason)
            counts[kind] = counts.get(kind, 0) + 1
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))

    def __str__(self) -> str:
        """One bounded line for a log: counts, and skips by kind with a few example paths
        (the full lists stay on the object; a log line carrying every path is unreadable)."""
        examples: dict[str, list[str]] = {}
        for path, reason in sorted(self.skipped.items()):
            listed = examples.setdefault(skip_kind(reason), [])
            if len(listed) < _EXAMPLES_PER_KIND:
                listed.append(path if len(path) <= 80 else "…" + path[-79:])
        skipped = ", ".join(
            f"{kind} {count} (e.g. {', '.join(examples[kind])})"
            for kind, count in self.skipped_by_kind().items()
        )
        return (
            f"{self.files_seen} files seen, {self.files_written} written, "
            f"{self.files_unchanged} unchanged, {self.files_removed} removed, "
            f"{self.chunks_written} chunks; {self.units_embedded} texts embedded for "
            f"{self.files_embedded} files, {self.pending_embeddings} files pending; "
            f"skipped {len(self.skipped)}"
            + (f": {skipped}" if skipped else "")
            + f"; lexical {self.lexical_seconds:.1f}s, embeddings {self.embedding_seconds:.1f}s"
        )

    __repr__ = __str__

    def absorb(self, other: IndexReport) -> None:
        self.units_embedded += other.units_embedded
        self.vectors_deleted += other.vectors_deleted
        self.files_embedded += other.files_embedded
        self.embedded_paths.extend(other.embedded_paths)
        self.embedding_seconds += other.embedding_seconds
        self.pending_embeddings = other.pending_embeddings


class RepositoryIndexer:
    def __init__(
        self,
        *,
        store: KnowledgeStore,
        embedder: Embedder,
        lexical: LexicalIndex,
        max_file_bytes: int = MAX_FILE_BYTES,
        write_batch: int = 200,
        embed_batch: int = 100,
    ) -> None:
        self._store = store
        self._embedder = embedder
        self._lexical = lexical
        self._max_file_bytes = max_file_bytes
        self._write_batch = write_batch
        self._embed_batch = embed_batch

    # --- entry points ---------------------------------------------------------------------

    def index_files(
        self,
        repo: str,
        files: Iterable[tuple[str, str | Skipped]],
        *,
        embed: bool = True,
        prune: bool = False,
    ) -> IndexReport:
        """Index (path, text) pairs. With `prune`, they are the whole repository: any indexed
        path not among them is removed."""
        report = IndexReport(repository=repo)
        started = time.perf_counter()
        seen: set[str] = set()
        batch: list[tuple[str, str]] = []
        for path, text in _reported(files, report):
            path = _normalise(path)
            seen.add(path)
            report.files_seen += 1
            batch.append((path, text))
            if len(batch) >= self._write_batch:
                self._write(repo, batch, report)
                batch = []
        self._write(repo, batch, report)
        if prune:
            stale = sorted(set(self._lexical.content_hashes(repo)) - seen)
            self._remove(repo, stale, report)
        report.lexical_seconds = time.perf_counter() - started
        if embed:
            report.absorb(self.embed_pending(repo))
        else:
            report.pending_embeddings = len(self._lexical.pending_embedding(repo, 1 << 30))
        return report

    def index_directory(self, repo: str, root: str | Path, *, embed: bool = True) -> IndexReport:
        """Index a checkout as the repository's whole content (removed files are dropped)."""
        root = Path(root)
        return self.index_files(repo, self.read_checkout(root), embed=embed, prune=True)

    def apply_changes(
        self,
        repo: str,
        changed: Mapping[str, str],
        removed: Iterable[str],
        *,
        embed: bool = True,
    ) -> IndexReport:
        """Re-index a push: only `changed` paths are read and `removed` ones dropped."""
        report = IndexReport(repository=repo)
        started = time.perf_counter()
        items = [(_normalise(path), text) for path, text in changed.items()]
        report.files_seen = len(items)
        for first in range(0, len(items), self._write_batch):
            self._write(repo, items[first : first + self._write_batch], report)
        self._remove(repo, sorted({_normalise(p) for p in removed}), report)
        report.lexical_seconds = time.perf_counter() - started
        if embed:
            report.absorb(self.embed_pending(repo))
        return report

    def embed_pending(self, repo: str, *, max_files: int | None = None) -> IndexReport:
        """Embed the files whose current content has no vectors yet, in batches.

        Safe to run in the background after a lexical index: search works meanwhile, and a
        second run finds nothing to do.
        """
        report = IndexReport(repository=repo)
        started = time.perf_counter()
        limit = max_files if max_files is not None else 1 << 30
        pending = self._lexical.pending_embedding(repo, limit)
        for first in range(0, len(pending), self._embed_batch):
            self._embed_files(repo, pending[first : first + self._embed_batch], report)
        report.pending_embeddings = len(self._lexical.pending_embedding(repo, 1 << 30))
        report.embedding_seconds = time.perf_counter() - started
        return report

    # --- steps ----------------------------------------------------------------------------

    def _write(self, repo: str, items: list[tuple[str, str]], report: IndexReport) -> None:
        if not items:
            return
        known = self._lexical.content_hashes(repo, [path for path, _ in items])
        prepared: list[IndexedFile] = []
        dropped: list[str] = []
        for path, text in items:
            reason = skip_reason_for_path(path) or skip_reason_for_content(
                text.encode("utf-8", errors="replace"), max_bytes=self._max_file_bytes
            )
            if reason is not None:
                report.skipped[path] = reason
                if path in known:
                    dropped.append(path)  # it was indexable before; it is not any more
                continue
            digest = content_hash(text)
            if known.get(path) == digest:
                report.files_unchanged += 1
                continue
            chunks = chunk_file(path, scrub_credentials(text))
            prepared.append(IndexedFile(path, digest, file_summary(path, chunks), chunks))
        report.chunks_written += self._lexical.write_files(repo, prepared)
        report.files_written += len(prepared)
        report.written_paths.extend(file.path for file in prepared)
        self._remove(repo, dropped, report)

    def _remove(self, repo: str, paths: list[str], report: IndexReport) -> None:
        if not paths:
            return
        report.files_removed += self._lexical.remove_files(repo, paths)
        for kind in _CODE_KINDS:
            report.vectors_deleted += self._store.delete_paths(kind, repo, paths)

    def _embed_files(self, repo: str, paths: list[str], report: IndexReport) -> None:
        hashes = self._lexical.content_hashes(repo, paths)
        records = self._lexical.chunks_of(repo, paths)
        wanted: dict[Kind, dict[str, EmbeddingUnit]] = {kind: {} for kind in _CODE_KINDS}
        for path in paths:
            kind = Kind.DOCUMENTATION if is_documentation(path) else Kind.CODE
            for unit in embedding_units(repo, path, records.get(path, [])):
                wanted[kind][unit.id] = unit
        now = time.time()
        for kind in _CODE_KINDS:
            existing = self._store.ids_for_paths(kind, repo, paths)
            fresh = [unit for unit_id, unit in wanted[kind].items() if unit_id not in existing]
            stale = [entry_id for entry_id in existing if entry_id not in wanted[kind]]
            if fresh:
                vectors = self._embedder.embed([unit.text for unit in fresh])
                self._store.upsert(
                    kind,
                    [
                        Entry(
                            id=unit.id,
                            text=unit.text,
                            embedding=vector,
                            metadata=EntryMetadata(
                                repository=repo,
                                source_type=unit.unit_type.value,
                                paths=(unit.path,),
                                created_at=now,
                                extra={"symbol": unit.symbol} if unit.symbol else {},
                            ),
                        )
                        for unit, vector in zip(fresh, vectors, strict=True)
                    ],
                )
                report.units_embedded += len(fresh)
                report.embedded_paths.extend(sorted({unit.path for unit in fresh}))
            if stale:
                self._store.delete(kind, repo, stale)
                report.vectors_deleted += len(stale)
        self._lexical.mark_embedded(repo, hashes)
        report.files_embedded += len(hashes)

    def read_checkout(self, root: Path) -> Iterator[tuple[str, str | Skipped]]:
        """Each listed file's text, or why it is not read."""
        for relative in _list_checkout(root):
            if relative.endswith("/"):  # a vendored or built folder, reported once
                folder = relative.rstrip("/")
                yield folder, Skipped(skip_reason_for_path(f"{relative}x") or "skipped folder")
                continue
            reason = skip_reason_for_path(relative)
            if reason is not None:
                yield relative, Skipped(reason)
                continue
            target = root / relative
            try:
                if target.is_symlink():
                    yield relative, Skipped("symlink (may point outside the checkout)")
                    continue
                if not target.is_file():
                    continue  # a submodule or a file gone since listing: nothing to report
                size = target.stat().st_size
                if size > self._max_file_bytes:
                    yield relative, Skipped(f"larger than {self._max_file_bytes} bytes")
                    continue
                data = target.read_bytes()
            except OSError as exc:
                yield relative, Skipped(f"unreadable ({exc.strerror or type(exc).__name__})")
                continue
            reason = skip_reason_for_content(data, max_bytes=self._max_file_bytes)
            if reason is not None:
                yield relative, Skipped(reason)
                continue
            text = decode_text(data)
            yield relative, text if text is not None else Skipped("not UTF-8 text")


class Skipped(str):
    """A file that was listed but not read, carrying the reason."""


def _reported(
    files: Iterable[tuple[str, str | Skipped]], report: IndexReport
) -> Iterator[tuple[str, str]]:
    """The readable files; the others are recorded in the report with their reason."""
    for path, text in files:
        if isinstance(text, Skipped):
            report.skipped[_normalise(path)] = str(text)
        else:
            yield path, text


def _normalise(path: str) -> str:
    path = path.replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return path.lstrip("/")


def _list_checkout(root: Path) -> list[str]:
    """Tracked files of a git checkout (honours .gitignore), or a directory walk otherwise."""
    git_dir = checkout_git_dir(root)
    if git_dir is not None:
        try:
            listed = subprocess.run(
                git_argv(
                    "ls-files",
                    "-z",
                    "--cached",
                    "--others",
                    "--exclude-standard",
                    git_dir=git_dir,
                    work_tree=root,
                ),
                cwd=root,
                env=git_env({"GIT_NO_LAZY_FETCH": "1"}),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                check=True,
                timeout=120,
            ).stdout
            return sorted({p for p in listed.decode("utf-8", errors="replace").split("\0") if p})
        except (OSError, subprocess.SubprocessError):
            pass
    found: list[str] = []
    for directory, subdirs, names in os.walk(root):
        base = Path(directory).relative_to(root)
        # Skipped folders are not walked (node_modules can hold 100,000 files); each is listed
        # once, with a trailing slash, so the report can say it was skipped.
        found.extend(
            f"{(base / d).as_posix()}/"
            for d in subdirs
            if skip_reason_for_path(f"{d}/x") is not None
        )
        subdirs[:] = sorted(d for d in subdirs if skip_reason_for_path(f"{d}/x") is None)
        found.extend((base / name).as_posix() for name in sorted(names))
    return found

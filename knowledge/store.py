"""The vector store: a small protocol, and its Chroma implementation.

The rest of the bot depends on `KnowledgeStore`; only this module knows chromadb, and it
imports it when a store is opened, not at import time. Vectors are always computed by our own
`Embedder` and passed in: chromadb's default embedding function downloads a model.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import numpy as np

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

MetadataValue = str | int | float | bool


class Kind(StrEnum):
    """One collection per kind of knowledge."""

    CODE = "code"
    DOCUMENTATION = "documentation"
    PLAN = "plan"
    PATTERN = "pattern"
    FAILURE = "failure"
    REVIEW = "review"


@dataclass(frozen=True)
class EntryMetadata:
    """What every stored entry says about itself, whatever its kind."""

    repository: str
    source_type: str
    paths: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    outcome: str = ""
    pr_number: int | None = None
    issue_number: int | None = None
    created_at: float = field(default_factory=time.time)
    extra: Mapping[str, MetadataValue] = field(default_factory=dict)

    def to_chroma(self) -> dict[str, Any]:
        # Chroma rejects empty lists and drops None; absent means "not applicable".
        meta: dict[str, Any] = {
            "repository": self.repository,
            "source_type": self.source_type,
            "created_at": float(self.created_at),
        }
        if self.paths:
            meta["paths"] = list(self.paths)
            meta["path"] = self.paths[0]
        if self.labels:
            meta["labels"] = list(self.labels)
        if self.outcome:
            meta["outcome"] = self.outcome
        if self.pr_number is not None:
            meta["pr_number"] = self.pr_number
        if self.issue_number is not None:
            meta["issue_number"] = self.issue_number
        for key, value in self.extra.items():
            meta.setdefault(f"x_{key}", value)
        return meta

    @classmethod
    def from_chroma(cls, meta: Mapping[str, Any]) -> EntryMetadata:
        return cls(
            repository=str(meta.get("repository", "")),
            source_type=str(meta.get("source_type", "")),
            paths=tuple(meta.get("paths") or ()),
            labels=tuple(meta.get("labels") or ()),
            outcome=str(meta.get("outcome", "")),
            pr_number=_optional_int(meta.get("pr_number")),
            issue_number=_optional_int(meta.get("issue_number")),
            created_at=float(meta.get("created_at", 0.0)),
            extra={k[2:]: v for k, v in meta.items() if k.startswith("x_")},
        )


@dataclass(frozen=True)
class Entry:
    id: str
    text: str
    embedding: Sequence[float] | np.ndarray
    metadata: EntryMetadata


@dataclass(frozen=True)
class StoredHit:
    id: str
    text: str
    metadata: EntryMetadata
    similarity: float  # cosine similarity, 1.0 = same direction


class KnowledgeStore(Protocol):
    """Entries of one kind for one repository; nothing ever crosses repositories."""

    def upsert(self, kind: Kind, entries: Sequence[Entry]) -> None:
        """Insert or replace entries (each entry's metadata names its repository)."""
        ...

    def delete(self, kind: Kind, repository: str, ids: Sequence[str]) -> None: ...

    def delete_paths(self, kind: Kind, repository: str, paths: Sequence[str]) -> int: ...

    def ids_for_paths(
        self, kind: Kind, repository: str, paths: Sequence[str] | None = None
    ) -> dict[str, str]:
        """Entry id -> path for a repository's entries (all, or only those on `paths`)."""
        ...

    def query(
        self,
        kind: Kind,
        embedding: Sequence[float] | np.ndarray,
        *,
        repository: str,
        n: int = 10,
    ) -> list[StoredHit]: ...

    def get(self, kind: Kind, repository: str, ids: Sequence[str]) -> list[StoredHit]: ...

    def count(self, kind: Kind, repository: str) -> int: ...


def _optional_int(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


# Chroma's `$in` filters and id lists are kept below this size per request.
_FILTER_BATCH = 500


class ChromaStore:
    """`KnowledgeStore` on Chroma: on disk (`path`) or on a shared Chroma server (`url`).

    Each (kind, repository) pair is its own collection. Measured at 55,000 vectors, a query
    with a `where={"repository": ...}` filter took 260 ms and an unfiltered one 2-3 ms, so
    the repository is chosen by collection, never by filter.
    """

    def __init__(
        self,
        *,
        path: str | Path | None = None,
        url: str | None = None,
        collection_prefix: str = "af_",
        client: ClientAPI | None = None,
    ) -> None:
        if client is None:
            client = _open_client(path=path, url=url)
        self._client = client
        self._prefix = collection_prefix
        self._collections: dict[str, Collection] = {}

    def collection_name(self, kind: Kind, repository: str) -> str:
        digest = hashlib.sha1(repository.encode("utf-8")).hexdigest()[:20]
        return f"{self._prefix}{kind.value}_{digest}"

    def _collection(self, kind: Kind, repository: str, *, create: bool) -> Collection | None:
        name = self.collection_name(kind, repository)
        collection = self._collections.get(name)
        if collection is not None:
            return collection
        from chromadb.errors import NotFoundError

        if create:
            collection = self._client.get_or_create_collection(
                name,
                embedding_function=None,
                configuration={"hnsw": {"space": "cosine"}},
                metadata={"repository": repository, "kind": kind.value},
            )
        else:
            try:
                collection = self._client.get_collection(name, embedding_function=None)
            except NotFoundError:
                return None  # nothing stored yet; not cached, another worker may create it
        self._collections[name] = collection
        return collection

    def upsert(self, kind: Kind, entries: Sequence[Entry]) -> None:
        by_repository: dict[str, list[Entry]] = {}
        for entry in entries:
            by_repository.setdefault(entry.metadata.repository, []).append(entry)
        step = max(1, min(self._client.get_max_batch_size(), 4000))
        for repository, group in by_repository.items():
            collection = self._collection(kind, repository, create=True)
            assert collection is not None
            for first in range(0, len(group), step):
                batch = group[first : first + step]
                collection.upsert(
                    ids=[e.id for e in batch],
                    embeddings=np.asarray(
                        [np.asarray(e.embedding, dtype=np.float32) for e in batch]
                    ),
                    documents=[e.text for e in batch],
                    metadatas=[e.metadata.to_chroma() for e in batch],
                )

    def delete(self, kind: Kind, repository: str, ids: Sequence[str]) -> None:
        collection = self._collection(kind, repository, create=False)
        if collection is None:
            return
        for batch in _batches(list(ids), _FILTER_BATCH):
            collection.delete(ids=batch)

    def delete_paths(self, kind: Kind, repository: str, paths: Sequence[str]) -> int:
        ids = list(self.ids_for_paths(kind, repository, paths))
        self.delete(kind, repository, ids)
        return len(ids)

    def ids_for_paths(
        self, kind: Kind, repository: str, paths: Sequence[str] | None = None
    ) -> dict[str, str]:
        collection = self._collection(kind, repository, create=False)
        found: dict[str, str] = {}
        if collection is None:
            return found
        groups: Iterable[list[str] | None] = (
            [None] if paths is None else _batches(list(paths), _FILTER_BATCH)
        )
        for group in groups:
            where: dict[str, Any] | None = None if group is None else {"path": {"$in": group}}
            result = collection.get(where=where, include=["metadatas"])
            for entry_id, meta in zip(result["ids"], result["metadatas"] or [], strict=False):
                found[entry_id] = str((meta or {}).get("path", ""))
        return found

    def query(
        self,
        kind: Kind,
        embedding: Sequence[float] | np.ndarray,
        *,
        repository: str,
        n: int = 10,
    ) -> list[StoredHit]:
        collection = self._collection(kind, repository, create=False)
        if collection is None:
            return []
        size = collection.count()
        if size == 0:
            return []
        result = collection.query(
            query_embeddings=np.asarray([embedding], dtype=np.float32),
            n_results=min(n, size),
            include=["documents", "metadatas", "distances"],
        )
        ids = result["ids"][0] if result["ids"] else []
        documents = (result["documents"] or [[]])[0]
        metadatas = (result["metadatas"] or [[]])[0]
        distances = (result["distances"] or [[]])[0]
        return [
            StoredHit(
                id=entry_id,
                text=document or "",
                metadata=EntryMetadata.from_chroma(meta or {}),
                similarity=1.0 - float(distance),
            )
            for entry_id, document, meta, distance in zip(
                ids, documents, metadatas, distances, strict=False
            )
        ]

    def get(self, kind: Kind, repository: str, ids: Sequence[str]) -> list[StoredHit]:
        collection = self._collection(kind, repository, create=False)
        hits: list[StoredHit] = []
        if collection is None:
            return hits
        for batch in _batches(list(ids), _FILTER_BATCH):
            result = collection.get(ids=batch, include=["documents", "metadatas"])
            for entry_id, document, meta in zip(
                result["ids"], result["documents"] or [], result["metadatas"] or [], strict=False
            ):
                hits.append(
                    StoredHit(entry_id, document or "", EntryMetadata.from_chroma(meta or {}), 1.0)
                )
        return hits

    def count(self, kind: Kind, repository: str) -> int:
        collection = self._collection(kind, repository, create=False)
        return 0 if collection is None else int(collection.count())


def _open_client(*, path: str | Path | None, url: str | None) -> ClientAPI:
    if (path is None) == (url is None):
        raise ValueError("give exactly one of a Chroma path or a Chroma server URL")
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False)
    if path is not None:
        Path(path).mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=settings)
    assert url is not None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"Chroma URL must be http(s)://host[:port], got {url!r}")
    ssl = parts.scheme == "https"
    port = parts.port or (443 if ssl else 8000)
    return chromadb.HttpClient(host=parts.hostname, port=port, ssl=ssl, settings=settings)


def _batches(items: list[str], size: int) -> Iterable[list[str]]:
    for first in range(0, len(items), size):
        yield items[first : first + size]

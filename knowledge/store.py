"""The vector store: a small protocol, and its Chroma implementation.

The rest of the bot depends on `KnowledgeStore`; only this module knows chromadb, and it
imports it when a store is opened, not at import time. Vectors are always computed by our own
`Embedder` and passed in: chromadb's default embedding function downloads a model.
"""

from __future__ import annotations

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
    def upsert(self, kind: Kind, entries: Sequence[Entry]) -> None: ...

    def delete(self, kind: Kind, ids: Sequence[str]) -> None: ...

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

    def get(self, kind: Kind, ids: Sequence[str]) -> list[StoredHit]: ...

    def count(self, kind: Kind, repository: str | None = None) -> int: ...


def _optional_int(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


# Chroma's `$in` filters and id lists are kept below this size per request.
_FILTER_BATCH = 500


class ChromaStore:
    """`KnowledgeStore` on Chroma: on disk (`path`) or on a shared Chroma server (`url`)."""

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
        self._collections: dict[Kind, Collection] = {}

    def _collection(self, kind: Kind) -> Collection:
        collection = self._collections.get(kind)
        if collection is None:
            collection = self._client.get_or_create_collection(
                f"{self._prefix}{kind.value}",
                embedding_function=None,
                configuration={"hnsw": {"space": "cosine"}},
            )
            self._collections[kind] = collection
        return collection

    def upsert(self, kind: Kind, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        collection = self._collection(kind)
        step = max(1, min(self._client.get_max_batch_size(), 4000))
        for first in range(0, len(entries), step):
            batch = entries[first : first + step]
            collection.upsert(
                ids=[e.id for e in batch],
                embeddings=np.asarray([np.asarray(e.embedding, dtype=np.float32) for e in batch]),
                documents=[e.text for e in batch],
                metadatas=[e.metadata.to_chroma() for e in batch],
            )

    def delete(self, kind: Kind, ids: Sequence[str]) -> None:
        collection = self._collection(kind)
        for batch in _batches(list(ids), _FILTER_BATCH):
            collection.delete(ids=batch)

    def delete_paths(self, kind: Kind, repository: str, paths: Sequence[str]) -> int:
        ids = list(self.ids_for_paths(kind, repository, paths))
        self.delete(kind, ids)
        return len(ids)

    def ids_for_paths(
        self, kind: Kind, repository: str, paths: Sequence[str] | None = None
    ) -> dict[str, str]:
        collection = self._collection(kind)
        found: dict[str, str] = {}
        groups: Iterable[list[str] | None] = [None] if paths is None else _batches(list(paths), _FILTER_BATCH)
        for group in groups:
            where: dict[str, Any] = {"repository": repository}
            if group is not None:
                where = {"$and": [where, {"path": {"$in": group}}]}
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
        collection = self._collection(kind)
        result = collection.query(
            query_embeddings=np.asarray([embedding], dtype=np.float32),
            n_results=n,
            where={"repository": repository},
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
            for entry_id, document, meta, distance in zip(ids, documents, metadatas, distances, strict=False)
        ]

    def get(self, kind: Kind, ids: Sequence[str]) -> list[StoredHit]:
        collection = self._collection(kind)
        hits: list[StoredHit] = []
        for batch in _batches(list(ids), _FILTER_BATCH):
            result = collection.get(ids=batch, include=["documents", "metadatas"])
            for entry_id, document, meta in zip(
                result["ids"], result["documents"] or [], result["metadatas"] or [], strict=False
            ):
                hits.append(
                    StoredHit(entry_id, document or "", EntryMetadata.from_chroma(meta or {}), 1.0)
                )
        return hits

    def count(self, kind: Kind, repository: str | None = None) -> int:
        collection = self._collection(kind)
        if repository is None:
            return int(collection.count())
        return len(collection.get(where={"repository": repository}, include=[])["ids"])


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

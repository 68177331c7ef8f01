"""One object bundling the knowledge store for the rest of the bot.

Built from explicit arguments (paths, URL, model), never from settings, so the composition
root decides where things live. Its async methods run the blocking work in a thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from pathlib import Path

from knowledge.context import RetrievedContext
from knowledge.embeddings import Embedder, SentenceTransformerEmbedder
from knowledge.indexer import IndexReport, RepositoryIndexer
from knowledge.learning import LearningRecorder, PullRequestOutcome, TaskFailure
from knowledge.lexical import LexicalIndex
from knowledge.retrieval import FusionWeights, HybridRetriever
from knowledge.store import ChromaStore, KnowledgeStore


class KnowledgeService:
    def __init__(
        self,
        *,
        store: KnowledgeStore,
        embedder: Embedder,
        lexical: LexicalIndex,
        weights: FusionWeights | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.lexical = lexical
        self.indexer = RepositoryIndexer(store=store, embedder=embedder, lexical=lexical)
        self.retriever = HybridRetriever(
            store=store, embedder=embedder, lexical=lexical, weights=weights or FusionWeights()
        )
        self.learning = LearningRecorder(store=store, embedder=embedder)

    @classmethod
    def open(
        cls,
        *,
        lexical_path: str | Path,
        chroma_path: str | Path | None = None,
        chroma_url: str | None = None,
        model_path: str | Path | None = None,
        embedder: Embedder | None = None,
        torch_threads: int | None = None,
        collection_prefix: str = "af_",
    ) -> KnowledgeService:
        """Open the stores: Chroma on disk (`chroma_path`) or a shared server (`chroma_url`),
        the lexical index at `lexical_path`, and the model at `model_path` (default: the
        bundled all-MiniLM-L6-v2), loaded on first use."""
        return cls(
            store=ChromaStore(
                path=chroma_path, url=chroma_url, collection_prefix=collection_prefix
            ),
            embedder=(
                embedder
                if embedder is not None
                else SentenceTransformerEmbedder(model_path, torch_threads=torch_threads)
            ),
            lexical=LexicalIndex(lexical_path),
        )

    def close(self) -> None:
        self.lexical.close()

    async def retrieve(
        self, repo: str, query: str, *, token_budget: int = 6000, k_files: int = 10
    ) -> RetrievedContext:
        return await self.retriever.retrieve(
            repo, query, token_budget=token_budget, k_files=k_files
        )

    async def index_directory(
        self, repo: str, path: str | Path, *, embed: bool = True
    ) -> IndexReport:
        return await asyncio.to_thread(self.indexer.index_directory, repo, path, embed=embed)

    async def apply_changes(
        self, repo: str, changed: Mapping[str, str], removed: Iterable[str], *, embed: bool = True
    ) -> IndexReport:
        return await asyncio.to_thread(
            self.indexer.apply_changes, repo, changed, list(removed), embed=embed
        )

    async def embed_pending(self, repo: str, *, max_files: int | None = None) -> IndexReport:
        return await asyncio.to_thread(self.indexer.embed_pending, repo, max_files=max_files)

    async def record_pull_request(self, outcome: PullRequestOutcome) -> str:
        return await asyncio.to_thread(self.learning.record_pull_request, outcome)

    async def record_task_failure(self, failure: TaskFailure) -> str:
        return await asyncio.to_thread(self.learning.record_task_failure, failure)

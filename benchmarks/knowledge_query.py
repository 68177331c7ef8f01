"""Query latency of the knowledge store at 50,000 chunks.

    python benchmarks/knowledge_query.py [--chunks 50000] [--queries 50]

The repository is real code: Python files of the packages installed in this environment, taken
package by package until the lexical index holds `--chunks` chunks, indexed through the real
indexer. One vector per chunk goes to Chroma from precomputed vectors (embedding 50,000 texts
takes many minutes and is not what is measured); a second repository and 200 past pull requests
are distractors. The queries are the issue texts of the localisation dataset. Each timed call
is a complete `retrieve()`: embedding the query, BM25 over files and chunks, dense search,
lessons, snippets and the token budget.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from knowledge.chunking import chunk_file, skip_reason_for_content, skip_reason_for_path
from knowledge.learning import PullRequestOutcome
from knowledge.service import KnowledgeService
from knowledge.store import Entry, EntryMetadata, Kind

REPO = "bench/large"
OTHER = "bench/other"
DATA = Path(__file__).parent / "data" / "localization.jsonl"


def _real_files(root: Path, chunks: int) -> Iterator[tuple[str, str]]:
    """Installed packages' Python files, in a stable order, until `chunks` chunks are reached."""
    total = 0
    for package in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.endswith("-info")):
        for path in sorted(package.rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            if skip_reason_for_path(relative) is not None:
                continue
            data = path.read_bytes()
            if skip_reason_for_content(data) is not None:
                continue  # the indexer would skip it too (generated, huge, binary)
            text = data.decode("utf-8", errors="replace")
            total += len(chunk_file(relative, text))
            yield relative, text
            if total >= chunks:
                return


def _queries(count: int) -> list[str]:
    rows = [
        json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    statements = [row["problem_statement"] for row in rows]
    return [statements[n % len(statements)] for n in range(count)]


def _vectors(base: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Vectors shaped like real ones: mixtures of real embeddings plus noise, unit length."""
    picks = base[rng.integers(0, len(base), size=(count, 2))]
    mixed = (
        picks[:, 0]
        + 0.6 * picks[:, 1]
        + 0.15 * rng.standard_normal((count, base.shape[1])).astype(np.float32)
    )
    normalised: np.ndarray = (mixed / np.linalg.norm(mixed, axis=1, keepdims=True)).astype(
        np.float32
    )
    return normalised


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument(
        "--reuse", action="store_true", help="time queries on a --workdir built before"
    )
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        workdir = arguments.workdir or Path(scratch)
        service = KnowledgeService.open(
            lexical_path=workdir / "lexical.db",
            chroma_path=workdir / "chroma",
            torch_threads=arguments.torch_threads,
        )
        try:
            if not (arguments.reuse and service.lexical.chunk_count(REPO)):
                build(service, arguments.chunks)
            time_queries(service, arguments.queries)
        finally:
            service.close()
    return 0


def build(service: KnowledgeService, chunks: int) -> None:
    rng = random.Random(7)
    root = Path(sysconfig.get_paths()["purelib"])
    started = time.perf_counter()
    report = service.indexer.index_files(REPO, _real_files(root, chunks), embed=False)
    lexical_seconds = time.perf_counter() - started
    chunk_count = service.lexical.chunk_count(REPO)
    print(
        f"lexical index: {report.files_written} files, {chunk_count} chunks in {lexical_seconds:.1f}s "
        f"({report.files_written / lexical_seconds:.0f} files/s)"
    )
    paths = service.lexical.paths(REPO)

    # Real embeddings of a few hundred texts seed the synthetic vectors.
    seeds = service.embedder.embed(rng.sample(paths, min(256, len(paths))))
    np_rng = np.random.default_rng(7)
    started = time.perf_counter()
    records = service.lexical.chunks_of(REPO, paths)
    entries = [
        Entry(
            id=f"chunk-{record.id}",
            text=f"{record.path} {record.symbol}\n{record.signature}\n{record.docstring}",
            embedding=vector,
            metadata=EntryMetadata(
                repository=REPO,
                source_type="symbol",
                paths=(record.path,),
                extra={"symbol": record.symbol},
            ),
        )
        for record, vector in zip(
            (r for path_records in records.values() for r in path_records),
            _vectors(seeds, chunk_count, np_rng),
            strict=False,
        )
    ]
    service.store.upsert(Kind.CODE, entries)
    distractors = _vectors(seeds, 5_000, np_rng)
    service.store.upsert(
        Kind.CODE,
        [
            Entry(
                f"other-{n}",
                f"other {n}",
                vector,
                EntryMetadata(repository=OTHER, source_type="symbol", paths=(f"x/{n}.py",)),
            )
            for n, vector in enumerate(distractors)
        ],
    )
    service.lexical.mark_embedded(REPO, service.lexical.content_hashes(REPO))
    vector_seconds = time.perf_counter() - started
    print(
        f"vectors: {service.store.count(Kind.CODE, REPO) + service.store.count(Kind.CODE, OTHER)} stored (precomputed) in {vector_seconds:.1f}s"
    )

    lessons = 0
    words = [w for w in " ".join(_queries(68)).split() if w.isalpha() and len(w) > 4]
    for number in range(200):
        noun, other = rng.choice(words), rng.choice(words)
        service.learning.record_pull_request(
            PullRequestOutcome(
                repository=REPO if number % 2 else OTHER,
                pr_number=number + 1,
                merged=number % 3 == 0,
                issue_title=f"{noun.capitalize()} {other} is wrong",
                issue_body=f"The {noun} {other} should be recomputed when the {rng.choice(words)} changes.",
                review_comments=[
                    f"Do not touch the {rng.choice(words)} module; use the {noun} service."
                ],
            )
        )
        lessons += 1
    print(f"lessons: {lessons} past pull requests stored")


def time_queries(service: KnowledgeService, query_count: int) -> None:
    chunk_count = service.lexical.chunk_count(REPO)
    queries = _queries(query_count + 3)
    for query in queries[:3]:  # warm caches and the model
        service.retriever.retrieve_sync(REPO, query)
    timings: list[float] = []
    embed_timings: list[float] = []
    sizes: list[int] = []
    for query in queries[3:]:
        started = time.perf_counter()
        service.embedder.embed([query])
        embed_timings.append(time.perf_counter() - started)
        started = time.perf_counter()
        context = service.retriever.retrieve_sync(REPO, query, token_budget=6000, k_files=10)
        timings.append(time.perf_counter() - started)
        sizes.append(context.estimated_tokens())
    parts: dict[str, list[float]] = {"BM25 files+chunks": [], "dense code+docs": [], "lessons": []}
    for query in queries[3:]:
        vector = service.embedder.embed([query])[0]
        terms = service.retriever.query_terms(REPO, query)
        started = time.perf_counter()
        service.lexical.search_files(REPO, terms, 100)
        service.lexical.search_chunks(REPO, terms, 300)
        parts["BM25 files+chunks"].append(time.perf_counter() - started)
        started = time.perf_counter()
        for kind in (Kind.CODE, Kind.DOCUMENTATION):
            service.store.query(kind, vector, repository=REPO, n=50)
        parts["dense code+docs"].append(time.perf_counter() - started)
        started = time.perf_counter()
        for kind in (Kind.PATTERN, Kind.FAILURE):
            service.store.query(kind, vector, repository=REPO, n=6)
        parts["lessons"].append(time.perf_counter() - started)
    print(
        "parts: "
        + ", ".join(
            f"{name} p50 {_ms(v, 0.5):.1f} / p95 {_ms(v, 0.95):.1f} ms" for name, v in parts.items()
        )
    )
    print(
        f"retrieve() over {chunk_count} chunks, {len(timings)} queries: "
        f"p50 {_ms(timings, 0.5):.1f} ms, p95 {_ms(timings, 0.95):.1f} ms, max {max(timings) * 1000:.1f} ms "
        f"(query embedding alone: p50 {_ms(embed_timings, 0.5):.1f} ms, p95 {_ms(embed_timings, 0.95):.1f} ms); "
        f"context ~{statistics.mean(sizes):.0f} tokens"
    )
    print(f"peak RSS of this process (model loaded): {_peak_rss_mb():.0f} MB")


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _ms(values: list[float], quantile: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, round(quantile * (len(ordered) - 1)))]


if __name__ == "__main__":
    raise SystemExit(main())

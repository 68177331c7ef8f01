"""Indexing at the size of a real repository: how soon it is searchable, how long embeddings take,
and how much memory the worker needs with the model loaded.

    .venv/bin/python benchmarks/knowledge_scale.py [--files 2000] [--skip-embedding]

The repository is real code: the first `--files` indexable Python files of the packages installed
in this environment, written out as a checkout and indexed through `index_directory`, as the
worker indexes a clone. Printed:
- time until lexically searchable (the lexical index, which is all the plan waits for), and the
  first ranking's latency right after it;
- full embedding time (`embed_pending`: file summaries and documented symbols, in batches);
- query latency (file ranking, all stages) p50/p95 on this repository;
- this process's peak RSS, with the model loaded and after embedding (a worker's peak).
Query latency at 50,000 chunks is `benchmarks/knowledge_query.py`.
"""

from __future__ import annotations

import argparse
import json
import resource
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from knowledge.chunking import skip_reason_for_content, skip_reason_for_path
from knowledge.service import KnowledgeService

REPO = "bench/scale"
DATA = Path(__file__).parent / "data" / "localization.jsonl"


def _real_files(root: Path, count: int) -> Iterator[tuple[str, bytes]]:
    written = 0
    for package in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.endswith("-info")):
        for path in sorted(package.rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            if skip_reason_for_path(relative) is not None:
                continue
            data = path.read_bytes()
            if skip_reason_for_content(data) is not None:
                continue
            yield relative, data
            written += 1
            if written >= count:
                return


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _ms(values: list[float], quantile: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, round(quantile * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--skip-embedding", action="store_true")
    arguments = parser.parse_args()
    queries = [
        json.loads(line)["problem_statement"]
        for line in DATA.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ][: arguments.queries]
    with tempfile.TemporaryDirectory() as scratch:
        checkout = Path(scratch) / "checkout"
        for relative, data in _real_files(Path(sysconfig.get_paths()["purelib"]), arguments.files):
            target = checkout / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        service = KnowledgeService.open(
            lexical_path=Path(scratch) / "lexical.db",
            chroma_path=Path(scratch) / "chroma",
            torch_threads=arguments.torch_threads,
        )
        try:
            started = time.perf_counter()
            report = service.indexer.index_directory(REPO, checkout, embed=False)
            searchable = time.perf_counter() - started
            started = time.perf_counter()
            first = service.retriever.rank_files(REPO, queries[0], k=10)
            first_query = time.perf_counter() - started
            print(
                f"{report.files_written} files, {service.lexical.chunk_count(REPO)} chunks: "
                f"lexically searchable after {searchable:.1f}s; first ranking {first_query * 1000:.0f} ms "
                f"({len(first)} files); {report.pending_embeddings} files wait for embeddings"
            )
            print(f"index report: {report}")
            print(f"peak RSS before the model: {_peak_rss_mb():.0f} MB")
            if not arguments.skip_embedding:
                service.embedder.embed(["load the model"])
                print(f"peak RSS with the model loaded: {_peak_rss_mb():.0f} MB")
                embedded = service.indexer.embed_pending(REPO)
                print(
                    f"full embedding: {embedded.units_embedded} texts for {embedded.files_embedded} "
                    f"files in {embedded.embedding_seconds:.0f}s "
                    f"({embedded.units_embedded / max(embedded.embedding_seconds, 1e-9):.0f} texts/s)"
                )
            timings: list[float] = []
            for query in queries:
                started = time.perf_counter()
                service.retriever.retrieve_sync(REPO, query)
                timings.append(time.perf_counter() - started)
            print(
                f"retrieve() on this repository, {len(timings)} queries: p50 {_ms(timings, 0.5):.0f} ms, "
                f"p95 {_ms(timings, 0.95):.0f} ms"
            )
            print(
                f"peak RSS of this process (a worker with the model loaded): {_peak_rss_mb():.0f} MB"
            )
        finally:
            service.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

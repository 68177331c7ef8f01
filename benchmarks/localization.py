"""File localisation benchmark: does retrieval find the files an issue is about?

    python benchmarks/data/make_dataset.py          # once: materialise the repositories
    python benchmarks/localization.py --data benchmarks/data/localization.jsonl

Each row: `instance_id`, `repo_dir` (a checkout at the right commit; relative paths resolve
against the jsonl's folder), `problem_statement`, and `gold_files` or `patch` (a unified
diff whose edited files are gold); an optional `split` (dev/test) is reported separately.
Every repository is indexed once; then each problem's files are ranked by the project's
retriever and by a plain BM25 baseline (whole files, lower-cased word tokens, English
stop words, no stemming, no identifier splitting) over the same files.

Acc@k: all gold files are in the top k. MRR@10: 1/rank of the first gold file.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import bm25s  # type: ignore[import-untyped]

from knowledge.service import KnowledgeService

KS = (1, 5, 10)
DEPTH = 10
_DIFF_PATH = re.compile(r"^(?:\+\+\+|---) (?:[ab]/)?(?P<path>\S+)", re.MULTILINE)


@dataclass(frozen=True)
class Problem:
    instance_id: str
    split: str
    repo_dir: Path
    statement: str
    gold: tuple[str, ...]


@dataclass
class Scores:
    ranks: list[int | None] = field(default_factory=list)  # rank of the last gold file found
    first_ranks: list[int | None] = field(default_factory=list)  # rank of the first gold file
    query_seconds: list[float] = field(default_factory=list)

    def add(
        self, ranking: Sequence[str], gold: Sequence[str], seconds: float
    ) -> tuple[int | None, int | None]:
        positions = [ranking.index(g) + 1 if g in ranking else None for g in gold]
        found = [p for p in positions if p is not None]
        all_rank = max(found) if len(found) == len(gold) else None
        first = min(found) if found else None
        self.ranks.append(all_rank)
        self.first_ranks.append(first)
        self.query_seconds.append(seconds)
        return all_rank, first

    def accuracy(self, k: int) -> float:
        return sum(1 for r in self.ranks if r is not None and r <= k) / max(1, len(self.ranks))

    def mrr(self) -> float:
        return sum(1 / r for r in self.first_ranks if r is not None) / max(1, len(self.first_ranks))

    def latency_ms(self, quantile: float) -> float:
        ordered = sorted(self.query_seconds)
        if not ordered:
            return 0.0
        return 1000 * ordered[min(len(ordered) - 1, round(quantile * (len(ordered) - 1)))]


def load_problems(data: Path) -> list[Problem]:
    base = data.resolve().parent
    problems: list[Problem] = []
    for line in data.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        gold = row.get("gold_files") or sorted(
            {
                m.group("path")
                for m in _DIFF_PATH.finditer(row.get("patch", ""))
                if m.group("path") != "/dev/null"
            }
        )
        if not gold:
            raise SystemExit(f"{row['instance_id']}: neither gold_files nor a patch with files")
        repo_dir = Path(row["repo_dir"])
        problems.append(
            Problem(
                instance_id=row["instance_id"],
                split=row.get("split", "all"),
                repo_dir=repo_dir if repo_dir.is_absolute() else base / repo_dir,
                statement=row["problem_statement"],
                gold=tuple(gold),
            )
        )
    return problems


class PlainBM25:
    """The baseline: whole-file BM25 over plain lower-cased word tokens."""

    def __init__(self, files: dict[str, str]) -> None:
        self._paths = list(files)
        self._model = bm25s.BM25()
        tokens = bm25s.tokenize(
            list(files.values()), stopwords="en", return_ids=False, show_progress=False
        )
        self._model.index(tokens, show_progress=False)

    def rank(self, query: str, k: int) -> list[str]:
        tokens = bm25s.tokenize([query], stopwords="en", return_ids=False, show_progress=False)[0]
        ids = self._model.get_tokens_ids(tokens)
        if not ids:
            return []
        scores = self._model.get_scores(ids)
        order = sorted(range(len(self._paths)), key=lambda i: (-scores[i], self._paths[i]))
        return [self._paths[i] for i in order[:k] if scores[i] > 0]


def timed(call: Callable[[], list[str]]) -> tuple[list[str], float]:
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(
        description="File localisation: project retriever vs plain BM25."
    )
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).parent / "data" / "localization.jsonl"
    )
    parser.add_argument(
        "--split", default="all", help="only rows of this split (default: all rows)"
    )
    parser.add_argument(
        "--workdir", type=Path, help="where to build the indexes (default: a temp dir)"
    )
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write per-instance results here")
    arguments = parser.parse_args()

    problems = [p for p in load_problems(arguments.data) if arguments.split in ("all", p.split)]
    missing = sorted({str(p.repo_dir) for p in problems if not p.repo_dir.is_dir()})
    if missing:
        print(
            f"missing checkouts (run benchmarks/data/make_dataset.py): {missing}", file=sys.stderr
        )
        return 2

    with tempfile.TemporaryDirectory() as scratch:
        workdir = arguments.workdir or Path(scratch)
        service = KnowledgeService.open(
            lexical_path=workdir / "lexical.db",
            chroma_path=workdir / "chroma",
            torch_threads=arguments.torch_threads,
        )
        try:
            return run(service, problems, arguments.json)
        finally:
            service.close()


def run(service: KnowledgeService, problems: list[Problem], json_out: Path | None) -> int:
    service.embedder.embed(["load the model before timing anything"])
    baselines: dict[Path, PlainBM25] = {}
    totals = {"files": 0, "lexical_s": 0.0, "embedding_s": 0.0, "baseline_s": 0.0, "units": 0}
    for repo_dir in sorted({p.repo_dir for p in problems}):
        repo = f"bench/{repo_dir.name}"
        report = service.indexer.index_directory(repo, repo_dir)
        paths = service.lexical.paths(repo)
        started = time.perf_counter()
        baselines[repo_dir] = PlainBM25(
            {p: (repo_dir / p).read_text(encoding="utf-8") for p in paths}
        )
        baseline_seconds = time.perf_counter() - started
        totals["files"] += len(paths)
        totals["lexical_s"] += report.lexical_seconds
        totals["embedding_s"] += report.embedding_seconds
        totals["baseline_s"] += baseline_seconds
        totals["units"] += report.units_embedded
        print(
            f"indexed {repo}: {len(paths)} files, {report.chunks_written} chunks, "
            f"{report.units_embedded} texts embedded; lexical {report.lexical_seconds:.2f}s, "
            f"embeddings {report.embedding_seconds:.1f}s; baseline {baseline_seconds:.2f}s"
        )

    splits = sorted({p.split for p in problems})
    ours: dict[str, Scores] = {s: Scores() for s in [*splits, "all"]}
    plain: dict[str, Scores] = {s: Scores() for s in [*splits, "all"]}
    rows = []
    print(f"\n{'instance':<16} {'split':<5} {'ours':>5} {'bm25':>5}  ours top-1 | bm25 top-1")
    for problem in problems:
        repo = f"bench/{problem.repo_dir.name}"
        ranking, ours_s = timed(partial(_our_ranking, service, repo, problem.statement))
        baseline, plain_s = timed(
            partial(baselines[problem.repo_dir].rank, problem.statement, DEPTH)
        )
        for split in (problem.split, "all"):
            ours_rank, _ = ours[split].add(ranking, problem.gold, ours_s)
            plain_rank, _ = plain[split].add(baseline, problem.gold, plain_s)
        print(
            f"{problem.instance_id:<16} {problem.split:<5} {_rank(ours_rank):>5} {_rank(plain_rank):>5}  "
            f"{(ranking or ['-'])[0]} | {(baseline or ['-'])[0]}"
        )
        rows.append(
            {
                "instance_id": problem.instance_id,
                "gold": problem.gold,
                "ours": ranking,
                "bm25": baseline,
                "ours_rank": ours_rank,
                "bm25_rank": plain_rank,
            }
        )

    print()
    for split in [*splits, "all"]:
        _summary(split, ours[split], plain[split])
    lexical_rate = totals["files"] / max(totals["lexical_s"], 1e-9)
    full_rate = totals["files"] / max(totals["lexical_s"] + totals["embedding_s"], 1e-9)
    baseline_rate = totals["files"] / max(totals["baseline_s"], 1e-9)
    print(
        f"\nindexing: {totals['files']} files; ours lexical {lexical_rate:.0f} files/s (searchable), "
        f"with embeddings {full_rate:.1f} files/s ({totals['units']} texts); baseline {baseline_rate:.0f} files/s"
    )
    if json_out is not None:
        json_out.write_text(json.dumps(rows, indent=1))
    return 0


def _our_ranking(service: KnowledgeService, repo: str, statement: str) -> list[str]:
    return [match.path for match in service.retriever.rank_files(repo, statement, k=DEPTH)]


def _summary(split: str, ours: Scores, plain: Scores) -> None:
    n = len(ours.ranks)
    print(f"[{split}] {n} problems")
    print(
        f"  {'':<10} {'Acc@1':>6} {'Acc@5':>6} {'Acc@10':>6} {'MRR@10':>7} {'p50 ms':>7} {'p95 ms':>7}"
    )
    for name, scores in (("retriever", ours), ("plain BM25", plain)):
        print(
            f"  {name:<10} "
            + " ".join(f"{scores.accuracy(k):>6.3f}" for k in KS)
            + f" {scores.mrr():>7.3f} {scores.latency_ms(0.5):>7.1f} {scores.latency_ms(0.95):>7.1f}"
        )
    ratios = [f"Acc@{k} {_ratio(ours.accuracy(k), plain.accuracy(k))}" for k in KS] + [
        f"MRR {_ratio(ours.mrr(), plain.mrr())}"
    ]
    print("  ratio retriever/BM25: " + ", ".join(ratios))


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else ("inf" if a else "n/a")


def _rank(rank: int | None) -> str:
    return "-" if rank is None else str(rank)


if __name__ == "__main__":
    raise SystemExit(main())

"""File localisation benchmark: does retrieval find the files an issue is about?

    python benchmarks/data/make_dataset.py          # once: the hand-written set's repositories
    python benchmarks/swebench_dev.py                # once: the SWE-bench Lite dev set's trees
    python benchmarks/localization.py --data benchmarks/data/localization.jsonl
    python benchmarks/localization.py --data benchmarks/data/swebench/dev.jsonl --ablations

Each row: `instance_id`, `repo_dir` (a checkout at the right commit; relative paths resolve
against the jsonl's folder), `problem_statement`, and `gold_files` or `patch` (a unified
diff whose edited files are gold); an optional `split` (dev/tune/test) and `repository` (the
row's project, default the checkout folder's name) are reported separately. Every checkout is
indexed once; then each problem's files are ranked by the project's retriever, by the retriever
with each of its signals turned off in turn (`--ablations`), and by a plain BM25 baseline (whole
files, lower-cased word tokens, English stop words, no stemming, no identifier splitting) over
the same files.

Acc@k: all gold files are in the top k. MRR@10: 1/rank of the first gold file. Every row counts
once in each group it belongs to (its split, its repository, all).

Embeddings are slow to build on CPU, so by default the retriever runs on its lexical stages and
the dense stage is off; `--embed` embeds every checkout first and ranks with all stages.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import bm25s  # type: ignore[import-untyped]

from knowledge import retrieval
from knowledge.retrieval import FusionWeights, HybridRetriever
from knowledge.service import KnowledgeService

KS = (1, 5, 10)
DEPTH = 10
_DIFF_PATH = re.compile(r"^(?:\+\+\+|---) (?:[ab]/)?(?P<path>\S+)", re.MULTILINE)
BASELINE = "plain BM25"
OURS = "retriever"


@dataclass(frozen=True)
class Problem:
    instance_id: str
    split: str
    repository: str
    repo_dir: Path
    statement: str
    gold: tuple[str, ...]

    @property
    def groups(self) -> tuple[str, ...]:
        """The report rows this problem counts in, each once."""
        return tuple(dict.fromkeys([f"split {self.split}", self.repository, "all"]))


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
                split=row.get("split", "none"),
                repository=row.get("repository") or repo_dir.name,
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


def rankers(
    service: KnowledgeService, *, embed: bool, ablations: bool
) -> dict[str, HybridRetriever]:
    """The retriever as configured, and (with `ablations`) one variant per signal turned off."""
    weights = FusionWeights() if embed else dataclasses.replace(FusionWeights(), dense=0.0)

    def make(variant: FusionWeights, **switches: bool) -> HybridRetriever:
        return HybridRetriever(
            store=service.store,
            embedder=service.embedder,
            lexical=service.lexical,
            weights=variant,
            **switches,  # type: ignore[arg-type]
        )

    found = {OURS: make(weights)}
    if not ablations:
        return found
    for spec in dataclasses.fields(FusionWeights):
        value = getattr(weights, spec.name)
        if spec.name == "rrf_k" or not isinstance(value, float) or value == 0:
            continue
        found[f"- {spec.name}"] = make(dataclasses.replace(weights, **{spec.name: 0.0}))
    for switch in getattr(retrieval, "SWITCHES", ()):
        found[f"- {switch}"] = make(weights, **{switch: False})
    return found


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
    parser.add_argument("--split", default="all", help="only rows of this split (default: all)")
    parser.add_argument("--repository", action="append", help="only rows of this repository")
    parser.add_argument(
        "--tree", action="append", help="only rows whose checkout folder has this name"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="where to keep the indexes (default: a temp dir); reused indexes skip unchanged files",
    )
    parser.add_argument(
        "--embed", action="store_true", help="embed every checkout; rank with all stages"
    )
    parser.add_argument(
        "--ablations", action="store_true", help="also rank with each signal turned off in turn"
    )
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write per-instance results here")
    parser.add_argument("--markdown", type=Path, help="also write the tables here")
    arguments = parser.parse_args()

    problems = [
        p
        for p in load_problems(arguments.data)
        if arguments.split in ("all", p.split)
        and (not arguments.repository or p.repository in arguments.repository)
        and (not arguments.tree or p.repo_dir.name in arguments.tree)
    ]
    missing = sorted({str(p.repo_dir) for p in problems if not p.repo_dir.is_dir()})
    if missing:
        print(
            f"missing checkouts (run benchmarks/data/make_dataset.py or benchmarks/swebench_dev.py): "
            f"{missing}",
            file=sys.stderr,
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
            tables = run(
                service,
                problems,
                embed=arguments.embed,
                ablations=arguments.ablations,
                json_out=arguments.json,
            )
        finally:
            service.close()
    if arguments.markdown is not None:
        arguments.markdown.write_text(tables, encoding="utf-8")
    return 0


def repo_key(repo_dir: Path) -> str:
    return f"bench/{repo_dir.name}"


def run(
    service: KnowledgeService,
    problems: list[Problem],
    *,
    embed: bool,
    ablations: bool,
    json_out: Path | None,
) -> str:
    if embed:
        service.embedder.embed(["load the model before timing anything"])
    baselines: dict[Path, PlainBM25] = {}
    for repo_dir in sorted({p.repo_dir for p in problems}):
        repo = repo_key(repo_dir)
        report = service.indexer.index_directory(repo, repo_dir, embed=embed)
        paths = service.lexical.paths(repo)
        started = time.perf_counter()
        baselines[repo_dir] = PlainBM25(
            {p: (repo_dir / p).read_text(encoding="utf-8") for p in paths}
        )
        print(
            f"indexed {repo}: {len(paths)} files ({report.files_written} written), "
            f"{report.units_embedded} texts embedded; lexical {report.lexical_seconds:.1f}s, "
            f"embeddings {report.embedding_seconds:.1f}s; baseline {time.perf_counter() - started:.1f}s",
            flush=True,
        )

    ours = rankers(service, embed=embed, ablations=ablations)
    scores: dict[str, dict[str, Scores]] = {name: {} for name in [*ours, BASELINE]}
    rows = []
    for problem in problems:
        repo = repo_key(problem.repo_dir)
        rankings: dict[str, list[str]] = {}
        seconds: dict[str, float] = {}
        for name, ranker in ours.items():
            rankings[name], seconds[name] = timed(
                lambda r=ranker, repo=repo, problem=problem: [
                    f.path for f in r.rank_files(repo, problem.statement, k=DEPTH)
                ]
            )
        rankings[BASELINE], seconds[BASELINE] = timed(
            lambda problem=problem: baselines[problem.repo_dir].rank(problem.statement, DEPTH)
        )
        ranks: dict[str, int | None] = {}
        for name, ranking in rankings.items():
            for group in problem.groups:
                ranks[name], _ = (
                    scores[name]
                    .setdefault(group, Scores())
                    .add(ranking, problem.gold, seconds[name])
                )
        print(
            f"{problem.instance_id:<34} ours {_rank(ranks[OURS]):>2} bm25 {_rank(ranks[BASELINE]):>2}"
            f"  {(rankings[OURS] or ['-'])[0]} | gold {', '.join(problem.gold)}",
            flush=True,
        )
        rows.append(
            {
                "instance_id": problem.instance_id,
                "repository": problem.repository,
                "gold": problem.gold,
                "chars": len(problem.statement),
                "rankings": rankings,
                "ranks": ranks,
            }
        )
    tables = report_tables(scores, problems)
    print()
    print(tables)
    if json_out is not None:
        json_out.write_text(json.dumps(rows, indent=1))
    return tables


def report_tables(scores: dict[str, dict[str, Scores]], problems: list[Problem]) -> str:
    groups = list(dict.fromkeys(g for p in problems for g in p.groups))
    # Repositories first, then splits, then all.
    groups.sort(key=lambda g: (g == "all", g.startswith("split "), g))
    if len({p.split for p in problems}) < 2:
        groups = [g for g in groups if not g.startswith("split ")]
    lines = [
        "| ranker | rows | n | Acc@1 | Acc@5 | Acc@10 | MRR@10 | p95 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, by_group in scores.items():
        for group in groups:
            s = by_group.get(group)
            if s is None:
                continue
            accuracies = " | ".join(f"{100 * s.accuracy(k):.1f}" for k in KS)
            lines.append(
                f"| {name} | {group} | {len(s.ranks)} | {accuracies} | {s.mrr():.3f} "
                f"| {s.latency_ms(0.95):.0f} |"
            )
    return "\n".join(lines)


def _rank(rank: int | None) -> str:
    return "-" if rank is None else str(rank)


if __name__ == "__main__":
    raise SystemExit(main())

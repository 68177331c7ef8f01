"""Full index vs incremental re-index after a push.

    python benchmarks/knowledge_reindex.py [--files 2000]

Generates a repository of `--files` Python modules (a module docstring, two documented
functions and an undocumented one each), indexes it fully (lexical, then embeddings), then
applies a push that edits two files and adds one, and prints both timings and what each
touched. The model, Chroma and SQLite are the real ones.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from knowledge.indexer import IndexReport
from knowledge.service import KnowledgeService

REPO = "bench/reindex"
AREAS = [
    "billing",
    "orders",
    "users",
    "auth",
    "search",
    "reports",
    "exports",
    "webhooks",
    "storage",
    "notifications",
]
NOUNS = [
    "invoice",
    "order",
    "customer",
    "payment",
    "refund",
    "token",
    "session",
    "report",
    "export",
    "event",
    "file",
    "message",
]
VERBS = [
    "load",
    "save",
    "validate",
    "render",
    "send",
    "fetch",
    "parse",
    "compute",
    "apply",
    "refresh",
    "archive",
    "merge",
]


def _module(rng: random.Random, area: str, number: int) -> tuple[str, str]:
    noun, other = rng.choice(NOUNS), rng.choice(NOUNS)
    first, second, third = rng.sample(VERBS, 3)
    path = f"src/{area}/{noun}_{number}.py"
    text = (
        f'"""{area.capitalize()}: {noun} handling ({number})."""\n\n'
        f"from __future__ import annotations\n\n\n"
        f"def {first}_{noun}({noun}_id: int, *, strict: bool = False) -> dict:\n"
        f'    """{first.capitalize()} the {noun} with this id; strict mode raises on missing {other}s."""\n'
        f"    record = {{'id': {noun}_id, '{other}': None}}\n"
        f"    if strict and record['{other}'] is None:\n"
        f"        raise LookupError({noun}_id)\n"
        f"    return record\n\n\n"
        f"def {second}_{other}(records: list[dict]) -> int:\n"
        f'    """{second.capitalize()} every {other} of the given {noun}s and count them."""\n'
        f"    return sum(1 for record in records if record.get('{other}'))\n\n\n"
        f"def _{third}_cache_key({noun}_id: int) -> str:\n"
        f"    return f'{area}:{noun}:{{{noun}_id}}'\n"
    )
    return path, text


def _describe(name: str, report: IndexReport) -> str:
    return (
        f"{name}: {report.files_written} files written, {report.chunks_written} chunks, "
        f"{report.units_embedded} texts embedded, {report.vectors_deleted} vectors deleted, "
        f"{report.files_removed} files removed; lexical {report.lexical_seconds:.2f}s + "
        f"embeddings {report.embedding_seconds:.2f}s = {report.seconds:.2f}s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--torch-threads", type=int, default=1)
    arguments = parser.parse_args()
    rng = random.Random(5)
    files = dict(_module(rng, AREAS[n % len(AREAS)], n) for n in range(arguments.files))

    with tempfile.TemporaryDirectory() as scratch:
        service = KnowledgeService.open(
            lexical_path=Path(scratch) / "lexical.db",
            chroma_path=Path(scratch) / "chroma",
            torch_threads=arguments.torch_threads,
        )
        try:
            service.embedder.embed(["load the model before timing"])
            full = service.indexer.index_files(REPO, files.items())
            print(_describe(f"full index of {len(files)} files", full))

            edited = sorted(files)[:2]
            changed = {
                edited[0]: files[edited[0]].replace(
                    "strict mode raises", "strict mode logs and raises"
                ),
                edited[1]: files[edited[1]]
                + '\n\ndef audit(entry: dict) -> None:\n    """Write an audit entry."""\n',
                "src/billing/credit_note.py": '"""Credit notes."""\n\n\ndef issue_credit(amount: int) -> int:\n    """Issue a credit note."""\n    return amount\n',
            }
            started = time.perf_counter()
            push = service.indexer.apply_changes(REPO, changed, removed=[])
            wall = time.perf_counter() - started
            print(_describe("push of 3 files", push) + f" (wall {wall:.2f}s)")

            again = service.indexer.apply_changes(REPO, changed, removed=[])
            print(_describe("same push again", again))
            print(
                f"incremental / full: {push.seconds / full.seconds:.4f} "
                f"({full.seconds / max(push.seconds, 1e-9):.0f}x faster); searchable (lexical) after "
                f"{full.lexical_seconds:.1f}s of the full {full.seconds:.1f}s"
            )
        finally:
            service.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

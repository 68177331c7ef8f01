"""Materialise the localisation benchmark's repositories from installed packages.

`localization.jsonl` (hand-written, committed) holds problem statements written the way users
report bugs: behaviour, symptoms and pasted messages, rarely a file name. Its repositories
are real, well-known Python code: the source of packages installed in this environment,
copied into `repos/<name>/` as a checkout would look (the package folder plus a README made
from the package's long description). The copies are not committed (see .gitignore); run
this script to recreate them:

    python benchmarks/data/make_dataset.py

The expected versions are recorded; another installed version still works if every gold file
exists, which the script checks.

Splits: the retriever's design (tokens, fusion weights, RRF k) was fixed before any of these
problems was run. `dev` (click, httpx) served as a smoke check while building it; on `tune`
(redis, docker, alembic) alternative fusions were compared afterwards and none was adopted;
`test` (starlette, jinja2, uvicorn, rich) was never used for a decision. All are reported.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name in repo_dir -> (distribution, import package, version the problems were written for)
SOURCES: dict[str, tuple[str, str, str]] = {
    "click": ("click", "click", "8.5.1"),
    "httpx": ("httpx", "httpx", "0.28.1"),
    "starlette": ("starlette", "starlette", "1.10.0"),
    "jinja2": ("jinja2", "jinja2", "3.1.6"),
    "uvicorn": ("uvicorn", "uvicorn", "0.54.0"),
    "rich": ("rich", "rich", "15.0.0"),
    # The "tune" split: alternative fusion settings were compared on these (none was adopted).
    "redis": ("redis", "redis", "5.3.1"),
    "docker": ("docker", "docker", "7.2.0"),
    "alembic": ("alembic", "alembic", "1.20.1"),
}


def materialise(name: str, target: Path) -> str:
    distribution, package, expected = SOURCES[name]
    dist = metadata.distribution(distribution)
    source = Path(str(dist.locate_file(package)))
    if not source.is_dir():
        raise SystemExit(f"{distribution}: package folder {source} not found")
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(
        source, target / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.so")
    )
    description = dist.metadata.get_payload() or dist.metadata.get("Description") or ""  # type: ignore[attr-defined]
    readme = (
        f"# {distribution}\n\n{dist.metadata.get('Summary', '')}\n\n{description}".rstrip() + "\n"
    )
    (target / "README.md").write_text(readme, encoding="utf-8")
    if dist.version != expected:
        print(
            f"note: {distribution} {dist.version} installed, problems written for {expected}",
            file=sys.stderr,
        )
    return dist.version


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=HERE / "localization.jsonl")
    arguments = parser.parse_args()
    rows = [json.loads(line) for line in arguments.data.read_text().splitlines() if line.strip()]
    base = arguments.data.resolve().parent
    needed = sorted({Path(row["repo_dir"]).name for row in rows})
    for name in needed:
        version = materialise(name, base / "repos" / name)
        files = sum(1 for _ in (base / "repos" / name).rglob("*.py"))
        print(f"{name} {version}: {files} Python files")
    missing = [
        (row["instance_id"], gold)
        for row in rows
        for gold in row.get("gold_files", [])
        if not (base / row["repo_dir"] / gold).is_file()
    ]
    if missing:
        for instance, gold in missing:
            print(f"missing gold file for {instance}: {gold}", file=sys.stderr)
        return 1
    print(f"{len(rows)} problems over {len(needed)} repositories ready")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

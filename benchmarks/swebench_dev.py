"""Build the SWE-bench Lite development set's repository trees from PyPI source distributions.

    .venv/bin/python benchmarks/swebench_dev.py              # download, unpack, check, write jsonl
    .venv/bin/python benchmarks/localization.py --data benchmarks/data/swebench/dev.jsonl

`../shared/benchmarks/swe-bench-lite-dev.jsonl` holds 160 SWE-bench Lite instances (django,
scikit-learn, matplotlib) with their gold patches, but no repository trees, and the repositories
cannot be cloned here. Each instance's `version` (Django `3.1`, scikit-learn `0.22`) names a
release series; its first release (`3.1`, `0.22.0`) is the closest published tree after the
instance's base commit, and its source distribution is close to a checkout (package, tests, docs).
A release can already contain the fix, so this is a set for comparing rankers side by side, not
for absolute claims.

Everything this writes lives under `benchmarks/data/swebench/` (git-ignored): `sdists/` (the
downloads, kept so a rebuild needs no network), `trees/<name>-<version>/`, `buildenv/` (a scratch
venv for old sdists whose metadata step needs numpy and an old setuptools), and `dev.jsonl`, the
usable rows in the format `benchmarks/localization.py` reads. An instance is usable when every gold
file exists in its tree; the others are listed and left out.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parents[1] / "shared" / "benchmarks" / "swe-bench-lite-dev.jsonl"
DEFAULT_OUT = HERE / "data" / "swebench"

# GitHub repository -> (PyPI distribution, short name used for trees and report rows)
DISTRIBUTIONS: dict[str, tuple[str, str]] = {
    "django/django": ("Django", "django"),
    "scikit-learn/scikit-learn": ("scikit-learn", "scikit-learn"),
    "matplotlib/matplotlib": ("matplotlib", "matplotlib"),
}
# Old sdists run setup.py to produce metadata, which imports numpy and pkg_resources.
_BUILD_ENV_PACKAGES = ("setuptools<70", "numpy<2", "scipy", "cython<3", "wheel")
_DIFF_PATH = re.compile(r"^\+\+\+ b/(?P<path>\S+)", re.MULTILINE)


@dataclass(frozen=True)
class Release:
    distribution: str
    name: str
    version: str

    @property
    def tree_name(self) -> str:
        return f"{self.name}-{self.version}"


def gold_files(patch: str) -> list[str]:
    return sorted({m.group("path") for m in _DIFF_PATH.finditer(patch)})


def download(release: Release, sdists: Path, buildenv: Path) -> Path:
    """The release's source distribution, from the cache or PyPI (`pip download`)."""
    existing = _find_sdist(sdists, release)
    if existing is not None:
        return existing
    sdists.mkdir(parents=True, exist_ok=True)
    # `==3.1` matches the series' first release (3.1, 3.1.0) under PEP 440's zero padding; a
    # series whose .0 was never published (scikit-learn 0.21) starts at its first patch release.
    spec = f"{release.distribution}=={release.version}"
    first = _pip_download(sys.executable, release, spec, sdists)
    offered = re.search(r"from versions: ([^)]*)\)", first.stderr)
    if first.returncode != 0 and offered is not None:
        series = [
            v.strip()
            for v in offered.group(1).split(",")
            if re.fullmatch(rf"{re.escape(release.version)}\.[0-9]+(\.post[0-9]+)?", v.strip())
        ]
        if series:
            spec = f"{release.distribution}=={series[0]}"
            first = _pip_download(sys.executable, release, spec, sdists)
    common = ["download", "--no-deps", "--no-binary", release.distribution, "-d", str(sdists), spec]
    if first.returncode != 0:
        python = _build_env(buildenv)
        second = subprocess.run(
            [str(python), "-m", "pip", "-q", *common, "--no-build-isolation"],
            capture_output=True,
            text=True,
            check=False,
        )
        if second.returncode != 0:
            raise RuntimeError(
                f"pip download {spec} failed:\n{first.stderr[-800:]}\n{second.stderr[-800:]}"
            )
    found = _find_sdist(sdists, release)
    if found is None:
        raise RuntimeError(f"pip download {spec} saved no source distribution in {sdists}")
    return found


def _pip_download(
    python: str, release: Release, spec: str, sdists: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, "-m", "pip", "download", "--no-deps", "--no-binary", release.distribution]
        + ["-d", str(sdists), spec],
        capture_output=True,
        text=True,
        check=False,
    )


def _find_sdist(sdists: Path, release: Release) -> Path | None:
    if not sdists.is_dir():
        return None
    prefixes = {release.distribution.lower(), release.distribution.lower().replace("-", "_")}
    series = re.compile(rf"{re.escape(release.version)}(\.[0-9]+)?(\.post[0-9]+)?")
    found: list[tuple[tuple[int, ...], Path]] = []
    for path in sorted(sdists.iterdir()):
        stem = re.sub(r"\.(tar\.gz|zip)$", "", path.name)
        name, _, version = stem.rpartition("-")
        if name.lower() in prefixes and series.fullmatch(version):
            found.append((tuple(int(n) for n in re.findall(r"[0-9]+", version)), path))
    return min(found)[1] if found else None


def _build_env(buildenv: Path) -> Path:
    python = buildenv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(buildenv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *_BUILD_ENV_PACKAGES],
            check=True,
            capture_output=True,
        )
    return python


def unpack(archive: Path, target: Path) -> None:
    """Unpack with the archive's single top folder stripped, as a checkout would look."""
    if target.is_dir():
        return
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        scratch_path = Path(scratch)
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as bundle:
                bundle.extractall(scratch_path)
        else:
            with tarfile.open(archive) as bundle:
                bundle.extractall(scratch_path, filter="data")
        tops = list(scratch_path.iterdir())
        root = tops[0] if len(tops) == 1 and tops[0].is_dir() else scratch_path
        shutil.move(str(root), str(target))


def build(source: Path, out: Path) -> int:
    rows = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line]
    releases: dict[tuple[str, str], Release] = {}
    for row in rows:
        distribution, name = DISTRIBUTIONS[row["repo"]]
        releases.setdefault(
            (row["repo"], row["version"]), Release(distribution, name, row["version"])
        )
    trees = out / "trees"
    trees.mkdir(parents=True, exist_ok=True)
    for release in releases.values():
        archive = download(release, out / "sdists", out / "buildenv")
        unpack(archive, trees / release.tree_name)
        files = sum(1 for p in (trees / release.tree_name).rglob("*") if p.is_file())
        print(f"{release.tree_name}: {archive.name}, {files} files")

    usable: list[dict[str, object]] = []
    unusable: list[tuple[str, list[str]]] = []
    for row in rows:
        release = releases[(row["repo"], row["version"])]
        gold = gold_files(row["patch"])
        missing = [g for g in gold if not (trees / release.tree_name / g).is_file()]
        if missing:
            unusable.append((row["instance_id"], missing))
            continue
        usable.append(
            {
                "instance_id": row["instance_id"],
                "split": "dev",
                "repository": release.name,
                "repo_dir": f"trees/{release.tree_name}",
                "problem_statement": row["problem_statement"],
                "gold_files": gold,
            }
        )
    (out / "dev.jsonl").write_text(
        "".join(json.dumps(row) + "\n" for row in usable), encoding="utf-8"
    )
    for instance, missing in unusable:
        print(f"not usable: {instance}: gold file(s) missing from the tree: {missing}")
    by_repo: dict[str, int] = {}
    for row in usable:
        by_repo[str(row["repository"])] = by_repo.get(str(row["repository"]), 0) + 1
    print(
        f"{len(usable)} of {len(rows)} instances usable "
        f"({', '.join(f'{k} {v}' for k, v in sorted(by_repo.items()))}); "
        f"wrote {out / 'dev.jsonl'}"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    arguments = parser.parse_args()
    return build(arguments.source, arguments.out)


if __name__ == "__main__":
    raise SystemExit(main())

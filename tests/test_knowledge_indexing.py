"""Repository indexing against real Chroma on disk, real SQLite FTS5 and the real model."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from knowledge.embeddings import SentenceTransformerEmbedder, Vectors
from knowledge.indexer import RepositoryIndexer
from knowledge.lexical import LexicalIndex
from knowledge.store import ChromaStore, Kind

REPO = "acme/big"


class CountingEmbedder:
    """The real embedder, counting the texts it is asked to embed."""

    def __init__(self, inner: SentenceTransformerEmbedder) -> None:
        self._inner = inner
        self.texts: list[str] = []

    @property
    def dimension(self) -> int:
        return self._inner.dimension

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.texts.extend(texts)
        return self._inner.embed(texts)


@pytest.fixture(scope="module")
def model() -> SentenceTransformerEmbedder:
    embedder = SentenceTransformerEmbedder()
    embedder.embed(["warm up"])
    return embedder


@pytest.fixture
def embedder(model: SentenceTransformerEmbedder) -> CountingEmbedder:
    return CountingEmbedder(model)


@pytest.fixture
def lexical(tmp_path: Path) -> Iterator[LexicalIndex]:
    index = LexicalIndex(tmp_path / "lexical.db")
    yield index
    index.close()


@pytest.fixture
def store(tmp_path: Path) -> ChromaStore:
    return ChromaStore(path=tmp_path / "chroma")


@pytest.fixture
def indexer(
    store: ChromaStore, embedder: CountingEmbedder, lexical: LexicalIndex
) -> RepositoryIndexer:
    return RepositoryIndexer(store=store, embedder=embedder, lexical=lexical)


def _module(number: int) -> str:
    return (
        f"def handler_{number}(value):\n"
        f"    return value + {number}\n"
        f"\n"
        f"\n"
        f"class Widget{number}:\n"
        f"    size = {number}\n"
    )


def _repository(count: int) -> dict[str, str]:
    return {f"pkg{n // 100}/module_{n}.py": _module(n) for n in range(count)}


@pytest.mark.slow
def test_a_push_of_three_files_reindexes_only_those_paths(
    indexer: RepositoryIndexer,
    embedder: CountingEmbedder,
    store: ChromaStore,
    lexical: LexicalIndex,
) -> None:
    files = _repository(2000)
    full = indexer.index_files(REPO, files.items())
    assert full.files_written == 2000
    assert full.pending_embeddings == 0
    assert store.count(Kind.CODE, REPO) == full.units_embedded == len(embedder.texts) >= 2000
    hashes_before = lexical.content_hashes(REPO)

    embedder.texts.clear()
    changed = {
        "pkg3/module_300.py": _module(300)
        + '\n\ndef audit(entry):\n    """Write an audit record."""\n',
        "pkg7/module_777.py": "def renamed_handler(value):\n    return value * 2\n",
        "pkg19/new_feature.py": '"""Feature flags."""\n\ndef is_enabled(flag):\n    return flag\n',
    }
    removed = ["pkg0/module_5.py"]
    push = indexer.apply_changes(REPO, changed, removed)

    assert sorted(push.written_paths) == sorted(changed)
    assert sorted(set(push.embedded_paths)) == sorted(changed)
    # Only the changed files' texts reach the model: their summaries and the new docstring.
    assert push.units_embedded == len(embedder.texts) == 4
    assert all(any(path in text for path in changed) for text in embedder.texts)
    assert push.files_removed == 1
    assert push.chunks_written == sum(
        len(chunks) for chunks in lexical.chunks_of(REPO, changed).values()
    )
    hashes_after = lexical.content_hashes(REPO)
    untouched = set(hashes_before) - set(changed) - set(removed)
    assert all(hashes_after[path] == hashes_before[path] for path in untouched)
    assert "pkg0/module_5.py" not in hashes_after
    assert store.ids_for_paths(Kind.CODE, REPO, ["pkg0/module_5.py"]) == {}
    # Replaced vectors are gone, not left behind: one summary per file plus one docstring.
    assert store.count(Kind.CODE, REPO) == 2000 - 1 + 1 + 1
    assert push.seconds < full.seconds / 10, (push.seconds, full.seconds)
    print(f"\nfull index {full.seconds:.1f}s, 3-file push {push.seconds:.3f}s")


def test_reindexing_unchanged_content_embeds_nothing(
    indexer: RepositoryIndexer, embedder: CountingEmbedder
) -> None:
    files = _repository(30)
    first = indexer.index_files(REPO, files.items())
    assert first.units_embedded == len(embedder.texts) == 30

    embedder.texts.clear()
    again = indexer.index_files(REPO, files.items())
    assert (again.files_written, again.files_unchanged, again.units_embedded) == (0, 30, 0)
    assert embedder.texts == []


def test_a_body_only_change_is_rewritten_lexically_but_not_re_embedded(
    indexer: RepositoryIndexer, embedder: CountingEmbedder, lexical: LexicalIndex
) -> None:
    indexer.index_files(REPO, _repository(5).items())
    embedder.texts.clear()

    # Same names, same docstrings: the embedded summary text is identical.
    report = indexer.apply_changes(REPO, {"pkg0/module_2.py": _module(2).replace("+ 2", "- 2")}, [])

    assert report.files_written == 1
    assert report.units_embedded == 0 and embedder.texts == []
    assert "value - 2" in lexical.chunks_of(REPO, ["pkg0/module_2.py"])["pkg0/module_2.py"][0].text


def test_lexical_search_works_before_embeddings_exist(
    indexer: RepositoryIndexer,
    embedder: CountingEmbedder,
    lexical: LexicalIndex,
    store: ChromaStore,
) -> None:
    report = indexer.index_files(
        REPO,
        [("billing/invoice.py", "def apply_discount(invoice, percent):\n    return invoice\n")],
        embed=False,
    )
    assert report.pending_embeddings == 1 and embedder.texts == []
    assert store.count(Kind.CODE, REPO) == 0
    hits = lexical.search_files(REPO, ["discount"])
    assert [path for path, _ in hits] == ["billing/invoice.py"]

    later = indexer.embed_pending(REPO)
    assert later.units_embedded == 1 and later.pending_embeddings == 0
    assert indexer.embed_pending(REPO).units_embedded == 0


def test_directory_index_skips_vendored_generated_binary_and_huge_files(
    indexer: RepositoryIndexer, lexical: LexicalIndex, tmp_path: Path
) -> None:
    checkout = tmp_path / "checkout"
    (checkout / "app").mkdir(parents=True)
    (checkout / "app" / "views.py").write_text("def index(request):\n    return 'ok'\n")
    (checkout / "README.md").write_text("# Shop\n\nAn online shop.\n\n## Setup\n\nRun it.\n")
    (checkout / "node_modules" / "left-pad").mkdir(parents=True)
    (checkout / "node_modules" / "left-pad" / "index.js").write_text("module.exports = 1;\n")
    (checkout / "static").mkdir()
    (checkout / "static" / "app.min.js").write_text("var a=1;")
    (checkout / "static" / "logo.dat").write_bytes(b"\x89PNG\x00\x00binary")
    (checkout / "package-lock.json").write_text("{}")
    (checkout / "data.txt").write_text("x" * 1_100_000)
    (checkout / "api_pb2.py").write_text(
        "# Generated by the protocol buffer compiler.  DO NOT EDIT!\n"
    )
    (checkout / "link.py").symlink_to("/etc/hostname")

    report = indexer.index_directory(REPO, checkout)

    assert sorted(lexical.paths(REPO)) == ["README.md", "app/views.py"]
    assert report.files_written == 2

    (checkout / "app" / "views.py").unlink()
    again = indexer.index_directory(REPO, checkout)
    assert again.files_removed == 1
    assert lexical.paths(REPO) == ["README.md"]


def test_git_checkout_lists_tracked_files_and_honours_gitignore(
    indexer: RepositoryIndexer, lexical: LexicalIndex, tmp_path: Path
) -> None:
    checkout = tmp_path / "repo"
    checkout.mkdir()
    (checkout / ".gitignore").write_text("secrets.py\n")
    (checkout / "main.py").write_text("print('hi')\n")
    (checkout / "secrets.py").write_text("KEY = 'x'\n")
    subprocess.run(["git", "init", "-q", str(checkout)], check=True)
    subprocess.run(["git", "-C", str(checkout), "add", "."], check=True)

    indexer.index_directory(REPO, checkout)

    assert lexical.paths(REPO) == [".gitignore", "main.py"]


def test_credentials_committed_in_code_are_not_stored(
    indexer: RepositoryIndexer, lexical: LexicalIndex
) -> None:
    token = "ghp_" + "A" * 36
    source = f'GITHUB_TOKEN = "{token}"\n\ndef client():\n    return GITHUB_TOKEN\n'
    indexer.index_files(REPO, [("config.py", source)], embed=False)

    stored = "\n".join(c.text for c in lexical.chunks_of(REPO, ["config.py"])["config.py"])
    assert token not in stored
    assert "def client():" in stored

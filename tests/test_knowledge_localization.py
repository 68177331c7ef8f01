"""Finding the right file: real SQLite FTS5 and real Chroma on disk, lexical stages only (the
model is never loaded: ranking files needs no embedding when the dense stage is off)."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from knowledge.context import RELATED_HEADING
from knowledge.embeddings import SentenceTransformerEmbedder
from knowledge.indexer import RepositoryIndexer
from knowledge.lexical import LexicalIndex
from knowledge.report import reduce_report
from knowledge.retrieval import FusionWeights, HybridRetriever
from knowledge.roles import Role, role_of
from knowledge.signals import extract_signals
from knowledge.store import ChromaStore

SHOP = "acme/shop"

PRICING = '''"""Prices and currencies."""

from decimal import Decimal


def convert(amount, rate):
    """Convert an amount with an exchange rate."""
    return (amount * rate).quantize(Decimal("0.01"))
'''

# Tests and docs repeat an issue's words more often than the code that needs the fix.
TEST_PRICING = """from shop.pricing import convert


def test_rounding_of_converted_prices_to_the_cent():
    # rounding converted prices: the cent is rounded half up when prices are converted
    assert convert(1, 1) == 1  # rounding, cent, prices, converted


def test_rounding_of_prices_in_euros():
    assert convert(2, 1) == 2  # rounding prices euros cent converted
"""
DOCS = (
    "Prices\n======\n\nConverted prices are rounded to the cent. Rounding of converted prices "
    "in euros uses half up rounding to the cent.\n"
)
SECURITY = (
    "# Security\n\nReport problems with converted prices or rounding to the cent privately. "
    "Rounding of prices in euros, converted prices, cent rounding.\n"
)
TEMPLATE = "---\nname: Bug\n---\nDescribe the converted prices, the rounding and the cent.\n"


@pytest.fixture
def lexical(tmp_path: Path) -> Iterator[LexicalIndex]:
    index = LexicalIndex(tmp_path / "lexical.db")
    yield index
    index.close()


def _retriever(lexical: LexicalIndex, tmp_path: Path, **options: object) -> HybridRetriever:
    return HybridRetriever(
        store=ChromaStore(path=tmp_path / "chroma"),
        embedder=SentenceTransformerEmbedder(),  # loaded on first use; never used here
        lexical=lexical,
        weights=dataclasses.replace(FusionWeights(), dense=0.0),
        **options,  # type: ignore[arg-type]
    )


def _indexer(lexical: LexicalIndex, tmp_path: Path) -> RepositoryIndexer:
    return RepositoryIndexer(
        store=ChromaStore(path=tmp_path / "chroma"),
        embedder=SentenceTransformerEmbedder(),
        lexical=lexical,
    )


def _shop(lexical: LexicalIndex, tmp_path: Path) -> None:
    files = {
        "shop/pricing.py": PRICING,
        "shop/cart.py": "class Cart:\n    def total(self):\n        return 0\n",
        "tests/test_pricing.py": TEST_PRICING,
        "docs/prices.rst": DOCS,
        ".github/SECURITY.md": SECURITY,
        ".github/ISSUE_TEMPLATE/bug.md": TEMPLATE,
        ".github/factory.yml": "validation_gates: [pytest]  # converted prices rounding cent\n",
        # The rest of the shop, so that the issue's words are rare, as in a real repository.
        **{
            f"shop/{area}.py": f'"""The {area}."""\n\n\ndef {area}_handler(request):\n    return None\n'
            for area in ("orders", "users", "search", "emails", "reports", "exports", "auth")
        },
    }
    _indexer(lexical, tmp_path).index_files(SHOP, files.items(), embed=False)


QUERY = "Converted prices are rounded to the wrong cent\n\nRounding of prices in euros is off."


def test_source_files_rank_ahead_of_tests_and_docs_and_bot_files_are_never_offered(
    lexical: LexicalIndex, tmp_path: Path
) -> None:
    _shop(lexical, tmp_path)
    retriever = _retriever(lexical, tmp_path)

    ranking = [f.path for f in retriever.rank_files(SHOP, QUERY, k=10)]

    assert ranking[0] == "shop/pricing.py"
    roles = [role_of(path) for path in ranking]
    last_source = max(i for i, role in enumerate(roles) if role is Role.SOURCE)
    assert all(role is not Role.SOURCE for role in roles[last_source + 1 :])
    assert {"tests/test_pricing.py", "docs/prices.rst"} <= set(ranking)
    assert not any(path.startswith(".github/") for path in ranking)

    context = retriever.retrieve_sync(SHOP, QUERY)
    rendered = context.render()
    assert [f.path for f in context.files][:1] == ["shop/pricing.py"]
    assert {m.path for m in context.related} == {"tests/test_pricing.py", "docs/prices.rst"}
    assert RELATED_HEADING in rendered and ".github" not in rendered
    assert "validation_gates" not in rendered and "Report problems" not in rendered


def test_a_bot_or_template_file_the_issue_names_is_offered(
    lexical: LexicalIndex, tmp_path: Path
) -> None:
    _shop(lexical, tmp_path)

    ranking = _retriever(lexical, tmp_path).rank_files(
        SHOP, "The gates in .github/factory.yml never run", k=5
    )

    assert ranking[0].path == ".github/factory.yml"


def test_without_sources_first_a_test_file_wins_on_words_alone(
    lexical: LexicalIndex, tmp_path: Path
) -> None:
    """The control for the test above: the ordering is the retriever's doing, not the data's."""
    _shop(lexical, tmp_path)

    ranking = _retriever(lexical, tmp_path, sources_first=False).rank_files(SHOP, QUERY, k=10)

    assert ranking[0].path != "shop/pricing.py"


def test_a_documentation_heading_is_not_a_definition(lexical: LexicalIndex, tmp_path: Path) -> None:
    files = {
        "shop/rates.py": "class ExchangeRates:\n    pass\n",
        "docs/guide.md": "# Guide\n\n## ExchangeRates\n\nHow rates work.\n",
        "docs/api.rst": "ExchangeRates\n=============\n\nThe rates.\n",
    }
    _indexer(lexical, tmp_path).index_files(SHOP, files.items(), embed=False)

    assert lexical.files_defining(SHOP, ["ExchangeRates"]) == {"ExchangeRates": ["shop/rates.py"]}


def test_code_that_handles_a_named_class_is_credited(lexical: LexicalIndex, tmp_path: Path) -> None:
    files = {
        "algebra/matrices.py": "class Matrix:\n    def transpose(self):\n        return self\n",
        "printing/latex.py": (
            "class LatexPrinter:\n"
            "    def _print_Matrix(self, expr):\n        return 'matrix'\n\n"
            "    def _print_Symbol(self, expr):\n        return 'symbol'\n"
        ),
        "printing/pretty.py": "class PrettyPrinter:\n    def _print_Symbol(self, expr):\n        return 's'\n",
    }
    _indexer(lexical, tmp_path).index_files(SHOP, files.items(), embed=False)

    ranking = _retriever(lexical, tmp_path).rank_files(
        SHOP, "The LaTeX output of a `Matrix` has no brackets", k=3
    )

    by_path = {f.path: f for f in ranking}
    assert "printing/latex.py" in by_path and "printing/pretty.py" not in by_path
    assert "handles `Matrix` named in the issue" in by_path["printing/latex.py"].reasons


def test_a_repository_ranking_does_not_change_when_another_is_indexed(
    lexical: LexicalIndex, tmp_path: Path
) -> None:
    _shop(lexical, tmp_path)
    terms = ["convert", "rate", "cent", "round", "price"]
    before = lexical.search_files(SHOP, terms)

    # Another repository full of the same words: shared statistics would lower their weight.
    other = {
        f"lib/module_{n}.py": f"def convert_{n}(price, rate):\n    return round(price * rate)  # cent\n"
        for n in range(200)
    }
    _indexer(lexical, tmp_path).index_files("acme/other", other.items(), embed=False)

    assert lexical.search_files(SHOP, terms) == before


def test_an_index_of_the_old_layout_is_dropped_and_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "lexical.db"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE files (id INTEGER PRIMARY KEY, repo TEXT, path TEXT, content_hash TEXT,"
        " embedded_hash TEXT, summary TEXT, indexed_at REAL);"
        "INSERT INTO files VALUES (1, 'acme/shop', 'a.py', 'x', NULL, '', 0);"
        "CREATE VIRTUAL TABLE chunk_fts USING fts5 (scope, path, symbol, body);"
        "CREATE VIRTUAL TABLE chunk_vocab USING fts5vocab (chunk_fts, row);"
    )
    old.close()

    index = LexicalIndex(path)
    try:
        assert index.file_count(SHOP) == 0  # so the next use indexes the repository again
        _indexer(index, tmp_path).index_files(SHOP, [("a.py", "def alpha():\n    pass\n")])
        assert index.search_files(SHOP, ["alpha"])[0][0] == "a.py"
    finally:
        index.close()


# --- what the issue's text names -----------------------------------------------------------


def test_builtins_and_everyday_words_in_backticks_are_not_leads() -> None:
    signals = extract_signals(
        "Calling `list` on the `type` of a `map` gives `lower` case `rst`; `QuerySetIterator` too."
    )

    assert signals.symbols == ("QuerySetIterator",)


def test_code_spans_pair_backtick_runs_of_the_same_length() -> None:
    text = "Calling ```Model.full_clean()``` then the words of prose `name_x` are read as prose."

    symbols = extract_signals(text).symbols

    assert "name_x" in symbols and "full_clean" in symbols
    assert not {"words", "prose", "then", "read"} & set(symbols)


def test_a_closing_fence_ends_the_code_block() -> None:
    text = (
        "Steps:\n```python\nfrom shop.pricing import convert\nconvert(amount, rate)\n```\n"
        "The words after the fence are prose, and `round_half_up` is code.\n"
    )

    symbols = extract_signals(text).symbols

    assert "round_half_up" in symbols and "convert" in symbols
    assert not {"words", "fence", "prose"} & set(symbols)


def test_names_the_reporters_own_snippet_defines_are_not_leads() -> None:
    text = (
        "```python\nclass Book(models.Model):\n    title_text = models.CharField(max_length=10)\n"
        "def make_books():\n    return Book.objects.bulk_create([])\n```\n"
    )

    symbols = set(extract_signals(text).symbols)

    assert {"CharField", "bulk_create"} <= symbols
    assert not {"Book", "title_text", "make_books"} & symbols


def test_a_long_report_is_reduced_to_its_signal() -> None:
    report = (
        "Saving a model with a `DecimalField` loses precision\n"
        "<!-- Please fill in the template below. Describe the `TemplateOnlyName`. -->\n\n"
        "### Bug summary\n\nThe value is rounded.\n\n"
        "```\nTraceback (most recent call last):\n"
        '  File "/venv/lib/python3.11/site-packages/django/db/models/fields/__init__.py", '
        "line 1554, in to_python\n    return decimal.Context(prec=self.max_digits)\n"
        "decimal.InvalidOperation: [<class 'decimal.ConversionSyntax'>]\n```\n\n"
        "- [x] I have searched the existing issues\n\n"
        "### Environment\n\n- OS: Ubuntu 22.04\n- Python: 3.11.2\n- asgiref==3.7.2\n"
        "- sqlparse==0.4.4\n- Django version: 4.2.1\n\n"
        "### Additional context\n\nIt worked in older releases.\n"
    )

    reduced = reduce_report(report)

    for kept in ("DecimalField", 'fields/__init__.py", line 1554', "InvalidOperation", "rounded"):
        assert kept in reduced
    for dropped in ("TemplateOnlyName", "Ubuntu", "asgiref", "sqlparse", "3.11.2", "searched"):
        assert dropped not in reduced
    assert "It worked in older releases." in reduced


def test_a_traceback_path_outside_the_repository_is_matched_by_its_tail(
    lexical: LexicalIndex, tmp_path: Path
) -> None:
    files = {
        "django/db/models/fields/__init__.py": "class DecimalField:\n    def to_python(self, value):\n        return value\n",
        "django/forms/fields.py": "class DecimalField:\n    def to_python(self, value):\n        return value\n",
    }
    _indexer(lexical, tmp_path).index_files(SHOP, files.items(), embed=False)
    issue = (
        "Traceback (most recent call last):\n"
        '  File "/venv/lib/python3.11/site-packages/django/db/models/fields/__init__.py", '
        "line 2, in to_python\nValueError: bad\n"
    )

    top = _retriever(lexical, tmp_path).rank_files(SHOP, issue, k=2)[0]

    assert top.path == "django/db/models/fields/__init__.py"
    assert top.reasons[0] == "stack-trace frame at line 2"


# --- honest indexing reports ---------------------------------------------------------------


def test_a_checkout_index_reports_each_skipped_file_with_its_reason(
    lexical: LexicalIndex, tmp_path: Path
) -> None:
    root = tmp_path / "checkout"
    (root / "app").mkdir(parents=True)
    (root / "app" / "main.py").write_text("def main():\n    pass\n")
    (root / "node_modules" / "left").mkdir(parents=True)
    (root / "node_modules" / "left" / "index.js").write_text("module.exports = 1\n")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (root / "data.bin").write_bytes(b"\x00\x01\x02" * 10)
    (root / "huge.py").write_text("x = 1\n" * 300_000)
    (root / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    os.symlink("/etc/hostname", root / "link.py")

    report = _indexer(lexical, tmp_path).index_directory(SHOP, root, embed=False)

    assert lexical.paths(SHOP) == ["app/main.py"]
    assert report.skipped_by_kind() == {
        "binary": 2,
        "not UTF-8 text": 1,
        "symlink": 1,
        "too large": 1,
        "vendored or built directory": 1,  # the folder, not each file in it
    }
    assert report.skipped["node_modules"] == "in skipped directory node_modules/"
    assert report.skipped["huge.py"] == "larger than 1000000 bytes"
    line = str(report)
    assert "skipped 6: binary 2 (e.g. data.bin, logo.png)" in line
    assert "symlink 1 (e.g. link.py)" in line


def test_the_report_of_a_large_index_is_one_short_line(
    lexical: LexicalIndex, tmp_path: Path
) -> None:
    files = [(f"pkg/deeply/nested/module_{n}.py", f"def f_{n}():\n    pass\n") for n in range(3000)]
    files += [(f"assets/image_{n}.png", "") for n in range(500)]

    report = _indexer(lexical, tmp_path).index_files(SHOP, files, embed=False)

    assert report.files_written == 3000 and len(report.written_paths) == 3000
    for text in (str(report), repr(report), f"indexed {SHOP}: {report}"):
        assert len(text.encode()) < 2048 and "\n" not in text
    assert "binary 500" in str(report)

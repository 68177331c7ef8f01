"""Chunking, skip rules, code-aware tokens and issue signals (pure functions)."""

from __future__ import annotations

import pytest

from knowledge.chunking import ChunkKind, chunk_file, skip_reason_for_content, skip_reason_for_path
from knowledge.signals import extract_signals
from knowledge.summaries import UnitType, embedding_units, file_summary
from knowledge.tokens import query_terms, split_identifier, tokenize

PYTHON = '''"""Invoices and their totals."""

import decimal

RATE = 3


def helper(x):
    return x


@dataclass
class Invoice:
    """A customer's invoice."""

    lines: list

    def total(self) -> decimal.Decimal:
        """Sum of the invoice lines, rounded to cents."""
        value = sum(self.lines)
        value = value + 0
        value = value + 0
        value = value + 0
        value = value + 0
        value = value + 0
        value = value + 0
        value = value + 0
        value = value + 0
        value = value + 0
        value = value + 0
        return value

    async def send(self, mailer, *, retries: int = 3) -> None:
        await mailer.send(self)
        await mailer.send(self)
        await mailer.send(self)
        await mailer.send(self)
        await mailer.send(self)
        await mailer.send(self)
        await mailer.send(self)


if __name__ == "__main__":
    helper(RATE)
'''


def test_python_is_cut_by_function_class_and_method() -> None:
    chunks = chunk_file("billing/invoice.py", PYTHON)

    by_symbol = {(c.kind, c.symbol): c for c in chunks}
    assert (ChunkKind.FUNCTION, "helper") in by_symbol
    assert (ChunkKind.CLASS, "Invoice") in by_symbol
    total = by_symbol[(ChunkKind.METHOD, "Invoice.total")]
    assert total.signature == "def total(self) -> decimal.Decimal"
    assert total.docstring == "Sum of the invoice lines, rounded to cents."
    send = by_symbol[(ChunkKind.METHOD, "Invoice.send")]
    assert send.signature == "async def send(self, mailer, *, retries: int=3) -> None"
    # The decorator belongs to the class; the module docstring to the first module chunk.
    assert by_symbol[(ChunkKind.CLASS, "Invoice")].text.startswith("@dataclass")
    module_chunks = [c for c in chunks if c.kind is ChunkKind.MODULE]
    assert module_chunks[0].docstring == "Invoices and their totals."
    assert 'if __name__ == "__main__":' in module_chunks[-1].text
    lines = PYTHON.splitlines()
    for chunk in chunks:
        assert chunk.text == "\n".join(lines[chunk.start_line - 1 : chunk.end_line])


def test_long_functions_are_split_into_windows() -> None:
    body = "\n".join(f"    x{n} = {n}" for n in range(300))
    chunks = chunk_file("big.py", f'def big():\n    """Huge."""\n{body}\n')

    assert [c.symbol for c in chunks] == ["big", "big", "big"]
    assert chunks[0].docstring == "Huge." and chunks[1].docstring == ""
    assert chunks[1].start_line == chunks[0].end_line + 1


def test_broken_python_falls_back_to_the_heuristic() -> None:
    chunks = chunk_file("broken.py", "def ok():\n    pass\n\ndef broken(:\n    pass\n")

    assert [c.symbol for c in chunks] == ["ok", "broken"]


def test_other_languages_are_cut_at_definitions_with_their_comments() -> None:
    source = (
        "import { x } from './x';\n\n"
        "// Parse the user's query string.\n"
        "export function parseQuery(text) {\n  return x(text);\n}\n\n"
        "export const formatDate = (date) => {\n  return date.toISOString();\n};\n\n"
        "class Router {\n  route() {}\n}\n"
    )

    chunks = chunk_file("src/util.js", source)

    assert [(c.kind, c.symbol) for c in chunks] == [
        (ChunkKind.MODULE, ""),
        (ChunkKind.FUNCTION, "parseQuery"),
        (ChunkKind.FUNCTION, "formatDate"),
        (ChunkKind.CLASS, "Router"),
    ]
    assert chunks[1].docstring == "Parse the user's query string."
    assert chunks[1].text.startswith("// Parse")


def test_markdown_is_cut_by_heading_ignoring_code_fences() -> None:
    text = "# Project\n\nIntro text.\n\n## Install\n\nRun pip.\n\n```sh\n# not a heading\n```\n\n## Usage\n\nCall it.\n"

    chunks = chunk_file("README.md", text)

    assert [c.symbol for c in chunks] == ["Project", "Install", "Usage"]
    assert chunks[1].docstring == "Run pip."
    assert "# not a heading" in chunks[1].text


def test_summaries_and_units_embed_only_short_documented_texts() -> None:
    chunks = chunk_file("billing/invoice.py", PYTHON)

    summary = file_summary("billing/invoice.py", chunks)
    units = embedding_units("acme/shop", "billing/invoice.py", chunks)

    assert summary.splitlines() == [
        "billing/invoice.py",
        "Invoices and their totals.",
        "defines: helper, Invoice, Invoice.total, Invoice.send",
    ]
    assert [(u.unit_type, u.symbol) for u in units] == [
        (UnitType.FILE_SUMMARY, ""),
        (UnitType.SYMBOL, "Invoice"),
        (UnitType.SYMBOL, "Invoice.total"),
    ]
    assert all(len(u.text) <= 700 for u in units)
    again = embedding_units(
        "acme/shop", "billing/invoice.py", chunk_file("billing/invoice.py", PYTHON)
    )
    assert [u.id for u in again] == [u.id for u in units]


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("node_modules/react/index.js", "in skipped directory node_modules/"),
        ("vendor/github.com/x/y.go", "in skipped directory vendor/"),
        ("web/dist/app.js", "in skipped directory dist/"),
        ("static/app.min.js", "generated or minified"),
        ("package-lock.json", "lock file"),
        ("poetry.lock", "lock file"),
        ("docs/logo.png", "binary or bundled asset"),
        ("api/service_pb2.py", "generated or minified"),
        ("src/app.py", None),
        ("build.gradle", None),
    ],
)
def test_skip_rules_for_paths(path: str, reason: str | None) -> None:
    assert skip_reason_for_path(path) == reason


def test_skip_rules_for_content() -> None:
    assert skip_reason_for_content(b"x = 1\n") is None
    assert skip_reason_for_content(b"\x7fELF\x00\x00") == "binary (NUL bytes)"
    assert skip_reason_for_content(b"a" * 2_000_000) == "larger than 1000000 bytes"
    assert (
        skip_reason_for_content(b"// Code generated by protoc. DO NOT EDIT.\npackage x\n")
        is not None
    )
    assert skip_reason_for_content(b"var a=" + b"1," * 30_000) == "minified (very long lines)"


def test_tokens_split_identifiers_and_meet_natural_language() -> None:
    assert split_identifier("HTTPServerError") == ["http", "server", "error"]
    assert split_identifier("retry_delay_ms") == ["retry", "delay", "ms"]
    code = set(tokenize("def parseRetryDelay(self): return self.retries"))
    prose = set(tokenize("The retry delay is not parsed when retrying"))
    assert {"retry", "delay", "pars"} <= code & prose
    assert "parseretrydelay" in code  # the whole identifier still matches exactly
    assert "the" not in prose and "self" not in code


def test_query_terms_are_distinct_and_capped() -> None:
    terms = query_terms("cache cache caching cached " + " ".join(f"word{n}x" for n in range(100)))

    assert terms[0] == "cach" and terms.count("cach") == 1
    assert len(terms) == 64


def test_signals_find_frames_paths_modules_and_symbols() -> None:
    issue = (
        "`Client.send()` raises when following redirects, see httpx/_client.py and httpx.models.\n"
        'Traceback:\n  File "/app/httpx/_client.py", line 10, in send\n'
        '  File "/app/httpx/_urls.py", line 20, in join\n'
        "It also fails in src/app.ts:42:7 and calls build_request(url)."
    )

    signals = extract_signals(issue)

    assert [(f.path, f.line) for f in signals.frames] == [
        ("src/app.ts", 42),
        ("/app/httpx/_urls.py", 20),
        ("/app/httpx/_client.py", 10),
    ]
    assert "httpx/_client.py" in signals.paths
    assert "httpx.models" in signals.modules
    assert {"Client", "send", "build_request"} <= set(signals.symbols)
    assert "It" not in signals.symbols

"""`knowledge` CLI: reindex a checkout, then search it, with the real service."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from knowledge.cli import make_knowledge_cli
from knowledge.embeddings import SentenceTransformerEmbedder
from knowledge.service import KnowledgeService


@pytest.fixture(scope="module")
def model() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


def test_reindex_then_search_prints_ranked_files_with_reasons(
    tmp_path: Path, model: SentenceTransformerEmbedder
) -> None:
    checkout = tmp_path / "checkout"
    (checkout / "mail").mkdir(parents=True)
    (checkout / "mail" / "smtp.py").write_text(
        'def send_mail(to, subject, body):\n    """Deliver an e-mail through the SMTP relay."""\n'
    )
    (checkout / "mail" / "templates.py").write_text("def render(name):\n    return name\n")
    opened: list[KnowledgeService] = []

    def open_service() -> KnowledgeService:
        service = KnowledgeService.open(
            lexical_path=tmp_path / "lexical.db", chroma_path=tmp_path / "chroma", embedder=model
        )
        opened.append(service)
        return service

    cli = make_knowledge_cli(open_service)
    runner = CliRunner()

    reindexed = runner.invoke(cli, ["reindex", "acme/mailer", "--path", str(checkout)])
    assert reindexed.exit_code == 0, reindexed.output
    assert "2 indexed" in reindexed.output and "0 files awaiting embeddings" in reindexed.output

    found = runner.invoke(
        cli, ["search", "acme/mailer", "e-mails are not delivered through the relay"]
    )
    assert found.exit_code == 0, found.output
    first = found.output.splitlines()[0]
    assert first.split()[-1] == "mail/smtp.py"
    assert "semantic match" in found.output and "keyword match" in found.output

    nothing = runner.invoke(cli, ["search", "acme/unknown", "anything at all"])
    assert nothing.exit_code == 1 and "No indexed files match" in nothing.output
    assert len(opened) == 3


def test_help_does_not_load_the_model_or_chroma() -> None:
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from knowledge.cli import make_knowledge_cli\n"
        "def never():\n    raise AssertionError('service opened for --help')\n"
        "result = CliRunner().invoke(make_knowledge_cli(never), ['--help'])\n"
        "assert result.exit_code == 0 and 'reindex' in result.output, result.output\n"
        "print(sorted(m for m in ('sentence_transformers', 'torch', 'chromadb') if m in sys.modules))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"

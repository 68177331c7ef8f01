"""Secrets and e-mail addresses never reach the knowledge store."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge.embeddings import SentenceTransformerEmbedder
from knowledge.learning import LearningRecorder, PullRequestOutcome, TaskFailure
from knowledge.scrub import scrub, scrub_credentials
from knowledge.store import ChromaStore, Kind

GITHUB_TOKEN = "ghp_" + "a1B2c3D4e5" * 4
APP_TOKEN = "ghs_" + "Z9y8X7w6V5" * 4
FINE_GRAINED = "github_pat_11ABCDEFG0" + "x" * 60
ANTHROPIC_KEY = "sk-ant-api03-" + "Qw3rTy" * 12
AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEA1c7+9z5Pad7OejecsQ0bu3aozN3tihPmljnnudb9G3HECdnH\n"
    "lWu2/a1gB9JW5TBQ+AVpum9Okx7KfqkfBKL9mcHgSL0yWMdjMfNOqNtrQqKlN4kE\n"
    "-----END RSA PRIVATE KEY-----"
)
SECRETS = [
    GITHUB_TOKEN,
    APP_TOKEN,
    FINE_GRAINED,
    ANTHROPIC_KEY,
    AWS_KEY_ID,
    "hunter2",
    "s3cr3t-db",
    "MIIEowIBAAKCAQEA",
]
EMAIL = "jane.doe@example.com"


@pytest.mark.parametrize(
    "text",
    [
        f"Authorization: token {GITHUB_TOKEN}",
        f"installation token {APP_TOKEN} expired",
        f"GH_TOKEN={FINE_GRAINED}",
        f"ANTHROPIC_API_KEY is {ANTHROPIC_KEY}",
        f"aws key {AWS_KEY_ID} leaked",
        f"key:\n{PEM}\n",
        "connect with password=hunter2 please",
        'DATABASE = {"password": "s3cr3t-db"}',
        "export API_KEY='s3cr3t-db'",
        f"git remote https://x-access-token:{APP_TOKEN}@github.com/acme/shop.git",
        "curl -H 'Authorization: Bearer abcdefghijklmnopqrstuvwx0123'",
    ],
)
def test_scrub_removes_secrets(text: str) -> None:
    cleaned = scrub(text)

    assert "[REDACTED" in cleaned
    for secret in [*SECRETS, "abcdefghijklmnopqrstuvwx0123"]:
        assert secret not in cleaned


def test_scrub_removes_email_addresses_but_keeps_ssh_remotes() -> None:
    cleaned = scrub(f"Reported by {EMAIL}; clone git@github.com:acme/shop.git")

    assert EMAIL not in cleaned and "[REDACTED EMAIL]" in cleaned
    assert "git@github.com:acme/shop.git" in cleaned


def test_scrub_leaves_ordinary_text_alone() -> None:
    text = "Set max_tokens: 4096 and token_budget=6000; the tokenizer splits words. password_field = form.field"

    assert scrub(text) == text


def test_credential_scrub_for_code_keeps_line_numbers_and_code() -> None:
    source = f'KEY = """{PEM}"""\npassword = form.password\nTOKEN = "{GITHUB_TOKEN}"\n'

    cleaned = scrub_credentials(source)

    assert cleaned.count("\n") == source.count("\n")
    assert "password = form.password" in cleaned
    assert GITHUB_TOKEN not in cleaned and "MIIEowIBAAKCAQEA" not in cleaned


@pytest.fixture(scope="module")
def model() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


def test_learning_stores_only_scrubbed_text(
    tmp_path: Path, model: SentenceTransformerEmbedder
) -> None:
    store = ChromaStore(path=tmp_path / "chroma")
    recorder = LearningRecorder(store=store, embedder=model)

    pr_id = recorder.record_pull_request(
        PullRequestOutcome(
            repository="acme/shop",
            pr_number=7,
            merged=False,
            issue_title=f"Deploy fails, contact {EMAIL}",
            issue_body=f"The log shows GH_TOKEN={GITHUB_TOKEN} and {ANTHROPIC_KEY}",
            plan=f"Rotate {AWS_KEY_ID}",
            review_comments=[
                f"Never commit keys like this:\n{PEM}",
                "and not password=hunter2 either",
            ],
            failed_checks=[f"deploy: could not log in with {APP_TOKEN}"],
            closing_comment=f"Closing; the key {FINE_GRAINED} was revoked. Ask {EMAIL}.",
        )
    )
    task_id = recorder.record_task_failure(
        TaskFailure(
            repository="acme/shop",
            task="deploy",
            error=f"401 for token {APP_TOKEN} (db pwd: s3cr3t-db)",
        )
    )

    stored = [hit.text for hit in store.get(Kind.FAILURE, "acme/shop", [pr_id, task_id])]
    assert len(stored) == 2
    everything = "\n".join(stored)
    for secret in [*SECRETS, EMAIL]:
        assert secret not in everything
    assert "PR #7" in everything and "Task `deploy` failed" in everything

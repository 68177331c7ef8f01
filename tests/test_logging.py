"""Logs come out structured, carry the delivery/feature/repository, and never show a secret."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot.logging import configure_logging, known_secrets, log_context
from bot.settings import Settings, SettingsError, load_settings

GITHUB_TOKEN = "ghs_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
PAT = "github_pat_" + "11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz"
ANTHROPIC_KEY = "sk-ant-" + "api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAx1b2c3d4e5f6g7h8i9j0kLmNoPqRsTuVwXyZ\n"
    "-----END RSA PRIVATE KEY-----"
)


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _configure(settings: Settings, secrets: list[str], log_format: str = "json") -> io.StringIO:
    stream = io.StringIO()
    configured = settings.model_copy(update={"log_format": log_format})
    configure_logging(configured, secrets=secrets, stream=stream)
    return stream


def _json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_tokens_in_messages_and_arguments_are_masked(settings: Settings) -> None:
    stream = _configure(settings, secrets=[])
    log = logging.getLogger("bot.test")

    log.info("cloning with %s", f"https://x-access-token:{GITHUB_TOKEN}@github.com/o/r.git")
    log.info("token %s and pat %s", GITHUB_TOKEN, PAT)
    log.warning("anthropic said no to %s", ANTHROPIC_KEY)
    log.error("key was %s", PEM)

    output = stream.getvalue()
    for secret in (GITHUB_TOKEN, PAT, ANTHROPIC_KEY, "MIIEowIBAAKCAQEA", "BEGIN RSA PRIVATE KEY"):
        assert secret not in output
    messages = [line["message"] for line in _json_lines(stream)]
    assert messages[0] == "cloning with https://x-access-token:***@github.com/o/r.git"
    assert messages[1] == "token *** and pat ***"


def test_registered_secret_values_are_masked_anywhere(settings: Settings) -> None:
    stream = _configure(settings, secrets=["hunter2-webhook-secret"])
    log = logging.getLogger("bot.test")

    log.info("secret is %s", "hunter2-webhook-secret")
    log.info("in extra", extra={"header": "sha256 of hunter2-webhook-secret"})
    try:
        raise ValueError("bad signature with hunter2-webhook-secret")
    except ValueError:
        log.exception("verification failed")

    output = stream.getvalue()
    assert "hunter2-webhook-secret" not in output
    lines = _json_lines(stream)
    assert lines[0]["message"] == "secret is ***"
    assert lines[1]["header"] == "sha256 of ***"
    assert "bad signature with ***" in str(lines[2]["exc"])


def test_text_format_masks_tracebacks_too(settings: Settings) -> None:
    stream = _configure(settings, secrets=[], log_format="text")
    log = logging.getLogger("bot.test")
    try:
        raise RuntimeError(f"push failed for {GITHUB_TOKEN}")
    except RuntimeError:
        log.exception("push failed")

    output = stream.getvalue()
    assert "push failed" in output and "RuntimeError" in output
    assert GITHUB_TOKEN not in output


def test_log_context_fields_appear_on_every_line_inside_the_block(settings: Settings) -> None:
    stream = _configure(settings, secrets=[])
    log = logging.getLogger("bot.test")

    with log_context(delivery_id="d-1", repository="octo/repo"):
        log.info("received")
        with log_context(feature_id=42):
            log.info("planning")
    log.info("outside")
    log.info("explicit", extra={"delivery_id": "d-2"})

    lines = _json_lines(stream)
    assert lines[0]["delivery_id"] == "d-1" and lines[0]["repository"] == "octo/repo"
    assert lines[1]["feature_id"] == 42 and lines[1]["delivery_id"] == "d-1"
    assert "delivery_id" not in lines[2]
    assert lines[3]["delivery_id"] == "d-2"
    assert {"ts", "level", "logger", "message"} <= set(lines[0])


def test_text_format_shows_context_fields(settings: Settings) -> None:
    stream = _configure(settings, secrets=[], log_format="text")
    with log_context(delivery_id="d-9"):
        logging.getLogger("bot.test").info("hello")

    assert "hello [delivery_id=d-9]" in stream.getvalue()


def test_auto_format_writes_json_when_not_a_terminal(settings: Settings) -> None:
    stream = _configure(settings, secrets=[], log_format="auto")
    logging.getLogger("bot.test").info("hello")

    assert _json_lines(stream)[0]["message"] == "hello"


def test_known_secrets_come_from_settings(clean_env: None) -> None:
    settings = load_settings(
        _env_file=None,
        webhook_secret="whsec-0123456789",
        anthropic_api_key=ANTHROPIC_KEY,
        private_key=PEM,
    )

    assert set(known_secrets(settings)) == {"whsec-0123456789", ANTHROPIC_KEY, PEM}


def test_an_unknown_log_level_is_a_settings_error(settings: Settings) -> None:
    with pytest.raises(SettingsError, match="FACTORY_LOG_LEVEL"):
        configure_logging(settings.model_copy(update={"log_level": "LOUD"}), secrets=[])

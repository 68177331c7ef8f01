"""A pytest plugin: every log record of the whole test run is kept, then searched for secrets.

Anything credential-shaped (installation tokens, PATs, Anthropic keys, PEM private keys,
credentials in URLs) found in any record fails the session, with the offending lines shown.
The one exception is the logger ``bot.test``, which tests/test_logging.py feeds secrets on
purpose to prove the redactor masks them at the handler.
"""

from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path

import pytest

SECRET_PATTERNS = (
    re.compile(r"\bgh[opsu]_[A-Za-z0-9]{20,}"),
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}"),
    re.compile(r"\bsk-ant-[A-Za-z0-9_-]{16,}"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"x-access-token:[^@\s]+@"),
)
EXEMPT_LOGGERS = ("bot.test",)


def find_secrets(text: str) -> list[str]:
    """The lines of ``text`` that carry something credential-shaped."""
    return [line for line in text.splitlines() if any(p.search(line) for p in SECRET_PATTERNS)]


class _Exempt(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(EXEMPT_LOGGERS)


_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class _Everything(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        # Arguments, exception text and extra fields all count as "written to the log".
        text = super().format(record)
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        return f"{text} {extras}" if extras else text


_state: dict[str, object] = {}


def pytest_configure(config: pytest.Config) -> None:
    path = Path(tempfile.mkstemp(prefix="factory-test-logs-", suffix=".log")[1])
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.addFilter(_Exempt())
    handler.setFormatter(_Everything("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    _state.update(path=path, handler=handler)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    handler = _state.get("handler")
    path = _state.get("path")
    if not isinstance(handler, logging.Handler) or not isinstance(path, Path):
        return
    logging.getLogger().removeHandler(handler)
    handler.close()
    text = path.read_text(encoding="utf-8", errors="replace")
    leaks = find_secrets(text)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    summary = f"log audit: {len(text.splitlines())} log lines searched, {len(leaks)} with a secret"
    if reporter is not None:
        reporter.write_line(summary)
        for line in leaks[:20]:
            reporter.write_line(f"  LEAK: {line[:300]}")
    if leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    else:
        path.unlink(missing_ok=True)

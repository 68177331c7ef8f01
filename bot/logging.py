"""Structured logging with secret redaction.

``configure_logging`` sends every record through one stderr handler: JSON lines when stderr is
not a terminal (or ``FACTORY_LOG_FORMAT=json``), readable text otherwise. Fields bound with
``log_context(delivery_id=..., feature_id=..., repository=...)`` or passed as ``extra=`` appear on
each line. A redaction filter masks secrets in every record before any handler sees it: the
secret values registered at start and anything shaped like a token or a private key.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from bot.settings import Settings

MASK = "***"
# Shorter values would mask ordinary words; a secret that short is a problem doctor reports.
MIN_SECRET_LENGTH = 6

CONTEXT_FIELDS = ("delivery_id", "feature_id", "repository", "installation_id", "job_id")

_TOKEN_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
            re.DOTALL,
        ),
        MASK,
    ),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{16,}"), MASK),
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{16,}"), MASK),
    (re.compile(r"\bsk-ant-[A-Za-z0-9_\-]{8,}"), MASK),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), MASK),
    (re.compile(r"x-access-token:[^@\s/]+@"), f"x-access-token:{MASK}@"),
    (re.compile(r"(?i)\b(authorization:\s*(?:bearer|token|basic)\s+)\S+"), rf"\1{MASK}"),
    # Passwords in URLs (redis://:pw@host, postgresql://user:pw@host).
    (re.compile(r"\b([a-z][a-z0-9+.\-]*://[^:/\s@]*:)[^@\s/]+@"), rf"\1{MASK}@"),
)

_context: ContextVar[Mapping[str, Any] | None] = ContextVar("factory_log_context", default=None)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Attach ``fields`` to every record logged inside the block (in this task or thread)."""
    bound = {k: v for k, v in fields.items() if v is not None}
    token = _context.set({**current_log_context(), **bound})
    try:
        yield
    finally:
        _context.reset(token)


def current_log_context() -> Mapping[str, Any]:
    return _context.get() or {}


class Redactor:
    """Masks registered secret values and token-shaped strings in text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        if not secret or len(secret) < MIN_SECRET_LENGTH or secret in self._secrets:
            return
        self._secrets.append(secret)
        # Longest first, so a secret that contains another is masked whole.
        self._secrets.sort(key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        for pattern, replacement in _TOKEN_PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def redact_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, Mapping):
            return {k: self.redact_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact_value(v) for v in value]
        return value


class ContextFilter(logging.Filter):
    """Copies the bound ``log_context`` fields onto the record (``extra=`` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in current_log_context().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class RedactionFilter(logging.Filter):
    """Renders the message once, masks secrets in it and in extra fields, and drops the args."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redactor.redact(record.getMessage())
        record.args = None
        for key in _extra_keys(record):
            setattr(record, key, self.redactor.redact_value(getattr(record, key)))
        return True


_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's ANSI-coloured copy of the message
}


def _extra_keys(record: logging.LogRecord) -> list[str]:
    return [key for key in vars(record) if key not in _STANDARD_ATTRS and not key.startswith("_")]


class JsonFormatter(logging.Formatter):
    """One JSON object per line; exception text is redacted before it is encoded."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": self.redactor.redact(record.getMessage()),
        }
        for key in _extra_keys(record):
            entry[key] = self.redactor.redact_value(getattr(record, key))
        if record.exc_info:
            entry["exc"] = self.redactor.redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exc"] = self.redactor.redact(record.exc_text)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value ...``, redacted as a whole (tracebacks too)."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = " ".join(f"{key}={getattr(record, key)}" for key in _extra_keys(record))
        if fields:
            first, newline, rest = text.partition("\n")
            text = f"{first} [{fields}]{newline}{rest}"
        return self.redactor.redact(text)


def known_secrets(settings: Settings) -> list[str]:
    """The secret values in ``settings`` to mask wherever they appear."""
    secrets = [
        secret.get_secret_value()
        for secret in (settings.webhook_secret, settings.anthropic_api_key, settings.private_key)
        if secret is not None
    ]
    try:
        pem = settings.private_key_pem()
    except (OSError, ValueError):
        pem = None  # An unreadable or malformed key is reported by doctor, not here.
    if pem:
        # The raw value (base64, `\n` escapes) above, and the PEM it stands for, line by line.
        secrets.append(pem.strip())
    return [s.strip() for s in secrets if s.strip()]


def use_json(log_format: str, stream: TextIO) -> bool:
    if log_format == "auto":
        return not (hasattr(stream, "isatty") and stream.isatty())
    return log_format == "json"


def _level(name: str) -> int:
    level = logging.getLevelName(name.upper())
    if not isinstance(level, int):
        from bot.settings import SettingsError

        raise SettingsError(
            [f"FACTORY_LOG_LEVEL: unknown level {name!r} (use DEBUG, INFO, WARNING or ERROR)"]
        )
    return level


def configure_logging(
    settings: Settings, *, secrets: list[str], stream: TextIO | None = None
) -> Redactor:
    """Route all logging through one redacting handler on ``stream`` (stderr by default)."""
    stream = stream if stream is not None else sys.stderr
    redactor = Redactor(secrets)
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactionFilter(redactor))
    formatter: logging.Formatter = (
        JsonFormatter(redactor)
        if use_json(settings.log_format, stream)
        else TextFormatter(redactor)
    )
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(_level(settings.log_level))
    # Libraries that install their own handlers would bypass redaction: send them to root.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "arq", "alembic"):
        library_logger = logging.getLogger(name)
        library_logger.handlers.clear()
        library_logger.propagate = True
    # Alembic announces each of its plugins at INFO on every run.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    return redactor

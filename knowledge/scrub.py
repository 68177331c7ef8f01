"""Remove secrets and e-mail addresses from text before it is stored.

Whatever reaches the knowledge store is later pasted into prompts, comments and logs, so a
token that slipped into a review comment or a failed check's output must not survive storage.
"""

from __future__ import annotations

import re

REDACTED = "[REDACTED]"
REDACTED_EMAIL = "[REDACTED EMAIL]"
REDACTED_KEY = "[REDACTED PRIVATE KEY]"

# Whole PEM blocks, and a BEGIN line whose END was cut off by truncation.
_PEM_BLOCK = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
    re.DOTALL,
)

# Credential formats that are recognisable on their own, wherever they appear; one
# alternation so that scrubbing a whole repository is a single pass per file.
_TOKEN_PATTERNS = (
    r"\bgh[pousr]_[A-Za-z0-9]{20,255}\b",  # GitHub classic/app/OAuth tokens
    r"\bgithub_pat_[A-Za-z0-9_]{20,255}\b",  # GitHub fine-grained tokens
    r"\bsk-ant-[A-Za-z0-9_\-]{10,}",  # Anthropic
    r"\bsk-(?:proj-)?[A-Za-z0-9_\-]{20,}",  # OpenAI-style
    r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b",  # AWS key ids
    r"\bxox[abposr]-[A-Za-z0-9-]{10,}",  # Slack
    r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",  # JWTs
    r"\b[Bb][Ee][Aa][Rr][Ee][Rr]\s+[A-Za-z0-9._~+/\-]{16,}=*",
)
_TOKENS = re.compile("|".join(_TOKEN_PATTERNS))

# user:password@ in URLs (e.g. https://x-access-token:TOKEN@github.com/...).
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s:@]+:[^/\s@]+@")

# key = value / key: value / "key": "value" where the key names a secret. The key must end
# with the secret word so that `max_tokens: 4096` or `token_budget=6000` are left alone.
_ASSIGNMENT = re.compile(
    r"""(?ix)
    (?P<key>\b[\w.\-]*?(?:password|passwd|pwd|secret|token|api[_\-]?key|access[_\-]?key
        |secret[_\-]?key|private[_\-]?key|auth|credentials?))\b
    (?P<quote>["']?)
    (?P<sep>[ \t]*(?:=|:)[ \t]*)
    (?P<value>"[^"\n]*"|'[^'\n]*'|[^\s"',;&)}\]]+)
    """
)

# `git@github.com:owner/repo` is an SSH remote, not a person's address.
_EMAIL = re.compile(
    r"\b(?!git@)[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b"
)


def scrub_credentials(text: str) -> str:
    """Redact credential formats that cannot be mistaken for ordinary code.

    Used for repository source, where `password = form.password` is code to keep, not a
    secret to hide.
    """
    # Keep the line count so that line numbers into scrubbed source stay true.
    text = _PEM_BLOCK.sub(lambda m: REDACTED_KEY + "\n" * m.group(0).count("\n"), text)
    text = _TOKENS.sub(REDACTED, text)
    return _URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)


def scrub(text: str) -> str:
    """Redact credentials, secret-looking assignments and e-mail addresses from prose."""
    text = scrub_credentials(text)
    text = _ASSIGNMENT.sub(_redact_assignment, text)
    return _EMAIL.sub(REDACTED_EMAIL, text)


def _redact_assignment(match: re.Match[str]) -> str:
    value = match.group("value")
    if value.startswith(("'", '"')) and len(value) <= 2:
        return match.group(0)  # an empty string literal hides nothing
    if value == REDACTED or value.startswith("[REDACTED"):
        return match.group(0)
    return f"{match.group('key')}{match.group('quote')}{match.group('sep')}{REDACTED}"

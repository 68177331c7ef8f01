"""Scripted failures: answer the next matching requests with a rate limit or a server error."""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"


@dataclass
class FaultRule:
    method: str
    pattern: re.Pattern[str]
    status: int
    headers: dict[str, str]
    body: bytes
    remaining: int
    served: int = field(default=0)


def default_fault(status: int, *, secondary: bool) -> tuple[dict[str, str], dict[str, Any]]:
    """GitHub's headers and body for a rate-limit or server-error answer."""
    reset = str(int(time.time()) + 60)
    if status == 429 or (status == 403 and secondary):
        return (
            {"retry-after": "1", "x-ratelimit-remaining": "4999"},
            {
                "message": "You have exceeded a secondary rate limit. Please wait a few minutes "
                "before you try again. If you reach out to GitHub Support for help, please "
                "include the request ID.",
                "documentation_url": DOCS + "#about-secondary-rate-limits",
                "status": str(status),
            },
        )
    if status == 403:
        return (
            {
                "x-ratelimit-limit": "5000",
                "x-ratelimit-remaining": "0",
                "x-ratelimit-used": "5000",
                "x-ratelimit-reset": reset,
                "x-ratelimit-resource": "core",
            },
            {
                "message": "API rate limit exceeded for installation. If you reach out to GitHub "
                "Support for help, please include the request ID.",
                "documentation_url": DOCS + "#about-the-primary-rate-limit",
                "status": "403",
            },
        )
    return ({}, {"message": "Server Error", "status": str(status)})


class FaultInjector:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []

    def fail_next(
        self,
        method: str,
        path_regex: str,
        *,
        status: int = 429,
        headers: dict[str, str] | None = None,
        times: int = 1,
        body: dict[str, Any] | str | bytes | None = None,
        secondary: bool = False,
    ) -> FaultRule:
        default_headers, default_body = default_fault(status, secondary=secondary)
        if body is None:
            raw = json.dumps(default_body).encode()
        elif isinstance(body, dict):
            raw = json.dumps(body).encode()
        else:
            raw = body.encode() if isinstance(body, str) else body
        rule = FaultRule(
            method=method.upper(),
            pattern=re.compile(path_regex),
            status=status,
            headers={**default_headers, **(headers or {})},
            body=raw,
            remaining=times,
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    def take(self, method: str, path: str) -> FaultRule | None:
        """The first live rule matching this request, consuming one use of it."""
        with self._lock:
            for rule in self._rules:
                if rule.remaining <= 0:
                    continue
                if rule.method not in (method.upper(), "*"):
                    continue
                if rule.pattern.search(path):
                    rule.remaining -= 1
                    rule.served += 1
                    return rule
        return None

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

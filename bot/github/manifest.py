"""Finishing the GitHub App manifest flow: trade the one-time code for the app's credentials.

This runs before the app exists, so it takes no credentials: GitHub authenticates the
request by the code itself (valid for one hour, usable once).
"""

from __future__ import annotations

import httpx
from githubkit import GitHub
from pydantic import SecretStr

from .errors import github_errors
from .models import AppCredentials
from .retry import default_retry


async def convert_manifest(
    code: str,
    *,
    base_url: str,
    user_agent: str = "agent-factory",
    transport: httpx.AsyncBaseTransport | None = None,
) -> AppCredentials:
    gh = GitHub(
        base_url=base_url.rstrip("/"),
        user_agent=user_agent,
        async_transport=transport,
        http_cache=False,
        auto_retry=default_retry(),
    )
    with github_errors("convert the app manifest code"):
        response = await gh.rest.apps.async_create_from_manifest(code)
        raw = response.parsed_data
    owner = raw.owner
    return AppCredentials(
        app_id=raw.id,
        slug=raw.slug or "",
        name=raw.name,
        owner=getattr(owner, "login", None) or getattr(owner, "slug", "") or "",
        html_url=raw.html_url,
        client_id=raw.client_id,
        client_secret=SecretStr(raw.client_secret),
        webhook_secret=SecretStr(raw.webhook_secret) if raw.webhook_secret else None,
        private_key=SecretStr(raw.pem),
    )

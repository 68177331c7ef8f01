"""githubkit auth strategy acting as an installation with tokens from the shared cache.

githubkit's own installation auth keeps tokens in its cache strategy but mints without any
lock, so several workers starting together would each mint. This strategy asks
:class:`InstallationTokenCache` instead, per request, so a client never holds a stale token.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from githubkit.auth.base import BaseAuthStrategy

from .tokens import InstallationTokenCache

if TYPE_CHECKING:
    from githubkit import GitHubCore


class InstallationTokenAuth(httpx.Auth):
    """Adds ``Authorization: token <installation token>``; on 401, re-mints once and resends."""

    def __init__(self, tokens: InstallationTokenCache, installation_id: int) -> None:
        self._tokens = tokens
        self._installation_id = installation_id

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("installation clients are async only; use the gh.rest.async_* methods")
        yield request  # pragma: no cover - makes this a generator as httpx expects

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._tokens.get(self._installation_id)
        request.headers["Authorization"] = f"token {token.token}"
        response = yield request
        if response.status_code == 401:
            # Revoked or expired early (e.g. the app was reinstalled): one fresh attempt.
            await self._tokens.invalidate(self._installation_id, token.token)
            token = await self._tokens.get(self._installation_id)
            request.headers["Authorization"] = f"token {token.token}"
            yield request


@dataclass(frozen=True)
class InstallationTokenAuthStrategy(BaseAuthStrategy):
    tokens: InstallationTokenCache
    installation_id: int

    def get_auth_flow(self, github: GitHubCore[Any]) -> httpx.Auth:
        return InstallationTokenAuth(self.tokens, self.installation_id)

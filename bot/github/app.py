"""The GitHub App: JWT-authenticated app client and per-installation clients.

One ``GitHubApp`` per process; every worker process shares installation tokens through
Redis (see :mod:`bot.github.tokens`), and installation clients send conditional requests
whose ETags are shared the same way (see :mod:`bot.github.conditional`). ``base_url`` is the REST root, so a GitHub Enterprise
Server (``https://ghe.example.com/api/v3``) or a test server runs the same code.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from githubkit import AppAuthStrategy, GitHub
from githubkit.cache import MemCacheStrategy
from githubkit.config import get_config
from githubkit.typing import RetryDecisionFunc
from redis.asyncio import Redis

from .auth import InstallationTokenAuthStrategy
from .conditional import CommitFacts, ConditionalTransport, EtagStore
from .errors import GitHubError, github_errors
from .models import BotIdentity, RepoInfo
from .repo import RepoClient
from .retry import default_retry
from .tokens import InstallationToken, InstallationTokenCache

_IDENTITY_TTL = timedelta(hours=24)


class GitHubApp:
    """Entry point to GitHub for the bot: acts as the app, or as one of its installations."""

    def __init__(
        self,
        app_id: int,
        private_key: str,
        *,
        base_url: str,
        redis: Redis,
        user_agent: str = "agent-factory",
        transport: httpx.AsyncBaseTransport | None = None,
        key_prefix: str = "factory:github",
        timeout: float = 30.0,
        retry: RetryDecisionFunc | None = None,
        conditional_requests: bool = True,
    ) -> None:
        self.app_id = app_id
        self.base_url = base_url.rstrip("/")
        self.user_agent = user_agent
        self._redis = redis
        self._prefix = f"{key_prefix.rstrip(':')}:app:{app_id}"
        # githubkit opens and closes an httpx client per request; one shared, kept-open
        # transport lets them all reuse pooled connections (no TLS handshake per call).
        self._owned_transport: httpx.AsyncHTTPTransport | None = None
        if transport is None:
            transport = self._owned_transport = httpx.AsyncHTTPTransport()
        self._config = get_config(
            base_url=self.base_url,
            user_agent=user_agent,
            async_transport=_KeepOpen(transport),
            timeout=timeout,
            # githubkit's cache (hishel) would keep each request's Authorization header in
            # its store; conditional requests are made by ConditionalTransport instead.
            http_cache=False,
            auto_retry=retry if retry is not None else default_retry(),
            # Its own JWT cache: githubkit's default one is shared by every client in the
            # process, keyed only by app id.
            cache_strategy=MemCacheStrategy(),
        )
        self._app = GitHub(AppAuthStrategy(app_id, private_key), config=self._config)
        self._tokens = InstallationTokenCache(redis, self._mint, key_prefix=self._prefix)
        self._etags = EtagStore(redis, key_prefix=self._prefix) if conditional_requests else None
        # githubkit's namespaces hold only a weak reference to their client, so the clients
        # must live here, as long as the app.
        self._installations: dict[int, GitHub[InstallationTokenAuthStrategy]] = {}
        self._anonymous = GitHub(config=self._config)

    async def aclose(self) -> None:
        """Closes the connection pool this app made (a transport passed in is the caller's)."""
        if self._owned_transport is not None:
            await self._owned_transport.aclose()

    @property
    def app_client(self) -> GitHub[AppAuthStrategy]:
        """Authenticated as the app itself (JWT): only the ``/app/...`` endpoints accept it."""
        return self._app

    @property
    def anonymous_client(self) -> GitHub[Any]:
        """No credentials: for the few public endpoints such as manifest conversion."""
        return self._anonymous

    def installation_client(self, installation_id: int) -> GitHub[InstallationTokenAuthStrategy]:
        """Authenticated as one installation, with tokens from the shared cache."""
        client = self._installations.get(installation_id)
        if client is None:
            strategy = InstallationTokenAuthStrategy(self._tokens, installation_id)
            config = self._config
            if self._etags is not None and config.async_transport is not None:
                # GETs revalidate with the ETags this installation got before.
                transport = ConditionalTransport(
                    config.async_transport, self._etags, scope=str(installation_id)
                )
                config = dataclasses.replace(config, async_transport=transport)
            client = GitHub(strategy, config=config)
            self._installations[installation_id] = client
        return client

    async def installation_token(self, installation_id: int) -> InstallationToken:
        """A valid token for ``git`` over HTTPS; cached and shared like the API's."""
        return await self._tokens.get(installation_id)

    async def installation_id_for(self, owner: str, repo: str) -> int:
        with github_errors(f"look up the installation on {owner}/{repo}"):
            response = await self._app.rest.apps.async_get_repo_installation(owner, repo)
        return response.parsed_data.id

    async def identity(self) -> BotIdentity:
        """The app's bot account (cached in Redis: it only changes if the app is renamed)."""
        key = f"{self._prefix}:identity"
        if (raw := await self._redis.get(key)) is not None:
            return BotIdentity(**json.loads(raw))
        with github_errors("read the app"):
            app = (await self._app.rest.apps.async_get_authenticated()).parsed_data
        if app is None or not app.slug:
            raise GitHubError("read the app", 200, "GitHub returned no app slug")
        login = f"{app.slug}[bot]"
        with github_errors(f"look up user {login}"):
            user = (await self._anonymous.rest.users.async_get_by_username(login)).parsed_data
        identity = BotIdentity(
            app_id=app.id,
            slug=app.slug,
            name=app.name,
            user_id=user.id,
            login=login,
            email=f"{user.id}+{login}@{self._noreply_domain()}",
        )
        await self._redis.set(key, json.dumps(asdict(identity)), ex=_IDENTITY_TTL)
        return identity

    async def repo_client(
        self, installation_id: int, owner: str, repo: str, *, info: RepoInfo | None = None
    ) -> RepoClient:
        """Every write the agents make to ``owner/repo`` goes through this object.

        ``info``: the repository's metadata when the caller has it already (a webhook payload
        carries it: :func:`bot.github.models.repo_info_from_payload`), so
        ``get_repository`` costs no request. Keep one client for one job: it reads the
        repository's metadata at most once.
        """
        identity = await self.identity()
        facts = CommitFacts(self._etags, str(installation_id)) if self._etags else None
        return RepoClient(
            self.installation_client(installation_id),
            owner,
            repo,
            identity.login,
            info=info,
            commit_facts=facts,
        )

    async def _mint(self, installation_id: int) -> InstallationToken:
        with github_errors(f"mint a token for installation {installation_id}"):
            response = await self._app.rest.apps.async_create_installation_access_token(
                installation_id
            )
        data = response.parsed_data
        return InstallationToken(data.token, datetime.fromisoformat(data.expires_at))

    def _noreply_domain(self) -> str:
        host = urlsplit(self.base_url).hostname or "github.com"
        # GitHub.com's API lives on api.github.com; GHES serves it under /api/v3 of its host.
        return "users.noreply.github.com" if host == "api.github.com" else f"users.noreply.{host}"


class _KeepOpen(httpx.AsyncBaseTransport):
    """Lends a transport to short-lived httpx clients without letting them close it."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        pass  # the owner closes the shared transport (GitHubApp.aclose)

"""The ASGI front door: records every request, serves scripted faults, then routes to the REST
API under /api/v3 or to git smart HTTP under /{owner}/{repo}.git/."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import Message, Receive, Scope, Send

from .auth import AppAuth
from .conditional import conditional_send
from .events import Events
from .faults import FaultInjector, FaultRule
from .gitrepo import EMPTY_SHA, BareRepo
from .smarthttp import http_backend_path, run_http_backend
from .state import RecordedRequest, Store

API_PREFIX = "/api/v3"
GIT_PATH = re.compile(r"^/(?P<owner>[^/]+)/(?P<repo>[^/]+?)\.git(?P<rest>/.*)$")


def api_app(routes: list[Route]) -> Starlette:
    async def github_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        message = "Not Found" if status == 404 else str(getattr(exc, "detail", "Server Error"))
        return JSONResponse(
            {
                "message": message,
                "documentation_url": "https://docs.github.com/rest",
                "status": str(status),
            },
            status_code=status,
        )

    return Starlette(
        routes=[Mount(API_PREFIX, routes=routes)],
        exception_handlers={404: github_error, 405: github_error},
    )


class FakeGitHubApp:
    def __init__(
        self,
        *,
        store: Store,
        auth: AppAuth,
        faults: FaultInjector,
        events: Events,
        api: Starlette,
        repos_root: Path,
        git: Callable[[str], BareRepo],
    ) -> None:
        self._store = store
        self._auth = auth
        self._faults = faults
        self._events = events
        self._api = api
        self._repos_root = repos_root
        self._git = git
        self._backend = http_backend_path()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        relative = path[len(API_PREFIX) :] if path.startswith(API_PREFIX + "/") else path
        header = _header(scope, b"authorization")
        kind = self._auth.from_header(header).kind
        recorded = False

        if_none_match = _header(scope, b"if-none-match")
        conditional = if_none_match is not None

        def record(status: int) -> None:
            nonlocal recorded
            recorded = True
            entry = RecordedRequest(
                method, relative, status, kind, _route_template(scope), conditional
            )
            with self._store.lock:
                self._store.requests.append(entry)

        async def recording_send(message: Message) -> None:
            # Recorded before the client can see the answer, so tests never race the log.
            if message["type"] == "http.response.start":
                record(message["status"])
            await send(message)

        try:
            fault = self._faults.take(method, relative)
            git_match = GIT_PATH.match(path)
            if fault is not None:
                await _send_fault(fault, recording_send)
            elif git_match is not None:
                await self._serve_git(scope, receive, recording_send, git_match)
            elif path.startswith(API_PREFIX + "/") or path == API_PREFIX:
                api_send: Send = recording_send
                if method == "GET":
                    api_send = conditional_send(recording_send, header, if_none_match)
                await self._api(scope, receive, api_send)
            else:
                await _send_json(recording_send, 404, {"message": "Not Found"})
        finally:
            if not recorded:
                record(500)

    async def _serve_git(
        self, scope: Scope, receive: Receive, send: Send, match: re.Match[str]
    ) -> None:
        credentials = self._auth.from_header(_header(scope, b"authorization"))
        full_name = f"{match['owner']}/{match['repo']}"
        if credentials.kind != "basic" or credentials.token is None:
            await _send_text(
                send,
                401,
                "Invalid username or token. Password authentication is not supported for Git "
                "operations.\n",
                [(b"www-authenticate", b'Basic realm="GitHub"')],
            )
            return
        with self._store.lock:
            repo = self._store.repos.get(full_name)
        if repo is None or repo.installation_id != credentials.token.installation_id:
            await _send_text(send, 404, "Repository not found.\n")
            return
        git = self._git(full_name)
        pushing = scope["method"] == "POST" and match["rest"].endswith("/git-receive-pack")
        before = git.refs() if pushing else {}

        async def follow_refs() -> None:
            after = git.refs()
            updates = [
                (ref, before.get(ref, EMPTY_SHA), after.get(ref, EMPTY_SHA))
                for ref in sorted(set(before) | set(after))
                if before.get(ref) != after.get(ref)
            ]
            if updates:
                await asyncio.to_thread(self._events.refs_moved, repo, updates, self._store.bot)

        await run_http_backend(
            scope,
            receive,
            send,
            backend=self._backend,
            project_root=self._repos_root,
            path_info=f"/{full_name}.git{match['rest']}",
            remote_user="x-access-token",
            before_finish=follow_refs if pushing else None,
        )


_CONVERTER = re.compile(r"\{(\w+):\w+\}")


def _route_template(scope: Scope) -> str | None:
    # Starlette's router leaves the matched route in the (shared) scope.
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str) or not path.startswith("/") or isinstance(route, Mount):
        return None
    return _CONVERTER.sub(r"{\1}", path)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _send_fault(rule: FaultRule, send: Send) -> None:
    headers = [(b"content-type", b"application/json; charset=utf-8")]
    headers += [(k.lower().encode(), v.encode()) for k, v in rule.headers.items()]
    await send({"type": "http.response.start", "status": rule.status, "headers": headers})
    await send({"type": "http.response.body", "body": rule.body})


async def _send_json(send: Send, status: int, body: object) -> None:
    raw = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json; charset=utf-8")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})


async def _send_text(
    send: Send, status: int, text: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8"), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": text.encode()})

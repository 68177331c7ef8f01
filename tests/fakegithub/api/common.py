"""What every REST route shares: authentication, repository lookup, errors, pagination."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..auth import AppAuth, Credentials
from ..gitrepo import BareRepo
from ..shapes import Shapes
from ..state import Repo, Store, User

if TYPE_CHECKING:
    from ..events import Events

DOCS = "https://docs.github.com/rest"
AuthRule = Literal["jwt", "token", "none"]


class ApiError(Exception):
    """Raised by a handler to answer with GitHub's error body."""

    def __init__(
        self,
        status: int,
        message: str,
        errors: Sequence[object] | None = None,
        documentation_url: str = DOCS,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = list(errors) if errors is not None else None
        self.documentation_url = documentation_url

    def response(self) -> Response:
        body: dict[str, Any] = {"message": self.message}
        if self.errors is not None:
            body["errors"] = self.errors
        body["documentation_url"] = self.documentation_url
        body["status"] = str(self.status)
        return JSONResponse(body, status_code=self.status)


def not_found() -> ApiError:
    return ApiError(404, "Not Found")


def validation_failed(resource: str, message: str, *, field: str | None = None) -> ApiError:
    error: dict[str, Any] = {"resource": resource, "code": "custom", "message": message}
    if field is not None:
        error["field"] = field
    return ApiError(422, "Validation Failed", [error])


def unprocessable(*messages: str) -> ApiError:
    return ApiError(422, "Unprocessable Entity", list(messages))


@dataclass
class ApiContext:
    store: Store
    shapes: Shapes
    auth: AppAuth
    events: Events
    git: Callable[[str], BareRepo]


class ApiRequest:
    """One authenticated request, with its repository resolved when the path names one."""

    def __init__(self, request: Request, credentials: Credentials, ctx: ApiContext) -> None:
        self.request = request
        self.credentials = credentials
        self.ctx = ctx
        self._repo: Repo | None = None

    @property
    def params(self) -> dict[str, str]:
        return dict(self.request.path_params)

    def query(self, name: str, default: str | None = None) -> str | None:
        return self.request.query_params.get(name, default)

    @property
    def repo(self) -> Repo:
        if self._repo is None:
            raise not_found()
        return self._repo

    @property
    def git(self) -> BareRepo:
        return self.ctx.git(self.repo.full_name)

    @property
    def actor(self) -> User:
        """Who GitHub says did it: the App's bot user for installation tokens."""
        return self.ctx.store.bot

    async def json(self) -> dict[str, Any]:
        raw = await self.request.body()
        if not raw:
            return {}
        try:
            loaded = json.loads(raw)
        except ValueError:
            raise ApiError(400, "Problems parsing JSON") from None
        if not isinstance(loaded, dict):
            raise ApiError(400, "Problems parsing JSON")
        return loaded

    def int_param(self, name: str) -> int:
        try:
            return int(self.params[name])
        except (KeyError, ValueError):
            raise not_found() from None

    def resolve_repo(self) -> None:
        owner, name = self.params.get("owner"), self.params.get("repo")
        if owner is None or name is None:
            return
        with self.ctx.store.lock:
            repo = self.ctx.store.repos.get(f"{owner}/{name}")
        token = self.credentials.token
        # GitHub hides repositories an installation cannot see behind a 404.
        if repo is None or token is None or repo.installation_id != token.installation_id:
            raise not_found()
        self._repo = repo


Handler = Callable[[ApiRequest], Awaitable[Response]]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(body, status_code=status, headers=headers)


def no_content() -> Response:
    return Response(status_code=204)


def _page(req: ApiRequest, items: Sequence[Any]) -> tuple[list[Any], dict[str, str] | None]:
    """One page of `items` and GitHub's Link header, honouring `per_page` (at most 100) and
    `page`."""
    try:
        per_page = min(max(int(req.query("per_page") or 30), 1), 100)
        page = max(int(req.query("page") or 1), 1)
    except ValueError:
        per_page, page = 30, 1
    start = (page - 1) * per_page
    chunk = list(items[start : start + per_page])
    last = max((len(items) + per_page - 1) // per_page, 1)
    links = []
    url = req.request.url
    if page < last:
        links.append(f'<{url.include_query_params(page=page + 1, per_page=per_page)}>; rel="next"')
        links.append(f'<{url.include_query_params(page=last, per_page=per_page)}>; rel="last"')
    if page > 1:
        links.append(f'<{url.include_query_params(page=page - 1, per_page=per_page)}>; rel="prev"')
        links.append(f'<{url.include_query_params(page=1, per_page=per_page)}>; rel="first"')
    return chunk, ({"link": ", ".join(links)} if links else None)


def paginate(req: ApiRequest, items: Sequence[Any]) -> Response:
    """One page of `items` (a JSON list) with GitHub's Link header."""
    chunk, headers = _page(req, items)
    return JSONResponse(chunk, headers=headers)


def paginate_wrapped(req: ApiRequest, key: str, items: Sequence[Any]) -> Response:
    """One page of `items` as the list endpoints that wrap them answer:
    ``{"total_count": <all pages>, key: [<this page>]}`` with the Link header."""
    chunk, headers = _page(req, items)
    return JSONResponse({"total_count": len(items), key: chunk}, headers=headers)


def endpoint(ctx: ApiContext, handler: Handler, auth: AuthRule) -> Callable[[Request], Any]:
    async def run(request: Request) -> Response:
        credentials = ctx.auth.from_header(request.headers.get("authorization"))
        try:
            if auth == "jwt" and credentials.kind != "jwt":
                raise ApiError(
                    401,
                    credentials.reason or "A JSON web token could not be decoded",
                )
            if auth == "token" and credentials.kind != "token":
                raise ApiError(401, credentials.reason or "Bad credentials")
            req = ApiRequest(request, credentials, ctx)
            if auth == "token":
                req.resolve_repo()
            return await handler(req)
        except ApiError as error:
            return error.response()

    return run


def route(
    ctx: ApiContext, path: str, handler: Handler, methods: list[str], auth: AuthRule = "token"
) -> Route:
    return Route(path, endpoint(ctx, handler, auth), methods=methods)

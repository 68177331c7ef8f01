"""The App itself: JWT-only endpoints, installation tokens, manifest conversion, users, limits."""

from __future__ import annotations

import secrets
import time
from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from ..shapes import iso
from .common import ApiContext, ApiError, ApiRequest, json_response, not_found, route


class AppRoutes:
    def __init__(self, ctx: ApiContext, webhook_secret: str | None) -> None:
        self.ctx = ctx
        self.webhook_secret = webhook_secret

    def routes(self) -> list[Route]:
        ctx = self.ctx
        return [
            route(ctx, "/app", self.get_app, ["GET"], auth="jwt"),
            route(ctx, "/app/installations", self.list_installations, ["GET"], auth="jwt"),
            route(ctx, "/app/installations/{id:int}", self.get_installation, ["GET"], auth="jwt"),
            route(
                ctx,
                "/app/installations/{id:int}/access_tokens",
                self.create_token,
                ["POST"],
                auth="jwt",
            ),
            route(
                ctx, "/repos/{owner}/{repo}/installation", self.repo_installation, ["GET"], "jwt"
            ),
            route(ctx, "/orgs/{org}/installation", self.account_installation, ["GET"], "jwt"),
            route(ctx, "/users/{org}/installation", self.account_installation, ["GET"], "jwt"),
            route(
                ctx, "/app-manifests/{code}/conversions", self.convert_manifest, ["POST"], "none"
            ),
            route(ctx, "/installation/repositories", self.installation_repos, ["GET"]),
            route(ctx, "/users/{username}", self.get_user, ["GET"], auth="none"),
            route(ctx, "/rate_limit", self.rate_limit, ["GET"], auth="none"),
        ]

    async def get_app(self, req: ApiRequest) -> Response:
        with self.ctx.store.lock:
            return json_response(self.ctx.shapes.app())

    async def list_installations(self, req: ApiRequest) -> Response:
        with self.ctx.store.lock:
            found = sorted(self.ctx.store.installations.values(), key=lambda i: i.id)
            return json_response([self.ctx.shapes.installation(i) for i in found])

    async def get_installation(self, req: ApiRequest) -> Response:
        with self.ctx.store.lock:
            inst = self.ctx.store.installations.get(req.int_param("id"))
            if inst is None:
                raise not_found()
            return json_response(self.ctx.shapes.installation(inst))

    async def create_token(self, req: ApiRequest) -> Response:
        inst_id = req.int_param("id")
        with self.ctx.store.lock:
            if inst_id not in self.ctx.store.installations:
                raise not_found()
            repos = [r for r in self.ctx.store.repos.values() if r.installation_id == inst_id]
        token = self.ctx.auth.mint(inst_id)
        body: dict[str, Any] = {
            "token": token.token,
            "expires_at": iso(token.expires_at),
            "permissions": {
                "issues": "write",
                "checks": "write",
                "contents": "write",
                "metadata": "read",
                "pull_requests": "write",
                "actions": "write",
                "deployments": "write",
            },
            "repository_selection": "all",
        }
        requested = (await req.json()).get("repositories")
        if requested:
            body["repository_selection"] = "selected"
            body["repositories"] = [
                self.ctx.shapes.repo(r) for r in repos if r.name in set(requested)
            ]
        return json_response(body, status=201)

    async def repo_installation(self, req: ApiRequest) -> Response:
        full = f"{req.params['owner']}/{req.params['repo']}"
        with self.ctx.store.lock:
            repo = self.ctx.store.repos.get(full)
            if repo is None or repo.installation_id is None:
                raise not_found()
            inst = self.ctx.store.installations[repo.installation_id]
            return json_response(self.ctx.shapes.installation(inst))

    async def account_installation(self, req: ApiRequest) -> Response:
        with self.ctx.store.lock:
            for inst in self.ctx.store.installations.values():
                if inst.account.login == req.params["org"]:
                    return json_response(self.ctx.shapes.installation(inst))
        raise not_found()

    async def convert_manifest(self, req: ApiRequest) -> Response:
        shapes = self.ctx.shapes
        with self.ctx.store.lock:
            body = shapes.app()
        body.update(
            {
                "client_secret": secrets.token_hex(20),
                "webhook_secret": self.webhook_secret,
                "pem": self.ctx.auth.private_key_pem,
            }
        )
        return json_response(body, status=201)

    async def installation_repos(self, req: ApiRequest) -> Response:
        token = req.credentials.token
        assert token is not None
        with self.ctx.store.lock:
            repos = [
                self.ctx.shapes.repo(r)
                for r in self.ctx.store.repos.values()
                if r.installation_id == token.installation_id
            ]
        return json_response(
            {"total_count": len(repos), "repository_selection": "all", "repositories": repos}
        )

    async def get_user(self, req: ApiRequest) -> Response:
        with self.ctx.store.lock:
            user = self.ctx.store.users.get(req.params["username"])
            if user is None:
                raise not_found()
            return json_response(self.ctx.shapes.public_user(user))

    async def rate_limit(self, req: ApiRequest) -> Response:
        reset = int(time.time()) + 3600
        used = sum(1 for r in self.ctx.store.requests if r.auth == "token")
        core = {"limit": 5000, "used": used, "remaining": max(5000 - used, 0), "reset": reset}
        search = {"limit": 30, "used": 0, "remaining": 30, "reset": reset}
        graphql = {"limit": 5000, "used": 0, "remaining": 5000, "reset": reset}
        return json_response(
            {"resources": {"core": core, "search": search, "graphql": graphql}, "rate": core}
        )


__all__ = ["ApiError", "AppRoutes"]

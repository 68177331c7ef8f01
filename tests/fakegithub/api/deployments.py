"""Deployments and their statuses."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from ..state import Deployment, DeploymentStatus
from .common import (
    ApiContext,
    ApiRequest,
    json_response,
    not_found,
    paginate,
    route,
    validation_failed,
)

STATES = ("error", "failure", "inactive", "in_progress", "queued", "pending", "success")


class DeploymentRoutes:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    def routes(self) -> list[Route]:
        ctx, base = self.ctx, "/repos/{owner}/{repo}/deployments"
        return [
            route(ctx, base, self.list_deployments, ["GET"]),
            route(ctx, base, self.create, ["POST"]),
            route(ctx, base + "/{id:int}", self.get, ["GET"]),
            route(ctx, base + "/{id:int}/statuses", self.list_statuses, ["GET"]),
            route(ctx, base + "/{id:int}/statuses", self.create_status, ["POST"]),
        ]

    def _deployment(self, req: ApiRequest) -> Deployment:
        found = self.ctx.store.deployments.get(req.int_param("id"))
        if found is None or found.repo != req.repo.full_name:
            raise not_found()
        return found

    async def create(self, req: ApiRequest) -> Response:
        body = await req.json()
        ref = body.get("ref")
        sha = req.git.resolve(ref) if isinstance(ref, str) else None
        if sha is None or not isinstance(ref, str):
            raise validation_failed("Deployment", f"No ref found for: {ref}", field="ref")
        environment = str(body.get("environment") or "production")
        store = self.ctx.store
        with store.lock:
            deployment = Deployment(
                id=store.next_id(),
                repo=req.repo.full_name,
                sha=sha,
                ref=ref,
                task=str(body.get("task") or "deploy"),
                payload=body.get("payload") or {},
                environment=environment,
                description=body.get("description"),
                creator=req.actor,
                transient_environment=bool(body.get("transient_environment", False)),
                production_environment=bool(
                    body.get("production_environment", environment == "production")
                ),
            )
            store.deployments[deployment.id] = deployment
            return json_response(self.ctx.shapes.deployment(deployment), status=201)

    async def list_deployments(self, req: ApiRequest) -> Response:
        wanted = {name: req.query(name) for name in ("sha", "ref", "task", "environment")}
        with self.ctx.store.lock:
            found = [
                self.ctx.shapes.deployment(d)
                for d in sorted(self.ctx.store.deployments.values(), key=lambda d: -d.id)
                if d.repo == req.repo.full_name
                and all(v is None or getattr(d, k) == v for k, v in wanted.items())
            ]
        return paginate(req, found)

    async def get(self, req: ApiRequest) -> Response:
        with self.ctx.store.lock:
            return json_response(self.ctx.shapes.deployment(self._deployment(req)))

    async def create_status(self, req: ApiRequest) -> Response:
        body = await req.json()
        state = body.get("state")
        if state not in STATES:
            raise validation_failed("DeploymentStatus", f"Invalid state {state!r}", field="state")
        store = self.ctx.store
        with store.lock:
            deployment = self._deployment(req)
            status = DeploymentStatus(
                id=store.next_id(),
                deployment_id=deployment.id,
                state=state,
                creator=req.actor,
                description=str(body.get("description") or ""),
                environment=str(body.get("environment") or deployment.environment),
                target_url=str(body.get("target_url") or ""),
                log_url=str(body.get("log_url") or ""),
                environment_url=str(body.get("environment_url") or ""),
            )
            deployment.statuses.append(status)
            return json_response(self.ctx.shapes.deployment_status(deployment, status), status=201)

    async def list_statuses(self, req: ApiRequest) -> Response:
        with self.ctx.store.lock:
            deployment = self._deployment(req)
            found = [
                self.ctx.shapes.deployment_status(deployment, s)
                for s in reversed(deployment.statuses)
            ]
        return paginate(req, found)

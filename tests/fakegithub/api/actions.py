"""GitHub Actions: workflows found in the repository, dispatches and the runs they create."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from ..state import WorkflowRun
from ..workflows import discover, find
from .common import (
    ApiContext,
    ApiRequest,
    json_response,
    no_content,
    not_found,
    route,
    unprocessable,
)


class ActionRoutes:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    def routes(self) -> list[Route]:
        ctx, base = self.ctx, "/repos/{owner}/{repo}/actions"
        return [
            route(ctx, base + "/workflows", self.list_workflows, ["GET"]),
            route(ctx, base + "/workflows/{workflow}", self.get_workflow, ["GET"]),
            route(ctx, base + "/workflows/{workflow}/dispatches", self.dispatch, ["POST"]),
            route(ctx, base + "/workflows/{workflow}/runs", self.list_runs, ["GET"]),
            route(ctx, base + "/runs", self.list_runs, ["GET"]),
            route(ctx, base + "/runs/{id:int}", self.get_run, ["GET"]),
        ]

    async def list_workflows(self, req: ApiRequest) -> Response:
        found = discover(self.ctx.store, req.repo, req.git)
        shaped = [self.ctx.shapes.workflow(req.repo, w.path, w.name, w.id) for w in found]
        return json_response({"total_count": len(shaped), "workflows": shaped})

    async def get_workflow(self, req: ApiRequest) -> Response:
        workflow = find(self.ctx.store, req.repo, req.git, req.params["workflow"])
        if workflow is None:
            raise not_found()
        return json_response(
            self.ctx.shapes.workflow(req.repo, workflow.path, workflow.name, workflow.id)
        )

    async def dispatch(self, req: ApiRequest) -> Response:
        body = await req.json()
        workflow = find(self.ctx.store, req.repo, req.git, req.params["workflow"])
        if workflow is None:
            raise not_found()
        if "workflow_dispatch" not in workflow.triggers:
            raise unprocessable("Workflow does not have 'workflow_dispatch' trigger")
        ref = body.get("ref")
        sha = req.git.resolve(ref) if isinstance(ref, str) else None
        if sha is None or not isinstance(ref, str):
            raise unprocessable(f"No ref found for: {ref}")
        store = self.ctx.store
        with store.lock:
            number = 1 + sum(
                1 for r in store.workflow_runs.values() if r.workflow_id == workflow.id
            )
            run = WorkflowRun(
                id=store.next_id(),
                repo=req.repo.full_name,
                workflow_id=workflow.id,
                workflow_path=workflow.path,
                name=workflow.name,
                head_branch=ref.removeprefix("refs/heads/"),
                head_sha=sha,
                run_number=number,
                actor=req.actor,
                inputs=dict(body.get("inputs") or {}),
            )
            store.workflow_runs[run.id] = run
        if body.get("return_run_details"):
            api = self.ctx.shapes.repo_api(req.repo.full_name)
            return json_response(
                {
                    "workflow_run_id": run.id,
                    "run_url": f"{api}/actions/runs/{run.id}",
                    "html_url": f"{self.ctx.shapes.web}/{run.repo}/actions/runs/{run.id}",
                }
            )
        return no_content()

    async def list_runs(self, req: ApiRequest) -> Response:
        key = req.params.get("workflow")
        workflow_id = None
        if key is not None:
            workflow = find(self.ctx.store, req.repo, req.git, key)
            if workflow is None:
                raise not_found()
            workflow_id = workflow.id
        filters = {name: req.query(name) for name in ("branch", "event", "status", "head_sha")}
        with self.ctx.store.lock:
            runs = [
                r
                for r in sorted(self.ctx.store.workflow_runs.values(), key=lambda r: -r.id)
                if r.repo == req.repo.full_name
                and (workflow_id is None or r.workflow_id == workflow_id)
                and (filters["branch"] is None or r.head_branch == filters["branch"])
                and (filters["event"] is None or r.event == filters["event"])
                and (filters["status"] in (None, r.status, r.conclusion))
                and (filters["head_sha"] is None or r.head_sha == filters["head_sha"])
            ]
            shaped = [self.ctx.shapes.workflow_run(r) for r in runs]
        return json_response({"total_count": len(shaped), "workflow_runs": shaped})

    async def get_run(self, req: ApiRequest) -> Response:
        with self.ctx.store.lock:
            run = self.ctx.store.workflow_runs.get(req.int_param("id"))
            if run is None or run.repo != req.repo.full_name:
                raise not_found()
            return json_response(self.ctx.shapes.workflow_run(run))

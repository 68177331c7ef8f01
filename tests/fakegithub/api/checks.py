"""Check runs: create, update, read, list per commit, annotations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from ..state import CheckRun, utcnow
from .common import (
    ApiContext,
    ApiRequest,
    json_response,
    not_found,
    paginate,
    paginate_wrapped,
    route,
    unprocessable,
    validation_failed,
)

STATUSES = ("queued", "in_progress", "completed", "waiting", "requested", "pending")
CONCLUSIONS = (
    "action_required",
    "cancelled",
    "failure",
    "neutral",
    "success",
    "skipped",
    "stale",
    "timed_out",
)
ANNOTATION_LEVELS = ("notice", "warning", "failure")
MAX_ANNOTATIONS = 50
MAX_ACTIONS = 3


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


class CheckRoutes:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    def routes(self) -> list[Route]:
        ctx, base = self.ctx, "/repos/{owner}/{repo}"
        return [
            route(ctx, base + "/check-runs", self.create, ["POST"]),
            route(ctx, base + "/check-runs/{id:int}", self.get, ["GET"]),
            route(ctx, base + "/check-runs/{id:int}", self.update, ["PATCH"]),
            route(ctx, base + "/check-runs/{id:int}/annotations", self.annotations, ["GET"]),
            route(ctx, base + "/commits/{ref:path}/check-runs", self.list_for_ref, ["GET"]),
        ]

    def _run(self, req: ApiRequest) -> CheckRun:
        found = self.ctx.store.check_runs.get(req.int_param("id"))
        if found is None or found.repo != req.repo.full_name:
            raise not_found()
        return found

    async def create(self, req: ApiRequest) -> Response:
        body = await req.json()
        name, head_sha = body.get("name"), body.get("head_sha")
        if not isinstance(name, str) or not name:
            raise validation_failed("CheckRun", "name wasn't supplied.", field="name")
        if not isinstance(head_sha, str) or req.git.object_type(head_sha) != "commit":
            raise unprocessable(f"No commit found for SHA: {head_sha}")
        self._validate(body)
        store = self.ctx.store
        with store.lock:
            run = CheckRun(
                id=store.next_id(),
                repo=req.repo.full_name,
                head_sha=req.git.rev_parse(head_sha) or head_sha,
                name=name,
                check_suite_id=store.check_suite_id(req.repo.full_name, head_sha),
                started_at=parse_time(body.get("started_at")) or utcnow(),
            )
            self._apply(run, body)
            store.check_runs[run.id] = run
            return json_response(self.ctx.shapes.check_run(run), status=201)

    async def update(self, req: ApiRequest) -> Response:
        body = await req.json()
        self._validate(body)
        with self.ctx.store.lock:
            run = self._run(req)
            if isinstance(body.get("name"), str):
                run.name = body["name"]
            self._apply(run, body)
            return json_response(self.ctx.shapes.check_run(run))

    async def get(self, req: ApiRequest) -> Response:
        with self.ctx.store.lock:
            return json_response(self.ctx.shapes.check_run(self._run(req)))

    async def annotations(self, req: ApiRequest) -> Response:
        with self.ctx.store.lock:
            run = self._run(req)
            blob = f"{self.ctx.shapes.web}/{run.repo}/blob/{run.head_sha}"
            items = [
                {
                    "path": a["path"],
                    "start_line": a["start_line"],
                    "end_line": a["end_line"],
                    "start_column": a.get("start_column"),
                    "end_column": a.get("end_column"),
                    "annotation_level": a["annotation_level"],
                    "title": a.get("title"),
                    "message": a["message"],
                    "raw_details": a.get("raw_details"),
                    "blob_href": f"{blob}/{a['path']}",
                }
                for a in run.annotations
            ]
        return paginate(req, items)

    async def list_for_ref(self, req: ApiRequest) -> Response:
        sha = req.git.resolve(req.params["ref"])
        if sha is None:
            raise unprocessable(f"No commit found for SHA: {req.params['ref']}")
        name, status = req.query("check_name"), req.query("status")
        app_id = req.query("app_id")
        if app_id is not None and app_id != str(self.ctx.shapes.app_id):
            # Every check run in the fake is this app's.
            return paginate_wrapped(req, "check_runs", [])
        with self.ctx.store.lock:
            runs = [
                r
                for r in sorted(self.ctx.store.check_runs.values(), key=lambda r: -r.id)
                if r.repo == req.repo.full_name
                and r.head_sha == sha
                and (name is None or r.name == name)
                and (status is None or r.status == status)
            ]
            if (req.query("filter") or "latest") == "latest":
                latest: dict[str, CheckRun] = {}
                for run in runs:
                    latest.setdefault(run.name, run)
                runs = list(latest.values())
            shaped = [self.ctx.shapes.check_run(r) for r in runs]
        return paginate_wrapped(req, "check_runs", shaped)

    # -- rules -----------------------------------------------------------------------------

    def _validate(self, body: dict[str, Any]) -> None:
        status = body.get("status")
        if status is not None and status not in STATUSES:
            raise validation_failed("CheckRun", f"Invalid status {status!r}", field="status")
        conclusion = body.get("conclusion")
        if conclusion is not None and conclusion not in CONCLUSIONS:
            raise validation_failed("CheckRun", f"Invalid conclusion {conclusion!r}")
        if status == "completed" and conclusion is None:
            raise validation_failed(
                "CheckRun", "conclusion must be set when status is completed", field="conclusion"
            )
        output = body.get("output")
        if output is not None:
            if not isinstance(output, dict) or not output.get("title") or not output.get("summary"):
                raise unprocessable("output requires a title and a summary")
            annotations = output.get("annotations") or []
            if len(annotations) > MAX_ANNOTATIONS:
                raise unprocessable(
                    f"Only {MAX_ANNOTATIONS} annotations are allowed per request; "
                    "send more with further updates"
                )
            for annotation in annotations:
                missing = [
                    k
                    for k in ("path", "start_line", "end_line", "annotation_level", "message")
                    if k not in annotation
                ]
                if missing or annotation.get("annotation_level") not in ANNOTATION_LEVELS:
                    raise unprocessable(f"Invalid annotation: missing {missing or 'level'}")
        actions = body.get("actions") or []
        if len(actions) > MAX_ACTIONS:
            raise unprocessable(f"Only {MAX_ACTIONS} actions are allowed per check run")

    def _apply(self, run: CheckRun, body: dict[str, Any]) -> None:
        for key in ("external_id", "details_url"):
            if isinstance(body.get(key), str):
                setattr(run, key, body[key])
        if body.get("status"):
            run.status = body["status"]
        if body.get("conclusion"):
            run.conclusion = body["conclusion"]
            run.status = "completed"
        if run.status == "completed" and run.completed_at is None:
            run.completed_at = parse_time(body.get("completed_at")) or utcnow()
        if body.get("status") == "in_progress" and run.started_at is None:
            run.started_at = utcnow()
        output = body.get("output")
        if isinstance(output, dict):
            run.output = {
                "title": output.get("title"),
                "summary": output.get("summary"),
                "text": output.get("text", run.output.get("text")),
            }
            # Annotations add up across updates, as on GitHub.
            run.annotations.extend(output.get("annotations") or [])
        if "actions" in body:
            run.actions = list(body.get("actions") or [])

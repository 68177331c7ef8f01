"""Check runs: create, update and find, with annotations sent 50 per request as GitHub allows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from ._base import RepoScope, fit, present
from .errors import github_errors
from .models import (
    CheckAction,
    CheckAnnotation,
    CheckConclusion,
    CheckOutput,
    CheckRun,
    CheckStatus,
)

if TYPE_CHECKING:
    from githubkit_schemas.latest.types import (
        ReposOwnerRepoCheckRunsCheckRunIdPatchBodyPropOutputType as PatchOutput,
    )

ANNOTATIONS_PER_REQUEST = 50
_OUTPUT_LIMIT = 65535


def _check_run(raw: Any) -> CheckRun:
    return CheckRun(
        id=raw.id,
        name=raw.name,
        head_sha=raw.head_sha,
        status=raw.status,
        conclusion=raw.conclusion,
        html_url=raw.html_url,
        external_id=raw.external_id,
    )


def _annotation(a: CheckAnnotation) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "path": a.path,
        "start_line": a.start_line,
        "end_line": a.end_line,
        "annotation_level": a.annotation_level,
        "message": a.message,
    }
    if a.title:
        payload["title"] = a.title
    if a.raw_details:
        payload["raw_details"] = a.raw_details
    # GitHub accepts columns only on single-line annotations.
    if a.start_line == a.end_line:
        if a.start_column is not None:
            payload["start_column"] = a.start_column
        if a.end_column is not None:
            payload["end_column"] = a.end_column
    return payload


def _output(output: CheckOutput, annotations: Sequence[CheckAnnotation]) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "title": output.title,
        "summary": fit(output.summary, _OUTPUT_LIMIT),
    }
    if output.text:
        payload["text"] = fit(output.text, _OUTPUT_LIMIT)
    if annotations:
        payload["annotations"] = [_annotation(a) for a in annotations]
    return payload


def _batches(annotations: Sequence[CheckAnnotation]) -> list[Sequence[CheckAnnotation]]:
    step = ANNOTATIONS_PER_REQUEST
    return [annotations[i : i + step] for i in range(0, len(annotations), step)] or [()]


def _actions(actions: Sequence[CheckAction]) -> list[dict[str, str]]:
    return [
        {"label": a.label, "description": a.description, "identifier": a.identifier}
        for a in actions
    ]


class CheckOps(RepoScope):
    async def create_check_run(
        self,
        name: str,
        head_sha: str,
        *,
        status: CheckStatus = "in_progress",
        conclusion: CheckConclusion | None = None,
        output: CheckOutput | None = None,
        actions: Sequence[CheckAction] = (),
        details_url: str | None = None,
        external_id: str | None = None,
    ) -> CheckRun:
        """Creates the check run; annotations past the first 50 follow in updates."""
        batches = _batches(output.annotations) if output else [()]
        fields: dict[str, Any] = {"name": name, "head_sha": head_sha, "status": status}
        if conclusion is not None:
            fields["conclusion"] = conclusion
            fields["status"] = "completed"
        if output is not None:
            fields["output"] = _output(output, batches[0])
        if actions:
            fields["actions"] = _actions(actions)
        if details_url:
            fields["details_url"] = details_url
        if external_id:
            fields["external_id"] = external_id
        with github_errors(f"create check run {name!r} on {self.full_name}"):
            response = await self.gh.rest.checks.async_create(self.owner, self.repo, **fields)
        run = _check_run(response.parsed_data)
        if output is not None and len(batches) > 1:
            run = await self._send_annotations(run.id, output, batches[1:])
        return run

    async def update_check_run(
        self,
        check_run_id: int,
        *,
        status: CheckStatus | None = None,
        conclusion: CheckConclusion | None = None,
        output: CheckOutput | None = None,
        actions: Sequence[CheckAction] | None = None,
        details_url: str | None = None,
    ) -> CheckRun:
        """Updates the check run; GitHub appends annotations, 50 per request."""
        batches = _batches(output.annotations) if output else [()]
        fields: dict[str, Any] = {}
        if status is not None:
            fields["status"] = status
        if conclusion is not None:
            fields["conclusion"] = conclusion
            fields["status"] = "completed"
        if output is not None:
            fields["output"] = _output(output, batches[0])
        if actions is not None:
            fields["actions"] = _actions(actions)
        if details_url:
            fields["details_url"] = details_url
        with github_errors(f"update check run {check_run_id} on {self.full_name}"):
            response = await self.gh.rest.checks.async_update(
                self.owner, self.repo, check_run_id, **fields
            )
        run = _check_run(response.parsed_data)
        if output is not None and len(batches) > 1:
            run = await self._send_annotations(run.id, output, batches[1:])
        return run

    async def _send_annotations(
        self, check_run_id: int, output: CheckOutput, batches: Sequence[Sequence[CheckAnnotation]]
    ) -> CheckRun:
        response = None
        for batch in batches:
            with github_errors(f"annotate check run {check_run_id} on {self.full_name}"):
                response = await self.gh.rest.checks.async_update(
                    self.owner,
                    self.repo,
                    check_run_id,
                    output=cast("PatchOutput", _output(output, batch)),
                )
        assert response is not None  # batches is never empty here
        return _check_run(response.parsed_data)

    async def list_check_runs(self, head_sha: str) -> tuple[CheckRun, ...]:
        """This app's latest check run of each name on commit ``head_sha``, newest first.

        Cost: one conditional request per 100 check runs on the commit (GitHub's page size),
        whatever the number of names: look the runs up once per sync and match by name,
        rather than calling :meth:`find_check_run` per name.
        """
        slug = self.bot_login.removesuffix("[bot]")
        runs: list[CheckRun] = []
        with github_errors(f"list check runs on {self.full_name}@{head_sha[:12]}"):
            async for raw in self.gh.rest.paginate(
                self.gh.rest.checks.async_list_for_ref,
                map_func=lambda response: response.parsed_data.check_runs,
                owner=self.owner,
                repo=self.repo,
                ref=head_sha,
                filter_="latest",
                per_page=100,
            ):
                if self._ours(raw, slug):
                    runs.append(_check_run(raw))
        return tuple(runs)

    async def find_check_run(self, name: str, head_sha: str) -> CheckRun | None:
        """This app's latest check run called ``name`` on commit ``head_sha``.

        Cost: one conditional request per call; for several names use
        :meth:`list_check_runs` once.
        """
        slug = self.bot_login.removesuffix("[bot]")
        with github_errors(f"look up check run {name!r} on {self.full_name}@{head_sha[:12]}"):
            response = await self.gh.rest.checks.async_list_for_ref(
                self.owner, self.repo, head_sha, check_name=name, filter_="latest"
            )
        for raw in response.parsed_data.check_runs:
            if raw.name == name and self._ours(raw, slug):
                return _check_run(raw)
        return None

    @staticmethod
    def _ours(raw: Any, slug: str) -> bool:
        app = present(raw.app)
        return app is None or present(app.slug) in (None, slug)

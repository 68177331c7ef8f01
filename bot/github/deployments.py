"""GitHub Actions workflow dispatches and runs; deployments and their statuses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from githubkit.utils import UNSET
from githubkit_schemas.latest.models import WorkflowDispatchResponse

from ._base import RepoScope, present
from .errors import GitHubError, github_errors
from .models import Deployment, DeploymentState, DeploymentStatus, WorkflowDispatch, WorkflowRun

_STATUS_DESCRIPTION_LIMIT = 140


class DeploymentOps(RepoScope):
    async def dispatch_workflow(
        self, workflow: str | int, ref: str, inputs: Mapping[str, str] | None = None
    ) -> WorkflowDispatch:
        """Starts ``workflow`` (file name such as ``deploy.yml``, or id) on ``ref``.

        Asks GitHub to name the run it started (``return_run_details``, February 2026);
        servers that do not know the flag (older GHES) are asked again without it.
        """
        body: dict[str, Any] = {"ref": ref, "return_run_details": True}
        if inputs:
            body["inputs"] = dict(inputs)
        try:
            return await self._dispatch(workflow, body)
        except GitHubError as exc:
            if exc.status not in (400, 422) or "return_run_details" not in exc.detail:
                raise
        del body["return_run_details"]
        return await self._dispatch(workflow, body)

    async def _dispatch(self, workflow: str | int, body: dict[str, Any]) -> WorkflowDispatch:
        # githubkit's typed method validates the body against a schema that predates
        # return_run_details and drops it, so this one request is sent as plain JSON.
        url = f"/repos/{self.owner}/{self.repo}/actions/workflows/{workflow}/dispatches"
        with github_errors(f"dispatch workflow {workflow} on {self.full_name}"):
            response = await self.gh.arequest(
                "POST", url, json=body, response_model=WorkflowDispatchResponse
            )
            if response.status_code == 204 or not response.content:
                return WorkflowDispatch(None, None)
            data = response.parsed_data
        return WorkflowDispatch(data.workflow_run_id, data.html_url)

    async def list_workflow_runs(
        self,
        workflow: str | int,
        *,
        branch: str | None = None,
        event: str | None = None,
        head_sha: str | None = None,
        limit: int = 30,
    ) -> tuple[WorkflowRun, ...]:
        """The most recent runs of ``workflow``, newest first."""
        with github_errors(f"list runs of workflow {workflow} on {self.full_name}"):
            response = await self.gh.rest.actions.async_list_workflow_runs(
                self.owner,
                self.repo,
                workflow,
                branch=branch or UNSET,
                event=event or UNSET,
                head_sha=head_sha or UNSET,
                per_page=min(max(limit, 1), 100),
            )
        return tuple(_workflow_run(run) for run in response.parsed_data.workflow_runs)

    async def get_workflow_run(self, run_id: int) -> WorkflowRun:
        with github_errors(f"read workflow run {run_id} on {self.full_name}"):
            response = await self.gh.rest.actions.async_get_workflow_run(
                self.owner, self.repo, run_id
            )
        return _workflow_run(response.parsed_data)

    async def create_deployment(
        self,
        ref: str,
        environment: str,
        *,
        description: str | None = None,
        payload: Mapping[str, Any] | None = None,
        required_contexts: Sequence[str] | None = None,
        transient: bool = False,
        production: bool | None = None,
    ) -> Deployment:
        """A deployment of ``ref``; never merges the default branch into it.

        ``required_contexts`` None lets GitHub require every status check on ``ref`` to pass.
        """
        fields: dict[str, Any] = {
            "ref": ref,
            "environment": environment,
            "auto_merge": False,
            "transient_environment": transient,
        }
        if description is not None:
            fields["description"] = description
        if payload is not None:
            fields["payload"] = dict(payload)
        if required_contexts is not None:
            fields["required_contexts"] = list(required_contexts)
        if production is not None:
            fields["production_environment"] = production
        with github_errors(f"create a {environment} deployment of {ref} on {self.full_name}"):
            response = await self.gh.rest.repos.async_create_deployment(
                self.owner, self.repo, **fields
            )
            raw = response.parsed_data
        return Deployment(raw.id, raw.ref, raw.sha, raw.environment)

    async def create_deployment_status(
        self,
        deployment_id: int,
        state: DeploymentState,
        *,
        environment_url: str | None = None,
        log_url: str | None = None,
        description: str | None = None,
    ) -> DeploymentStatus:
        fields: dict[str, Any] = {"state": state}
        if environment_url:
            fields["environment_url"] = environment_url
        if log_url:
            fields["log_url"] = log_url
        if description:
            fields["description"] = description[:_STATUS_DESCRIPTION_LIMIT]
        with github_errors(f"set deployment {deployment_id} to {state} on {self.full_name}"):
            response = await self.gh.rest.repos.async_create_deployment_status(
                self.owner, self.repo, deployment_id, **fields
            )
        raw = response.parsed_data
        return DeploymentStatus(raw.id, raw.state, present(raw.environment_url))


def _workflow_run(run: Any) -> WorkflowRun:
    return WorkflowRun(
        id=run.id,
        name=present(run.name),
        event=run.event,
        status=run.status,
        conclusion=run.conclusion,
        head_branch=run.head_branch,
        head_sha=run.head_sha,
        html_url=run.html_url,
        created_at=run.created_at,
    )

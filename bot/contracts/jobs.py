"""The jobs on the queue: one model per kind, its arq function name written once (``function``).

Ingress builds these from a delivery and enqueues ``job.kwargs()`` under ``job.function``; a worker
validates the keyword arguments back into the same model and hands it to the handler registered
for that model. A renamed or retyped field is then a type error on both sides, not a keyword
silently ignored. Every value is plain JSON-able data (arq stores it).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from bot.contracts.lifecycle import Stage


class Job(BaseModel):
    """A unit of work for a worker; ``function`` is the arq function it is enqueued under."""

    # Fields whose keyword on the queue is taken by the model itself (``name``) carry it as
    # their alias; the model is built by field name.
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    function: ClassVar[str]

    def kwargs(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


class DeliveryJob(Job):
    """Work a webhook delivery asked for. Every payload names its installation: a worker acts
    with that installation's token and never looks the installation up again."""

    installation_id: int
    delivery_id: str


class RepositoryJob(DeliveryJob):
    repo: str  # "owner/name" as the payload spells it


class FeatureStart(RepositoryJob):
    """The trigger label was added to an issue."""

    function: ClassVar[str] = "feature_start"
    issue_number: int
    sender: str | None
    sender_type: str | None


class CommandReceived(RepositoryJob):
    """A comment holds at least one `/factory` line (the worker parses all of them)."""

    function: ClassVar[str] = "command_received"
    issue_number: int
    is_pull_request: bool
    comment_id: int
    comment_kind: Literal["issue", "review"]
    body: str | None
    sender: str | None
    sender_type: str | None


class ReviewCommentCreated(RepositoryJob):
    """An inline comment on one of the bot's pull requests."""

    function: ClassVar[str] = "review_comment_created"
    pr_number: int
    comment_id: int
    in_reply_to_id: int | None
    body: str | None
    path: str
    line: int | None
    author: str
    author_type: str


class ReviewSubmitted(RepositoryJob):
    function: ClassVar[str] = "review_submitted"
    pr_number: int
    review_id: int
    state: str
    body: str | None
    reviewer: str
    reviewer_type: str


class PullRequestClosed(RepositoryJob):
    function: ClassVar[str] = "pr_closed"
    pr_number: int
    merged: bool
    head_ref: str


class PullRequestSynchronized(RepositoryJob):
    function: ClassVar[str] = "pr_synchronized"
    pr_number: int
    head_sha: str
    sender: str | None


class CheckRunRerequested(RepositoryJob):
    """A "Re-run" (or an action button) on a check run that may be one of ours."""

    function: ClassVar[str] = "check_rerequested"
    check_run_id: int
    check_name: str = Field(validation_alias="name", serialization_alias="name")
    head_sha: str
    external_id: str | None
    action_identifier: str | None
    sender: str | None
    sender_type: str | None


class CheckSuiteRerequested(RepositoryJob):
    function: ClassVar[str] = "check_suite_rerequested"
    head_sha: str
    sender: str | None
    sender_type: str | None


class WorkflowRunCompleted(RepositoryJob):
    function: ClassVar[str] = "workflow_run_completed"
    run_id: int
    workflow_id: int
    workflow_name: str | None = Field(validation_alias="name", serialization_alias="name")
    path: str
    head_branch: str | None
    head_sha: str
    conclusion: str | None
    event: str
    sender: str | None
    sender_type: str | None


class KnowledgeRefresh(RepositoryJob):
    """A push to the default branch."""

    function: ClassVar[str] = "knowledge_refresh"
    before: str
    after: str
    added: list[str]
    modified: list[str]
    removed: list[str]


class RepositoryRef(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int
    full_name: str


class InstallationChanged(DeliveryJob):
    function: ClassVar[str] = "installation_changed"
    action: str | None
    account: str | None
    repositories_added: list[RepositoryRef]
    repositories_removed: list[RepositoryRef]


class RunStep(Job):
    """One stage of a run, for the run's current round and attempt (enqueued by the
    coordinator under :func:`step_job_id`, so one step is queued once)."""

    function: ClassVar[str] = "run_step"
    feature_id: int
    stage: Stage
    round: int
    attempt: int

    @property
    def job_id(self) -> str:
        return step_job_id(self.feature_id, self.stage, self.round, self.attempt)


def step_job_id(feature_id: int, stage: Stage, round_: int, attempt: int) -> str:
    return f"feature:{feature_id}:{stage.value}:r{round_}:a{attempt}"


# Every job kind a delivery may produce, for the worker's registry and its tests.
DELIVERY_JOBS: tuple[type[DeliveryJob], ...] = (
    FeatureStart,
    CommandReceived,
    ReviewCommentCreated,
    ReviewSubmitted,
    PullRequestClosed,
    PullRequestSynchronized,
    CheckRunRerequested,
    CheckSuiteRerequested,
    WorkflowRunCompleted,
    KnowledgeRefresh,
    InstallationChanged,
)

"""Typed views of webhook payloads: exactly the fields routing reads, nothing more.

A delivery is validated against the view its route declares. githubkit's full event models
are stricter than GitHub itself: they require fields that GitHub added later (a label's
``archived_at``, an installation's ``app_slug``, a check run app's ``permissions``) and that
older payloads and GitHub Enterprise Server do not send, so a third of GitHub's own documented
examples fail them; they also cost 1-6 ms a delivery. A view fails only when a field the bot
acts on is missing or of the wrong type, and then the answer is 400 with that field's name.
Unknown fields are ignored, so GitHub adding fields never breaks ingress.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class View(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Account(View):
    login: str
    type: str = "User"


class InstallationRef(View):
    id: int


class RepositoryRef(View):
    full_name: str
    default_branch: str | None = None


class Envelope(View):
    """What every event may carry; enough for unrouted events and for the bot filter."""

    action: str | None = None
    installation: InstallationRef | None = None
    repository: RepositoryRef | None = None
    sender: Account | None = None


class Label(View):
    name: str


class IssueRef(View):
    number: int
    # Present (an object of links) when the "issue" is a pull request.
    pull_request: dict[str, Any] | None = None


class IssueLabeled(Envelope):
    repository: RepositoryRef
    issue: IssueRef
    label: Label | None = None


class Comment(View):
    id: int
    body: str | None = None
    user: Account | None = None
    # The author's relation to the repository (OWNER, MEMBER, COLLABORATOR, CONTRIBUTOR, NONE,
    # ...): enough for ingress to drop clear outsiders without asking GitHub; not a permission.
    author_association: str | None = None


class IssueCommented(Envelope):
    repository: RepositoryRef
    issue: IssueRef
    comment: Comment


class Head(View):
    ref: str
    sha: str


class PullRequestRef(View):
    number: int
    user: Account | None = None
    head: Head
    merged: bool | None = None


class PullRequestChanged(Envelope):
    repository: RepositoryRef
    pull_request: PullRequestRef


class ReviewComment(Comment):
    in_reply_to_id: int | None = None
    path: str
    line: int | None = None


class ReviewCommented(PullRequestChanged):
    comment: ReviewComment


class Review(View):
    id: int
    state: str
    body: str | None = None
    user: Account | None = None
    author_association: str | None = None


class ReviewSubmitted(PullRequestChanged):
    review: Review


class AppRef(View):
    id: int


class CheckRun(View):
    id: int
    name: str
    head_sha: str
    external_id: str | None = None
    app: AppRef | None = None


class RequestedAction(View):
    identifier: str


class CheckRunChanged(Envelope):
    repository: RepositoryRef
    check_run: CheckRun
    requested_action: RequestedAction | None = None


class CheckSuite(View):
    head_sha: str
    app: AppRef | None = None


class CheckSuiteChanged(Envelope):
    repository: RepositoryRef
    check_suite: CheckSuite


class WorkflowRun(View):
    id: int
    workflow_id: int
    name: str | None = None
    path: str
    head_branch: str | None = None
    head_sha: str
    conclusion: str | None = None
    event: str


class WorkflowRunChanged(Envelope):
    repository: RepositoryRef
    workflow_run: WorkflowRun


class PushedCommit(View):
    added: list[str] = Field(default_factory=list)
    modified: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)


class Pushed(Envelope):
    repository: RepositoryRef
    ref: str
    before: str
    after: str
    commits: list[PushedCommit] = Field(default_factory=list)


class InstalledApp(InstallationRef):
    account: Account | None = None


class RepositorySummary(View):
    id: int
    full_name: str


class InstallationChanged(Envelope):
    installation: InstalledApp
    repositories: list[RepositorySummary] | None = None


class InstallationRepositoriesChanged(Envelope):
    installation: InstalledApp
    repositories_added: list[RepositorySummary] = Field(default_factory=list)
    repositories_removed: list[RepositorySummary] = Field(default_factory=list)

"""In-memory records of everything the fake GitHub knows, guarded by one lock.

The HTTP app runs in uvicorn's thread while tests call the scenario API from theirs, so every
read-modify-write goes through `Store.lock` (re-entrant: scenario methods nest helpers).
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

BOT_LOGIN = "agent-factory[bot]"
APP_SLUG = "agent-factory"

ReactionSubject = tuple[Literal["issue", "issue_comment", "review_comment"], str, int]


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class User:
    login: str
    id: int
    type: str = "User"  # "User", "Bot" or "Organization"


@dataclass
class Installation:
    id: int
    account: User
    created_at: datetime = field(default_factory=utcnow)


@dataclass
class Label:
    id: int
    name: str
    color: str = "ededed"
    description: str | None = None


@dataclass
class Repo:
    id: int
    owner: User
    name: str
    path: Path
    default_branch: str
    private: bool
    installation_id: int | None
    created_at: datetime = field(default_factory=utcnow)
    pushed_at: datetime = field(default_factory=utcnow)
    permissions: dict[str, str] = field(default_factory=dict)
    labels: dict[str, Label] = field(default_factory=dict)
    # Workflow ids are stable per file path, assigned the first time a workflow file is seen.
    workflow_ids: dict[str, int] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        return f"{self.owner.login}/{self.name}"


@dataclass
class PullRequest:
    head_ref: str
    head_sha: str
    base_ref: str
    base_sha: str
    draft: bool = False
    merged: bool = False
    merged_at: datetime | None = None
    merged_by: User | None = None
    merge_commit_sha: str | None = None
    requested_reviewers: list[str] = field(default_factory=list)
    maintainer_can_modify: bool = False


@dataclass
class Issue:
    """An issue or, when `pull` is set, a pull request (GitHub numbers both from one sequence)."""

    id: int
    repo: str
    number: int
    title: str
    body: str | None
    user: User
    labels: list[str] = field(default_factory=list)
    state: str = "open"
    state_reason: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    closed_at: datetime | None = None
    closed_by: User | None = None
    pull: PullRequest | None = None


@dataclass
class Comment:
    id: int
    repo: str
    issue_number: int
    body: str
    user: User
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)


@dataclass
class Reaction:
    id: int
    subject: ReactionSubject
    content: str
    user: User
    created_at: datetime = field(default_factory=utcnow)


@dataclass
class Review:
    id: int
    repo: str
    pr_number: int
    user: User
    state: str  # APPROVED, CHANGES_REQUESTED, COMMENTED, PENDING, DISMISSED
    body: str
    commit_id: str
    submitted_at: datetime = field(default_factory=utcnow)


@dataclass
class ReviewComment:
    id: int
    repo: str
    pr_number: int
    review_id: int | None
    path: str
    line: int | None
    side: str
    body: str
    user: User
    commit_id: str
    diff_hunk: str
    in_reply_to_id: int | None = None
    start_line: int | None = None
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)


@dataclass
class CheckRun:
    id: int
    repo: str
    head_sha: str
    name: str
    status: str = "queued"
    conclusion: str | None = None
    external_id: str | None = None
    details_url: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    output: dict[str, str | None] = field(default_factory=dict)
    annotations: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, str]] = field(default_factory=list)
    check_suite_id: int = 0


@dataclass
class WorkflowRun:
    id: int
    repo: str
    workflow_id: int
    workflow_path: str
    name: str
    head_branch: str
    head_sha: str
    run_number: int
    actor: User
    event: str = "workflow_dispatch"
    status: str = "queued"
    conclusion: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)


@dataclass
class DeploymentStatus:
    id: int
    deployment_id: int
    state: str
    creator: User
    description: str = ""
    environment: str = ""
    target_url: str = ""
    log_url: str = ""
    environment_url: str = ""
    created_at: datetime = field(default_factory=utcnow)


@dataclass
class Deployment:
    id: int
    repo: str
    sha: str
    ref: str
    task: str
    payload: dict[str, Any] | str
    environment: str
    description: str | None
    creator: User
    transient_environment: bool = False
    production_environment: bool = False
    created_at: datetime = field(default_factory=utcnow)
    statuses: list[DeploymentStatus] = field(default_factory=list)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    status: int
    auth: str  # "jwt", "token", "basic", "none" or "invalid"
    # The REST route that served it, e.g. "/repos/{owner}/{repo}/contents/{path}"; None for
    # git smart HTTP, scripted faults and paths no route knows.
    route: str | None = None
    conditional: bool = False  # it carried If-None-Match


class Store:
    """All records, keyed the way the REST paths address them."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._ids = itertools.count(1001)
        self.users: dict[str, User] = {}
        self.installations: dict[int, Installation] = {}
        self.repos: dict[str, Repo] = {}
        self.issues: dict[tuple[str, int], Issue] = {}
        self.comments: dict[int, Comment] = {}
        self.reactions: list[Reaction] = []
        self.reviews: dict[int, Review] = {}
        self.review_comments: dict[int, ReviewComment] = {}
        self.check_runs: dict[int, CheckRun] = {}
        self.workflow_runs: dict[int, WorkflowRun] = {}
        self.deployments: dict[int, Deployment] = {}
        self.check_suites: dict[tuple[str, str], int] = {}
        # (org, team slug) -> logins of active members
        self.teams: dict[tuple[str, str], set[str]] = {}
        self.requests: list[RecordedRequest] = []
        self.bot = self.user(BOT_LOGIN, kind="Bot")

    def next_id(self) -> int:
        with self.lock:
            return next(self._ids)

    def user(self, login: str, *, kind: str | None = None) -> User:
        """The user with this login, created on first mention (GitHub users simply exist)."""
        with self.lock:
            found = self.users.get(login)
            if found is None:
                default_kind = "Bot" if login.endswith("[bot]") else "User"
                found = User(login=login, id=self.next_id(), type=kind or default_kind)
                self.users[login] = found
            elif kind is not None:
                found.type = kind
            return found

    def repo(self, full_name: str) -> Repo:
        with self.lock:
            try:
                return self.repos[full_name]
            except KeyError:
                raise KeyError(f"no repository {full_name!r} in the fake") from None

    def issue(self, repo: str, number: int) -> Issue:
        with self.lock:
            try:
                return self.issues[(repo, number)]
            except KeyError:
                raise KeyError(f"no issue or pull request {repo}#{number}") from None

    def next_issue_number(self, repo: str) -> int:
        with self.lock:
            numbers = [number for (name, number) in self.issues if name == repo]
            return max(numbers, default=0) + 1

    def pulls_of(self, repo: str) -> list[Issue]:
        with self.lock:
            return sorted(
                (i for (name, _), i in self.issues.items() if name == repo and i.pull is not None),
                key=lambda i: i.number,
            )

    def comments_of(self, repo: str, number: int) -> list[Comment]:
        with self.lock:
            return sorted(
                (c for c in self.comments.values() if c.repo == repo and c.issue_number == number),
                key=lambda c: c.id,
            )

    def reviews_of(self, repo: str, number: int) -> list[Review]:
        with self.lock:
            return sorted(
                (r for r in self.reviews.values() if r.repo == repo and r.pr_number == number),
                key=lambda r: r.id,
            )

    def review_comments_of(self, repo: str, number: int) -> list[ReviewComment]:
        with self.lock:
            return sorted(
                (
                    c
                    for c in self.review_comments.values()
                    if c.repo == repo and c.pr_number == number
                ),
                key=lambda c: c.id,
            )

    def reactions_on(self, subject: ReactionSubject) -> list[Reaction]:
        with self.lock:
            return [r for r in self.reactions if r.subject == subject]

    def check_suite_id(self, repo: str, head_sha: str) -> int:
        """GitHub groups an app's check runs on one commit into one check suite."""
        with self.lock:
            key = (repo, head_sha)
            if key not in self.check_suites:
                self.check_suites[key] = self.next_id()
            return self.check_suites[key]

    def installation_for(self, owner: str) -> int | None:
        """The installation a new repository of `owner` belongs to, if one is unambiguous."""
        with self.lock:
            for inst in self.installations.values():
                if inst.account.login == owner:
                    return inst.id
            if len(self.installations) == 1:
                return next(iter(self.installations))
            return None

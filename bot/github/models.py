"""Small typed results of GitHub operations (and the inputs that have structure).

Agents see these, never githubkit's models or raw dicts, so the rest of the code does not
depend on the shape of GitHub's payloads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import SecretStr

ReactionContent = Literal["+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"]
ReviewEvent = Literal["APPROVE", "REQUEST_CHANGES", "COMMENT"]
Side = Literal["LEFT", "RIGHT"]
CheckStatus = Literal["queued", "in_progress", "completed"]
CheckConclusion = Literal[
    "action_required", "cancelled", "failure", "neutral", "success", "skipped", "timed_out"
]
AnnotationLevel = Literal["notice", "warning", "failure"]
DeploymentState = Literal[
    "error", "failure", "inactive", "in_progress", "queued", "pending", "success"
]


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """Who the app is on GitHub; commits are authored as ``login`` with ``email``."""

    app_id: int
    slug: str
    name: str
    user_id: int
    login: str
    email: str


@dataclass(frozen=True, slots=True)
class RepoInfo:
    id: int
    full_name: str
    default_branch: str
    clone_url: str
    private: bool
    html_url: str


def repo_info_from_payload(repository: Mapping[str, Any]) -> RepoInfo:
    """The metadata a webhook's ``repository`` object carries: no request needed to know it."""
    return RepoInfo(
        id=int(repository["id"]),
        full_name=str(repository["full_name"]),
        default_branch=str(repository["default_branch"]),
        clone_url=str(repository["clone_url"]),
        private=bool(repository["private"]),
        html_url=str(repository["html_url"]),
    )


@dataclass(frozen=True, slots=True)
class Issue:
    number: int
    title: str
    body: str
    state: str
    author: str
    labels: tuple[str, ...]
    is_pull_request: bool
    html_url: str


@dataclass(frozen=True, slots=True)
class IssueComment:
    id: int
    body: str
    author: str
    author_is_bot: bool
    html_url: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Reaction:
    id: int
    content: str


@dataclass(frozen=True, slots=True)
class RepoFile:
    path: str
    sha: str
    ref: str | None
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class TreeEntry:
    path: str
    type: str  # "blob", "tree" or "commit" (a submodule)
    sha: str
    mode: str
    size: int | None


@dataclass(frozen=True, slots=True)
class Tree:
    sha: str
    entries: tuple[TreeEntry, ...]
    truncated: bool  # GitHub stops at 100,000 entries / 7 MB; clone to see the rest


@dataclass(frozen=True, slots=True)
class Branch:
    name: str
    sha: str


@dataclass(frozen=True, slots=True)
class PullRequest:
    number: int
    html_url: str
    state: str
    draft: bool
    title: str
    body: str
    author: str
    head_ref: str
    head_sha: str
    base_ref: str
    merged: bool = False


@dataclass(frozen=True, slots=True)
class PullFile:
    filename: str
    status: str
    patch: str | None  # None for binary files and diffs GitHub will not render
    previous_filename: str | None = None


@dataclass(frozen=True, slots=True)
class ReviewComment:
    """An inline comment to post: on ``line`` (or ``start_line``..``line``) of ``path``.

    ``side`` RIGHT is the new version of the file (added or unchanged lines), LEFT the old one.
    """

    path: str
    line: int
    body: str
    side: Side = "RIGHT"
    start_line: int | None = None


@dataclass(frozen=True, slots=True)
class PostedReview:
    id: int
    html_url: str
    event: ReviewEvent
    inline: tuple[ReviewComment, ...]
    moved_to_body: tuple[ReviewComment, ...]


@dataclass(frozen=True, slots=True)
class SubmittedReview:
    """A review someone posted: its verdict (``state``) and text."""

    id: int
    author: str
    state: str
    body: str


@dataclass(frozen=True, slots=True)
class PostedReviewComment:
    """An inline comment someone left in a review thread."""

    id: int
    author: str
    path: str
    line: int | None
    body: str
    review_id: int | None = None


@dataclass(frozen=True, slots=True)
class ReviewCommentReply:
    id: int
    html_url: str
    in_reply_to_id: int


@dataclass(frozen=True, slots=True)
class CheckAnnotation:
    path: str
    start_line: int
    end_line: int
    annotation_level: AnnotationLevel
    message: str
    title: str | None = None
    start_column: int | None = None
    end_column: int | None = None
    raw_details: str | None = None


@dataclass(frozen=True, slots=True)
class CheckAction:
    """A button on the check run page; GitHub sends ``identifier`` back in a webhook."""

    label: str
    description: str
    identifier: str

    def __post_init__(self) -> None:
        # GitHub's limits; checked here so a bad button fails where it is made, not mid-run.
        for name, limit in (("label", 20), ("description", 40), ("identifier", 20)):
            if not 0 < len(getattr(self, name)) <= limit:
                raise ValueError(f"check run action {name} must be 1-{limit} characters")


@dataclass(frozen=True, slots=True)
class CheckOutput:
    title: str
    summary: str
    text: str | None = None
    annotations: tuple[CheckAnnotation, ...] = ()


@dataclass(frozen=True, slots=True)
class CheckRun:
    id: int
    name: str
    head_sha: str
    status: str
    conclusion: str | None
    html_url: str | None
    external_id: str | None


@dataclass(frozen=True, slots=True)
class WorkflowDispatch:
    """GitHub names the run it started only when asked to (newer API versions, not GHES)."""

    run_id: int | None
    html_url: str | None


@dataclass(frozen=True, slots=True)
class WorkflowRun:
    id: int
    name: str | None
    event: str
    status: str | None
    conclusion: str | None
    head_branch: str | None
    head_sha: str
    html_url: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Deployment:
    id: int
    ref: str
    sha: str
    environment: str


@dataclass(frozen=True, slots=True)
class DeploymentStatus:
    id: int
    state: str
    environment_url: str | None


@dataclass(frozen=True, slots=True)
class RepoPermission:
    """``permission`` is admin, write, read or none (GitHub folds maintain into write and
    triage into read); ``role_name`` is the role itself, custom roles included."""

    username: str
    permission: str
    role_name: str

    @property
    def can_write(self) -> bool:
        return self.permission in ("admin", "write")


@dataclass(frozen=True, slots=True)
class AppCredentials:
    """What GitHub returns once for an app made from a manifest; keep the secrets safe."""

    app_id: int
    slug: str
    name: str
    owner: str
    html_url: str
    client_id: str
    client_secret: SecretStr = field(repr=False)
    webhook_secret: SecretStr | None = field(repr=False)
    private_key: SecretStr = field(repr=False)

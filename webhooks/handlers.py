"""Every route the bot answers, and the jobs each one asks for.

A job is one of the typed models of :mod:`bot.contracts.jobs`, which the worker validates its
keyword arguments back into: a field this module does not fill is a type error here.
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.contracts import jobs
from bot.contracts.commands import parse_commands
from webhooks.context import EventContext, RouteEnv, is_bot_account
from webhooks.installation_routes import installation_changed, installation_repositories_changed
from webhooks.payloads import (
    Account,
    CheckRunChanged,
    CheckSuiteChanged,
    Envelope,
    IssueCommented,
    IssueLabeled,
    PullRequestChanged,
    PullRequestRef,
    Pushed,
    ReviewCommented,
    ReviewSubmitted,
    WorkflowRunChanged,
)
from webhooks.router import Ignore, Router, RouteResult, on

BOT_BRANCH_PREFIX = "factory/"
BOT_CHECK_PREFIX = "Agent Factory"

# Author associations that rule out write access. Reviews and review comments from these
# authors are dropped here, without asking GitHub, so a drive-by reviewer queues no job at all.
# OWNER, MEMBER and COLLABORATOR do not prove write access (a member may only read, a
# collaborator may only triage): the worker asks GitHub for those.
OUTSIDE_ASSOCIATIONS: frozenset[str] = frozenset(
    {"NONE", "FIRST_TIMER", "FIRST_TIME_CONTRIBUTOR", "MANNEQUIN", "CONTRIBUTOR"}
)


def has_command(body: str | None) -> bool:
    """Whether a comment holds a ``/factory`` line; the worker parses it in full.

    Uses the worker's own parser so that ingress and worker can never disagree on what a
    command line is (fenced code, quotes and HTML comments excluded).
    """
    return body is not None and bool(parse_commands(body))


def is_bot_pull_request(pull_request: PullRequestRef, env: RouteEnv) -> bool:
    author = pull_request.user.login if pull_request.user is not None else None
    return author == env.bot_login or pull_request.head.ref.startswith(BOT_BRANCH_PREFIX)


def _author(user: Account | None, ctx: EventContext[Envelope]) -> tuple[str, str]:
    """Login and account type of who wrote a review or comment (the sender if not given)."""
    if user is not None:
        return user.login, user.type
    return ctx.sender_login or "ghost", ctx.sender_type or "User"


def _cannot_steer(kind: str, login: str, login_type: str, association: str | None) -> Ignore | None:
    """Why a review or review comment by this author is dropped at ingress, if it is."""
    if is_bot_account(login, login_type):
        return Ignore(f"{kind} by {login}, a bot: bots never steer a run")
    if association is not None and association.upper() in OUTSIDE_ASSOCIATIONS:
        return Ignore(
            f"{kind} by {login} (author association {association.upper()}) cannot steer a run: "
            "only people with write access can"
        )
    return None


def _installation(ctx: EventContext[Envelope]) -> int:
    # The router only calls handlers that need an installation when there is one.
    installation_id = ctx.installation_id
    if installation_id is None:
        raise ValueError(f"{ctx.key} without an installation reached a handler")
    return installation_id


@on("ping", payload=Envelope, needs_installation=False)
async def ping(ctx: EventContext[Envelope], env: RouteEnv) -> RouteResult:
    return Ignore("ping: hook configured")


@on("issues.labeled", payload=IssueLabeled)
async def start_feature(ctx: EventContext[IssueLabeled], env: RouteEnv) -> RouteResult:
    label = ctx.payload.label
    if label is None:
        return Ignore("issues.labeled without a label")
    repo = ctx.payload.repository.full_name
    trigger = await env.trigger_label(repo)
    # GitHub label names are unique per repository regardless of case.
    if label.name.casefold() != trigger.casefold():
        return Ignore(f"label {label.name!r} is not the trigger label {trigger!r}")
    return [
        jobs.FeatureStart(
            installation_id=_installation(ctx),
            repo=repo,
            issue_number=ctx.payload.issue.number,
            sender=ctx.sender_login,
            sender_type=ctx.sender_type,
            delivery_id=ctx.delivery_id,
        )
    ]


@on("issue_comment.created", payload=IssueCommented)
async def issue_command(ctx: EventContext[IssueCommented], env: RouteEnv) -> RouteResult:
    comment = ctx.payload.comment
    if not has_command(comment.body):
        return Ignore("comment has no /factory command")
    return [
        jobs.CommandReceived(
            installation_id=_installation(ctx),
            repo=ctx.payload.repository.full_name,
            issue_number=ctx.payload.issue.number,
            is_pull_request=ctx.payload.issue.pull_request is not None,
            comment_id=comment.id,
            comment_kind="issue",
            body=comment.body,
            sender=ctx.sender_login,
            sender_type=ctx.sender_type,
            delivery_id=ctx.delivery_id,
        )
    ]


@on("issue_comment.edited", payload=Envelope, needs_installation=False)
async def edited_comment(ctx: EventContext[Envelope], env: RouteEnv) -> RouteResult:
    return Ignore("edited comments are not re-run; post a new comment to run a command again")


@on("pull_request_review_comment.created", payload=ReviewCommented)
async def review_comment(ctx: EventContext[ReviewCommented], env: RouteEnv) -> RouteResult:
    comment = ctx.payload.comment
    pull_request = ctx.payload.pull_request
    if has_command(comment.body):
        return [
            jobs.CommandReceived(
                installation_id=_installation(ctx),
                repo=ctx.payload.repository.full_name,
                issue_number=pull_request.number,
                is_pull_request=True,
                comment_id=comment.id,
                comment_kind="review",
                body=comment.body,
                sender=ctx.sender_login,
                sender_type=ctx.sender_type,
                delivery_id=ctx.delivery_id,
            )
        ]
    if not is_bot_pull_request(pull_request, env):
        return Ignore("review comment on a pull request the bot did not open")
    author, author_type = _author(comment.user, ctx)
    refused = _cannot_steer("review comment", author, author_type, comment.author_association)
    if refused is not None:
        return refused
    return [
        jobs.ReviewCommentCreated(
            installation_id=_installation(ctx),
            repo=ctx.payload.repository.full_name,
            pr_number=pull_request.number,
            comment_id=comment.id,
            in_reply_to_id=comment.in_reply_to_id,
            body=comment.body,
            path=comment.path,
            line=comment.line,
            author=author,
            author_type=author_type,
            delivery_id=ctx.delivery_id,
        )
    ]


@on("pull_request_review.submitted", payload=ReviewSubmitted)
async def review_submitted(ctx: EventContext[ReviewSubmitted], env: RouteEnv) -> RouteResult:
    pull_request = ctx.payload.pull_request
    if not is_bot_pull_request(pull_request, env):
        return Ignore("review on a pull request the bot did not open")
    review = ctx.payload.review
    reviewer, reviewer_type = _author(review.user, ctx)
    refused = _cannot_steer("review", reviewer, reviewer_type, review.author_association)
    if refused is not None:
        return refused
    return [
        jobs.ReviewSubmitted(
            installation_id=_installation(ctx),
            repo=ctx.payload.repository.full_name,
            pr_number=pull_request.number,
            review_id=review.id,
            state=review.state,
            body=review.body,
            reviewer=reviewer,
            reviewer_type=reviewer_type,
            delivery_id=ctx.delivery_id,
        )
    ]


@on("pull_request.closed", payload=PullRequestChanged)
async def pr_closed(ctx: EventContext[PullRequestChanged], env: RouteEnv) -> RouteResult:
    pull_request = ctx.payload.pull_request
    if not is_bot_pull_request(pull_request, env):
        return Ignore("closed pull request was not opened by the bot")
    return [
        jobs.PullRequestClosed(
            installation_id=_installation(ctx),
            repo=ctx.payload.repository.full_name,
            pr_number=pull_request.number,
            merged=bool(pull_request.merged),
            head_ref=pull_request.head.ref,
            delivery_id=ctx.delivery_id,
        )
    ]


@on("pull_request.synchronize", payload=PullRequestChanged)
async def pr_synchronized(ctx: EventContext[PullRequestChanged], env: RouteEnv) -> RouteResult:
    pull_request = ctx.payload.pull_request
    if not is_bot_pull_request(pull_request, env):
        return Ignore("pushed pull request was not opened by the bot")
    return [
        jobs.PullRequestSynchronized(
            installation_id=_installation(ctx),
            repo=ctx.payload.repository.full_name,
            pr_number=pull_request.number,
            head_sha=pull_request.head.sha,
            sender=ctx.sender_login,
            delivery_id=ctx.delivery_id,
        )
    ]


@on("check_run.rerequested", "check_run.requested_action", payload=CheckRunChanged)
async def check_rerequested(ctx: EventContext[CheckRunChanged], env: RouteEnv) -> RouteResult:
    check_run = ctx.payload.check_run
    ours = (
        check_run.app is not None and env.app_id is not None and check_run.app.id == env.app_id
    ) or check_run.name.startswith(BOT_CHECK_PREFIX)
    if not ours:
        return Ignore(f"check run {check_run.name!r} belongs to another app")
    requested = ctx.payload.requested_action
    return [
        jobs.CheckRunRerequested(
            installation_id=_installation(ctx),
            repo=ctx.payload.repository.full_name,
            check_run_id=check_run.id,
            check_name=check_run.name,
            head_sha=check_run.head_sha,
            external_id=check_run.external_id,
            action_identifier=requested.identifier if requested is not None else None,
            # Who pressed the button: the worker checks their permission.
            sender=ctx.sender_login,
            sender_type=ctx.sender_type,
            delivery_id=ctx.delivery_id,
        )
    ]


@on("check_suite.rerequested", payload=CheckSuiteChanged)
async def check_suite_rerequested(
    ctx: EventContext[CheckSuiteChanged], env: RouteEnv
) -> RouteResult:
    suite = ctx.payload.check_suite
    if suite.app is None or env.app_id is None or suite.app.id != env.app_id:
        return Ignore("check suite belongs to another app")
    return [
        jobs.CheckSuiteRerequested(
            installation_id=_installation(ctx),
            repo=ctx.payload.repository.full_name,
            head_sha=suite.head_sha,
            sender=ctx.sender_login,
            sender_type=ctx.sender_type,
            delivery_id=ctx.delivery_id,
        )
    ]


# The bot dispatches workflows and pushes the commits that CI runs on, so the run's sender
# is often the bot itself; its result is what the bot waits for, not an echo to ignore.
# Anyone else's run matters only on the bot's branches; the worker checks that sender's
# permission before the run may start anything.
@on("workflow_run.completed", payload=WorkflowRunChanged, accepts_own_bot=True)
async def workflow_run_completed(
    ctx: EventContext[WorkflowRunChanged], env: RouteEnv
) -> RouteResult:
    run = ctx.payload.workflow_run
    branch = run.head_branch or ""
    if ctx.sender_login != env.bot_login and not branch.startswith(BOT_BRANCH_PREFIX):
        return Ignore(
            f"workflow run on {run.head_branch!r} by {ctx.sender_login}: "
            "the bot follows only its own runs and its branches"
        )
    return [
        jobs.WorkflowRunCompleted(
            installation_id=_installation(ctx),
            repo=ctx.payload.repository.full_name,
            run_id=run.id,
            workflow_id=run.workflow_id,
            workflow_name=run.name,
            path=run.path,
            head_branch=run.head_branch,
            head_sha=run.head_sha,
            conclusion=run.conclusion,
            event=run.event,
            sender=ctx.sender_login,
            sender_type=ctx.sender_type,
            delivery_id=ctx.delivery_id,
        )
    ]


@on("push", payload=Pushed)
async def knowledge_refresh(ctx: EventContext[Pushed], env: RouteEnv) -> RouteResult:
    push = ctx.payload
    default_branch = push.repository.default_branch
    if default_branch is None or push.ref != f"refs/heads/{default_branch}":
        return Ignore(f"push to {push.ref}, not the default branch {default_branch!r}")
    return [
        jobs.KnowledgeRefresh(
            installation_id=_installation(ctx),
            repo=ctx.payload.repository.full_name,
            before=push.before,
            after=push.after,
            added=_union(commit.added for commit in push.commits),
            modified=_union(commit.modified for commit in push.commits),
            removed=_union(commit.removed for commit in push.commits),
            delivery_id=ctx.delivery_id,
        )
    ]


def _union(lists: Iterable[list[str]]) -> list[str]:
    """Paths in first-seen order, each once."""
    return list(dict.fromkeys(path for paths in lists for path in paths))


ROUTES = (
    ping,
    start_feature,
    issue_command,
    edited_comment,
    review_comment,
    review_submitted,
    pr_closed,
    pr_synchronized,
    check_rerequested,
    check_suite_rerequested,
    workflow_run_completed,
    knowledge_refresh,
    installation_changed,
    installation_repositories_changed,
)


def build_router() -> Router:
    return Router(ROUTES)

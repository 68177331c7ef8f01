"""`FakeGitHub`: the state, the ASGI app, and the scenario and inspection API tests use.

Scenario methods act as a human on GitHub would (open an issue, label it, review, merge) and,
when a webhook sink is set, deliver the signed webhook GitHub would send. Inspection methods
return the state records so tests can assert what a user would see.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp

from .api.actions import ActionRoutes
from .api.apps import AppRoutes
from .api.checks import CheckRoutes
from .api.common import ApiContext
from .api.deployments import DeploymentRoutes
from .api.issues import IssueRoutes, ensure_label
from .api.pulls import PullRoutes
from .api.repos import ROLES, RepoRoutes
from .app import FakeGitHubApp, api_app
from .auth import AppAuth
from .delivery import Delivery, WebhookSink
from .events import Events
from .faults import FaultInjector, FaultRule
from .gitrepo import EMPTY_SHA, BareRepo, CommitInfo
from .payloads import WebhookPayloads, default_fixtures_dir
from .pullops import PullOps, author_of
from .shapes import Shapes
from .state import (
    CheckRun,
    Comment,
    Deployment,
    Installation,
    Issue,
    Reaction,
    RecordedRequest,
    Repo,
    Review,
    ReviewComment,
    Store,
    User,
    WorkflowRun,
    utcnow,
)
from .workflows import discover

PLACEHOLDER_BASE_URL = "http://testserver"


class FakeGitHub:
    def __init__(
        self,
        data_dir: Path,
        *,
        webhook_secret: str | None = None,
        fixtures_dir: Path | None = None,
        app_id: int | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.repos_root = self.data_dir / "repos"
        self.repos_root.mkdir(parents=True, exist_ok=True)
        self.webhook_secret = webhook_secret
        self.base_url: str | None = None
        # A fresh id per fake: clients cache JWTs and tokens by app id across tests.
        self.app_id = app_id if app_id is not None else 100_000 + secrets.randbelow(900_000)
        self.client_id = "Iv1." + secrets.token_hex(8)
        self.store = Store()
        self._auth = AppAuth(self.app_id, self.client_id)
        self.faults = FaultInjector()
        self._sink = WebhookSink()
        self.shapes = Shapes(
            self.store,
            lambda: self.base_url or PLACEHOLDER_BASE_URL,
            self.app_id,
            self.client_id,
            self.git,
        )
        payloads = WebhookPayloads(fixtures_dir or default_fixtures_dir(), self.shapes, self.store)
        self.events = Events(
            self.store, payloads, self._sink, self.git, lambda: self.webhook_secret
        )
        self._payloads = payloads
        self.pull_ops = PullOps(self.store, self.git, self.events)
        ctx = ApiContext(self.store, self.shapes, self._auth, self.events, self.git)
        routes = [
            *AppRoutes(ctx, webhook_secret).routes(),
            *RepoRoutes(ctx).routes(),
            *IssueRoutes(ctx).routes(),
            *PullRoutes(ctx, self.pull_ops).routes(),
            *CheckRoutes(ctx).routes(),
            *ActionRoutes(ctx).routes(),
            *DeploymentRoutes(ctx).routes(),
        ]
        self.app: ASGIApp = FakeGitHubApp(
            store=self.store,
            auth=self._auth,
            faults=self.faults,
            events=self.events,
            api=api_app(routes),
            repos_root=self.repos_root,
            git=self.git,
        )

    # -- credentials -----------------------------------------------------------------------

    @property
    def private_key_pem(self) -> str:
        return self._auth.private_key_pem

    @property
    def tokens_minted(self) -> int:
        return self._auth.tokens_minted

    @property
    def api_url(self) -> str:
        return (self.base_url or PLACEHOLDER_BASE_URL) + "/api/v3"

    def write_private_key(self, path: Path | None = None) -> Path:
        target = path or self.data_dir / "app-private-key.pem"
        target.write_text(self.private_key_pem)
        target.chmod(0o600)
        return target

    def mint_token(self, installation_id: int) -> str:
        """An installation token without going through the API (for tests that clone directly)."""
        return self._auth.mint(installation_id).token

    def expire_token(self, token: str) -> None:
        self._auth.expire(token)

    # -- plumbing --------------------------------------------------------------------------

    def git(self, full_name: str) -> BareRepo:
        return BareRepo(self.repos_root / f"{full_name}.git")

    def clone_url(self, repo: str) -> str:
        return f"{self.base_url or PLACEHOLDER_BASE_URL}/{repo}.git"

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int = 429,
        headers: dict[str, str] | None = None,
        times: int = 1,
        body: dict[str, Any] | str | bytes | None = None,
        *,
        secondary: bool = False,
    ) -> FaultRule:
        """Answer the next `times` requests whose path (relative to /api/v3 for the API)
        matches `path_regex` with `status`: GitHub's rate-limit bodies and headers by default
        (403 is the primary limit unless `secondary`), or a server error for 5xx."""
        return self.faults.fail_next(
            method,
            path_regex,
            status=status,
            headers=headers,
            times=times,
            body=body,
            secondary=secondary,
        )

    @property
    def requests(self) -> list[RecordedRequest]:
        with self.store.lock:
            return list(self.store.requests)

    # -- webhooks --------------------------------------------------------------------------

    def set_webhook_sink(self, url: str | None = None, asgi_app: ASGIApp | None = None) -> None:
        """Deliver webhooks to `url`, or into `asgi_app` at path `url` (default
        /webhooks/github). Call it from the event loop the app's resources live on."""
        self._sink.configure(url, asgi_app)

    @property
    def deliver_own_events(self) -> bool:
        """Whether the bot's own actions (PRs, pushes, comments it makes) fire webhooks, as on
        GitHub (default True); switch off to see only what humans do."""
        return self.events.deliver_own_events

    @deliver_own_events.setter
    def deliver_own_events(self, value: bool) -> None:
        self.events.deliver_own_events = value

    @property
    def deliveries(self) -> list[Delivery]:
        return list(self._sink.deliveries)

    def wait_for_deliveries(self, timeout: float = 10.0) -> list[Delivery]:
        return self._sink.wait(timeout)

    async def settle_webhooks(self, timeout: float = 10.0) -> list[Delivery]:
        return await self._sink.settle(timeout)

    def build_webhook(
        self, event: str, action: str | None = None, **refs: Any
    ) -> tuple[dict[str, str], bytes]:
        """Headers and body of a signed delivery built from state. `refs`: repo (full name,
        required), sender (login), number, comment_id, label, review_id, review_comment_id,
        check_run_id, workflow_run_id, deployment_id, and for push: ref, before, after."""
        repo = self.store.repo(refs.pop("repo"))
        sender = self.store.user(refs.pop("sender", "alice"))
        parts = self._parts(event, repo, sender, refs)
        return self.events.build(event, action, repo, sender, **parts)

    def deliver(self, event: str, action: str | None = None, **refs: Any) -> Delivery:
        """Build (as `build_webhook`) and send one delivery to the sink."""
        if not self._sink.active:
            raise RuntimeError("set_webhook_sink() first")
        headers, body = self.build_webhook(event, action, **refs)
        return self.events.send(event, action, headers, body)

    def _parts(self, event: str, repo: Repo, sender: User, refs: dict[str, Any]) -> dict[str, Any]:
        p = self._payloads
        number = refs.get("number")
        issue = self.store.issue(repo.full_name, number) if number is not None else None
        label = repo.labels.get(refs["label"]) if "label" in refs else None
        if event == "push":
            ref = refs.get("ref", f"refs/heads/{repo.default_branch}")
            after = refs.get("after") or self.git(repo.full_name).rev_parse(ref) or EMPTY_SHA
            before = refs.get("before") or EMPTY_SHA
            return p.push_parts(repo, self.git(repo.full_name), ref, before, after, sender)
        if event == "issues" and issue is not None:
            return p.issue_parts(issue, label)
        if event == "issue_comment" and issue is not None:
            return p.comment_parts(issue, self.store.comments[refs["comment_id"]])
        if event == "pull_request" and issue is not None:
            extra: dict[str, Any] = {k: refs[k] for k in ("before", "after") if k in refs}
            return {**p.pull_parts(issue, label), **extra}
        if event == "pull_request_review" and issue is not None:
            return p.review_parts(issue, self.store.reviews[refs["review_id"]])
        if event == "pull_request_review_comment" and issue is not None:
            comment = self.store.review_comments[refs["review_comment_id"]]
            return p.review_comment_parts(issue, comment)
        if event == "check_run":
            run = self.store.check_runs[refs["check_run_id"]]
            return p.check_run_parts(run, self._branch_of(repo, run.head_sha))
        if event == "workflow_run":
            wf_run = self.store.workflow_runs[refs["workflow_run_id"]]
            return p.workflow_run_parts(wf_run, self._workflow_body(repo, wf_run))
        if event == "deployment":
            return p.deployment_parts(self.store.deployments[refs["deployment_id"]])
        if event in ("installation", "ping"):
            return {}
        raise ValueError(f"cannot build {event!r} from {sorted(refs)}")

    def _branch_of(self, repo: Repo, sha: str) -> str | None:
        for name, head in self.git(repo.full_name).branches().items():
            if head == sha:
                return name
        return None

    def _workflow_body(self, repo: Repo, run: WorkflowRun) -> dict[str, Any]:
        return self.shapes.workflow(repo, run.workflow_path, run.name, run.workflow_id)

    # -- scenario: setting the stage -------------------------------------------------------

    def add_installation(
        self, account: str = "octo-org", *, account_type: str = "Organization"
    ) -> int:
        with self.store.lock:
            inst = Installation(
                id=self.store.next_id(), account=self.store.user(account, kind=account_type)
            )
            self.store.installations[inst.id] = inst
            return inst.id

    def create_repo(
        self,
        owner: str,
        name: str,
        files: Mapping[str, str | bytes],
        *,
        default_branch: str = "main",
        installation_id: int | None = None,
        private: bool = False,
    ) -> str:
        """A real bare repository with one initial commit of `files`; returns "owner/name".
        Without `installation_id` it joins the installation on `owner`, or the only one."""
        with self.store.lock:
            full = f"{owner}/{name}"
            if full in self.store.repos:
                raise ValueError(f"{full} exists already")
            git = self.git(full)
            git.init(default_branch)
            owner_user = self.store.user(owner)
            git.commit_files(default_branch, dict(files), "Initial commit", author_of(owner_user))
            self.store.repos[full] = Repo(
                id=self.store.next_id(),
                owner=owner_user,
                name=name,
                path=git.path,
                default_branch=default_branch,
                private=private,
                installation_id=(
                    installation_id
                    if installation_id is not None
                    else self.store.installation_for(owner)
                ),
            )
            return full

    def add_team_member(self, org: str, team_slug: str, login: str) -> None:
        with self.store.lock:
            self.store.user(login)
            self.store.teams.setdefault((org, team_slug), set()).add(login)

    def set_permission(self, repo: str, login: str, role: str) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        with self.store.lock:
            self.store.user(login)
            self.store.repo(repo).permissions[login] = role

    def create_issue(
        self,
        repo: str,
        title: str,
        body: str = "",
        user: str = "alice",
        labels: Iterable[str] = (),
    ) -> int:
        """An issue as it exists already (no webhook); see `open_issue` for the event."""
        with self.store.lock:
            repo_obj = self.store.repo(repo)
            issue = Issue(
                id=self.store.next_id(),
                repo=repo,
                number=self.store.next_issue_number(repo),
                title=title,
                body=body,
                user=self.store.user(user),
                labels=[ensure_label(self.store, repo_obj, n).name for n in labels],
            )
            self.store.issues[(repo, issue.number)] = issue
            return issue.number

    def open_issue(
        self,
        repo: str,
        title: str,
        body: str = "",
        user: str = "alice",
        labels: Iterable[str] = (),
    ) -> int:
        number = self.create_issue(repo, title, body, user, labels)
        issue = self.store.issue(repo, number)
        self.events.issue_changed(issue, "opened", issue.user)
        return number

    def push_files(
        self,
        repo: str,
        branch: str,
        files: Mapping[str, str | bytes | None],
        message: str = "Update files",
        user: str = "alice",
        *,
        start: str | None = None,
    ) -> str:
        """A human's commit on `branch` (made from `start`, default the default branch, when
        the branch is new); fires `push` and `pull_request.synchronize`. Returns the sha."""
        repo_obj = self.store.repo(repo)
        git = self.git(repo)
        pusher = self.store.user(user)
        before = git.rev_parse(f"refs/heads/{branch}") or EMPTY_SHA
        base = git.rev_parse(f"refs/heads/{start or repo_obj.default_branch}")
        sha = git.commit_files(branch, dict(files), message, author_of(pusher), start=base)
        self.events.refs_moved(repo_obj, [(f"refs/heads/{branch}", before, sha)], pusher)
        return sha

    # -- scenario: events ------------------------------------------------------------------

    def label_issue(
        self, repo: str, number: int, label: str, user: str = "alice"
    ) -> Delivery | None:
        with self.store.lock:
            issue = self.store.issue(repo, number)
            found = ensure_label(self.store, self.store.repo(repo), label)
            if found.name not in issue.labels:
                issue.labels.append(found.name)
            issue.updated_at = utcnow()
        return self.events.issue_changed(issue, "labeled", self.store.user(user), found)

    def unlabel_issue(
        self, repo: str, number: int, label: str, user: str = "alice"
    ) -> Delivery | None:
        with self.store.lock:
            issue = self.store.issue(repo, number)
            found = self.store.repo(repo).labels[label]
            if label in issue.labels:
                issue.labels.remove(label)
        return self.events.issue_changed(issue, "unlabeled", self.store.user(user), found)

    def comment(self, repo: str, number: int, body: str, user: str = "alice") -> int:
        """A comment by `user` on an issue or PR (`issue_comment.created`); returns its id."""
        with self.store.lock:
            issue = self.store.issue(repo, number)
            comment = Comment(
                id=self.store.next_id(),
                repo=repo,
                issue_number=number,
                body=body,
                user=self.store.user(user),
            )
            self.store.comments[comment.id] = comment
        self.events.comment_created(issue, comment.id, comment.user)
        return comment.id

    def open_pr(
        self,
        repo: str,
        head: str,
        *,
        title: str = "A change",
        body: str = "",
        base: str | None = None,
        user: str = "alice",
    ) -> int:
        """A pull request opened by a human (`pull_request.opened`); returns its number."""
        repo_obj = self.store.repo(repo)
        issue = self.pull_ops.create(
            repo_obj,
            title=title,
            head=head,
            base=base or repo_obj.default_branch,
            body=body,
            user=self.store.user(user),
        )
        return issue.number

    def submit_review(
        self,
        repo: str,
        pr: int,
        user: str,
        state: str,
        body: str = "",
        comments: Iterable[Mapping[str, Any]] = (),
    ) -> int:
        """A review (`pull_request_review.submitted`); state APPROVE/REQUEST_CHANGES/COMMENT
        (or APPROVED/CHANGES_REQUESTED/COMMENTED); comments like the REST body's. Returns id."""
        review = self.pull_ops.review(
            self.store.issue(repo, pr),
            user=self.store.user(user),
            event=state,
            body=body,
            comments=comments,
        )
        return review.id

    def merge_pr(self, repo: str, pr: int, user: str = "alice", method: str = "merge") -> str:
        return self.pull_ops.merge(
            self.store.issue(repo, pr), user=self.store.user(user), method=method
        )

    def close_pr(self, repo: str, pr: int, user: str = "alice") -> None:
        self.pull_ops.close(self.store.issue(repo, pr), self.store.user(user))

    def rerequest_check_run(
        self, repo: str, check_run_id: int, user: str = "alice"
    ) -> Delivery | None:
        """Someone pressed "Re-run" (`check_run.rerequested`)."""
        repo_obj = self.store.repo(repo)
        run = self.store.check_runs[check_run_id]
        parts = self._payloads.check_run_parts(run, self._branch_of(repo_obj, run.head_sha))
        return self.events.emit(
            "check_run", "rerequested", repo_obj, self.store.user(user), **parts
        )

    def request_check_run_action(
        self, repo: str, check_run_id: int, identifier: str, user: str = "alice"
    ) -> Delivery | None:
        """Someone pressed one of the check run's action buttons (`check_run.requested_action`)."""
        repo_obj = self.store.repo(repo)
        run = self.store.check_runs[check_run_id]
        if identifier not in [a.get("identifier") for a in run.actions]:
            raise ValueError(f"check run {check_run_id} has no action {identifier!r}")
        parts = self._payloads.check_run_parts(run, self._branch_of(repo_obj, run.head_sha))
        parts["requested_action"] = {"identifier": identifier}
        sender = self.store.user(user)
        return self.events.emit("check_run", "requested_action", repo_obj, sender, **parts)

    def complete_workflow_run(self, run_id: int, conclusion: str = "success") -> Delivery | None:
        """The run finished (`workflow_run.completed`)."""
        with self.store.lock:
            run = self.store.workflow_runs[run_id]
            run.status = "completed"
            run.conclusion = conclusion
            run.updated_at = utcnow()
            repo = self.store.repo(run.repo)
        parts = self._payloads.workflow_run_parts(run, self._workflow_body(repo, run))
        return self.events.emit("workflow_run", "completed", repo, run.actor, **parts)

    # -- inspection ------------------------------------------------------------------------

    def issue(self, repo: str, number: int) -> Issue:
        return self.store.issue(repo, number)

    def comments(self, repo: str, number: int) -> list[Comment]:
        return self.store.comments_of(repo, number)

    def reactions(
        self,
        repo: str,
        number: int | None = None,
        *,
        comment_id: int | None = None,
        review_comment_id: int | None = None,
    ) -> list[Reaction]:
        if comment_id is not None:
            return self.store.reactions_on(("issue_comment", repo, comment_id))
        if review_comment_id is not None:
            return self.store.reactions_on(("review_comment", repo, review_comment_id))
        if number is None:
            raise ValueError("give an issue number, comment_id or review_comment_id")
        return self.store.reactions_on(("issue", repo, number))

    def pulls(self, repo: str) -> list[Issue]:
        return self.store.pulls_of(repo)

    def reviews(self, repo: str, pr: int) -> list[Review]:
        return self.store.reviews_of(repo, pr)

    def review_comments(self, repo: str, pr: int) -> list[ReviewComment]:
        return self.store.review_comments_of(repo, pr)

    def check_runs(self, repo: str, head_sha: str | None = None) -> list[CheckRun]:
        with self.store.lock:
            return [
                r
                for r in sorted(self.store.check_runs.values(), key=lambda r: r.id)
                if r.repo == repo and (head_sha is None or r.head_sha == head_sha)
            ]

    def workflow_runs(self, repo: str | None = None) -> list[WorkflowRun]:
        with self.store.lock:
            return [
                r
                for r in sorted(self.store.workflow_runs.values(), key=lambda r: r.id)
                if repo is None or r.repo == repo
            ]

    def workflows(self, repo: str) -> list[tuple[int, str, str]]:
        """(id, path, name) of the workflow files on the default branch."""
        repo_obj = self.store.repo(repo)
        return [(w.id, w.path, w.name) for w in discover(self.store, repo_obj, self.git(repo))]

    def deployments(self, repo: str) -> list[Deployment]:
        with self.store.lock:
            return [
                d
                for d in sorted(self.store.deployments.values(), key=lambda d: d.id)
                if d.repo == repo
            ]

    def labels(self, repo: str, number: int) -> list[str]:
        return list(self.store.issue(repo, number).labels)

    def branch_sha(self, repo: str, branch: str) -> str | None:
        return self.git(repo).rev_parse(f"refs/heads/{branch}")

    def git_log(self, repo: str, ref: str, limit: int = 100) -> list[CommitInfo]:
        return self.git(repo).log(ref, limit)

    def file_at(self, repo: str, ref: str, path: str) -> str | None:
        git = self.git(repo)
        sha = git.resolve(ref)
        entry = git.entry(sha, path) if sha else None
        if entry is None or entry.type != "blob":
            return None
        return git.read_blob(entry.sha).decode()

    def close(self) -> None:
        self._sink.close()

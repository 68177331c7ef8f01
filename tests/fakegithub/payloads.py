"""Webhook payloads: a real GitHub example per event, with its objects replaced from state.

The example files (octokit/webhooks payload examples) give each event its webhook-specific shape;
the REST shapes of our state are laid over them key by key, so fields that only webhooks carry
survive and fields newer than the examples (which githubkit's models require) are added.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from .gitrepo import EMPTY_SHA, BareRepo
from .shapes import Shapes, iso, node_id
from .state import (
    CheckRun,
    Comment,
    Deployment,
    Issue,
    Label,
    Repo,
    Review,
    ReviewComment,
    Store,
    User,
    WorkflowRun,
)


def default_fixtures_dir() -> Path:
    """`shared/fixtures/webhooks` beside the project checkout (where CI puts shared/ too)."""
    return Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "webhooks"


def overlay(template: Any, value: Any) -> Any:
    """`value` in the shape of `template`: dicts merged key by key, list items shaped like the
    template's first item, and ISO dates turned into epoch seconds where the template has them."""
    if isinstance(template, dict) and isinstance(value, dict):
        merged = dict(template)
        for key, item in value.items():
            merged[key] = overlay(template[key], item) if key in template else item
        return merged
    if isinstance(template, list) and isinstance(value, list):
        if template and isinstance(template[0], dict):
            return [overlay(template[0], item) for item in value]
        return value
    if isinstance(template, int) and not isinstance(template, bool) and isinstance(value, str):
        try:
            return int(datetime.fromisoformat(value).timestamp())
        except ValueError:
            return value
    return value


class WebhookPayloads:
    def __init__(self, fixtures_dir: Path, shapes: Shapes, store: Store) -> None:
        self._dir = fixtures_dir
        self._shapes = shapes
        self._store = store

    def template(self, event: str, action: str | None) -> dict[str, Any]:
        folder = self._dir / event
        candidates = [folder / f"{action}.payload.json"] if action else []
        candidates.append(folder / "payload.json")
        # An action without its own example borrows the event's plainest one.
        candidates += sorted(folder.glob("*.payload.json"), key=lambda p: ("with-" in p.name, p))
        for path in candidates:
            if path.is_file():
                loaded: dict[str, Any] = json.loads(path.read_text())
                return loaded
        raise FileNotFoundError(f"no webhook example for {event!r} under {folder}")

    def build(
        self,
        event: str,
        action: str | None,
        *,
        repo: Repo,
        sender: User,
        **parts: Any,
    ) -> dict[str, Any]:
        """The payload of `event`.`action`; `parts` are the event's own objects (REST shapes or
        plain values) keyed by their payload field, e.g. issue=..., label=..., comment=...."""
        template = self.template(event, action)
        body: dict[str, Any] = {}
        if action is not None:
            body["action"] = action
        body.update(parts)
        body["repository"] = self._shapes.repo(repo)
        body["sender"] = self._shapes.user(sender)
        if repo.installation_id is not None:
            body["installation"] = {
                "id": repo.installation_id,
                "node_id": node_id("Installation", repo.installation_id),
            }
        payload: dict[str, Any] = overlay(template, body)
        if repo.owner.type == "Organization":
            payload["organization"] = overlay(
                template.get("organization", {}), self.organization(repo.owner)
            )
        else:
            payload.pop("organization", None)
        if event == "push":
            # The push example's repository carries its owner's name and e-mail.
            payload["repository"]["owner"].update({"name": repo.owner.login, "email": None})
            payload["repository"]["master_branch"] = repo.default_branch
        for key in ("changes", "assignee", "milestone", "enterprise"):
            # Example-only objects would describe someone else's data.
            if key not in body:
                payload.pop(key, None)
        return payload

    def organization(self, org: User) -> dict[str, Any]:
        api = f"{self._shapes.api}/orgs/{org.login}"
        return {
            "login": org.login,
            "id": org.id,
            "node_id": node_id("Organization", org.id),
            "url": api,
            "repos_url": api + "/repos",
            "events_url": api + "/events",
            "hooks_url": api + "/hooks",
            "issues_url": api + "/issues",
            "members_url": api + "/members{/member}",
            "public_members_url": api + "/public_members{/member}",
            "avatar_url": f"{self._shapes.web}/avatars/u/{org.id}?v=4",
            "description": "",
        }

    # -- the parts each event carries ------------------------------------------------------

    def issue_parts(self, issue: Issue, label: Label | None = None) -> dict[str, Any]:
        repo_obj = self._store.repo(issue.repo)
        parts: dict[str, Any] = {"issue": self._shapes.issue(issue)}
        if label is not None:
            parts["label"] = self._shapes.label(repo_obj, label)
        return parts

    def comment_parts(self, issue: Issue, comment: Comment) -> dict[str, Any]:
        return {"issue": self._shapes.issue(issue), "comment": self._shapes.comment(comment)}

    def pull_parts(self, issue: Issue, label: Label | None = None) -> dict[str, Any]:
        parts: dict[str, Any] = {
            "number": issue.number,
            "pull_request": self._shapes.pull(issue),
        }
        if label is not None:
            parts["label"] = self._shapes.label(self._store.repo(issue.repo), label)
        return parts

    def review_parts(self, issue: Issue, review: Review) -> dict[str, Any]:
        return {"review": self._shapes.review(review), "pull_request": self._shapes.pull(issue)}

    def review_comment_parts(self, issue: Issue, comment: ReviewComment) -> dict[str, Any]:
        return {
            "comment": self._shapes.review_comment(comment),
            "pull_request": self._shapes.pull(issue),
        }

    def check_run_parts(self, run: CheckRun, head_branch: str | None) -> dict[str, Any]:
        body = self._shapes.check_run(run)
        body["check_suite"] = {
            "id": run.check_suite_id,
            "node_id": node_id("CheckSuite", run.check_suite_id),
            "head_branch": head_branch,
            "head_sha": run.head_sha,
            "status": run.status,
            "conclusion": run.conclusion,
            "url": f"{self._shapes.repo_api(run.repo)}/check-suites/{run.check_suite_id}",
            "before": None,
            "after": run.head_sha,
            "pull_requests": body["pull_requests"],
            "app": body["app"],
            "created_at": iso(run.started_at),
            "updated_at": iso(run.completed_at or run.started_at),
        }
        return {"check_run": body}

    def workflow_run_parts(self, run: WorkflowRun, workflow: dict[str, Any]) -> dict[str, Any]:
        return {"workflow_run": self._shapes.workflow_run(run), "workflow": workflow}

    def deployment_parts(self, deployment: Deployment) -> dict[str, Any]:
        return {"deployment": self._shapes.deployment(deployment)}

    def push_parts(
        self, repo: Repo, git: BareRepo, ref: str, before: str, after: str, pusher: User
    ) -> dict[str, Any]:
        web = f"{self._shapes.web}/{repo.full_name}"
        created, deleted = before == EMPTY_SHA, after == EMPTY_SHA
        if deleted:
            shas: list[str] = []
        elif created:
            shas = git.commits_between(repo.default_branch, after) or [after]
        else:
            shas = git.commits_between(before, after)
        commits = [self._push_commit(repo, git, sha) for sha in shas[-20:]]
        head = None if deleted else self._push_commit(repo, git, after)
        return {
            "ref": ref,
            "before": before,
            "after": after,
            "created": created,
            "deleted": deleted,
            "forced": not (created or deleted) and not git.is_ancestor(before, after),
            "base_ref": None,
            "compare": f"{web}/compare/{before[:12]}...{after[:12]}",
            "commits": commits,
            "head_commit": head,
            "pusher": {"name": pusher.login, "email": f"{pusher.id}+{pusher.login}@users.noreply"},
        }

    def _push_commit(self, repo: Repo, git: BareRepo, sha: str) -> dict[str, Any]:
        info = git.commit_info(sha)
        parent = info.parents[0] if info.parents else None
        changes = git.diff_files(parent, sha) if parent else []
        return {
            "id": sha,
            "tree_id": info.tree,
            "distinct": True,
            "message": info.message,
            "timestamp": info.committer_date,
            "url": f"{self._shapes.web}/{repo.full_name}/commit/{sha}",
            "author": {"name": info.author_name, "email": info.author_email, "username": None},
            "committer": {
                "name": info.committer_name,
                "email": info.committer_email,
                "username": None,
            },
            "added": [c.filename for c in changes if c.status == "added"],
            "removed": [c.filename for c in changes if c.status == "removed"],
            "modified": [c.filename for c in changes if c.status not in ("added", "removed")],
        }

"""REST response bodies in GitHub's shapes (the fields githubkit's models require, and more).

Every builder takes a state record and returns the JSON object GitHub would send for it. URLs
follow GitHub Enterprise Server's layout: API under `{base}/api/v3`, web and git under `{base}`.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from .gitrepo import BareRepo, CommitInfo, FileChange, TreeEntry
from .state import (
    APP_SLUG,
    CheckRun,
    Comment,
    Deployment,
    DeploymentStatus,
    Installation,
    Issue,
    Label,
    Reaction,
    Repo,
    Review,
    ReviewComment,
    Store,
    User,
    WorkflowRun,
)

APP_PERMISSIONS = {
    "actions": "write",
    "checks": "write",
    "contents": "write",
    "deployments": "write",
    "issues": "write",
    "metadata": "read",
    "pull_requests": "write",
    "statuses": "write",
    "workflows": "write",
}
APP_EVENTS = [
    "check_run",
    "check_suite",
    "deployment",
    "issue_comment",
    "issues",
    "pull_request",
    "pull_request_review",
    "pull_request_review_comment",
    "push",
    "workflow_run",
]
EPOCH = "2024-01-01T00:00:00Z"
CONTENTS_INLINE_LIMIT = 1024 * 1024
REACTION_KEYS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "eyes", "rocket")


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def node_id(kind: str, ident: int) -> str:
    return base64.b64encode(f"0{len(kind)}:{kind}{ident}".encode()).decode().rstrip("=")


class Shapes:
    def __init__(
        self,
        store: Store,
        base_url: Callable[[], str],
        app_id: int,
        client_id: str,
        git: Callable[[str], BareRepo],
    ) -> None:
        self._store = store
        self._base_url = base_url
        self._app_id = app_id
        self._client_id = client_id
        self._git = git

    # -- URL roots -------------------------------------------------------------------------

    @property
    def web(self) -> str:
        return self._base_url().rstrip("/")

    @property
    def api(self) -> str:
        return self.web + "/api/v3"

    def repo_api(self, full_name: str) -> str:
        return f"{self.api}/repos/{full_name}"

    # -- people and the app ----------------------------------------------------------------

    def user(self, user: User) -> dict[str, Any]:
        api = f"{self.api}/users/{user.login}"
        html = f"{self.web}/apps/{APP_SLUG}" if user.type == "Bot" else f"{self.web}/{user.login}"
        return {
            "login": user.login,
            "id": user.id,
            "node_id": node_id("User", user.id),
            "avatar_url": f"{self.web}/avatars/u/{user.id}?v=4",
            "gravatar_id": "",
            "url": api,
            "html_url": html,
            "followers_url": f"{api}/followers",
            "following_url": f"{api}/following{{/other_user}}",
            "gists_url": f"{api}/gists{{/gist_id}}",
            "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/subscriptions",
            "organizations_url": f"{api}/orgs",
            "repos_url": f"{api}/repos",
            "events_url": f"{api}/events{{/privacy}}",
            "received_events_url": f"{api}/received_events",
            "type": user.type,
            "user_view_type": "public",
            "site_admin": False,
        }

    def public_user(self, user: User) -> dict[str, Any]:
        return {
            **self.user(user),
            "name": user.login,
            "company": None,
            "blog": "",
            "location": None,
            "email": None,
            "hireable": None,
            "bio": None,
            "twitter_username": None,
            "public_repos": sum(1 for r in self._store.repos.values() if r.owner is user),
            "public_gists": 0,
            "followers": 0,
            "following": 0,
            "created_at": EPOCH,
            "updated_at": EPOCH,
        }

    @property
    def app_id(self) -> int:
        return self._app_id

    def app(self) -> dict[str, Any]:
        owner = next(
            (i.account for i in self._store.installations.values()), self._store.user("octo-org")
        )
        return {
            "id": self._app_id,
            "slug": APP_SLUG,
            "node_id": node_id("Integration", self._app_id),
            "client_id": self._client_id,
            "owner": self.user(owner),
            "name": "Agent Factory",
            "description": "Issues in, reviewed pull requests out.",
            "external_url": self.web,
            "html_url": f"{self.web}/apps/{APP_SLUG}",
            "created_at": EPOCH,
            "updated_at": EPOCH,
            "permissions": dict(APP_PERMISSIONS),
            "events": list(APP_EVENTS),
            "installations_count": len(self._store.installations),
        }

    def installation(self, inst: Installation) -> dict[str, Any]:
        return {
            "id": inst.id,
            "client_id": self._client_id,
            "account": self.user(inst.account),
            "repository_selection": "all",
            "access_tokens_url": f"{self.api}/app/installations/{inst.id}/access_tokens",
            "repositories_url": f"{self.api}/installation/repositories",
            "html_url": f"{self.web}/organizations/{inst.account.login}/settings/installations/"
            f"{inst.id}",
            "app_id": self._app_id,
            "app_slug": APP_SLUG,
            "target_id": inst.account.id,
            "target_type": inst.account.type if inst.account.type != "Bot" else "User",
            "permissions": dict(APP_PERMISSIONS),
            "events": list(APP_EVENTS),
            "created_at": iso(inst.created_at),
            "updated_at": iso(inst.created_at),
            "single_file_name": None,
            "has_multiple_single_files": False,
            "single_file_paths": [],
            "suspended_by": None,
            "suspended_at": None,
        }

    # -- repositories ----------------------------------------------------------------------

    def repo(self, repo: Repo) -> dict[str, Any]:
        full = repo.full_name
        api = self.repo_api(full)
        host = urlsplit(self.web).netloc or "localhost"
        open_issues = sum(
            1 for (name, _), i in self._store.issues.items() if name == full and i.state == "open"
        )
        templated = {
            "archive_url": "/{archive_format}{/ref}",
            "assignees_url": "/assignees{/user}",
            "blobs_url": "/git/blobs{/sha}",
            "branches_url": "/branches{/branch}",
            "collaborators_url": "/collaborators{/collaborator}",
            "comments_url": "/comments{/number}",
            "commits_url": "/commits{/sha}",
            "compare_url": "/compare/{base}...{head}",
            "contents_url": "/contents/{+path}",
            "contributors_url": "/contributors",
            "deployments_url": "/deployments",
            "downloads_url": "/downloads",
            "events_url": "/events",
            "forks_url": "/forks",
            "git_commits_url": "/git/commits{/sha}",
            "git_refs_url": "/git/refs{/sha}",
            "git_tags_url": "/git/tags{/sha}",
            "issue_comment_url": "/issues/comments{/number}",
            "issue_events_url": "/issues/events{/number}",
            "issues_url": "/issues{/number}",
            "keys_url": "/keys{/key_id}",
            "labels_url": "/labels{/name}",
            "languages_url": "/languages",
            "merges_url": "/merges",
            "milestones_url": "/milestones{/number}",
            "notifications_url": "/notifications{?since,all,participating}",
            "pulls_url": "/pulls{/number}",
            "releases_url": "/releases{/id}",
            "stargazers_url": "/stargazers",
            "statuses_url": "/statuses/{sha}",
            "subscribers_url": "/subscribers",
            "subscription_url": "/subscription",
            "tags_url": "/tags",
            "teams_url": "/teams",
            "trees_url": "/git/trees{/sha}",
            "hooks_url": "/hooks",
        }
        return {
            "id": repo.id,
            "node_id": node_id("Repository", repo.id),
            "name": repo.name,
            "full_name": full,
            "owner": self.user(repo.owner),
            "private": repo.private,
            "visibility": "private" if repo.private else "public",
            "html_url": f"{self.web}/{full}",
            "description": None,
            "fork": False,
            "url": api,
            **{key: api + suffix for key, suffix in templated.items()},
            "git_url": f"git://{host}/{full}.git",
            "ssh_url": f"git@{host}:{full}.git",
            "clone_url": f"{self.web}/{full}.git",
            "svn_url": f"{self.web}/{full}",
            "mirror_url": None,
            "homepage": None,
            "language": None,
            "forks_count": 0,
            "forks": 0,
            "stargazers_count": 0,
            "watchers_count": 0,
            "watchers": 0,
            "subscribers_count": 0,
            "network_count": 0,
            "size": 0,
            "default_branch": repo.default_branch,
            "open_issues_count": open_issues,
            "open_issues": open_issues,
            "is_template": False,
            "topics": [],
            "has_issues": True,
            "has_projects": False,
            "has_wiki": False,
            "has_pages": False,
            "has_downloads": True,
            "has_discussions": False,
            "archived": False,
            "disabled": False,
            "allow_forking": True,
            "web_commit_signoff_required": False,
            "allow_merge_commit": True,
            "allow_squash_merge": True,
            "allow_rebase_merge": True,
            "allow_auto_merge": False,
            "delete_branch_on_merge": False,
            "pushed_at": iso(repo.pushed_at),
            "created_at": iso(repo.created_at),
            "updated_at": iso(repo.pushed_at),
            "license": None,
            "permissions": {
                "admin": False,
                "maintain": False,
                "push": True,
                "triage": True,
                "pull": True,
            },
        }

    # -- issues and comments ---------------------------------------------------------------

    def label(self, repo: Repo, label: Label) -> dict[str, Any]:
        return {
            "id": label.id,
            "node_id": node_id("Label", label.id),
            "url": f"{self.repo_api(repo.full_name)}/labels/{label.name}",
            "name": label.name,
            "description": label.description,
            "color": label.color,
            "default": False,
            "archived_at": None,
            "archived_by": None,
        }

    def association(self, repo: Repo, user: User) -> str:
        if user.login == repo.owner.login:
            return "OWNER"
        if user.type == "Bot":
            return "NONE"
        if repo.permissions.get(user.login) in ("admin", "maintain", "write", "triage"):
            return "COLLABORATOR"
        return "NONE"

    def reaction_rollup(self, url: str, kind: str, ident: int, repo: str) -> dict[str, Any]:
        found = self._store.reactions_on((kind, repo, ident))  # type: ignore[arg-type]
        counts = {key: sum(1 for r in found if r.content == key) for key in REACTION_KEYS}
        return {"url": url + "/reactions", "total_count": len(found), **counts}

    def issue(self, issue: Issue) -> dict[str, Any]:
        repo = self._store.repo(issue.repo)
        api = f"{self.repo_api(issue.repo)}/issues/{issue.number}"
        is_pull = issue.pull is not None
        html = f"{self.web}/{issue.repo}/{'pull' if is_pull else 'issues'}/{issue.number}"
        body: dict[str, Any] = {
            "id": issue.id,
            "node_id": node_id("Issue", issue.id),
            "url": api,
            "repository_url": self.repo_api(issue.repo),
            "labels_url": api + "/labels{/name}",
            "comments_url": api + "/comments",
            "events_url": api + "/events",
            "timeline_url": api + "/timeline",
            "html_url": html,
            "number": issue.number,
            "state": issue.state,
            "state_reason": issue.state_reason,
            "title": issue.title,
            "body": issue.body,
            "user": self.user(issue.user),
            "labels": [self.label(repo, repo.labels[name]) for name in issue.labels],
            "assignee": None,
            "assignees": [],
            "milestone": None,
            "locked": False,
            "active_lock_reason": None,
            "comments": len(self._store.comments_of(issue.repo, issue.number)),
            "closed_at": iso(issue.closed_at),
            "closed_by": None if issue.closed_by is None else self.user(issue.closed_by),
            "created_at": iso(issue.created_at),
            "updated_at": iso(issue.updated_at),
            "author_association": self.association(repo, issue.user),
            "performed_via_github_app": None,
            "reactions": self.reaction_rollup(api, "issue", issue.number, issue.repo),
        }
        if issue.pull is not None:
            pr_html = f"{self.web}/{issue.repo}/pull/{issue.number}"
            body["draft"] = issue.pull.draft
            body["pull_request"] = {
                "url": f"{self.repo_api(issue.repo)}/pulls/{issue.number}",
                "html_url": pr_html,
                "diff_url": pr_html + ".diff",
                "patch_url": pr_html + ".patch",
                "merged_at": iso(issue.pull.merged_at),
            }
        return body

    def comment(self, comment: Comment) -> dict[str, Any]:
        repo = self._store.repo(comment.repo)
        api = f"{self.repo_api(comment.repo)}/issues/comments/{comment.id}"
        return {
            "id": comment.id,
            "node_id": node_id("IssueComment", comment.id),
            "url": api,
            "html_url": f"{self.web}/{comment.repo}/issues/{comment.issue_number}"
            f"#issuecomment-{comment.id}",
            "issue_url": f"{self.repo_api(comment.repo)}/issues/{comment.issue_number}",
            "body": comment.body,
            "user": self.user(comment.user),
            "created_at": iso(comment.created_at),
            "updated_at": iso(comment.updated_at),
            "author_association": self.association(repo, comment.user),
            "performed_via_github_app": None,
            "reactions": self.reaction_rollup(api, "issue_comment", comment.id, comment.repo),
        }

    def reaction(self, reaction: Reaction) -> dict[str, Any]:
        return {
            "id": reaction.id,
            "node_id": node_id("Reaction", reaction.id),
            "user": self.user(reaction.user),
            "content": reaction.content,
            "created_at": iso(reaction.created_at),
        }

    # -- pull requests ---------------------------------------------------------------------

    def pull(self, issue: Issue, *, full: bool = True) -> dict[str, Any]:
        pull = issue.pull
        assert pull is not None, f"{issue.repo}#{issue.number} is an issue, not a pull request"
        repo = self._store.repo(issue.repo)
        api = f"{self.repo_api(issue.repo)}/pulls/{issue.number}"
        issue_api = f"{self.repo_api(issue.repo)}/issues/{issue.number}"
        html = f"{self.web}/{issue.repo}/pull/{issue.number}"
        statuses = f"{self.repo_api(issue.repo)}/statuses/{pull.head_sha}"
        repo_body = self.repo(repo)
        body: dict[str, Any] = {
            "url": api,
            "id": issue.id,
            "node_id": node_id("PullRequest", issue.id),
            "html_url": html,
            "diff_url": html + ".diff",
            "patch_url": html + ".patch",
            "issue_url": issue_api,
            "commits_url": api + "/commits",
            "review_comments_url": api + "/comments",
            "review_comment_url": f"{self.repo_api(issue.repo)}/pulls/comments{{/number}}",
            "comments_url": issue_api + "/comments",
            "statuses_url": statuses,
            "number": issue.number,
            "state": "closed" if issue.state == "closed" else "open",
            "locked": False,
            "title": issue.title,
            "user": self.user(issue.user),
            "body": issue.body,
            "labels": [self.label(repo, repo.labels[name]) for name in issue.labels],
            "milestone": None,
            "active_lock_reason": None,
            "created_at": iso(issue.created_at),
            "updated_at": iso(issue.updated_at),
            "closed_at": iso(issue.closed_at),
            "merged_at": iso(pull.merged_at),
            "merge_commit_sha": pull.merge_commit_sha,
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [
                self.user(self._store.user(login)) for login in pull.requested_reviewers
            ],
            "requested_teams": [],
            "head": {
                "label": f"{repo.owner.login}:{pull.head_ref}",
                "ref": pull.head_ref,
                "sha": pull.head_sha,
                "user": self.user(repo.owner),
                "repo": repo_body,
            },
            "base": {
                "label": f"{repo.owner.login}:{pull.base_ref}",
                "ref": pull.base_ref,
                "sha": pull.base_sha,
                "user": self.user(repo.owner),
                "repo": repo_body,
            },
            "_links": {
                "self": {"href": api},
                "html": {"href": html},
                "issue": {"href": issue_api},
                "comments": {"href": issue_api + "/comments"},
                "review_comments": {"href": api + "/comments"},
                "review_comment": {
                    "href": f"{self.repo_api(issue.repo)}/pulls/comments{{/number}}"
                },
                "commits": {"href": api + "/commits"},
                "statuses": {"href": statuses},
            },
            "author_association": self.association(repo, issue.user),
            "auto_merge": None,
            "draft": pull.draft,
        }
        if full:
            body.update(self._pull_counts(issue))
        return body

    def _pull_counts(self, issue: Issue) -> dict[str, Any]:
        pull = issue.pull
        assert pull is not None
        git = self._git(issue.repo)
        files = git.diff_files(pull.base_sha, pull.head_sha)
        mergeable = pull.merged or git.merge_tree(pull.base_sha, pull.head_sha) is not None
        closed = issue.state == "closed"
        return {
            "merged": pull.merged,
            "mergeable": None if closed else mergeable,
            "rebaseable": None if closed else mergeable,
            "mergeable_state": "unknown" if closed else ("clean" if mergeable else "dirty"),
            "merged_by": None if pull.merged_by is None else self.user(pull.merged_by),
            "comments": len(self._store.comments_of(issue.repo, issue.number)),
            "review_comments": len(self._store.review_comments_of(issue.repo, issue.number)),
            "maintainer_can_modify": pull.maintainer_can_modify,
            "commits": len(git.commits_between(pull.base_sha, pull.head_sha)),
            "additions": sum(f.additions for f in files),
            "deletions": sum(f.deletions for f in files),
            "changed_files": len(files),
        }

    def pull_minimal(self, issue: Issue) -> dict[str, Any]:
        pull = issue.pull
        assert pull is not None
        repo = self._store.repo(issue.repo)
        small_repo = {"id": repo.id, "url": self.repo_api(repo.full_name), "name": repo.name}
        return {
            "id": issue.id,
            "number": issue.number,
            "url": f"{self.repo_api(issue.repo)}/pulls/{issue.number}",
            "head": {"ref": pull.head_ref, "sha": pull.head_sha, "repo": small_repo},
            "base": {"ref": pull.base_ref, "sha": pull.base_sha, "repo": small_repo},
        }

    def diff_entry(self, repo: Repo, change: FileChange, head_sha: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "sha": change.sha,
            "filename": change.filename,
            "status": change.status,
            "additions": change.additions,
            "deletions": change.deletions,
            "changes": change.additions + change.deletions,
            "blob_url": f"{self.web}/{repo.full_name}/blob/{head_sha}/{change.filename}",
            "raw_url": f"{self.web}/{repo.full_name}/raw/{head_sha}/{change.filename}",
            "contents_url": f"{self.repo_api(repo.full_name)}/contents/{change.filename}"
            f"?ref={head_sha}",
            "patch": change.patch,
        }
        if change.previous_filename:
            body["previous_filename"] = change.previous_filename
        return body

    def review(self, review: Review) -> dict[str, Any]:
        repo = self._store.repo(review.repo)
        html = f"{self.web}/{review.repo}/pull/{review.pr_number}#pullrequestreview-{review.id}"
        pr_api = f"{self.repo_api(review.repo)}/pulls/{review.pr_number}"
        return {
            "id": review.id,
            "node_id": node_id("PullRequestReview", review.id),
            "user": self.user(review.user),
            "body": review.body,
            "state": review.state,
            "html_url": html,
            "pull_request_url": pr_api,
            "_links": {"html": {"href": html}, "pull_request": {"href": pr_api}},
            "submitted_at": None if review.state == "PENDING" else iso(review.submitted_at),
            "commit_id": review.commit_id,
            "author_association": self.association(repo, review.user),
        }

    def review_comment(self, comment: ReviewComment) -> dict[str, Any]:
        repo = self._store.repo(comment.repo)
        api = f"{self.repo_api(comment.repo)}/pulls/comments/{comment.id}"
        pr_api = f"{self.repo_api(comment.repo)}/pulls/{comment.pr_number}"
        html = f"{self.web}/{comment.repo}/pull/{comment.pr_number}#discussion_r{comment.id}"
        position = max(len(comment.diff_hunk.splitlines()) - 1, 1)
        body: dict[str, Any] = {
            "url": api,
            "pull_request_review_id": comment.review_id,
            "id": comment.id,
            "node_id": node_id("PullRequestReviewComment", comment.id),
            "diff_hunk": comment.diff_hunk,
            "path": comment.path,
            "position": position,
            "original_position": position,
            "commit_id": comment.commit_id,
            "original_commit_id": comment.commit_id,
            "user": self.user(comment.user),
            "body": comment.body,
            "created_at": iso(comment.created_at),
            "updated_at": iso(comment.updated_at),
            "html_url": html,
            "pull_request_url": pr_api,
            "author_association": self.association(repo, comment.user),
            "_links": {
                "self": {"href": api},
                "html": {"href": html},
                "pull_request": {"href": pr_api},
            },
            "start_line": comment.start_line,
            "original_start_line": comment.start_line,
            "start_side": comment.side if comment.start_line else None,
            "line": comment.line,
            "original_line": comment.line,
            "side": comment.side,
            "subject_type": "line",
            "reactions": self.reaction_rollup(api, "review_comment", comment.id, comment.repo),
        }
        if comment.in_reply_to_id is not None:
            body["in_reply_to_id"] = comment.in_reply_to_id
        return body

    # -- git data --------------------------------------------------------------------------

    def content_file(self, repo: Repo, entry: TreeEntry, data: bytes, ref: str) -> dict[str, Any]:
        body = self._content_item(repo, entry, ref)
        if len(data) > CONTENTS_INLINE_LIMIT:
            # Over 1 MB the contents API leaves the content out; clients fetch the blob.
            body.update({"encoding": "none", "content": ""})
        else:
            body.update({"encoding": "base64", "content": self._wrapped_base64(data)})
        return body

    def blob(self, repo: Repo, sha: str, data: bytes) -> dict[str, Any]:
        return {
            "sha": sha,
            "node_id": node_id("Blob", int(sha[:8], 16)),
            "size": len(data),
            "url": f"{self.repo_api(repo.full_name)}/git/blobs/{sha}",
            "content": self._wrapped_base64(data),
            "encoding": "base64",
        }

    @staticmethod
    def _wrapped_base64(data: bytes) -> str:
        encoded = base64.b64encode(data).decode()
        # GitHub wraps the base64 text at 60 columns; clients must tolerate the newlines.
        return "".join(encoded[i : i + 60] + "\n" for i in range(0, len(encoded), 60))

    def content_item(self, repo: Repo, entry: TreeEntry, ref: str) -> dict[str, Any]:
        return self._content_item(repo, entry, ref)

    def _content_item(self, repo: Repo, entry: TreeEntry, ref: str) -> dict[str, Any]:
        full = repo.full_name
        kind = {"blob": "file", "tree": "dir", "commit": "submodule"}.get(entry.type, "file")
        if entry.mode == "120000":
            kind = "symlink"
        self_url = f"{self.repo_api(full)}/contents/{entry.path}?ref={ref}"
        git_url = f"{self.repo_api(full)}/git/{'trees' if kind == 'dir' else 'blobs'}/{entry.sha}"
        html_url = f"{self.web}/{full}/{'tree' if kind == 'dir' else 'blob'}/{ref}/{entry.path}"
        download = None if kind == "dir" else f"{self.web}/{full}/raw/{ref}/{entry.path}"
        return {
            "type": kind,
            "size": entry.size or 0,
            "name": entry.path.rsplit("/", 1)[-1],
            "path": entry.path,
            "sha": entry.sha,
            "url": self_url,
            "git_url": git_url,
            "html_url": html_url,
            "download_url": download,
            "_links": {"self": self_url, "git": git_url, "html": html_url},
        }

    def tree(self, repo: Repo, sha: str, entries: list[TreeEntry]) -> dict[str, Any]:
        api = self.repo_api(repo.full_name)
        return {
            "sha": sha,
            "url": f"{api}/git/trees/{sha}",
            "tree": [
                {
                    "path": e.path,
                    "mode": e.mode,
                    "type": e.type,
                    "sha": e.sha,
                    **({"size": e.size} if e.type == "blob" else {}),
                    "url": f"{api}/git/{'trees' if e.type == 'tree' else 'blobs'}/{e.sha}",
                }
                for e in entries
            ],
            "truncated": False,
        }

    def ref(self, repo: Repo, ref: str, sha: str) -> dict[str, Any]:
        api = self.repo_api(repo.full_name)
        return {
            "ref": ref,
            "node_id": node_id("Ref", hash(ref) & 0xFFFFFF),
            "url": f"{api}/git/{ref}",
            "object": {"type": "commit", "sha": sha, "url": f"{api}/git/commits/{sha}"},
        }

    def commit(self, repo: Repo, info: CommitInfo) -> dict[str, Any]:
        api = self.repo_api(repo.full_name)
        return {
            "url": f"{api}/commits/{info.sha}",
            "sha": info.sha,
            "node_id": node_id("Commit", int(info.sha[:8], 16)),
            "html_url": f"{self.web}/{repo.full_name}/commit/{info.sha}",
            "comments_url": f"{api}/commits/{info.sha}/comments",
            "commit": {
                "url": f"{api}/git/commits/{info.sha}",
                "author": {
                    "name": info.author_name,
                    "email": info.author_email,
                    "date": info.author_date,
                },
                "committer": {
                    "name": info.committer_name,
                    "email": info.committer_email,
                    "date": info.committer_date,
                },
                "message": info.message,
                "comment_count": 0,
                "tree": {"sha": info.tree, "url": f"{api}/git/trees/{info.tree}"},
                "verification": {
                    "verified": False,
                    "reason": "unsigned",
                    "signature": None,
                    "payload": None,
                    "verified_at": None,
                },
            },
            "author": None,
            "committer": None,
            "parents": [
                {
                    "sha": p,
                    "url": f"{api}/commits/{p}",
                    "html_url": f"{self.web}/{repo.full_name}/commit/{p}",
                }
                for p in info.parents
            ],
        }

    def branch(self, repo: Repo, name: str, info: CommitInfo) -> dict[str, Any]:
        api = self.repo_api(repo.full_name)
        return {
            "name": name,
            "commit": self.commit(repo, info),
            "_links": {
                "self": f"{api}/branches/{name}",
                "html": f"{self.web}/{repo.full_name}/tree/{name}",
            },
            "protected": False,
            "protection": {
                "enabled": False,
                "required_status_checks": {
                    "enforcement_level": "off",
                    "contexts": [],
                    "checks": [],
                },
            },
            "protection_url": f"{api}/branches/{name}/protection",
        }

    # -- checks, actions, deployments ------------------------------------------------------

    def check_run(self, run: CheckRun) -> dict[str, Any]:
        api = self.repo_api(run.repo)
        pulls = [
            self.pull_minimal(i)
            for i in self._store.pulls_of(run.repo)
            if i.pull is not None and i.pull.head_sha == run.head_sha and i.state == "open"
        ]
        return {
            "id": run.id,
            "head_sha": run.head_sha,
            "node_id": node_id("CheckRun", run.id),
            "external_id": run.external_id or "",
            "url": f"{api}/check-runs/{run.id}",
            "html_url": f"{self.web}/{run.repo}/runs/{run.id}",
            "details_url": run.details_url or f"{self.web}/{run.repo}/runs/{run.id}",
            "status": run.status,
            "conclusion": run.conclusion,
            "started_at": iso(run.started_at),
            "completed_at": iso(run.completed_at),
            "output": {
                "title": run.output.get("title"),
                "summary": run.output.get("summary"),
                "text": run.output.get("text"),
                "annotations_count": len(run.annotations),
                "annotations_url": f"{api}/check-runs/{run.id}/annotations",
            },
            "name": run.name,
            "check_suite": {"id": run.check_suite_id},
            "app": self.app(),
            "pull_requests": pulls,
        }

    def workflow(self, repo: Repo, path: str, name: str, workflow_id: int) -> dict[str, Any]:
        api = self.repo_api(repo.full_name)
        return {
            "id": workflow_id,
            "node_id": node_id("Workflow", workflow_id),
            "name": name,
            "path": path,
            "state": "active",
            "created_at": iso(repo.created_at),
            "updated_at": iso(repo.created_at),
            "url": f"{api}/actions/workflows/{workflow_id}",
            "html_url": f"{self.web}/{repo.full_name}/blob/{repo.default_branch}/{path}",
            "badge_url": f"{self.web}/{repo.full_name}/workflows/{name}/badge.svg",
        }

    def workflow_run(self, run: WorkflowRun) -> dict[str, Any]:
        repo = self._store.repo(run.repo)
        api = f"{self.repo_api(run.repo)}/actions/runs/{run.id}"
        info = self._git(run.repo).commit_info(run.head_sha)
        repo_body = self.repo(repo)
        pulls = [
            self.pull_minimal(i)
            for i in self._store.pulls_of(run.repo)
            if i.pull is not None and i.pull.head_sha == run.head_sha and i.state == "open"
        ]
        return {
            "id": run.id,
            "name": run.name,
            "node_id": node_id("WorkflowRun", run.id),
            "check_suite_id": run.id + 1,
            "check_suite_node_id": node_id("CheckSuite", run.id + 1),
            "head_branch": run.head_branch,
            "head_sha": run.head_sha,
            "path": run.workflow_path,
            "display_title": run.name,
            "run_number": run.run_number,
            "run_attempt": 1,
            "event": run.event,
            "status": run.status,
            "conclusion": run.conclusion,
            "workflow_id": run.workflow_id,
            "url": api,
            "html_url": f"{self.web}/{run.repo}/actions/runs/{run.id}",
            "pull_requests": pulls,
            "created_at": iso(run.created_at),
            "updated_at": iso(run.updated_at),
            "run_started_at": iso(run.created_at),
            "actor": self.user(run.actor),
            "triggering_actor": self.user(run.actor),
            "jobs_url": api + "/jobs",
            "logs_url": api + "/logs",
            "check_suite_url": f"{self.repo_api(run.repo)}/check-suites/{run.id + 1}",
            "artifacts_url": api + "/artifacts",
            "cancel_url": api + "/cancel",
            "rerun_url": api + "/rerun",
            "previous_attempt_url": None,
            "workflow_url": f"{self.repo_api(run.repo)}/actions/workflows/{run.workflow_id}",
            "referenced_workflows": [],
            "head_commit": {
                "id": info.sha,
                "tree_id": info.tree,
                "message": info.message,
                "timestamp": info.committer_date,
                "author": {"name": info.author_name, "email": info.author_email},
                "committer": {"name": info.committer_name, "email": info.committer_email},
            },
            "repository": repo_body,
            "head_repository": repo_body,
        }

    def deployment(self, deployment: Deployment) -> dict[str, Any]:
        api = f"{self.repo_api(deployment.repo)}/deployments/{deployment.id}"
        return {
            "url": api,
            "id": deployment.id,
            "node_id": node_id("Deployment", deployment.id),
            "sha": deployment.sha,
            "ref": deployment.ref,
            "task": deployment.task,
            "payload": deployment.payload,
            "original_environment": deployment.environment,
            "environment": deployment.environment,
            "description": deployment.description,
            "creator": self.user(deployment.creator),
            "created_at": iso(deployment.created_at),
            "updated_at": iso(deployment.created_at),
            "statuses_url": api + "/statuses",
            "repository_url": self.repo_api(deployment.repo),
            "transient_environment": deployment.transient_environment,
            "production_environment": deployment.production_environment,
            "performed_via_github_app": None,
        }

    def deployment_status(self, deployment: Deployment, status: DeploymentStatus) -> dict[str, Any]:
        api = f"{self.repo_api(deployment.repo)}/deployments/{deployment.id}"
        return {
            "url": f"{api}/statuses/{status.id}",
            "id": status.id,
            "node_id": node_id("DeploymentStatus", status.id),
            "state": status.state,
            "creator": self.user(status.creator),
            "description": status.description,
            "environment": status.environment or deployment.environment,
            "target_url": status.target_url,
            "log_url": status.log_url or status.target_url,
            "environment_url": status.environment_url,
            "created_at": iso(status.created_at),
            "updated_at": iso(status.created_at),
            "deployment_url": api,
            "repository_url": self.repo_api(deployment.repo),
            "performed_via_github_app": None,
        }

    def collaborator_permission(self, repo: Repo, user: User, role: str) -> dict[str, Any]:
        # The legacy `permission` field folds maintain into write and triage into read.
        legacy = {"maintain": "write", "triage": "read"}.get(role, role)
        rank = ["none", "read", "triage", "write", "maintain", "admin"].index(role)
        return {
            "permission": legacy,
            "role_name": role,
            "user": {
                **self.user(user),
                "role_name": role,
                "permissions": {
                    "pull": rank >= 1,
                    "triage": rank >= 2,
                    "push": rank >= 3,
                    "maintain": rank >= 4,
                    "admin": rank >= 5,
                },
            },
        }

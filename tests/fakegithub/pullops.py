"""Pull request operations with GitHub's rules, shared by the REST routes and the scenario API."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .api.common import ApiError, unprocessable, validation_failed
from .events import Events
from .gitrepo import Author, BareRepo
from .state import Issue, PullRequest, Repo, Review, ReviewComment, Store, User, utcnow

REVIEW_STATES = {
    "APPROVE": "APPROVED",
    "APPROVED": "APPROVED",
    "REQUEST_CHANGES": "CHANGES_REQUESTED",
    "CHANGES_REQUESTED": "CHANGES_REQUESTED",
    "COMMENT": "COMMENTED",
    "COMMENTED": "COMMENTED",
    "": "PENDING",
    "PENDING": "PENDING",
}
OUTSIDE_DIFF = "pull_request_review_thread.line must be part of the diff"


def author_of(user: User) -> Author:
    return Author(user.login, f"{user.id}+{user.login}@users.noreply.github.com")


class PullOps:
    def __init__(self, store: Store, git: Callable[[str], BareRepo], events: Events) -> None:
        self._store = store
        self._git = git
        self._events = events

    # -- lifecycle -------------------------------------------------------------------------

    def create(
        self,
        repo: Repo,
        *,
        title: str,
        head: str,
        base: str,
        body: str | None,
        user: User,
        draft: bool = False,
    ) -> Issue:
        if not title:
            raise validation_failed("PullRequest", "title wasn't supplied.", field="title")
        git = self._git(repo.full_name)
        head_ref = head.split(":", 1)[1] if ":" in head else head
        base_sha = git.rev_parse(f"refs/heads/{base}")
        if base_sha is None:
            raise ApiError(
                422,
                "Validation Failed",
                [{"resource": "PullRequest", "field": "base", "code": "invalid"}],
            )
        head_sha = git.rev_parse(f"refs/heads/{head_ref}")
        if head_sha is None:
            raise ApiError(
                422,
                "Validation Failed",
                [{"resource": "PullRequest", "field": "head", "code": "invalid"}],
            )
        with self._store.lock:
            for other in self._store.pulls_of(repo.full_name):
                pull = other.pull
                if (
                    pull is not None
                    and other.state == "open"
                    and pull.head_ref == head_ref
                    and pull.base_ref == base
                ):
                    raise validation_failed(
                        "PullRequest",
                        f"A pull request already exists for {repo.owner.login}:{head_ref}.",
                    )
            if not git.commits_between(base_sha, head_sha):
                raise validation_failed("PullRequest", f"No commits between {base} and {head_ref}")
            issue = Issue(
                id=self._store.next_id(),
                repo=repo.full_name,
                number=self._store.next_issue_number(repo.full_name),
                title=title,
                body=body,
                user=user,
                pull=PullRequest(
                    head_ref=head_ref,
                    head_sha=head_sha,
                    base_ref=base,
                    base_sha=base_sha,
                    draft=draft,
                ),
            )
            self._store.issues[(repo.full_name, issue.number)] = issue
        self._events.issue_changed(issue, "opened", user)
        return issue

    def close(self, issue: Issue, user: User) -> None:
        with self._store.lock:
            if issue.state == "closed":
                return
            issue.state = "closed"
            issue.closed_at = issue.updated_at = utcnow()
            issue.closed_by = user
        self._events.issue_changed(issue, "closed", user)

    def reopen(self, issue: Issue, user: User) -> None:
        with self._store.lock:
            if issue.state == "open" or (issue.pull is not None and issue.pull.merged):
                return
            issue.state = "open"
            issue.closed_at = issue.closed_by = None
            issue.updated_at = utcnow()
        self._events.issue_changed(issue, "reopened", user)

    def merge(
        self,
        issue: Issue,
        *,
        user: User,
        method: str = "merge",
        title: str | None = None,
        message: str | None = None,
        sha: str | None = None,
    ) -> str:
        """Merge in the bare repository, move the base branch, close the PR; returns the sha
        the base branch now points at."""
        pull = issue.pull
        assert pull is not None, f"{issue.repo}#{issue.number} is not a pull request"
        repo = self._store.repo(issue.repo)
        git = self._git(issue.repo)
        if method not in ("merge", "squash", "rebase"):
            raise validation_failed("PullRequest", f"Invalid merge_method {method!r}")
        with self._store.lock:
            if issue.state != "open" or pull.merged:
                raise ApiError(405, "Pull Request is not mergeable")
            if sha is not None and sha != pull.head_sha:
                raise ApiError(409, "Head branch was modified. Review and try the merge again.")
            base_ref = f"refs/heads/{pull.base_ref}"
            base_head = git.rev_parse(base_ref)
            assert base_head is not None, f"base branch {pull.base_ref} vanished"
            new_sha = self._merge_commit(
                git, issue, pull, base_head, method, title, message, author_of(user)
            )
            git.update_ref(base_ref, new_sha, base_head)
            pull.merged = True
            pull.merged_at = issue.closed_at = issue.updated_at = utcnow()
            pull.merged_by = issue.closed_by = user
            pull.merge_commit_sha = new_sha
            issue.state = "closed"
        self._events.refs_moved(repo, [(base_ref, base_head, new_sha)], user)
        self._events.issue_changed(issue, "closed", user)
        return new_sha

    def _merge_commit(
        self,
        git: BareRepo,
        issue: Issue,
        pull: PullRequest,
        base_head: str,
        method: str,
        title: str | None,
        message: str | None,
        author: Author,
    ) -> str:
        if method == "rebase":
            # Replaying commits needs `merge-tree --merge-base` (git 2.40); the fake only
            # rebases when the base has not moved, where GitHub's result has the same tree.
            if not git.is_ancestor(base_head, pull.head_sha):
                raise ApiError(405, "This branch can't be rebased")
            return pull.head_sha
        tree = git.merge_tree(base_head, pull.head_sha)
        if tree is None:
            raise ApiError(405, "Pull Request is not mergeable")
        owner = issue.repo.split("/", 1)[0]
        if method == "squash":
            subject = title or f"{issue.title} (#{issue.number})"
            details = message
            if details is None:
                logs = [
                    git.commit_info(c).message
                    for c in git.commits_between(base_head, pull.head_sha)
                ]
                details = "\n\n".join(f"* {m}" for m in logs)
            return git.commit_tree(tree, [base_head], f"{subject}\n\n{details}".rstrip(), author)
        subject = title or f"Merge pull request #{issue.number} from {owner}/{pull.head_ref}"
        details = message if message is not None else issue.title
        return git.commit_tree(
            tree, [base_head, pull.head_sha], f"{subject}\n\n{details}".rstrip(), author
        )

    # -- reviews ---------------------------------------------------------------------------

    def review(
        self,
        issue: Issue,
        *,
        user: User,
        event: str | None,
        body: str | None,
        comments: Iterable[Mapping[str, Any]] = (),
        commit_id: str | None = None,
    ) -> Review:
        pull = issue.pull
        assert pull is not None, f"{issue.repo}#{issue.number} is not a pull request"
        state = REVIEW_STATES.get((event or "").upper())
        if state is None:
            raise unprocessable(f"Unknown review event {event!r}")
        if user is issue.user and state == "APPROVED":
            raise unprocessable("Can not approve your own pull request")
        if user is issue.user and state == "CHANGES_REQUESTED":
            raise unprocessable("Can not request changes on your own pull request")
        comments = list(comments)
        if state == "CHANGES_REQUESTED" and not body and not comments:
            raise unprocessable("Review Can not request changes without a body")
        commit = commit_id or pull.head_sha
        git = self._git(issue.repo)
        drafts = [self._diff_comment(git, issue, pull, commit, dict(c), user) for c in comments]
        with self._store.lock:
            review = Review(
                id=self._store.next_id(),
                repo=issue.repo,
                pr_number=issue.number,
                user=user,
                state=state,
                body=body or "",
                commit_id=commit,
            )
            self._store.reviews[review.id] = review
            for draft in drafts:
                draft.id = self._store.next_id()
                draft.review_id = review.id
                self._store.review_comments[draft.id] = draft
        if state != "PENDING":
            self._events.review_submitted(issue, review, user)
        return review

    def comment(self, issue: Issue, *, user: User, fields: Mapping[str, Any]) -> ReviewComment:
        """One review comment on the diff (outside a review), or a reply via `in_reply_to`."""
        pull = issue.pull
        assert pull is not None
        reply_to = fields.get("in_reply_to")
        if reply_to is not None:
            return self.reply(issue, int(reply_to), user=user, body=str(fields.get("body", "")))
        commit = str(fields.get("commit_id") or pull.head_sha)
        draft = self._diff_comment(self._git(issue.repo), issue, pull, commit, dict(fields), user)
        return self._store_comment(issue, draft, user)

    def reply(self, issue: Issue, comment_id: int, *, user: User, body: str) -> ReviewComment:
        with self._store.lock:
            parent = self._store.review_comments.get(comment_id)
            if parent is None or parent.repo != issue.repo or parent.pr_number != issue.number:
                raise ApiError(404, "Not Found")
        if not body:
            raise validation_failed(
                "PullRequestReviewComment", "body wasn't supplied.", field="body"
            )
        draft = ReviewComment(
            id=0,
            repo=issue.repo,
            pr_number=issue.number,
            review_id=None,
            path=parent.path,
            line=parent.line,
            side=parent.side,
            body=body,
            user=user,
            commit_id=parent.commit_id,
            diff_hunk=parent.diff_hunk,
            in_reply_to_id=parent.in_reply_to_id or parent.id,
            start_line=parent.start_line,
        )
        return self._store_comment(issue, draft, user)

    def _store_comment(self, issue: Issue, draft: ReviewComment, user: User) -> ReviewComment:
        with self._store.lock:
            draft.id = self._store.next_id()
            self._store.review_comments[draft.id] = draft
        self._events.review_comment_created(issue, draft, user)
        return draft

    def _diff_comment(
        self,
        git: BareRepo,
        issue: Issue,
        pull: PullRequest,
        commit: str,
        fields: dict[str, Any],
        user: User,
    ) -> ReviewComment:
        path = fields.get("path")
        body = fields.get("body")
        line = fields.get("line")
        side = str(fields.get("side") or "RIGHT").upper()
        if not isinstance(path, str) or not isinstance(body, str) or not body:
            raise unprocessable("path and body are required for each review comment")
        if not isinstance(line, int):
            raise unprocessable(OUTSIDE_DIFF)
        if git.object_type(commit) != "commit" or not (
            commit == pull.head_sha or git.is_ancestor(commit, pull.head_sha)
        ):
            raise unprocessable("commit_id is not part of the pull request")
        hunk = git.diff_hunk_for(pull.base_sha, commit, path, line, side)
        if hunk is None:
            raise unprocessable(OUTSIDE_DIFF)
        start_line = fields.get("start_line")
        if (
            isinstance(start_line, int)
            and git.diff_hunk_for(
                pull.base_sha, commit, path, start_line, str(fields.get("start_side") or side)
            )
            is None
        ):
            raise unprocessable(OUTSIDE_DIFF)
        return ReviewComment(
            id=0,
            repo=issue.repo,
            pr_number=issue.number,
            review_id=None,
            path=path,
            line=line,
            side=side,
            body=body,
            user=user,
            commit_id=commit,
            diff_hunk=hunk,
            start_line=start_line if isinstance(start_line, int) else None,
        )

"""Pull requests: open (once), update, reviewers, reviews with inline comments, replies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, cast

from githubkit.utils import UNSET
from githubkit_schemas.latest.models import (
    DiffEntry,
    PullRequestReview,
    PullRequestReviewComment,
    PullRequestSimple,
)

from ._base import RepoScope, fit, present
from .diff import DiffIndex
from .errors import GitHubValidationFailed, github_errors
from .models import (
    PostedReview,
    PostedReviewComment,
    PullFile,
    PullRequest,
    ReviewComment,
    ReviewCommentReply,
    ReviewEvent,
    SubmittedReview,
)


def _pull(raw: Any) -> PullRequest:
    return PullRequest(
        number=raw.number,
        html_url=raw.html_url,
        state=raw.state,
        draft=bool(present(raw.draft)),
        title=raw.title,
        body=raw.body or "",
        author=raw.user.login if raw.user else "ghost",
        head_ref=raw.head.ref,
        head_sha=raw.head.sha,
        base_ref=raw.base.ref,
        merged=raw.merged_at is not None,
    )


def _review_payload(comment: ReviewComment) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "path": comment.path,
        "line": comment.line,
        "side": comment.side,
        "body": fit(comment.body),
    }
    if comment.start_line is not None and comment.start_line != comment.line:
        payload["start_line"] = comment.start_line
        payload["start_side"] = comment.side
    return payload


def review_body(body: str, moved: Sequence[ReviewComment]) -> str:
    """The review's text, followed by the comments whose lines are not in the diff."""
    if not moved:
        return body
    lines = [body.rstrip(), "", "**Comments on lines outside this pull request's diff:**", ""]
    for comment in moved:
        where = (
            f"{comment.path}:{comment.start_line}-{comment.line}"
            if comment.start_line is not None and comment.start_line != comment.line
            else f"{comment.path}:{comment.line}"
        )
        lines.append(f"- `{where}`: {comment.body}")
    return "\n".join(lines).lstrip()


class PullOps(RepoScope):
    async def get_pull_request(self, number: int) -> PullRequest:
        with github_errors(f"read pull request {self.full_name}#{number}"):
            response = await self.gh.rest.pulls.async_get(self.owner, self.repo, number)
        return _pull(response.parsed_data)

    async def find_pull_request(self, head: str, base: str | None = None) -> PullRequest | None:
        """The open pull request from branch ``head`` of this repository, if there is one."""
        with github_errors(f"look up pull requests from {head} in {self.full_name}"):
            response = await self.gh.rest.pulls.async_list(
                self.owner, self.repo, state="open", head=f"{self.owner}:{head}", base=base or UNSET
            )
        # githubkit annotates this ``list[...]`` inside a class with a ``list`` method, which
        # type checkers then read as that method.
        for raw in cast("list[PullRequestSimple]", response.parsed_data):
            if raw.head.ref == head:
                return _pull(raw)
        return None

    async def ensure_pull_request(
        self, head: str, base: str, title: str, body: str, draft: bool = False
    ) -> PullRequest:
        """The open pull request for ``head``: the existing one, or a new one.

        A retried job finds the pull request its earlier attempt opened instead of opening
        a second; the existing one is returned unchanged (use ``update_pull_request``).
        """
        if (existing := await self.find_pull_request(head)) is not None:
            return existing
        try:
            return await self._create_pull(head, base, title, body, draft)
        except GitHubValidationFailed as exc:
            # Another attempt won the race, or drafts are not available on this plan.
            if (existing := await self.find_pull_request(head)) is not None:
                return existing
            if draft and "draft" in exc.detail.lower():
                return await self._create_pull(head, base, title, body, False)
            raise

    async def _create_pull(
        self, head: str, base: str, title: str, body: str, draft: bool
    ) -> PullRequest:
        with github_errors(f"open a pull request from {head} in {self.full_name}"):
            response = await self.gh.rest.pulls.async_create(
                self.owner,
                self.repo,
                head=head,
                base=base,
                title=title,
                body=fit(body),
                draft=draft,
            )
        return _pull(response.parsed_data)

    async def update_pull_request(
        self,
        number: int,
        *,
        title: str | None = None,
        body: str | None = None,
        state: Literal["open", "closed"] | None = None,
        base: str | None = None,
    ) -> PullRequest:
        changes: dict[str, Any] = {"title": title, "state": state, "base": base}
        changes["body"] = fit(body) if body is not None else None
        with github_errors(f"update pull request {self.full_name}#{number}"):
            response = await self.gh.rest.pulls.async_update(
                self.owner,
                self.repo,
                number,
                **{k: v for k, v in changes.items() if v is not None},
            )
        return _pull(response.parsed_data)

    async def request_reviewers(
        self, number: int, reviewers: Sequence[str] = (), team_reviewers: Sequence[str] = ()
    ) -> None:
        if not reviewers and not team_reviewers:
            return
        with github_errors(f"request reviewers on {self.full_name}#{number}"):
            await self.gh.rest.pulls.async_request_reviewers(
                self.owner,
                self.repo,
                number,
                reviewers=list(reviewers),
                team_reviewers=list(team_reviewers),
            )

    async def list_pull_request_files(self, number: int) -> tuple[PullFile, ...]:
        files: list[PullFile] = []
        raw: DiffEntry
        with github_errors(f"list files of {self.full_name}#{number}"):
            async for raw in self.gh.rest.paginate(
                self.gh.rest.pulls.async_list_files,
                owner=self.owner,
                repo=self.repo,
                pull_number=number,
                per_page=100,
            ):
                files.append(
                    PullFile(
                        raw.filename,
                        raw.status,
                        present(raw.patch),
                        present(raw.previous_filename),
                    )
                )
        return tuple(files)

    async def create_review(
        self,
        number: int,
        *,
        body: str,
        comments: Sequence[ReviewComment] = (),
        event: ReviewEvent = "COMMENT",
    ) -> PostedReview:
        """Posts a review; inline comments outside the diff are moved into its body.

        GitHub rejects a whole review (422) over one comment on a line outside the diff,
        and rejects APPROVE/REQUEST_CHANGES from a pull request's own author, which the bot
        is for the pull requests it opened; that verdict is posted as a COMMENT.
        """
        pull = await self.get_pull_request(number)
        inline, moved = DiffIndex(await self.list_pull_request_files(number)).split(comments)
        if event != "COMMENT" and pull.author == self.bot_login:
            event = "COMMENT"
        text = review_body(body, moved) or "Review"
        with github_errors(f"review {self.full_name}#{number}"):
            response = await self.gh.rest.pulls.async_create_review(
                self.owner,
                self.repo,
                number,
                commit_id=pull.head_sha,
                body=fit(text),
                event=event,
                comments=[_review_payload(c) for c in inline],  # type: ignore[misc,unused-ignore]
            )
        raw = response.parsed_data
        return PostedReview(raw.id, raw.html_url, event, inline, moved)

    async def reply_to_review_comment(
        self, number: int, comment_id: int, body: str
    ) -> ReviewCommentReply:
        """Answers in the thread of top-level review comment ``comment_id``."""
        with github_errors(f"reply to review comment {comment_id} on {self.full_name}#{number}"):
            response = await self.gh.rest.pulls.async_create_reply_for_review_comment(
                self.owner, self.repo, number, comment_id, body=fit(body)
            )
        raw = response.parsed_data
        return ReviewCommentReply(raw.id, raw.html_url, present(raw.in_reply_to_id) or comment_id)

    async def list_reviews(self, number: int) -> tuple[SubmittedReview, ...]:
        reviews: list[SubmittedReview] = []
        raw: PullRequestReview
        with github_errors(f"list reviews of {self.full_name}#{number}"):
            async for raw in self.gh.rest.paginate(
                self.gh.rest.pulls.async_list_reviews,
                owner=self.owner,
                repo=self.repo,
                pull_number=number,
                per_page=100,
            ):
                author: str = raw.user.login if raw.user else "ghost"
                reviews.append(SubmittedReview(raw.id, author, raw.state, raw.body or ""))
        return tuple(reviews)

    async def list_review_comments(self, number: int) -> tuple[PostedReviewComment, ...]:
        comments: list[PostedReviewComment] = []
        raw: PullRequestReviewComment
        with github_errors(f"list review comments of {self.full_name}#{number}"):
            async for raw in self.gh.rest.paginate(
                self.gh.rest.pulls.async_list_review_comments,
                owner=self.owner,
                repo=self.repo,
                pull_number=number,
                per_page=100,
            ):
                author: str = raw.user.login if raw.user else "ghost"
                comments.append(
                    PostedReviewComment(
                        raw.id,
                        author,
                        raw.path,
                        present(raw.line),
                        raw.body,
                        review_id=present(raw.pull_request_review_id),
                    )
                )
        return tuple(comments)

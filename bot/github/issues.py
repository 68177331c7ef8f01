"""Issues, their comments, reactions and labels."""

from __future__ import annotations

from typing import Any, cast

from githubkit_schemas.latest.models import IssueComment as GitHubIssueComment
from githubkit_schemas.latest.models import Label

from ._base import RepoScope, fit, present
from .errors import GitHubNotFound, github_errors
from .models import Issue, IssueComment, Reaction, ReactionContent


def _comment(raw: Any) -> IssueComment:
    user = raw.user
    return IssueComment(
        id=raw.id,
        body=present(raw.body) or "",
        author=user.login if user else "ghost",
        author_is_bot=bool(user and user.type == "Bot"),
        html_url=raw.html_url,
        created_at=raw.created_at,
    )


def _label_name(label: Any) -> str:
    return label if isinstance(label, str) else (present(label.name) or "")


def marker_comment(marker: str) -> str:
    """The hidden HTML comment that tags a bot comment so it can be found and edited later."""
    marker = marker.strip()
    return marker if marker.startswith("<!--") else f"<!-- {marker} -->"


class IssueOps(RepoScope):
    async def get_issue(self, number: int) -> Issue:
        with github_errors(f"read issue {self.full_name}#{number}"):
            raw = (await self.gh.rest.issues.async_get(self.owner, self.repo, number)).parsed_data
        return Issue(
            number=raw.number,
            title=raw.title,
            body=present(raw.body) or "",
            state=raw.state,
            author=raw.user.login if raw.user else "ghost",
            labels=tuple(_label_name(label) for label in raw.labels),
            is_pull_request=present(raw.pull_request) is not None,
            html_url=raw.html_url,
        )

    async def list_issue_comments(self, number: int) -> tuple[IssueComment, ...]:
        """All comments, oldest first.

        Cost: one conditional request per 100 comments (GitHub's page size).
        """
        comments: list[IssueComment] = []
        raw: GitHubIssueComment
        with github_errors(f"list comments of {self.full_name}#{number}"):
            async for raw in self.gh.rest.paginate(
                self.gh.rest.issues.async_list_comments,
                owner=self.owner,
                repo=self.repo,
                issue_number=number,
                per_page=100,
            ):
                comments.append(_comment(raw))
        return tuple(comments)

    async def create_comment(self, number: int, body: str) -> IssueComment:
        with github_errors(f"comment on {self.full_name}#{number}"):
            response = await self.gh.rest.issues.async_create_comment(
                self.owner, self.repo, number, body=fit(body)
            )
        return _comment(response.parsed_data)

    async def edit_comment(self, comment_id: int, body: str) -> IssueComment:
        with github_errors(f"edit comment {comment_id} on {self.full_name}"):
            response = await self.gh.rest.issues.async_update_comment(
                self.owner, self.repo, comment_id, body=fit(body)
            )
        return _comment(response.parsed_data)

    async def find_marked_comment(self, number: int, marker: str) -> IssueComment | None:
        """The bot's own comment carrying ``marker`` (the first one, if a race made two).

        Cost: :meth:`list_issue_comments`; remember the id rather than finding it again.
        """
        tag = marker_comment(marker)
        for comment in await self.list_issue_comments(number):
            if comment.author == self.bot_login and tag in comment.body:
                return comment
        return None

    async def upsert_marked_comment(
        self, number: int, marker: str, body: str, *, comment_id: int | None = None
    ) -> IssueComment:
        """Create the bot's marked comment once, then edit that same comment every time.

        Cost with ``comment_id`` (the id this returned before): one edit, no lookup; if that
        comment was deleted, as without it. Without it: the comments are listed
        (:meth:`list_issue_comments`), then one create, or one edit unless the text is the
        same. A caller that remembers the id should also skip calls whose text it already
        wrote.
        """
        tag = marker_comment(marker)
        text = body if tag in body else f"{tag}\n{body}"
        if comment_id is not None:
            try:
                return await self.edit_comment(comment_id, text)
            except GitHubNotFound:
                pass  # deleted since: find another marked one, or make it again
        existing = await self.find_marked_comment(number, marker)
        if existing is None:
            return await self.create_comment(number, text)
        if existing.body == fit(text):
            return existing
        return await self.edit_comment(existing.id, text)

    async def react_to_issue(self, number: int, content: ReactionContent) -> Reaction:
        with github_errors(f"react to {self.full_name}#{number}"):
            response = await self.gh.rest.reactions.async_create_for_issue(
                self.owner, self.repo, number, content=content
            )
        return Reaction(response.parsed_data.id, response.parsed_data.content)

    async def react_to_issue_comment(self, comment_id: int, content: ReactionContent) -> Reaction:
        with github_errors(f"react to comment {comment_id} on {self.full_name}"):
            response = await self.gh.rest.reactions.async_create_for_issue_comment(
                self.owner, self.repo, comment_id, content=content
            )
        return Reaction(response.parsed_data.id, response.parsed_data.content)

    async def react_to_review_comment(self, comment_id: int, content: ReactionContent) -> Reaction:
        with github_errors(f"react to review comment {comment_id} on {self.full_name}"):
            response = await self.gh.rest.reactions.async_create_for_pull_request_review_comment(
                self.owner, self.repo, comment_id, content=content
            )
        return Reaction(response.parsed_data.id, response.parsed_data.content)

    async def add_labels(self, number: int, labels: list[str]) -> tuple[str, ...]:
        """Adds ``labels`` (creating unknown ones); returns the issue's labels afterwards."""
        with github_errors(f"label {self.full_name}#{number}"):
            response = await self.gh.rest.issues.async_add_labels(
                self.owner, self.repo, number, labels=list(labels)
            )
        # githubkit's ``list[Label]`` sits in a class with a ``list`` method: type checkers
        # read it as that method.
        return tuple(label.name for label in cast("list[Label]", response.parsed_data))

    async def remove_label(self, number: int, label: str) -> bool:
        """False when the issue did not carry the label (not an error: the goal is reached)."""
        try:
            with github_errors(f"unlabel {self.full_name}#{number}"):
                await self.gh.rest.issues.async_remove_label(self.owner, self.repo, number, label)
        except GitHubNotFound:
            return False
        return True

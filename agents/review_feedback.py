"""A pull request review, written out as the feedback the next implementation round must address.

The text becomes the run's guidance, which the coder stage hands the model wrapped as untrusted
data. Only the review itself goes in: its summary and the inline comments its author wrote in it.
Other people's comments and replies, even in the same threads, never do: they may come from
anyone who can comment, and the review's author is the one whose permission was checked.
"""

from __future__ import annotations

from bot.github import RepoClient

_MAX_FEEDBACK_CHARS = 20_000


async def review_feedback(
    gh: RepoClient,
    pr_number: int,
    review_id: int | None,
    reviewer: str,
    body: str | None,
    *,
    author: str | None = None,
) -> str:
    """What the coder's next round must address: the review's summary and its inline comments,
    each with the file and line it is on (most reviews say what they want there, not in the
    summary).

    ``reviewer`` is how the review is introduced ("@alice"); ``author`` is the login whose
    comments count. GitHub gives each reply its own review, so the review id alone keeps
    replies out; the author check keeps anything else out should that ever change.
    """
    lines = [f"Review by {reviewer} (changes requested):", (body or "").strip() or "(no summary)"]
    comments = []
    if review_id is not None:
        comments = [
            c
            for c in await gh.list_review_comments(pr_number)
            if c.review_id == review_id
            and (author is None or c.author.casefold() == author.casefold())
        ]
    if comments:
        lines += ["", "Inline comments:"]
        for comment in comments:
            where = f"`{comment.path}` line {comment.line}" if comment.line else f"`{comment.path}`"
            lines.append(f"- {where}: {comment.body.strip()}")
    text = "\n".join(lines)
    if len(text) > _MAX_FEEDBACK_CHARS:
        text = text[:_MAX_FEEDBACK_CHARS] + "\n[... the rest of the review is not shown ...]"
    return text

"""A pull request review, written out as the feedback the next implementation round must address."""

from __future__ import annotations

from typing import Any

_MAX_FEEDBACK_CHARS = 20_000


async def review_feedback(
    gh: Any, pr_number: int, review_id: int | None, reviewer: str, body: str | None
) -> str:
    """What the coder's next round must address: the review's summary and its inline comments,
    each with the file and line it is on (most reviews say what they want there, not in the
    summary)."""
    lines = [f"Review by {reviewer} (changes requested):", (body or "").strip() or "(no summary)"]
    comments = []
    if review_id is not None:
        comments = [c for c in await gh.list_review_comments(pr_number) if c.review_id == review_id]
    if comments:
        lines += ["", "Inline comments:"]
        for comment in comments:
            where = f"`{comment.path}` line {comment.line}" if comment.line else f"`{comment.path}`"
            lines.append(f"- {where}: {comment.body.strip()}")
    text = "\n".join(lines)
    if len(text) > _MAX_FEEDBACK_CHARS:
        text = text[:_MAX_FEEDBACK_CHARS] + "\n[... the rest of the review is not shown ...]"
    return text

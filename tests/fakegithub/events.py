"""What happens on GitHub's side after a change: follow-up state and the webhooks it fires.

Shared by the scenario API (a human acted) and the REST routes / git pushes (the bot acted).
Deliveries caused by the bot's own requests can be switched off with `deliver_own_events`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .delivery import Delivery, WebhookSink, signed
from .gitrepo import EMPTY_SHA, BareRepo
from .payloads import WebhookPayloads
from .state import Issue, Label, Repo, Review, ReviewComment, Store, User, utcnow


class Events:
    def __init__(
        self,
        store: Store,
        payloads: WebhookPayloads,
        sink: WebhookSink,
        git: Callable[[str], BareRepo],
        secret: Callable[[], str | None],
    ) -> None:
        self._store = store
        self._payloads = payloads
        self._sink = sink
        self._git = git
        self._secret = secret
        self.deliver_own_events = True

    # -- delivering ------------------------------------------------------------------------

    def build(
        self, event: str, action: str | None, repo: Repo, sender: User, **parts: Any
    ) -> tuple[dict[str, str], bytes]:
        payload = self._payloads.build(event, action, repo=repo, sender=sender, **parts)
        return signed(event, payload, self._secret())

    def emit(
        self, event: str, action: str | None, repo: Repo, sender: User, **parts: Any
    ) -> Delivery | None:
        """Build, sign and queue one delivery, if a sink is set."""
        if not self._sink.active:
            return None
        headers, body = self.build(event, action, repo, sender, **parts)
        return self.send(event, action, headers, body)

    def send(
        self, event: str, action: str | None, headers: dict[str, str], body: bytes
    ) -> Delivery:
        delivery = Delivery(
            id=headers["x-github-delivery"], event=event, action=action, headers=headers, body=body
        )
        return self._sink.send(delivery)

    def _wanted(self, sender: User) -> bool:
        return self.deliver_own_events or sender is not self._store.bot

    # -- issue-ish events ------------------------------------------------------------------

    def issue_changed(
        self, issue: Issue, action: str, sender: User, label: Label | None = None
    ) -> Delivery | None:
        """`issues.<action>`, or `pull_request.<action>` when the issue is a pull request."""
        if not self._wanted(sender):
            return None
        repo = self._store.repo(issue.repo)
        if issue.pull is not None:
            return self.emit(
                "pull_request", action, repo, sender, **self._payloads.pull_parts(issue, label)
            )
        return self.emit("issues", action, repo, sender, **self._payloads.issue_parts(issue, label))

    def comment_created(self, issue: Issue, comment_id: int, sender: User) -> Delivery | None:
        if not self._wanted(sender):
            return None
        comment = self._store.comments[comment_id]
        repo = self._store.repo(issue.repo)
        parts = self._payloads.comment_parts(issue, comment)
        return self.emit("issue_comment", "created", repo, sender, **parts)

    def review_submitted(self, issue: Issue, review: Review, sender: User) -> Delivery | None:
        if not self._wanted(sender):
            return None
        repo = self._store.repo(issue.repo)
        parts = self._payloads.review_parts(issue, review)
        return self.emit("pull_request_review", "submitted", repo, sender, **parts)

    def review_comment_created(
        self, issue: Issue, comment: ReviewComment, sender: User
    ) -> Delivery | None:
        if not self._wanted(sender):
            return None
        repo = self._store.repo(issue.repo)
        parts = self._payloads.review_comment_parts(issue, comment)
        return self.emit("pull_request_review_comment", "created", repo, sender, **parts)

    # -- refs ------------------------------------------------------------------------------

    def refs_moved(
        self, repo: Repo, updates: list[tuple[str, str, str]], pusher: User
    ) -> list[Delivery]:
        """After refs changed (ref, before, after): move open PRs along, then `push` and
        `pull_request.synchronize` deliveries."""
        synchronized: list[tuple[Issue, str, str]] = []
        with self._store.lock:
            repo.pushed_at = utcnow()
            for ref, before, after in updates:
                if not ref.startswith("refs/heads/") or after == EMPTY_SHA:
                    continue
                branch = ref.removeprefix("refs/heads/")
                for issue in self._store.pulls_of(repo.full_name):
                    pull = issue.pull
                    if pull is None or issue.state != "open":
                        continue
                    if pull.head_ref == branch and pull.head_sha != after:
                        synchronized.append((issue, pull.head_sha, after))
                        pull.head_sha = after
                        issue.updated_at = utcnow()
                    if pull.base_ref == branch:
                        pull.base_sha = after
        sent: list[Delivery] = []
        if not self._wanted(pusher):
            return sent
        git = self._git(repo.full_name)
        for ref, before, after in updates:
            parts = self._payloads.push_parts(repo, git, ref, before, after, pusher)
            delivery = self.emit("push", None, repo, pusher, **parts)
            if delivery is not None:
                sent.append(delivery)
        for issue, before, after in synchronized:
            parts = {**self._payloads.pull_parts(issue), "before": before, "after": after}
            delivery = self.emit("pull_request", "synchronize", repo, pusher, **parts)
            if delivery is not None:
                sent.append(delivery)
        return sent

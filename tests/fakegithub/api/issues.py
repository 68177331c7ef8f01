"""Issues, issue comments, labels and reactions."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from ..shapes import REACTION_KEYS
from ..state import Comment, Issue, Label, Reaction, ReactionSubject, Repo, Store, utcnow
from .common import (
    ApiContext,
    ApiError,
    ApiRequest,
    json_response,
    no_content,
    not_found,
    paginate,
    route,
    validation_failed,
)


def ensure_label(store: Store, repo: Repo, name: str) -> Label:
    """Adding an unknown label to an issue creates it, as GitHub does."""
    label = repo.labels.get(name)
    if label is None:
        label = Label(id=store.next_id(), name=name)
        repo.labels[name] = label
    return label


class IssueRoutes:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    def routes(self) -> list[Route]:
        ctx, base = self.ctx, "/repos/{owner}/{repo}"
        return [
            route(ctx, base + "/issues", self.create_issue, ["POST"]),
            route(ctx, base + "/issues/comments/{id:int}", self.get_comment, ["GET"]),
            route(ctx, base + "/issues/comments/{id:int}", self.update_comment, ["PATCH"]),
            route(ctx, base + "/issues/comments/{id:int}", self.delete_comment, ["DELETE"]),
            route(
                ctx,
                base + "/issues/comments/{id:int}/reactions",
                self.comment_reactions,
                ["GET", "POST"],
            ),
            route(ctx, base + "/issues/{number:int}", self.get_issue, ["GET"]),
            route(ctx, base + "/issues/{number:int}", self.update_issue, ["PATCH"]),
            route(ctx, base + "/issues/{number:int}/comments", self.list_comments, ["GET"]),
            route(ctx, base + "/issues/{number:int}/comments", self.create_comment, ["POST"]),
            route(ctx, base + "/issues/{number:int}/labels", self.labels, ["GET", "POST", "PUT"]),
            route(
                ctx,
                base + "/issues/{number:int}/labels/{name:path}",
                self.remove_label,
                ["DELETE"],
            ),
            route(
                ctx,
                base + "/issues/{number:int}/reactions",
                self.issue_reactions,
                ["GET", "POST"],
            ),
            route(
                ctx,
                base + "/pulls/comments/{id:int}/reactions",
                self.review_comment_reactions,
                ["GET", "POST"],
            ),
        ]

    def _issue(self, req: ApiRequest) -> Issue:
        found = self.ctx.store.issues.get((req.repo.full_name, req.int_param("number")))
        if found is None:
            raise not_found()
        return found

    def _comment(self, req: ApiRequest) -> Comment:
        found = self.ctx.store.comments.get(req.int_param("id"))
        if found is None or found.repo != req.repo.full_name:
            raise not_found()
        return found

    # -- issues ----------------------------------------------------------------------------

    async def get_issue(self, req: ApiRequest) -> Response:
        with self.ctx.store.lock:
            return json_response(self.ctx.shapes.issue(self._issue(req)))

    async def create_issue(self, req: ApiRequest) -> Response:
        body = await req.json()
        title = body.get("title")
        if not isinstance(title, str) or not title:
            raise validation_failed("Issue", "title wasn't supplied.", field="title")
        store = self.ctx.store
        with store.lock:
            repo = req.repo
            issue = Issue(
                id=store.next_id(),
                repo=repo.full_name,
                number=store.next_issue_number(repo.full_name),
                title=title,
                body=body.get("body"),
                user=req.actor,
                labels=[ensure_label(self.ctx.store, repo, n).name for n in body.get("labels", [])],
            )
            store.issues[(repo.full_name, issue.number)] = issue
            shaped = self.ctx.shapes.issue(issue)
        self.ctx.events.issue_changed(issue, "opened", req.actor)
        return json_response(shaped, status=201)

    async def update_issue(self, req: ApiRequest) -> Response:
        body = await req.json()
        action = "edited"
        with self.ctx.store.lock:
            issue = self._issue(req)
            if "title" in body:
                issue.title = body["title"]
            if "body" in body:
                issue.body = body["body"]
            if "labels" in body:
                issue.labels = [
                    ensure_label(self.ctx.store, req.repo, n).name for n in body["labels"]
                ]
            state = body.get("state")
            if state in ("open", "closed") and state != issue.state:
                issue.state = state
                issue.closed_at = utcnow() if state == "closed" else None
                issue.closed_by = req.actor if state == "closed" else None
                issue.state_reason = body.get("state_reason") or (
                    "completed" if state == "closed" else "reopened"
                )
                action = "closed" if state == "closed" else "reopened"
            issue.updated_at = utcnow()
            shaped = self.ctx.shapes.issue(issue)
        self.ctx.events.issue_changed(issue, action, req.actor)
        return json_response(shaped)

    # -- comments --------------------------------------------------------------------------

    async def list_comments(self, req: ApiRequest) -> Response:
        with self.ctx.store.lock:
            issue = self._issue(req)
            found = self.ctx.store.comments_of(issue.repo, issue.number)
            return paginate(req, [self.ctx.shapes.comment(c) for c in found])

    async def create_comment(self, req: ApiRequest) -> Response:
        body = (await req.json()).get("body")
        if not isinstance(body, str) or not body:
            raise validation_failed("IssueComment", "body wasn't supplied.", field="body")
        if len(body) > 65536:
            raise validation_failed(
                "IssueComment", "Body is too long (maximum is 65536 characters)"
            )
        store = self.ctx.store
        with store.lock:
            issue = self._issue(req)
            comment = Comment(
                id=store.next_id(),
                repo=issue.repo,
                issue_number=issue.number,
                body=body,
                user=req.actor,
            )
            store.comments[comment.id] = comment
            issue.updated_at = utcnow()
            shaped = self.ctx.shapes.comment(comment)
        self.ctx.events.comment_created(issue, comment.id, req.actor)
        return json_response(shaped, status=201)

    async def get_comment(self, req: ApiRequest) -> Response:
        with self.ctx.store.lock:
            return json_response(self.ctx.shapes.comment(self._comment(req)))

    async def update_comment(self, req: ApiRequest) -> Response:
        body = (await req.json()).get("body")
        if not isinstance(body, str) or not body:
            raise validation_failed("IssueComment", "body wasn't supplied.", field="body")
        with self.ctx.store.lock:
            comment = self._comment(req)
            comment.body = body
            comment.updated_at = utcnow()
            return json_response(self.ctx.shapes.comment(comment))

    async def delete_comment(self, req: ApiRequest) -> Response:
        with self.ctx.store.lock:
            comment = self._comment(req)
            del self.ctx.store.comments[comment.id]
        return no_content()

    # -- labels ----------------------------------------------------------------------------

    async def labels(self, req: ApiRequest) -> Response:
        method = req.request.method
        body: dict[str, Any] = {} if method == "GET" else await req.json()
        names = body.get("labels", [])
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list):
            raise validation_failed("Label", "labels must be a list", field="labels")
        names = [n["name"] if isinstance(n, dict) else str(n) for n in names]
        with self.ctx.store.lock:
            issue = self._issue(req)
            repo = req.repo
            if method == "PUT":
                issue.labels = []
            added = []
            for name in names:
                label = ensure_label(self.ctx.store, repo, name)
                if label.name not in issue.labels:
                    issue.labels.append(label.name)
                    added.append(label)
            if method != "GET":
                issue.updated_at = utcnow()
            shaped = [self.ctx.shapes.label(repo, repo.labels[n]) for n in issue.labels]
        for label in added:
            self.ctx.events.issue_changed(issue, "labeled", req.actor, label)
        return json_response(shaped)

    async def remove_label(self, req: ApiRequest) -> Response:
        name = req.params["name"]
        with self.ctx.store.lock:
            issue = self._issue(req)
            repo = req.repo
            if name not in issue.labels:
                raise ApiError(404, "Label does not exist")
            issue.labels.remove(name)
            issue.updated_at = utcnow()
            label = repo.labels[name]
            shaped = [self.ctx.shapes.label(repo, repo.labels[n]) for n in issue.labels]
        self.ctx.events.issue_changed(issue, "unlabeled", req.actor, label)
        return json_response(shaped)

    # -- reactions -------------------------------------------------------------------------

    async def issue_reactions(self, req: ApiRequest) -> Response:
        with self.ctx.store.lock:
            issue = self._issue(req)
        return await self._reactions(req, ("issue", issue.repo, issue.number))

    async def comment_reactions(self, req: ApiRequest) -> Response:
        with self.ctx.store.lock:
            comment = self._comment(req)
        return await self._reactions(req, ("issue_comment", comment.repo, comment.id))

    async def review_comment_reactions(self, req: ApiRequest) -> Response:
        with self.ctx.store.lock:
            comment = self.ctx.store.review_comments.get(req.int_param("id"))
            if comment is None or comment.repo != req.repo.full_name:
                raise not_found()
        return await self._reactions(req, ("review_comment", comment.repo, comment.id))

    async def _reactions(self, req: ApiRequest, subject: ReactionSubject) -> Response:
        store = self.ctx.store
        if req.request.method == "GET":
            wanted = req.query("content")
            with store.lock:
                found = [
                    self.ctx.shapes.reaction(r)
                    for r in store.reactions_on(subject)
                    if wanted is None or r.content == wanted
                ]
            return paginate(req, found)
        content = (await req.json()).get("content")
        if content not in REACTION_KEYS:
            raise validation_failed(
                "Reaction", f"{content!r} is not a valid reaction", field="content"
            )
        with store.lock:
            for existing in store.reactions_on(subject):
                if existing.user is req.actor and existing.content == content:
                    # Reacting twice is not an error: GitHub answers 200 with the old one.
                    return json_response(self.ctx.shapes.reaction(existing))
            reaction = Reaction(
                id=store.next_id(), subject=subject, content=content, user=req.actor
            )
            store.reactions.append(reaction)
            return json_response(self.ctx.shapes.reaction(reaction), status=201)

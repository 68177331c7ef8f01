"""Pull requests, their files and commits, reviewers, reviews and review comments."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from ..pullops import PullOps
from ..state import Issue
from .common import (
    ApiContext,
    ApiError,
    ApiRequest,
    json_response,
    not_found,
    paginate,
    route,
    validation_failed,
)


class PullRoutes:
    def __init__(self, ctx: ApiContext, ops: PullOps) -> None:
        self.ctx = ctx
        self.ops = ops

    def routes(self) -> list[Route]:
        ctx, base = self.ctx, "/repos/{owner}/{repo}/pulls"
        return [
            route(ctx, base, self.list_pulls, ["GET"]),
            route(ctx, base, self.create_pull, ["POST"]),
            route(ctx, base + "/comments/{id:int}", self.get_review_comment, ["GET"]),
            route(ctx, base + "/{number:int}", self.get_pull, ["GET"]),
            route(ctx, base + "/{number:int}", self.update_pull, ["PATCH"]),
            route(ctx, base + "/{number:int}/merge", self.merge, ["PUT"]),
            route(ctx, base + "/{number:int}/merge", self.is_merged, ["GET"]),
            route(ctx, base + "/{number:int}/files", self.list_files, ["GET"]),
            route(ctx, base + "/{number:int}/commits", self.list_commits, ["GET"]),
            route(
                ctx,
                base + "/{number:int}/requested_reviewers",
                self.request_reviewers,
                ["POST"],
            ),
            route(ctx, base + "/{number:int}/reviews", self.list_reviews, ["GET"]),
            route(ctx, base + "/{number:int}/reviews", self.create_review, ["POST"]),
            route(ctx, base + "/{number:int}/reviews/{id:int}", self.get_review, ["GET"]),
            route(ctx, base + "/{number:int}/comments", self.list_review_comments, ["GET"]),
            route(ctx, base + "/{number:int}/comments", self.create_review_comment, ["POST"]),
            route(
                ctx,
                base + "/{number:int}/comments/{id:int}/replies",
                self.reply,
                ["POST"],
            ),
        ]

    def _pull(self, req: ApiRequest) -> Issue:
        found = self.ctx.store.issues.get((req.repo.full_name, req.int_param("number")))
        if found is None or found.pull is None:
            raise not_found()
        return found

    async def list_pulls(self, req: ApiRequest) -> Response:
        state = req.query("state") or "open"
        head = req.query("head")
        base = req.query("base")
        with self.ctx.store.lock:
            found = []
            for issue in reversed(self.ctx.store.pulls_of(req.repo.full_name)):
                pull = issue.pull
                assert pull is not None
                if state != "all" and issue.state != state:
                    continue
                if head and f"{req.repo.owner.login}:{pull.head_ref}" != head:
                    continue
                if base and pull.base_ref != base:
                    continue
                found.append(self.ctx.shapes.pull(issue, full=False))
        return paginate(req, found)

    async def create_pull(self, req: ApiRequest) -> Response:
        body = await req.json()
        for field in ("head", "base"):
            if not isinstance(body.get(field), str):
                raise validation_failed("PullRequest", f"{field} wasn't supplied.", field=field)
        issue = self.ops.create(
            req.repo,
            title=str(body.get("title") or ""),
            head=body["head"],
            base=body["base"],
            body=body.get("body"),
            user=req.actor,
            draft=bool(body.get("draft", False)),
        )
        with self.ctx.store.lock:
            return json_response(self.ctx.shapes.pull(issue), status=201)

    async def get_pull(self, req: ApiRequest) -> Response:
        with self.ctx.store.lock:
            return json_response(self.ctx.shapes.pull(self._pull(req)))

    async def update_pull(self, req: ApiRequest) -> Response:
        body = await req.json()
        with self.ctx.store.lock:
            issue = self._pull(req)
            pull = issue.pull
            assert pull is not None
            if "title" in body:
                issue.title = body["title"]
            if "body" in body:
                issue.body = body["body"]
            if isinstance(body.get("base"), str):
                base_sha = req.git.rev_parse(f"refs/heads/{body['base']}")
                if base_sha is None:
                    raise validation_failed("PullRequest", "Proposed base branch was not found")
                pull.base_ref, pull.base_sha = body["base"], base_sha
        if body.get("state") == "closed":
            self.ops.close(issue, req.actor)
        elif body.get("state") == "open":
            self.ops.reopen(issue, req.actor)
        with self.ctx.store.lock:
            return json_response(self.ctx.shapes.pull(issue))

    async def merge(self, req: ApiRequest) -> Response:
        body = await req.json()
        with self.ctx.store.lock:
            issue = self._pull(req)
        sha = self.ops.merge(
            issue,
            user=req.actor,
            method=str(body.get("merge_method") or "merge"),
            title=body.get("commit_title"),
            message=body.get("commit_message"),
            sha=body.get("sha"),
        )
        return json_response(
            {"sha": sha, "merged": True, "message": "Pull Request successfully merged"}
        )

    async def is_merged(self, req: ApiRequest) -> Response:
        with self.ctx.store.lock:
            issue = self._pull(req)
            assert issue.pull is not None
            if not issue.pull.merged:
                raise not_found()
        return Response(status_code=204)

    async def list_files(self, req: ApiRequest) -> Response:
        with self.ctx.store.lock:
            issue = self._pull(req)
        pull = issue.pull
        assert pull is not None
        changes = req.git.diff_files(pull.base_sha, pull.head_sha)
        return paginate(
            req, [self.ctx.shapes.diff_entry(req.repo, c, pull.head_sha) for c in changes]
        )

    async def list_commits(self, req: ApiRequest) -> Response:
        with self.ctx.store.lock:
            issue = self._pull(req)
        pull = issue.pull
        assert pull is not None
        shas = req.git.commits_between(pull.base_sha, pull.head_sha)
        return paginate(
            req, [self.ctx.shapes.commit(req.repo, req.git.commit_info(s)) for s in shas]
        )

    async def request_reviewers(self, req: ApiRequest) -> Response:
        body = await req.json()
        reviewers = body.get("reviewers") or []
        with self.ctx.store.lock:
            issue = self._pull(req)
            pull = issue.pull
            assert pull is not None
            if issue.user.login in reviewers:
                raise validation_failed(
                    "PullRequest", "Review cannot be requested from pull request author."
                )
            for login in reviewers:
                self.ctx.store.user(login)
                if login not in pull.requested_reviewers:
                    pull.requested_reviewers.append(login)
            return json_response(self.ctx.shapes.pull(issue, full=False), status=201)

    async def list_reviews(self, req: ApiRequest) -> Response:
        with self.ctx.store.lock:
            issue = self._pull(req)
            found = self.ctx.store.reviews_of(issue.repo, issue.number)
            return paginate(req, [self.ctx.shapes.review(r) for r in found])

    async def get_review(self, req: ApiRequest) -> Response:
        with self.ctx.store.lock:
            issue = self._pull(req)
            review = self.ctx.store.reviews.get(req.int_param("id"))
            if review is None or review.pr_number != issue.number or review.repo != issue.repo:
                raise not_found()
            return json_response(self.ctx.shapes.review(review))

    async def create_review(self, req: ApiRequest) -> Response:
        body = await req.json()
        with self.ctx.store.lock:
            issue = self._pull(req)
        comments = body.get("comments") or []
        if not isinstance(comments, list):
            raise ApiError(422, "Invalid request.", ["comments is not an array"])
        review = self.ops.review(
            issue,
            user=req.actor,
            event=body.get("event"),
            body=body.get("body"),
            comments=comments,
            commit_id=body.get("commit_id"),
        )
        with self.ctx.store.lock:
            return json_response(self.ctx.shapes.review(review))

    async def list_review_comments(self, req: ApiRequest) -> Response:
        with self.ctx.store.lock:
            issue = self._pull(req)
            found = self.ctx.store.review_comments_of(issue.repo, issue.number)
            return paginate(req, [self.ctx.shapes.review_comment(c) for c in found])

    async def get_review_comment(self, req: ApiRequest) -> Response:
        with self.ctx.store.lock:
            comment = self.ctx.store.review_comments.get(req.int_param("id"))
            if comment is None or comment.repo != req.repo.full_name:
                raise not_found()
            return json_response(self.ctx.shapes.review_comment(comment))

    async def create_review_comment(self, req: ApiRequest) -> Response:
        body = await req.json()
        with self.ctx.store.lock:
            issue = self._pull(req)
        comment = self.ops.comment(issue, user=req.actor, fields=body)
        with self.ctx.store.lock:
            return json_response(self.ctx.shapes.review_comment(comment), status=201)

    async def reply(self, req: ApiRequest) -> Response:
        body = await req.json()
        with self.ctx.store.lock:
            issue = self._pull(req)
        comment = self.ops.reply(
            issue, req.int_param("id"), user=req.actor, body=str(body.get("body") or "")
        )
        with self.ctx.store.lock:
            return json_response(self.ctx.shapes.review_comment(comment), status=201)

"""The review stage: the reviewer agent reads the PR against its plan and posts one review a round.

The review is posted as a COMMENT (GitHub refuses a verdict from a PR's own author, which the bot
is); the verdict itself drives the run: approved goes on, changes requested goes back to the
coder for another round (bounded by `max_rounds`) with the review as its feedback. The verdict
is kept in the review's hidden marker, so a retry after a crash finds the posted review and acts
on it instead of reviewing (and paying) twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.budget import BudgetExceeded
from agents.llm import LLMError
from agents.review_feedback import review_feedback
from agents.reviewer import APPROVE, REQUEST_CHANGES, Reviewer, ReviewFailed, render_diff
from agents.stages import StepContext, StepResult
from agents.toolbox import Toolbox, feature_budget, repository_key
from agents.tools import CoderTools
from bot.contracts import markers
from bot.contracts.lifecycle import Outcome, Stage
from bot.contracts.prp import Plan
from bot.github import RepoClient
from bot.github.errors import scrub
from bot.github.models import ReviewComment


@dataclass
class ReviewerStage:
    stage = Stage.REVIEW
    max_turns: int = 15

    async def run(self, ctx: StepContext) -> StepResult:
        toolbox: Toolbox = ctx.tools
        feature, gh, config = ctx.feature, ctx.github, ctx.config
        if feature.pr_number is None or not feature.branch:
            return StepResult(Outcome.FAILED, "there is no pull request to review")
        posted = await self._posted_before(
            gh, feature.pr_number, (feature.id, feature.round, ctx.attempt)
        )
        if posted is not None:
            return await self._act_on(ctx, *posted)
        files = await gh.list_pull_request_files(feature.pr_number)
        if not files:
            return StepResult(Outcome.SUCCEEDED, "the pull request changes nothing to review")
        diff = render_diff(files)
        plan = Plan.from_dict(feature.plan) if feature.plan else None
        knowledge = await toolbox.context_for(
            feature.repository,
            f"review lessons for: {plan.title if plan else ''}\n{diff[:2000]}",
        )
        info = await gh.get_repository()
        await ctx.progress("reviewing")
        workspace = await toolbox.workspace(feature.installation_id, info.clone_url)
        try:
            async with workspace as ws:
                await ws.clone()
                await ws.checkout_branch(feature.branch)
                result = await Reviewer(
                    toolbox.llm, model=config.model, max_turns=self.max_turns
                ).review(
                    plan_markdown=plan.to_markdown() if plan else "",
                    diff=diff,
                    budget=feature_budget(config, feature),
                    knowledge=knowledge,
                    tools=CoderTools(
                        ws.path, toolbox.sandbox_for(ws.path, ws.git_dir, repository_key(feature))
                    ),
                    on_step=ctx.checkpoint,
                )
        except ReviewFailed as exc:
            return StepResult(
                Outcome.FAILED,
                str(exc),
                cost_usd=exc.cost_usd,
                tokens=exc.usage.total,
                trajectory=exc.trajectory,
            )
        except (LLMError, BudgetExceeded) as exc:
            return StepResult(Outcome.FAILED, str(exc))
        heading = "✅ Approved" if result.approved else "🔁 Changes requested"
        body = "\n".join(
            [
                markers.review(feature.id, feature.round, ctx.attempt, result.verdict),
                f"### Agent Factory review (round {feature.round + 1}): {heading}",
                "",
                result.summary,
            ]
        )
        review = await gh.create_review(
            feature.pr_number,
            body=scrub(body),
            comments=[ReviewComment(n.path, n.line, scrub(n.body)) for n in result.comments],
        )
        step = await self._act_on(ctx, review.id, result.verdict, body)
        step.cost_usd, step.tokens, step.trajectory = (
            result.cost_usd,
            result.usage.total,
            result.trajectory,
        )
        return step

    @staticmethod
    async def _posted_before(
        gh: RepoClient, pr_number: int, key: tuple[int, int, int]
    ) -> tuple[int, str, str] | None:
        for review in await gh.list_reviews(pr_number):
            found = markers.find_review(review.body or "")
            if found and (found.feature_id, found.round, found.attempt) == key:
                return review.id, found.verdict, review.body
        return None

    @staticmethod
    async def _act_on(ctx: StepContext, review_id: int, verdict: str, body: str) -> StepResult:
        pr_number = ctx.feature.pr_number
        assert pr_number is not None  # a review is only posted on the run's pull request
        if verdict == APPROVE:
            return StepResult(Outcome.SUCCEEDED, "the reviewer approved", details=body)
        if verdict != REQUEST_CHANGES:
            return StepResult(Outcome.FAILED, f"the review carries an unknown verdict {verdict!r}")
        summary = markers.without_review_marks(body).strip()
        feedback = await review_feedback(
            ctx.github, pr_number, review_id, "Agent Factory's reviewer", summary
        )
        await ctx.record(guidance=feedback)
        return StepResult(Outcome.CHANGES_REQUESTED, "the reviewer asked for changes", feedback)

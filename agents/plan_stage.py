"""The planning stage: a PRP for the issue, written to the issue as one comment."""

from __future__ import annotations

from dataclasses import dataclass

from agents.budget import BudgetExceeded
from agents.llm import LLMError
from agents.planner import Issue, IssueComment, Planner, PlanningFailed
from agents.stages import StepContext, StepResult
from agents.toolbox import Toolbox, feature_budget, repository_key
from agents.tools import CoderTools
from bot.contracts import markers
from bot.contracts.lifecycle import Outcome, Stage


@dataclass
class PlannerStage:
    stage = Stage.PLAN
    max_turns: int = 12

    async def run(self, ctx: StepContext) -> StepResult:
        toolbox: Toolbox = ctx.tools
        feature, gh, config = ctx.feature, ctx.github, ctx.config
        issue = await gh.get_issue(feature.issue_number)
        comments = [
            IssueComment(author=c.author, body=c.body)
            for c in await gh.list_issue_comments(feature.issue_number)
            if not c.author_is_bot
        ]
        info = await gh.get_repository()
        tree = await gh.get_tree(info.default_branch)
        paths = [e.path for e in tree.entries if e.type == "blob"]
        knowledge = await toolbox.context_for(feature.repository, f"{issue.title}\n\n{issue.body}")
        await ctx.progress("planning")
        planner = Planner(toolbox.llm, model=config.model, max_turns=self.max_turns)
        # The planner reads the code it plans for (read-only tools on a clone of the default
        # branch), so the plan's context names real files and functions, not guesses.
        workspace = await toolbox.workspace(feature.installation_id, info.clone_url)
        try:
            async with workspace as ws:
                await ws.clone()
                plan = await planner.plan(
                    issue=Issue(
                        number=issue.number,
                        title=issue.title,
                        body=issue.body,
                        author=issue.author,
                        comments=comments,
                    ),
                    repo_files=paths,
                    budget=feature_budget(config, feature),
                    repository=feature.repository,
                    knowledge=knowledge,
                    guidance=feature.guidance or "",
                    gates=config.validation_gates,
                    tools=CoderTools(
                        ws.path, toolbox.sandbox_for(ws.path, ws.git_dir, repository_key(feature))
                    ),
                    on_step=ctx.checkpoint,
                    resume_from=ctx.resume,
                )
        except PlanningFailed as exc:
            return StepResult(
                Outcome.FAILED,
                f"planning {exc.stop_reason.describe(exc.detail)}",
                cost_usd=exc.cost_usd,
                tokens=exc.usage.total,
                trajectory=exc.trajectory,
            )
        except (LLMError, BudgetExceeded) as exc:
            return StepResult(Outcome.FAILED, str(exc))
        comment = await gh.upsert_marked_comment(
            feature.issue_number,
            markers.plan(feature.id),
            f"{markers.plan(feature.id)}\n{plan.to_markdown()}",
        )
        await ctx.record(plan=plan.to_dict(), plan_comment_id=comment.id)
        if plan.needs_clarification:
            return StepResult(
                Outcome.NEEDS_INPUT,
                f"{len(plan.questions)} question(s) asked before planning further",
                cost_usd=plan.cost_usd,
                tokens=plan.usage.total,
                trajectory=plan.trajectory,
            )
        return StepResult(
            Outcome.SUCCEEDED,
            f"{len(plan.steps)} steps, {len(plan.validation_gates)} validation gates",
            details=plan.to_markdown(),
            cost_usd=plan.cost_usd,
            tokens=plan.usage.total,
            trajectory=plan.trajectory,
        )

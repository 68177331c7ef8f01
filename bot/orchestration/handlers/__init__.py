"""The worker's job handlers, one module per kind of event; ``JOB_ROUTES`` lists them all."""

from __future__ import annotations

from bot.orchestration.handlers.chatops import command_received
from bot.orchestration.handlers.check_runs import (
    check_rerequested,
    check_suite_rerequested,
    workflow_run_completed,
)
from bot.orchestration.handlers.label import feature_start
from bot.orchestration.handlers.pulls import pr_closed, pr_synchronized
from bot.orchestration.handlers.repository import installation_changed, knowledge_refresh
from bot.orchestration.handlers.reviews import review_comment_created, review_submitted
from bot.orchestration.registry import JobRouter

JOB_ROUTES = (
    feature_start,
    command_received,
    review_submitted,
    review_comment_created,
    pr_closed,
    pr_synchronized,
    check_rerequested,
    check_suite_rerequested,
    workflow_run_completed,
    knowledge_refresh,
    installation_changed,
)


def build_job_router() -> JobRouter:
    return JobRouter(JOB_ROUTES)

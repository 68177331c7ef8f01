"""Typed jobs: one model per kind, written once, enqueued by ingress and taken by the handler
registered for that model; the ChatOps table covers the grammar; one retry rule."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.contracts import jobs
from bot.contracts.commands import COMMANDS as GRAMMAR
from bot.contracts.lifecycle import Stage
from bot.github.errors import GitHubError, GitHubNotFound, GitHubRateLimited
from bot.jobs import JOB_FUNCTIONS
from bot.orchestration.handlers import JOB_ROUTES, build_job_router
from bot.orchestration.handlers.commands import COMMANDS
from bot.orchestration.retry import RetryPolicy, TransientError


def test_every_delivery_job_has_one_handler_and_one_arq_function() -> None:
    assert {route.model for route in JOB_ROUTES} == set(jobs.DELIVERY_JOBS)
    names = [function.__name__ for function in JOB_FUNCTIONS]
    assert sorted(names) == sorted(
        [model.function for model in jobs.DELIVERY_JOBS] + [jobs.RunStep.function, "reconcile"]
    )


def test_a_job_round_trips_through_its_keyword_arguments() -> None:
    job = jobs.CheckRunRerequested(
        installation_id=7,
        delivery_id="d-1",
        repo="o/r",
        check_run_id=3,
        check_name="Agent Factory / tests",
        head_sha="abc",
        external_id=None,
        action_identifier=None,
        sender="alice",
        sender_type="User",
    )
    kwargs = job.kwargs()
    # The queue's keyword is `name`, as GitHub's payload calls the check run's name.
    assert kwargs["name"] == "Agent Factory / tests" and "check_name" not in kwargs
    route = build_job_router().route(jobs.CheckRunRerequested.function)
    assert route.parse(kwargs) == job


def test_a_keyword_the_model_does_not_know_is_refused_not_ignored() -> None:
    kwargs = {
        "installation_id": 7,
        "delivery_id": "d-1",
        "repo": "o/r",
        "issue_number": 1,
        "sender": "alice",
        "sender_type": "User",
    }
    route = build_job_router().route("feature_start")
    assert route.parse(kwargs).issue_number == 1
    with pytest.raises(ValidationError):
        route.parse({**kwargs, "issue": 1})
    with pytest.raises(ValidationError):
        route.parse({k: v for k, v in kwargs.items() if k != "issue_number"})


def test_a_step_job_id_names_its_run_stage_round_and_attempt() -> None:
    step = jobs.RunStep(feature_id=4, stage=Stage.REVIEW, round=1, attempt=2)
    assert step.job_id == "feature:4:review:r1:a2"
    assert jobs.RunStep.model_validate(step.kwargs()) == step


def test_every_command_of_the_grammar_has_a_handler() -> None:
    assert set(COMMANDS) == set(GRAMMAR)


@pytest.mark.parametrize(
    ("error", "job_try", "delay"),
    [
        (GitHubError("read issue", 502, "Bad Gateway"), 1, 5.0),
        (GitHubError("read issue", None, "no answer"), 3, 8.0),
        (GitHubError("read issue", 503, "busy"), 5, None),  # tries used up
        (GitHubRateLimited("read issue", 403, "limit", retry_after=30.0), 2, 30.0),
        (TransientError("overloaded", retry_after_s=2.0), 4, 16.0),
        (TransientError("overloaded"), 6, None),
        (GitHubNotFound("read issue", 404, "Not Found"), 1, None),  # retrying cannot help
        (ValueError("a bug"), 1, None),
    ],
)
def test_one_retry_rule(error: Exception, job_try: int, delay: float | None) -> None:
    assert RetryPolicy(max_tries=5).defer(error, job_try) == delay


def test_backoff_is_capped() -> None:
    assert RetryPolicy(max_tries=20).defer(TransientError("x"), 10) == 60.0

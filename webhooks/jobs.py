"""The jobs a delivery asks for, and their deterministic arq job ids."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.contracts.jobs import Job

# What a route returns for each piece of work: a typed job model (see bot.contracts.jobs).
JobSpec = Job


@dataclass(frozen=True, slots=True)
class PlannedJob:
    job_id: str
    function: str
    kwargs: Mapping[str, Any]


def job_id(delivery_id: str, function: str, index: int) -> str:
    """The same delivery always yields the same ids, so two replicas racing on one delivery,
    or a redelivery after a partial enqueue, cannot queue the same work twice: arq refuses
    an id it already holds."""
    return f"{delivery_id}:{function}:{index}"


def plan_jobs(delivery_id: str, specs: Sequence[Job]) -> list[PlannedJob]:
    return [
        PlannedJob(job_id(delivery_id, spec.function, index), spec.function, spec.kwargs())
        for index, spec in enumerate(specs)
    ]

"""The hidden markers the bot tags its GitHub artefacts with, so it finds and edits them again.

A job that runs twice (a crash, a redelivery) finds its earlier comment, review or check run by
its marker and edits it instead of posting a second one. Every marker is written here, once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.contracts.lifecycle import Stage

_PREFIX = "agent-factory"

# On every reply to a command: `parse_commands` never treats such a comment as a command.
REPLY = f"<!-- {_PREFIX}:reply -->"
# On the body of every pull request the bot opens.
PULL_REQUEST = f"<!-- {_PREFIX}:pr -->"
# The one comment per issue saying `.github/factory.yml` is invalid.
CONFIG_ERROR = f"<!-- {_PREFIX}:config-error -->"
# Added next to CONFIG_ERROR once the problem is gone, so the comment is rewritten only once.
CONFIG_FIXED = f"<!-- {_PREFIX}:config-fixed -->"


def marker(kind: str, key: object) -> str:
    """One comment per (kind, key): the key is what a repeated job has in common."""
    return f"<!-- {_PREFIX}:{kind}:{key} -->"


def status(feature_id: int) -> str:
    return marker("status", feature_id)


def plan(feature_id: int) -> str:
    return marker("plan", feature_id)


def command_reply(comment_id: int, index: int) -> str:
    return marker("reply", f"{comment_id}:{index}")


_REVIEW = re.compile(rf"<!-- {_PREFIX}:review:(\d+):(\d+):(\d+) verdict=(\w+) -->")


def review(feature_id: int, round_: int, attempt: int, verdict: str) -> str:
    """Per attempt: a crashed try finds its review again, `/factory review` writes a new one."""
    return f"<!-- {_PREFIX}:review:{feature_id}:{round_}:{attempt} verdict={verdict} -->"


@dataclass(frozen=True)
class ReviewMark:
    feature_id: int
    round: int
    attempt: int
    verdict: str


def find_review(body: str) -> ReviewMark | None:
    found = _REVIEW.search(body)
    if found is None:
        return None
    return ReviewMark(int(found[1]), int(found[2]), int(found[3]), found[4])


def without_review_marks(body: str) -> str:
    return _REVIEW.sub("", body)


def check_external_id(feature_id: int, stage: Stage) -> str:
    """The external id of a stage's check run: a re-requested check names its run and stage."""
    return f"{_PREFIX}:{feature_id}:{stage.value}"


def parse_check_external_id(value: str | None) -> tuple[int, Stage] | None:
    if not value or not value.startswith(f"{_PREFIX}:"):
        return None
    try:
        _, feature_id, stage = value.split(":")
        return int(feature_id), Stage(stage)
    except ValueError:
        return None

"""What the status projection and the config notices wrote to GitHub, remembered so nothing is
looked up again: the status comment (``features.status_comment_id``), the stage check runs
and the config-error comments (their writes are side effects, kept in the audit log)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from bot.contracts.runs import FeatureView
from bot.db import AuditEvent, Feature
from bot.store._base import StoreScope

CHECK_RUN_CREATING = "check_run.creating"
CHECK_RUN_WRITTEN = "check_run.written"
CONFIG_ERROR_POSTED = "config_error.posted"
CONFIG_ERROR_FIXED = "config_error.fixed"


@dataclass(frozen=True)
class CheckRunMemo:
    """A stage check run the projection wrote, as it last wrote it."""

    id: int
    url: str
    status: str
    conclusion: str | None


@dataclass(frozen=True)
class ShownChecks:
    """The stage check runs written on one head, by name; ``creating``: creating them began
    there, so one may exist that was not remembered (the worker died in between)."""

    written: Mapping[str, CheckRunMemo]
    creating: bool


class ShownQueries(StoreScope):
    async def remember_status_comment(self, feature_id: int, comment_id: int) -> None:
        async with self.db.session() as s:
            await s.execute(
                update(Feature).where(Feature.id == feature_id).values(status_comment_id=comment_id)
            )

    async def check_runs(self, feature_id: int, head_sha: str) -> ShownChecks:
        """The stage check runs written on ``head_sha``, as last written."""
        async with self.db.session() as s:
            events = await s.scalars(
                select(AuditEvent)
                .where(
                    AuditEvent.feature_id == feature_id,
                    AuditEvent.kind.in_((CHECK_RUN_CREATING, CHECK_RUN_WRITTEN)),
                )
                .order_by(AuditEvent.id)
            )
            memos: dict[str, CheckRunMemo] = {}
            creating = False
            for event in events:
                d: Mapping[str, Any] = event.details or {}
                if d.get("head_sha") != head_sha:
                    continue
                if event.kind == CHECK_RUN_CREATING:
                    creating = True
                    continue
                memos[str(d["name"])] = CheckRunMemo(
                    int(d["id"]), str(d["url"]), str(d["status"]), d.get("conclusion")
                )
        return ShownChecks(memos, creating)

    async def creating_check_runs(self, feature: FeatureView, head_sha: str) -> None:
        """Noted before the first check run on a head is created (see ShownChecks)."""
        async with self.db.session() as s:
            s.add(
                AuditEvent(
                    feature_id=feature.id,
                    repository=feature.repository,
                    actor="agent-factory",
                    kind=CHECK_RUN_CREATING,
                    cause="status projection",
                    details={"head_sha": head_sha},
                )
            )

    async def remember_check_run(
        self, feature: FeatureView, head_sha: str, name: str, memo: CheckRunMemo
    ) -> None:
        async with self.db.session() as s:
            s.add(
                AuditEvent(
                    feature_id=feature.id,
                    repository=feature.repository,
                    actor="agent-factory",
                    kind=CHECK_RUN_WRITTEN,
                    to_state=memo.conclusion or memo.status,
                    cause="status projection",
                    details={"head_sha": head_sha, "name": name, **memo.__dict__},
                )
            )

    async def config_error_comment(self, repo: str, issue_number: int) -> int | None:
        """The config-error comment on this issue that does not say yet that it is fixed."""
        async with self.db.session() as s:
            events = await s.scalars(
                select(AuditEvent)
                .where(
                    AuditEvent.repository == repo,
                    AuditEvent.kind.in_((CONFIG_ERROR_POSTED, CONFIG_ERROR_FIXED)),
                )
                .order_by(AuditEvent.id.desc())
            )
            for event in events:
                details = event.details or {}
                if details.get("issue_number") == issue_number:
                    posted = event.kind == CONFIG_ERROR_POSTED
                    return int(details["comment_id"]) if posted else None
        return None

    async def remember_config_error(
        self, repo: str, issue_number: int, comment_id: int, *, fixed: bool = False
    ) -> None:
        async with self.db.session() as s:
            s.add(
                AuditEvent(
                    repository=repo,
                    actor="agent-factory",
                    kind=CONFIG_ERROR_FIXED if fixed else CONFIG_ERROR_POSTED,
                    cause=".github/factory.yml is " + ("valid again" if fixed else "invalid"),
                    details={"issue_number": issue_number, "comment_id": comment_id},
                )
            )

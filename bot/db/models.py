"""Tables of the state store.

Everything a run needs to resume after a crash lives here; Redis only carries jobs.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from bot.contracts.lifecycle import FeatureState, TaskState


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class DeliveryStatus(enum.StrEnum):
    QUEUED = "queued"
    IGNORED = "ignored"
    DUPLICATE = "duplicate"
    FAILED = "failed"


class Installation(Base):
    __tablename__ = "installations"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    account_login: Mapped[str] = mapped_column(String(255))
    account_type: Mapped[str] = mapped_column(String(32), default="Organization")
    suspended: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class Repository(Base):
    __tablename__ = "repositories"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    installation_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("installations.id", ondelete="SET NULL"), default=None
    )
    full_name: Mapped[str] = mapped_column(String(255), unique=True)
    default_branch: Mapped[str] = mapped_column(String(255), default="main")
    # Cached from .github/factory.yml on the default branch so ingress can route labels
    # without calling GitHub.
    trigger_label: Mapped[str | None] = mapped_column(String(100), default=None)
    indexed_sha: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(String(64), unique=True)
    event: Mapped[str] = mapped_column(String(64))
    action: Mapped[str | None] = mapped_column(String(64), default=None)
    installation_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    repository: Mapped[str | None] = mapped_column(String(255), default=None)
    sender: Mapped[str | None] = mapped_column(String(255), default=None)
    payload_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.QUEUED.value)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    jobs: Mapped[list[Any]] = mapped_column(default=list)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Feature(Base):
    """One run of the factory for one issue."""

    __tablename__ = "features"
    __table_args__ = (Index("ix_features_repo_issue", "repository", "issue_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    installation_id: Mapped[int] = mapped_column(BigInteger)
    repository: Mapped[str] = mapped_column(String(255))
    issue_number: Mapped[int] = mapped_column(Integer)
    # Set while the run is active and cleared when it ends: the unique constraint is what
    # makes "one active run per issue" hold even between two racing workers.
    active_key: Mapped[str | None] = mapped_column(String(300), unique=True, default=None)
    state: Mapped[str] = mapped_column(String(32), default=FeatureState.PLANNING.value)
    round: Mapped[int] = mapped_column(Integer, default=0)
    branch: Mapped[str | None] = mapped_column(String(255), default=None)
    pr_number: Mapped[int | None] = mapped_column(Integer, default=None)
    head_sha: Mapped[str | None] = mapped_column(String(64), default=None)
    status_comment_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    plan_comment_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    plan: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    triggered_by: Mapped[str | None] = mapped_column(String(255), default=None)
    # The delivery that started the run: a re-run of the same job recognises its own feature.
    trigger_delivery: Mapped[str | None] = mapped_column(String(128), default=None)
    # Extra guidance from `/factory plan <text>` or `/factory revise <text>`.
    guidance: Mapped[str | None] = mapped_column(Text, default=None)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)

    tasks: Mapped[list[Task]] = relationship(back_populates="feature", order_by="Task.id")


class Task(Base):
    """One agent step of a feature run (one arq job attempt chain)."""

    __tablename__ = "tasks"
    __table_args__ = (UniqueConstraint("feature_id", "kind", "round", name="uq_task_step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    feature_id: Mapped[int] = mapped_column(ForeignKey("features.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    round: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16), default=TaskState.QUEUED.value)
    outcome: Mapped[str | None] = mapped_column(String(32), default=None)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    job_id: Mapped[str | None] = mapped_column(String(255), default=None)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    result_summary: Mapped[str | None] = mapped_column(Text, default=None)
    # Effects already done by this step (comment ids, pushed sha, PR number...), so a
    # restarted attempt skips them instead of doing them twice.
    effects: Mapped[dict[str, Any]] = mapped_column(default=dict)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    trajectory: Mapped[list[Any] | None] = mapped_column(default=None)

    feature: Mapped[Feature] = relationship(back_populates="tasks")


class AuditEvent(Base):
    """Append-only: every transition and every side effect, with its cause."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    feature_id: Mapped[int | None] = mapped_column(Integer, default=None, index=True)
    repository: Mapped[str | None] = mapped_column(String(255), default=None)
    actor: Mapped[str | None] = mapped_column(String(255), default=None)
    kind: Mapped[str] = mapped_column(String(64))
    from_state: Mapped[str | None] = mapped_column(String(32), default=None)
    to_state: Mapped[str | None] = mapped_column(String(32), default=None)
    cause: Mapped[str | None] = mapped_column(Text, default=None)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)

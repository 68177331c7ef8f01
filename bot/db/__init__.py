"""The state store: SQLAlchemy 2 async models, the engine wrapper and migrations."""

from bot.db.database import Database
from bot.db.models import (
    AuditEvent,
    Base,
    DeliveryStatus,
    Feature,
    FeatureState,
    Installation,
    Repository,
    Task,
    TaskState,
    WebhookDelivery,
)

__all__ = [
    "AuditEvent",
    "Base",
    "Database",
    "DeliveryStatus",
    "Feature",
    "FeatureState",
    "Installation",
    "Repository",
    "Task",
    "TaskState",
    "WebhookDelivery",
]

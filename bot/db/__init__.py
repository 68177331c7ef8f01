"""The state store: SQLAlchemy 2 async models, the engine wrapper and migrations."""

from bot.db.database import Database
from bot.db.models import (
    AuditEvent,
    Base,
    DeliveryStatus,
    Feature,
    Installation,
    Repository,
    Task,
    WebhookDelivery,
)

__all__ = [
    "AuditEvent",
    "Base",
    "Database",
    "DeliveryStatus",
    "Feature",
    "Installation",
    "Repository",
    "Task",
    "WebhookDelivery",
]

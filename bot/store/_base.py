"""What every group of store queries shares: the database and the clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bot.db import Database
from bot.db.models import utcnow


class StoreScope:
    def __init__(self, db: Database, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.clock = clock

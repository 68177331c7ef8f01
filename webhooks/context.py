"""What a route handler is given: the delivery (EventContext) and the bot's facts (RouteEnv)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from webhooks.payloads import Envelope

P_co = TypeVar("P_co", bound=Envelope, covariant=True)

TriggerLabelLookup = Callable[[str], Awaitable[str | None]]


def is_bot_account(login: str | None, account_type: str | None) -> bool:
    return account_type == "Bot" or (login is not None and login.endswith("[bot]"))


@dataclass(frozen=True, slots=True)
class EventContext(Generic[P_co]):
    """One verified, parsed delivery."""

    delivery_id: str
    event: str
    payload: P_co

    @property
    def action(self) -> str | None:
        return self.payload.action

    @property
    def key(self) -> str:
        """``event.action`` (or just ``event`` for action-less events such as ``push``)."""
        return f"{self.event}.{self.action}" if self.action else self.event

    @property
    def installation_id(self) -> int | None:
        installation = self.payload.installation
        return installation.id if installation is not None else None

    @property
    def repository(self) -> str | None:
        repository = self.payload.repository
        return repository.full_name if repository is not None else None

    @property
    def sender_login(self) -> str | None:
        sender = self.payload.sender
        return sender.login if sender is not None else None

    @property
    def sender_type(self) -> str | None:
        sender = self.payload.sender
        return sender.type if sender is not None else None

    @property
    def is_bot(self) -> bool:
        return is_bot_account(self.sender_login, self.sender_type)


class RouteEnv:
    """Facts handlers may consult; made once per delivery so lookups are memoised per delivery.

    The trigger label is read lazily: only handlers that need it pay for the database read.
    """

    def __init__(
        self,
        *,
        bot_login: str,
        app_id: int | None,
        default_trigger_label: str,
        lookup_trigger_label: TriggerLabelLookup,
    ) -> None:
        self.bot_login = bot_login
        self.app_id = app_id
        self.default_trigger_label = default_trigger_label
        self._lookup_trigger_label = lookup_trigger_label
        self._trigger_labels: dict[str, str] = {}

    async def trigger_label(self, repository: str) -> str:
        """The repository's cached trigger label, or the server-wide default."""
        label = self._trigger_labels.get(repository)
        if label is None:
            label = await self._lookup_trigger_label(repository) or self.default_trigger_label
            self._trigger_labels[repository] = label
        return label

"""The workspace fixtures (a fake GitHub serving `octo-org/demo`, the App, and a `Bot` that opens
workspaces on it) for the attack tests that drive the bot's own git against that repository."""

from tests.test_workspace import app, bot, fake

__all__ = ["app", "bot", "fake"]

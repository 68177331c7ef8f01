"""The one exception tools raise for a bad request; CoderTools turns it into an error result."""

from __future__ import annotations


class ToolInputError(ValueError):
    """The model asked for something the tool refuses or cannot do; the message is shown to it."""

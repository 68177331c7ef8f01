"""app.yml asks GitHub for exactly the events the router answers and the permissions they need."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from webhooks.handlers import build_router

MANIFEST = Path(__file__).resolve().parents[1] / "app.yml"

# GitHub sends these to every App whatever it subscribes to; a manifest cannot list them.
ALWAYS_DELIVERED = {"installation", "installation_repositories", "ping"}

# The permission an App must hold to receive each event (GitHub's "Webhook events and
# payloads" page, "Availability" of each event).
EVENT_PERMISSION = {
    "issues": "issues",
    "issue_comment": "issues",
    "pull_request": "pull_requests",
    "pull_request_review": "pull_requests",
    "pull_request_review_comment": "pull_requests",
    "check_run": "checks",
    "check_suite": "checks",
    "workflow_run": "actions",
    "push": "contents",
}

# What the bot's operations need, and no more (see the comments in app.yml).
EXPECTED_PERMISSIONS = {
    "issues": "write",
    "pull_requests": "write",
    "contents": "write",
    "checks": "write",
    "actions": "write",
    "deployments": "write",
    "metadata": "read",
    "members": "read",
}


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(MANIFEST.read_text())
    return data


def test_manifest_subscribes_to_exactly_the_routed_events(manifest: dict[str, Any]) -> None:
    events = manifest["default_events"]

    assert len(events) == len(set(events))
    assert set(events) == build_router().events() - ALWAYS_DELIVERED
    assert ALWAYS_DELIVERED <= build_router().events()


def test_each_subscribed_event_has_the_permission_it_needs(manifest: dict[str, Any]) -> None:
    permissions = manifest["default_permissions"]

    for event in manifest["default_events"]:
        needed = EVENT_PERMISSION[event]
        assert permissions.get(needed) in ("read", "write"), f"{event} needs {needed}"


def test_manifest_asks_for_no_more_than_the_bot_needs(manifest: dict[str, Any]) -> None:
    permissions = manifest["default_permissions"]

    assert permissions == EXPECTED_PERMISSIONS
    # The bot never writes .github/workflows: holding that permission would let it.
    assert "workflows" not in permissions
    assert manifest["public"] is False
    assert manifest["name"] and manifest["url"]
    assert manifest["hook_attributes"]["url"].endswith("/webhooks/github")

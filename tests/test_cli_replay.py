"""`factory replay`: a recorded delivery, or a payload file, goes through ingress again."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from githubkit.webhooks import sign
from typer.testing import CliRunner

from bot.app import create_app
from bot.cli import app as cli
from bot.db import Database
from bot.queue import create_arq_pool
from bot.services import build_services
from bot.settings import load_settings

FIXTURE = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "fixtures"
    / "webhooks"
    / "issues"
    / "labeled.payload.json"
)
SECRET = "replay-secret"


@pytest.fixture
def env(
    tmp_path: Path, redis_url: str, clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    values = {
        "FACTORY_WEBHOOK_SECRET": SECRET,
        "FACTORY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'factory.db'}",
        "FACTORY_REDIS_URL": redis_url,
        "FACTORY_DATA_DIR": str(tmp_path / "data"),
        # The fixture's label is "bug": make it the trigger so the delivery queues a job.
        "FACTORY_TRIGGER_LABEL": json.loads(FIXTURE.read_bytes())["label"]["name"],
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


async def _record_one_delivery(env: dict[str, str], tmp_path: Path) -> Path:
    """Send one signed delivery through the real app; returns the payload file it came from."""
    settings = load_settings(_env_file=None)
    db = Database(settings.effective_database_url)
    await db.create_all()
    pool = await create_arq_pool(env["FACTORY_REDIS_URL"])
    services = await build_services(settings, redis=pool, db=db)
    payload = json.loads(FIXTURE.read_bytes())
    payload["installation"] = {"id": 42, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNDI="}
    body = json.dumps(payload).encode()
    variant = tmp_path / "labeled.json"
    variant.write_bytes(body)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(settings, services)), base_url="http://bot"
    ) as client:
        answer = await client.post(
            "/webhooks/github",
            content=body,
            headers={
                "X-GitHub-Event": "issues",
                "X-GitHub-Delivery": "original-1",
                "X-Hub-Signature-256": sign(SECRET, body, "sha256"),
                "Content-Type": "application/json",
            },
        )
    assert answer.status_code == 202, answer.text
    await services.aclose()
    await pool.aclose()
    await db.dispose()
    return variant


def test_replay_of_a_recorded_delivery_and_of_a_payload_file(
    env: dict[str, str], tmp_path: Path
) -> None:
    # Synchronous on purpose: the command runs its own event loop, as it does in a terminal.
    variant = asyncio.run(_record_one_delivery(env, tmp_path))
    runner = CliRunner()
    stored = runner.invoke(cli, ["replay", "original-1"])
    assert stored.exit_code == 0, stored.output
    assert "replayed original-1 as replay-" in stored.output and ": queued" in stored.output

    from_file = runner.invoke(cli, ["replay", str(variant), "--event", "issues"])
    assert from_file.exit_code == 0, from_file.output
    assert ": queued" in from_file.output

    missing = runner.invoke(cli, ["replay", "no-such-delivery"])
    assert missing.exit_code == 1
    assert "no delivery 'no-such-delivery' was recorded" in missing.output

"""compose.yaml: the whole stack, checked by `docker compose config` where the plugin exists and
by its structure everywhere (no Docker engine or registry is needed for either)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from bot.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SECRET_FILES = (
    "factory_webhook_secret",
    "factory_private_key",
    "anthropic_api_key",
    "factory_database_url",
    "postgres_password",
)


def _compose() -> list[str] | None:
    """`docker compose` (the plugin) or Debian's standalone `docker-compose`, whichever exists."""
    if shutil.which("docker"):
        plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if plugin.returncode == 0:
            return ["docker", "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None


@pytest.mark.skipif(_compose() is None, reason="neither docker compose nor docker-compose here")
def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in SECRET_FILES:
        (secrets / name).write_text("x")
    (tmp_path / "compose.yaml").write_text((ROOT / "compose.yaml").read_text())
    command = _compose()
    assert command is not None
    result = subprocess.run(
        [*command, "config", "--quiet"],
        cwd=tmp_path,
        env={"FACTORY_APP_ID": "1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_stack_has_every_part_and_migrates_once_before_serving() -> None:
    services = COMPOSE["services"]
    assert {"migrate", "server", "worker", "redis", "postgres", "chroma"} <= set(services)
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    for role in ("server", "worker"):
        after = services[role]["depends_on"]
        assert after["migrate"] == {"condition": "service_completed_successfully"}
        assert after["redis"] == {"condition": "service_healthy"}
    assert services["worker"]["deploy"]["replicas"] >= 2
    for name in ("server", "redis", "postgres"):
        assert services[name]["healthcheck"]["test"], name


def test_secrets_come_from_files_and_map_onto_settings() -> None:
    services = COMPOSE["services"]
    for role in ("migrate", "server", "worker"):
        service = services[role]
        assert service["environment"]["FACTORY_SECRETS_DIR"] == "/run/secrets"
        environment = " ".join(f"{k}={v}" for k, v in service["environment"].items()).lower()
        for secret in ("webhook_secret", "private_key", "api_key", "database_url", "password"):
            assert secret not in environment, f"{role} carries a {secret} in its environment"
    declared = COMPOSE["secrets"]
    assert all(declared[name]["file"] == f"./secrets/{name}" for name in SECRET_FILES)
    # Each secret file is named after the setting it supplies (bot/settings.py SECRETS_DIR).
    fields = {f"factory_{name}" for name in Settings.model_fields} | {"anthropic_api_key"}
    for name in services["server"]["secrets"]:
        assert name in fields, name


def test_workers_may_create_the_sandboxs_namespaces() -> None:
    options = COMPOSE["services"]["worker"]["security_opt"]
    assert "seccomp:unconfined" in options and "apparmor:unconfined" in options

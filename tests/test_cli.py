"""The `factory` command line as an operator uses it: help, config, db upgrade, doctor, errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.db.migrate import current_revision, head_revision
from bot.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
HEAVY_MODULES = ("sentence_transformers", "chromadb", "anthropic", "torch")
COMMANDS = ("up", "serve", "worker", "doctor", "config", "db")


def _env(**extra: str) -> dict[str, str]:
    """A minimal environment: no FACTORY_* or ANTHROPIC_* from the developer's shell."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}
    env.update(extra)
    return env


def factory(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from bot.cli import main; sys.argv[0] = 'factory'; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env=_env(PYTHONPATH=str(ROOT), **env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_help_lists_every_command_with_its_help_text(tmp_path: Path) -> None:
    result = factory("--help", cwd=tmp_path, COLUMNS="200")

    assert result.returncode == 0, result.stderr
    for command in COMMANDS:
        assert f" {command} " in result.stdout
    assert "Run the whole bot in one process" in result.stdout
    assert "Check settings, Redis, database" in result.stdout
    db_help = factory("db", "--help", cwd=tmp_path, COLUMNS="200")
    assert "upgrade" in db_help.stdout and "Apply database migrations" in db_help.stdout


def test_help_imports_no_heavy_library(tmp_path: Path) -> None:
    code = (
        "import sys; sys.argv = ['factory', '--help']\n"
        "from bot.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
    )

    loaded = result.stdout.splitlines()[-1]
    for heavy in HEAVY_MODULES:
        assert f"'{heavy}'" not in loaded


def test_config_prints_every_setting(tmp_path: Path) -> None:
    result = factory("config", cwd=tmp_path)

    assert result.returncode == 0
    for name in Settings.model_fields:
        assert name.upper() in result.stdout


async def test_db_upgrade_migrates_the_configured_database(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'state.db'}"

    result = factory("db", "upgrade", cwd=tmp_path, FACTORY_DATABASE_URL=url)

    assert result.returncode == 0, result.stderr
    assert f"is at revision {head_revision()}" in result.stdout
    assert await current_revision(url) == head_revision()


def test_bad_settings_stop_every_command_with_one_message_and_no_traceback(
    tmp_path: Path,
) -> None:
    for command in (["up"], ["serve"], ["worker"], ["db", "upgrade"]):
        result = factory(
            *command, cwd=tmp_path, FACTORY_DATABASE_URL="mysql://x", FACTORY_PORT="http"
        )

        assert result.returncode == 2, command
        assert "FACTORY_DATABASE_URL" in result.stderr and "FACTORY_PORT" in result.stderr
        assert "Traceback" not in result.stderr


def test_a_redis_url_that_does_not_answer_is_a_clear_error(tmp_path: Path) -> None:
    result = factory(
        "serve",
        "--migrate",
        cwd=tmp_path,
        FACTORY_REDIS_URL="redis://:pw@127.0.0.1:1/0",
        FACTORY_PORT="0",
    )

    assert result.returncode == 1
    assert "FACTORY_REDIS_URL=redis://:***@127.0.0.1:1/0 does not answer" in result.stderr
    assert "pw@" not in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_an_unmigrated_database(tmp_path: Path, redis_url: str) -> None:
    result = factory("serve", cwd=tmp_path, FACTORY_REDIS_URL=redis_url, FACTORY_PORT="0")

    assert result.returncode == 1
    assert "run `factory db upgrade` first" in result.stderr


def test_doctor_names_a_bad_database_url_and_a_missing_webhook_secret(tmp_path: Path) -> None:
    result = factory("doctor", cwd=tmp_path, FACTORY_DATABASE_URL="mysql://db/x")

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(line.startswith("problem") and "FACTORY_DATABASE_URL" in line for line in lines), (
        result.stdout
    )
    assert any(
        line.startswith("problem") and "FACTORY_WEBHOOK_SECRET is not set" in line for line in lines
    ), result.stdout
    # The other checks still ran.
    assert any(line.startswith("ok") and "embedding model" in line for line in lines)


def _pem_key(tmp_path: Path) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "app.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return path


def test_doctor_passes_when_everything_is_configured(tmp_path: Path, redis_url: str) -> None:
    (tmp_path / "data" / "chroma").mkdir(parents=True)
    result = factory(
        "doctor",
        cwd=tmp_path,
        FACTORY_DATA_DIR=str(tmp_path / "data"),
        FACTORY_REDIS_URL=redis_url,
        FACTORY_WEBHOOK_SECRET="a-long-random-webhook-secret",
        FACTORY_APP_ID="12345",
        FACTORY_PRIVATE_KEY_PATH=str(_pem_key(tmp_path)),
        ANTHROPIC_API_KEY="sk-ant-test-key",
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "problem" not in result.stdout
    names = ("settings", "webhook secret", "github app", "redis", "database", "chroma", "sandbox")
    for name in names:
        assert any(line.startswith("ok") and name in line for line in result.stdout.splitlines())
    assert "sk-ant-test-key" not in result.stdout


@pytest.mark.parametrize(
    ("key_setting", "expected"),
    [
        ({"FACTORY_PRIVATE_KEY": "not a pem"}, "FACTORY_PRIVATE_KEY: not a PEM private key"),
        ({"FACTORY_PRIVATE_KEY_PATH": "/nonexistent/app.pem"}, "cannot be read"),
        ({}, "FACTORY_PRIVATE_KEY or FACTORY_PRIVATE_KEY_PATH not set"),
    ],
)
def test_doctor_explains_github_app_credential_problems(
    tmp_path: Path, key_setting: dict[str, str], expected: str
) -> None:
    result = factory("doctor", cwd=tmp_path, FACTORY_APP_ID="1", **key_setting)

    assert result.returncode == 1
    github_line = next(line for line in result.stdout.splitlines() if "github app" in line)
    assert github_line.startswith("problem") and expected in github_line


def test_doctor_says_when_the_docker_sandbox_it_was_told_to_use_cannot_run(
    tmp_path: Path,
) -> None:
    result = factory(
        "doctor",
        cwd=tmp_path,
        FACTORY_SANDBOX="docker",
        FACTORY_SANDBOX_IMAGE="agent-factory-no-such-image:never",
        DOCKER_HOST=f"unix://{tmp_path}/docker.sock",
    )

    assert result.returncode == 1
    line = next(line for line in result.stdout.splitlines() if "sandbox" in line)
    assert line.startswith("problem") and "no Docker engine answers" in line
    assert "docker pull agent-factory-no-such-image:never" in line

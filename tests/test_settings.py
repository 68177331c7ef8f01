"""Settings come from FACTORY_* variables and .env, and bad ones are named all at once."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config_reference import env_names, markdown_table
from bot.settings import DEFAULT_REDIS_URL, Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_need_no_environment(clean_env: None, tmp_path: Path) -> None:
    settings = load_settings(_env_file=None, data_dir=tmp_path)

    assert settings.effective_redis_url == DEFAULT_REDIS_URL
    assert settings.redis_url_is_default
    assert settings.effective_database_url == f"sqlite+aiosqlite:///{tmp_path / 'factory.db'}"
    assert settings.effective_chroma_path == tmp_path / "chroma"
    assert settings.webhook_secret is None


def test_variables_with_the_prefix_and_dotenv_are_read(
    clean_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("FACTORY_PORT=9001\nFACTORY_WEBHOOK_SECRET=from-dotenv\n")
    monkeypatch.setenv("FACTORY_PORT", "9002")

    settings = load_settings()

    assert settings.port == 9002  # the environment wins over .env
    assert settings.webhook_secret is not None
    assert settings.webhook_secret.get_secret_value() == "from-dotenv"


def test_secrets_do_not_print(clean_env: None) -> None:
    settings = load_settings(_env_file=None, webhook_secret="s3cret-value", private_key="pem-text")

    assert "s3cret-value" not in repr(settings)
    assert "pem-text" not in str(settings.model_dump())


def test_every_bad_setting_is_named_in_one_error(
    clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACTORY_DATABASE_URL", "mysql://nope")
    monkeypatch.setenv("FACTORY_PORT", "not-a-port")
    monkeypatch.setenv("FACTORY_REDIS_URL", "http://wrong")

    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None)

    message = str(caught.value)
    for name in ("FACTORY_DATABASE_URL", "FACTORY_PORT", "FACTORY_REDIS_URL"):
        assert name in message
    assert "sqlite+aiosqlite://" in message  # says how to fix it
    assert set(caught.value.fields) == {"database_url", "port", "redis_url"}


def test_importing_the_bot_builds_no_settings() -> None:
    # A broken environment must not break imports: settings are built at start, not import.
    env = {"FACTORY_DATABASE_URL": "bogus", "FACTORY_PORT": "x", "PATH": "/usr/bin:/bin"}
    code = "import bot.cli, bot.app, bot.services, bot.worker, bot.runner, bot.doctor"
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stderr


def test_readme_configuration_reference_matches_the_settings() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- settings:start -->\n(.*?)\n<!-- settings:end -->", readme, re.DOTALL)

    assert block is not None, "README lacks the settings reference markers"
    assert block.group(1).strip() == markdown_table().strip(), (
        "README settings reference is stale: paste the output of `factory config`"
    )
    for name, field in Settings.model_fields.items():
        assert env_names(name, field)[0] in block.group(1)


def test_secrets_come_from_files_in_the_secrets_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: None
) -> None:
    """Docker and Kubernetes mount secrets as files; FACTORY_SECRETS_DIR names their folder."""
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    (secrets_dir / "factory_webhook_secret").write_text("whsec-from-a-file\n")
    (secrets_dir / "anthropic_api_key").write_text("sk-ant-from-a-file")
    (secrets_dir / "factory_database_url").write_text("postgresql+asyncpg://u:pw@db/factory")
    monkeypatch.setenv("FACTORY_SECRETS_DIR", str(secrets_dir))
    monkeypatch.setenv("FACTORY_DATABASE_URL", "sqlite+aiosqlite:///env-wins.db")
    settings = load_settings(_env_file=None)
    assert settings.webhook_secret is not None
    assert settings.webhook_secret.get_secret_value() == "whsec-from-a-file"
    assert settings.anthropic_api_key is not None
    assert settings.anthropic_api_key.get_secret_value() == "sk-ant-from-a-file"
    assert settings.database_url == "sqlite+aiosqlite:///env-wins.db"
    monkeypatch.setenv("FACTORY_SECRETS_DIR", str(tmp_path / "missing"))
    with pytest.raises(SettingsError, match="FACTORY_SECRETS_DIR"):
        load_settings(_env_file=None)

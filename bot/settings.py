"""The bot's one settings class, read from the environment (prefix ``FACTORY_``) and ``.env``.

Settings are built by :func:`load_settings` at start-up, never at import time, so tests and
several processes can hold different settings side by side.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.private_key import normalize_private_key

PUBLIC_GITHUB_API = "https://api.github.com"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def _default_data_dir() -> Path:
    return Path.cwd() / ".factory"


class Settings(BaseSettings):
    """Everything an operator can set. Secrets are ``SecretStr`` so they never print."""

    model_config = SettingsConfigDict(
        env_prefix="FACTORY_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    # GitHub App
    webhook_secret: SecretStr | None = Field(
        default=None, description="Secret GitHub signs webhook deliveries with."
    )
    app_id: int | None = Field(default=None, description="The GitHub App's numeric id.")
    private_key: SecretStr | None = Field(
        default=None,
        description="The GitHub App's private key: PEM text, PEM with \\n escapes, or base64.",
    )
    private_key_path: Path | None = Field(
        default=None, description="Path to the GitHub App's private key (.pem file)."
    )
    app_slug: str = Field(
        default="agent-factory", description="The App's slug; its bot account is '<slug>[bot]'."
    )
    github_api_url: str = Field(
        default=PUBLIC_GITHUB_API,
        description="GitHub REST API root; any other value is a GitHub Enterprise Server or a test server.",
    )

    # Infrastructure
    redis_url: str | None = Field(
        default=None,
        description=f"Redis URL. Unset: {DEFAULT_REDIS_URL}, or an embedded Redis that `factory up` starts.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL. Unset: a SQLite file in the data dir (aiosqlite).",
    )
    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Where the bot keeps its SQLite database, Chroma store and workspaces.",
    )
    chroma_path: Path | None = Field(
        default=None, description="Embedded Chroma directory. Unset: <data dir>/chroma."
    )
    chroma_url: str | None = Field(
        default=None,
        description="URL of a Chroma server shared by all workers (overrides chroma_path).",
    )
    knowledge: bool = Field(
        default=True,
        description="Index repositories and learn from PR outcomes (loads the embedding model in workers).",
    )
    embedding_model: str | None = Field(
        default=None,
        description="Path of a sentence-transformers model. Unset: the packaged all-MiniLM-L6-v2.",
    )

    # LLM
    anthropic_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("ANTHROPIC_API_KEY", "FACTORY_ANTHROPIC_API_KEY"),
        description="Anthropic API key (ANTHROPIC_API_KEY).",
    )
    anthropic_base_url: str | None = Field(
        default=None, description="Messages API root (a proxy, or a test server)."
    )
    model: str = Field(default="claude-sonnet-4-5", description="Default Claude model.")

    # Behaviour
    trigger_label: str = Field(default="factory", description="Label that starts a run.")
    max_concurrent_runs: int = Field(
        default=2, ge=1, description="Concurrent runs allowed per installation."
    )
    sandbox: Literal["auto", "docker", "bwrap", "none-unsafe"] = Field(
        default="auto",
        description=(
            "Where agent commands run: auto (Docker when it answers, else bubblewrap; refuses to "
            "run commands when neither works), docker, bwrap, or none-unsafe (no isolation: "
            "development only)."
        ),
    )
    sandbox_image: str = Field(
        default="python:3.11-slim",
        description="Docker image agent commands run in (must be on the engine: nothing is pulled).",
    )
    sandbox_memory_mb: int = Field(default=2048, ge=64, description="Memory limit of a command.")
    sandbox_cpus: float = Field(default=1.0, gt=0, description="CPU share of a command (Docker).")
    sandbox_pids: int = Field(default=256, ge=16, description="Process limit of a command.")
    sandbox_tmp_mb: int = Field(
        default=1024, ge=16, description="Size of a command's private /tmp."
    )
    sandbox_disk_mb: int = Field(
        default=4096, ge=16, description="Disk quota of a workspace (the clone and all it gains)."
    )
    sandbox_command_disk_mb: int = Field(
        default=2048, ge=1, description="How much one command may add to its workspace on disk."
    )
    sandbox_cache_mb: int = Field(
        default=4096,
        ge=16,
        description=(
            "Size limit of a repository's package cache (pip, uv, npm, yarn, go, cargo), which "
            "its setup steps reuse from run to run."
        ),
    )
    sandbox_toolchains: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description=(
            "Extra host directories commands see read-only (toolchains such as /opt/node); the "
            "OS and the bot's Python are always visible, nothing else is."
        ),
    )
    sandbox_hidden_paths: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description=(
            "Extra host paths hidden from commands, added to the defaults (credential stores, "
            "the data dir, the database, keys), which always apply."
        ),
    )
    sandbox_uid_base: int = Field(
        default=200_000,
        ge=1000,
        description=(
            "When the bot runs as root, commands run as an unprivileged uid per workspace "
            "from this base (50,000 ids)."
        ),
    )
    sandbox_setup_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Hosts setup steps may reach besides the package registries (names, or *.suffix); "
            "always at public addresses only."
        ),
    )
    sandbox_setup_allow_private: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="host[:port] setup steps may reach at a private address (an internal mirror).",
    )
    sandbox_setup_network: str = Field(
        default="egress",
        min_length=1,
        description=(
            "Docker: 'egress' (setup steps reach only the allowed registries through the "
            "bot's proxy) or a Docker network to put them on instead (no filtering)."
        ),
    )
    job_timeout_s: int = Field(default=1800, ge=10, description="Hard limit on one agent step.")

    # HTTP server
    host: str = Field(default="127.0.0.1", description="Address the HTTP server binds.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port the HTTP server binds.")
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto", description="Logs as JSON lines (auto: when stderr is not a TTY)."
    )
    log_level: str = Field(default="INFO", description="Python log level.")

    @field_validator(
        "sandbox_toolchains",
        "sandbox_hidden_paths",
        "sandbox_setup_allow",
        "sandbox_setup_allow_private",
        mode="before",
    )
    @classmethod
    def _list_from_text(cls, value: object) -> object:
        # Lists come from the environment as a JSON array or as comma-separated text.
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]

    @field_validator("sandbox", mode="before")
    @classmethod
    def _sandbox_alias(cls, value: object) -> object:
        # "local" meant bubblewrap with weaker fallbacks; it now means bubblewrap or nothing.
        return "bwrap" if value == "local" else value

    @field_validator("github_api_url", "anthropic_base_url", "chroma_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "must start with 'sqlite+aiosqlite://' or 'postgresql+asyncpg://' "
                "(for example sqlite+aiosqlite:///./factory.db)"
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _known_redis(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @model_validator(mode="after")
    def _one_private_key(self) -> Settings:
        if self.private_key is not None and self.private_key_path is not None:
            raise ValueError("set FACTORY_PRIVATE_KEY or FACTORY_PRIVATE_KEY_PATH, not both")
        return self

    # Derived values: computed, never stored, so there is one source of truth.
    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'factory.db'}"

    @property
    def effective_redis_url(self) -> str:
        return self.redis_url or DEFAULT_REDIS_URL

    @property
    def redis_url_is_default(self) -> bool:
        return self.redis_url is None

    @property
    def effective_chroma_path(self) -> Path:
        return self.chroma_path or self.data_dir / "chroma"

    @property
    def bot_login(self) -> str:
        return f"{self.app_slug}[bot]"

    def private_key_pem(self) -> str | None:
        """The App's PEM text, from the variable or the file (read on demand), in any of the
        forms bot.private_key accepts; raises PrivateKeyError (a ValueError) for a wrong key."""
        if self.private_key is not None:
            return normalize_private_key(self.private_key.get_secret_value())
        if self.private_key_path is not None:
            return normalize_private_key(self.private_key_path.read_text())
        return None


class SettingsError(Exception):
    """Settings could not be built; ``problems`` names each one and how to fix it."""

    def __init__(self, problems: list[str], fields: list[str] | None = None) -> None:
        self.problems = problems
        # The offending field names, so `factory doctor` can check everything else.
        self.fields = fields or []
        super().__init__(
            "Agent Factory cannot start; fix these settings:\n"
            + "\n".join(f"  - {p}" for p in problems)
        )


def _env_name(loc: tuple[object, ...]) -> str:
    if not loc:
        return "settings"
    field = str(loc[0])
    if field == "anthropic_api_key":
        return "ANTHROPIC_API_KEY"
    return f"FACTORY_{field.upper()}"


SECRETS_DIR_ENV = "FACTORY_SECRETS_DIR"


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, turning validation errors into one clear message.

    With FACTORY_SECRETS_DIR set (Docker and Kubernetes secrets mounted as files), each file
    there named after a variable in lower case (`factory_webhook_secret`, `anthropic_api_key`,
    `factory_private_key`, `factory_database_url`, ...) supplies that setting; the environment
    still wins.
    """
    secrets_dir = os.environ.get(SECRETS_DIR_ENV)
    if secrets_dir and "_secrets_dir" not in overrides:
        if not Path(secrets_dir).is_dir():
            raise SettingsError([f"{SECRETS_DIR_ENV}: {secrets_dir} is not a directory"])
        overrides = {"_secrets_dir": secrets_dir, **overrides}
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = [f"{_env_name(err['loc'])}: {err['msg']}" for err in exc.errors()]
        fields = [str(err["loc"][0]) for err in exc.errors() if err["loc"]]
        raise SettingsError(problems, fields) from None

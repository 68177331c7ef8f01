"""The App's private key in every form operators hand it over, and the clear refusals."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest
from arq.worker import Worker
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bot.db.database import Database
from bot.private_key import PrivateKeyError, normalize_private_key
from bot.queue import create_arq_pool
from bot.services import build_services
from bot.settings import load_settings
from bot.worker import worker_settings
from tests.test_cli import factory

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PKCS1 = KEY.private_bytes(
    serialization.Encoding.PEM,
    serialization.PrivateFormat.TraditionalOpenSSL,
    serialization.NoEncryption(),
).decode()
PKCS8 = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
PUBLIC = (
    KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)


@pytest.mark.parametrize(
    "given",
    [
        pytest.param(PKCS1, id="pem"),
        pytest.param(PKCS8, id="pkcs8"),
        pytest.param(PKCS1.replace("\n", "\\n"), id="backslash-n escapes"),
        pytest.param(f'"{PKCS1.strip()}"'.replace("\n", "\\n"), id="quoted escapes"),
        pytest.param(base64.b64encode(PKCS1.encode()).decode(), id="base64"),
        pytest.param(base64.encodebytes(PKCS1.encode()).decode(), id="base64 wrapped"),
        pytest.param(PKCS1.replace("\n", "\r\n"), id="crlf"),
    ],
)
def test_every_form_becomes_the_same_key(given: str) -> None:
    pem = normalize_private_key(given)
    loaded = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(loaded, rsa.RSAPrivateKey)
    assert loaded.private_numbers() == KEY.private_numbers()


@pytest.mark.parametrize(
    ("given", "says"),
    [
        (PUBLIC, "this is a public key"),
        ("hello", "not base64 of one"),
        (base64.b64encode(b"just text").decode(), "does not decode to a PEM private key"),
        ("-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----", "not a PEM"),
        (
            ec.generate_private_key(ec.SECP256R1())
            .private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            .decode(),
            "not an RSA key",
        ),
        ("", "empty"),
    ],
)
def test_a_wrong_key_says_what_it_is(given: str, says: str) -> None:
    with pytest.raises(PrivateKeyError, match=says):
        normalize_private_key(given)


def test_settings_take_the_escaped_form_from_an_env_file(tmp_path: Path, clean_env: None) -> None:
    """The README's Docker recipe: a one-line FACTORY_PRIVATE_KEY in the --env-file."""
    env = tmp_path / ".env"
    one_line = PKCS1.strip().replace("\n", "\\n")
    env.write_text(f"FACTORY_PRIVATE_KEY={one_line}\n")
    settings = load_settings(_env_file=env, data_dir=tmp_path)
    assert settings.private_key_pem() == PKCS1


def test_doctor_says_a_public_key_is_one_instead_of_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "app.pem").write_text(PUBLIC)
    result = factory(
        "doctor",
        cwd=tmp_path,
        FACTORY_APP_ID="12345",
        FACTORY_PRIVATE_KEY_PATH=str(tmp_path / "app.pem"),
    )
    assert "Traceback" not in result.stderr + result.stdout
    line = next(line for line in result.stdout.splitlines() if "github app" in line)
    assert line.startswith("problem") and "this is a public key" in line
    assert result.returncode == 1


@pytest.mark.parametrize(
    ("key", "says"),
    [
        pytest.param(
            {"private_key": PUBLIC}, "FACTORY_PRIVATE_KEY: this is a public key", id="public"
        ),
        pytest.param(
            {"private_key_path": "missing.pem"},
            "FACTORY_PRIVATE_KEY_PATH cannot be read: No such file or directory",
            id="unreadable file",
        ),
    ],
)
async def test_a_worker_with_a_wrong_key_runs_without_github_and_says_why_in_one_warning(
    tmp_path: Path,
    clean_env: None,
    db: Database,
    redis_url: str,
    caplog: pytest.LogCaptureFixture,
    key: dict[str, str],
    says: str,
) -> None:
    """Like missing credentials: the worker starts (`factory up` on a bare machine) and names
    the problem, instead of failing its start-up with a traceback."""
    if "private_key_path" in key:
        key = {"private_key_path": str(tmp_path / key["private_key_path"])}
    settings = load_settings(_env_file=None, data_dir=tmp_path / "data", app_id=12345, **key)
    redis_client = await create_arq_pool(redis_url)
    services = await build_services(settings, redis=redis_client, db=db)
    await services.redis.enqueue_job("ping", _job_id="ping-1")
    options = {**worker_settings(settings, services), "burst": True, "poll_delay": 0}
    worker = Worker(**options, handle_signals=False)
    try:
        with caplog.at_level(logging.WARNING, logger="bot.worker"):
            await worker.async_run()
    finally:
        await worker.close()
        await services.aclose()
        await redis_client.aclose()

    assert worker.jobs_complete == 1
    warnings = [r for r in caplog.records if r.name == "bot.worker"]
    assert len(warnings) == 1 and warnings[0].exc_info is None
    assert warnings[0].getMessage().startswith("worker runs without GitHub access")
    assert says in warnings[0].getMessage()

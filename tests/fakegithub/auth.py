"""GitHub App credentials: the App's RSA key, App JWT checks and installation tokens."""

from __future__ import annotations

import base64
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

AuthKind = Literal["jwt", "token", "basic", "none", "invalid"]

TOKEN_LIFETIME = timedelta(hours=1)


@dataclass(frozen=True)
class InstallationToken:
    token: str
    installation_id: int
    expires_at: datetime


@dataclass(frozen=True)
class Credentials:
    """What a request proved: an App JWT, an installation token, or nothing valid."""

    kind: AuthKind
    token: InstallationToken | None = None
    reason: str = ""


class AppAuth:
    def __init__(self, app_id: int, client_id: str) -> None:
        self.app_id = app_id
        self.client_id = client_id
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()
        self._public_key = key.public_key()
        self._lock = threading.Lock()
        self._tokens: dict[str, InstallationToken] = {}
        self.tokens_minted = 0

    def mint(self, installation_id: int) -> InstallationToken:
        token = InstallationToken(
            token="ghs_" + secrets.token_urlsafe(27).replace("-", "a").replace("_", "b")[:36],
            installation_id=installation_id,
            expires_at=datetime.now(UTC).replace(microsecond=0) + TOKEN_LIFETIME,
        )
        with self._lock:
            self._tokens[token.token] = token
            self.tokens_minted += 1
        return token

    def expire(self, token: str) -> None:
        """Make a token look expired, to test that clients mint a new one."""
        with self._lock:
            old = self._tokens.get(token)
            if old is not None:
                past = datetime.now(UTC) - timedelta(seconds=1)
                self._tokens[token] = InstallationToken(old.token, old.installation_id, past)

    def check_jwt(self, raw: str) -> Credentials:
        try:
            claims = jwt.decode(
                raw,
                self._public_key,
                algorithms=["RS256"],
                options={"require": ["exp", "iat", "iss"]},
                leeway=0,
            )
        except jwt.PyJWTError as exc:
            return Credentials("invalid", reason=f"'Authorization' JWT is invalid: {exc}")
        if str(claims["iss"]) not in (str(self.app_id), self.client_id):
            return Credentials("invalid", reason="'Issuer' claim ('iss') must be an Integer")
        return Credentials("jwt")

    def check_token(self, raw: str) -> Credentials:
        with self._lock:
            token = self._tokens.get(raw)
        if token is None:
            return Credentials("invalid", reason="Bad credentials")
        if token.expires_at <= datetime.now(UTC):
            return Credentials("invalid", reason="Bad credentials")
        return Credentials("token", token=token)

    def from_header(self, header: str | None) -> Credentials:
        """Classify an Authorization header the way GitHub's API does."""
        if not header:
            return Credentials("none", reason="Requires authentication")
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        scheme = scheme.lower()
        if scheme == "basic":
            return self._from_basic(value)
        if scheme not in ("token", "bearer") or not value:
            return Credentials("invalid", reason="Bad credentials")
        if value.count(".") == 2 and not value.startswith("ghs_"):
            return self.check_jwt(value)
        return self.check_token(value)

    def _from_basic(self, value: str) -> Credentials:
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except ValueError:
            return Credentials("invalid", reason="Bad credentials")
        _user, _, password = decoded.partition(":")
        found = self.check_token(password)
        if found.kind != "token":
            return found
        return Credentials("basic", token=found.token)

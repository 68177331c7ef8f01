"""The GitHub App's private key, however the operator handed it over.

GitHub gives an App a PEM file. Operators pass it as that file, as the PEM text in a variable, as
the PEM with its newlines written `\\n` (what a one-line `.env` entry or a Docker `--env-file`
holds), or base64-encoded (what secret stores and Kubernetes often carry). All of these become
the same PEM text here, checked to be an RSA private key, so a wrong key is a clear message at
start-up rather than a failure at the first GitHub call.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


class PrivateKeyError(ValueError):
    """The value is not a usable GitHub App private key; the message says what it is instead."""


_BEGIN = "-----BEGIN"


def normalize_private_key(value: str) -> str:
    """The PEM text of an RSA private key given in any of the accepted forms."""
    text = value.strip().strip("'\"").strip()
    if not text:
        raise PrivateKeyError("the private key is empty")
    if _BEGIN not in text:
        text = _from_base64(text)
    if "\\n" in text and "\n" not in text.strip():
        text = text.replace("\\r\\n", "\n").replace("\\n", "\n")
    pem = text.strip() + "\n"
    if "PUBLIC KEY" in pem.split("\n", 1)[0]:
        raise PrivateKeyError(
            "this is a public key; use the private key GitHub generated for the App "
            "(App settings, 'Private keys', 'Generate a private key': a .pem file)"
        )
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except TypeError:
        raise PrivateKeyError("the private key is encrypted; GitHub's keys are not") from None
    except ValueError:
        raise PrivateKeyError(
            "not a PEM private key (expected '-----BEGIN RSA PRIVATE KEY-----' or "
            "'-----BEGIN PRIVATE KEY-----', as text, with \\n escapes, or base64)"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise PrivateKeyError("the private key is not an RSA key; GitHub Apps sign with RSA")
    return pem


def _from_base64(text: str) -> str:
    try:
        decoded = base64.b64decode("".join(text.split()), validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        raise PrivateKeyError(
            "not a PEM private key and not base64 of one (it should start with '-----BEGIN')"
        ) from None
    if _BEGIN not in decoded:
        raise PrivateKeyError("base64 that does not decode to a PEM private key")
    return decoded

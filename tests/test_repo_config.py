from __future__ import annotations

from pathlib import Path

import pytest

from bot.contracts.commands import COMMANDS, parse_commands
from bot.contracts.config import RepoConfig
from bot.contracts.config_load import explain, load_repo_config
from bot.contracts.config_problems import SOURCE_DEFAULT, SOURCE_ORG, SOURCE_REPO, ConfigError

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "factory.yml.example"


def problems_of(text: str, **kwargs: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_repo_config(text, **kwargs)
    return caught.value


def test_missing_file_gives_documented_defaults() -> None:
    result = load_repo_config(None)
    config = result.config
    assert config == RepoConfig()
    assert config.trigger_label == "factory"
    assert config.model is None
    assert (config.budgets.max_usd, config.budgets.max_tokens) == (5.0, 2_000_000)
    assert (config.budgets.max_turns, config.budgets.max_minutes) == (60, 30)
    assert config.validation_gates == []
    assert config.require_plan_approval is False
    assert config.protected_paths == [".github/workflows/**"]
    assert config.permissions.read_only_open is True
    assert config.max_rounds == 3
    assert not result.repo_file_found and not result.org_file_found
    assert set(result.sources.values()) == {SOURCE_DEFAULT}


def test_empty_file_is_the_defaults() -> None:
    assert load_repo_config("# nothing yet\n").config == RepoConfig()


def test_documented_example_is_exactly_the_defaults() -> None:
    assert load_repo_config(EXAMPLE.read_text()).config == RepoConfig()


def test_repo_values_are_used() -> None:
    text = """
trigger_label: ai
budgets:
  max_usd: 1.5
validation_gates: ["pytest -q"]
require_plan_approval: true
deploy:
  workflow: deploy.yml
  environments: [staging, production]
reviewers:
  users: ["@alice"]
  teams: [acme/core]
"""
    config = load_repo_config(text).config
    assert config.trigger_label == "ai"
    assert config.budgets.max_usd == 1.5 and config.budgets.max_turns == 60
    assert config.validation_gates == ["pytest -q"]
    assert config.require_plan_approval
    assert config.reviewers.users == ["alice"]
    assert config.reviewers.team_slugs == ["core"]
    assert config.deploy.resolve_environment(None) == "staging"
    assert config.deploy.resolve_environment("production") == "production"
    with pytest.raises(ValueError, match="not a configured environment"):
        config.deploy.resolve_environment("prod")
    assert config.enabled_stages() == {"review", "test", "deploy"}


def test_setup_steps_parse_and_default_to_none() -> None:
    assert (RepoConfig().setup, RepoConfig().setup_timeout_s) == ([], 900)
    result = load_repo_config(
        "setup:\n  - python -m venv .venv\n  - .venv/bin/pip install -e .\nsetup_timeout_s: 300\n"
    )
    assert result.config.setup == ["python -m venv .venv", ".venv/bin/pip install -e ."]
    assert result.config.setup_timeout_s == 300
    assert result.sources["setup"] == result.sources["setup_timeout_s"] == SOURCE_REPO


@pytest.mark.parametrize(
    ("text", "path", "fragment", "line"),
    [
        ("trigger_label: ai\nsetup: pip install -e .\n", "setup", "valid list", 2),
        ("setup:\n  - pip install -e .\n  - 3\n", "setup[1]", "valid string", 3),
        ("setup: ['']\n", "setup[0]", "at least 1 character", 1),
        ("setup_timeout_s: forever\n", "setup_timeout_s", "valid integer", 1),
        ("setup_timeout_s: 0\n", "setup_timeout_s", "greater than or equal to 1", 1),
        ("setup_timeout_s: 7200\n", "setup_timeout_s", "less than or equal to 3600", 1),
    ],
)
def test_wrong_setup_values_name_the_setting(
    text: str, path: str, fragment: str, line: int
) -> None:
    error = problems_of(text)
    [problem] = error.problems
    assert (problem.path, problem.line) == (path, line)
    assert fragment in problem.message
    assert f"| `{path}` |" in error.to_markdown()


def test_deploy_stage_needs_a_workflow_and_stages_switch_off() -> None:
    assert "deploy" not in load_repo_config(None).config.enabled_stages()
    config = load_repo_config("stages:\n  review: false\n").config
    assert config.enabled_stages() == {"test"}


def test_wrong_type_names_the_field_path_value_and_line() -> None:
    error = problems_of("trigger_label: ai\nbudgets:\n  max_usd: lots\n")
    [problem] = error.problems
    assert problem.path == "budgets.max_usd"
    assert problem.value == "lots"
    assert problem.source == SOURCE_REPO
    assert problem.line == 3
    assert "valid number" in problem.message


def test_unknown_key_is_an_error_with_a_suggestion() -> None:
    error = problems_of("budgets:\n  max_usd: 2\n  max_tokns: 5\nsurprise: true\n")
    by_path = {problem.path: problem for problem in error.problems}
    assert set(by_path) == {"budgets.max_tokns", "surprise"}
    assert "did you mean `max_tokens`" in by_path["budgets.max_tokns"].message
    assert by_path["budgets.max_tokns"].line == 3
    assert by_path["surprise"].line == 4


def test_list_items_and_permission_keys_are_checked() -> None:
    error = problems_of(
        "validation_gates: ['pytest', '']\n"
        "permissions:\n"
        "  restrict_to:\n"
        "    deplyo: [alice]\n"
        "    deploy: ['not a user!']\n"
    )
    paths = {problem.path for problem in error.problems}
    assert paths == {
        "validation_gates[1]",
        "permissions.restrict_to.deplyo",
        "permissions.restrict_to.deploy[0]",
    }


def test_values_out_of_range_and_inconsistent_deploy() -> None:
    error = problems_of(
        "max_rounds: 0\n"
        "budgets: {max_usd: -1}\n"
        "deploy:\n"
        "  workflow: ../evil.yml\n"
        "  environments: [staging]\n"
        "  default_environment: production\n"
    )
    assert {problem.path for problem in error.problems} == {
        "max_rounds",
        "budgets.max_usd",
        "deploy.workflow",
        "deploy.default_environment",
    }


def test_yaml_syntax_error_reports_line_and_column() -> None:
    error = problems_of("trigger_label: ai\nbudgets:\n  max_usd: 2\n   max_turns: 9\n")
    [problem] = error.problems
    assert problem.path == ""
    assert (problem.line, problem.column) == (4, 13)
    assert "YAML syntax error" in problem.message
    assert "line 4, column 13" in error.to_markdown()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("- a\n- b\n", "must be a mapping"),
        ("on: true\n", "setting names must be text"),
    ],
)
def test_file_shape_problems(text: str, fragment: str) -> None:
    [problem] = problems_of(text).problems
    assert fragment in problem.message


def test_alias_bomb_is_refused_quickly() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{refs}]")
    [problem] = problems_of("\n".join(lines)).problems
    assert "more than" in problem.message


def test_error_markdown_is_one_comment_listing_every_problem() -> None:
    error = problems_of("budgets:\n  max_usd: lots\nsurprise: 1\n")
    markdown = error.to_markdown(path=".github/factory.yml")
    assert markdown.startswith("### Agent Factory configuration problem")
    assert "nothing runs in this repository until it is fixed" in markdown
    assert "| `budgets.max_usd` |" in markdown and '`"lots"`' in markdown
    assert "| `surprise` |" in markdown
    assert "`.github/factory.yml` line 2" in markdown
    assert parse_commands(markdown) == []


def test_org_default_is_merged_under_the_repo_file() -> None:
    org = """
model: claude-org
budgets:
  max_usd: 2
  max_turns: 20
protected_paths: [infra/**]
permissions:
  restrict_to:
    deploy: [acme/release]
"""
    repo = """
budgets:
  max_turns: 10
protected_paths: [secrets/]
permissions:
  restrict_to:
    mutating: [acme/maintainers]
"""
    result = load_repo_config(repo, org_default_text=org)
    config = result.config
    assert config.model == "claude-org"
    assert (config.budgets.max_usd, config.budgets.max_turns) == (2.0, 10)
    assert config.protected_paths == ["secrets/"]  # lists are replaced, not concatenated
    assert config.permissions.restrict_to == {
        "deploy": ["acme/release"],
        "mutating": ["acme/maintainers"],
    }
    assert result.sources["model"] == SOURCE_ORG
    assert result.sources["budgets.max_usd"] == SOURCE_ORG
    assert result.sources["budgets.max_turns"] == SOURCE_REPO
    assert result.sources["budgets.max_tokens"] == SOURCE_DEFAULT
    assert result.sources["permissions.restrict_to.deploy"] == SOURCE_ORG

    text = explain(result)
    rows = {
        line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| `")
    }
    assert rows["`model`"].endswith(f"| {SOURCE_ORG} |")
    assert '`"claude-org"`' in rows["`model`"]
    assert rows["`budgets.max_turns`"].endswith(f"| `{SOURCE_REPO}` |")
    assert rows["`budgets.max_tokens`"].endswith(f"| {SOURCE_DEFAULT} |")
    assert "default branch" in text
    assert parse_commands(text) == []


def test_problem_in_the_org_default_is_attributed_to_it() -> None:
    error = problems_of("trigger_label: ai\n", org_default_text="budgets:\n  max_usd: free\n")
    [problem] = error.problems
    assert (problem.path, problem.source, problem.line) == ("budgets.max_usd", SOURCE_ORG, 2)
    assert "organisation default line 2" in error.to_markdown()


def test_repo_null_overrides_org_value() -> None:
    result = load_repo_config("model: null\n", org_default_text="model: claude-org\n")
    assert result.config.model is None
    assert result.sources["model"] == SOURCE_REPO


@pytest.mark.parametrize(
    ("path", "protected"),
    [
        (".github/workflows/ci.yml", True),
        (".github/workflows/sub/x.yml", True),
        (".github/dependabot.yml", False),
        ("secrets/prod/key.pem", True),
        ("app/secrets.py", False),
        ("deep/dir/poetry.lock", True),
        ("src/app.py", False),
        ("/migrations/0001.py", True),
        ("migrations/old/0001.py", False),
        ("src/../.github/workflows/ci.yml", True),
        ("./secrets/a", True),
        ("../outside.txt", True),
        ("..hidden/file", False),
    ],
)
def test_protected_paths(path: str, protected: bool) -> None:
    config = load_repo_config(
        "protected_paths: ['.github/workflows/**', 'secrets/', '*.lock', 'migrations/*.py']\n"
    ).config
    assert config.is_protected(path) is protected


def test_permission_keys_cover_every_command() -> None:
    restrict_to = {name: ["alice"] for name in [*COMMANDS, "read_only", "mutating", "label"]}
    config = RepoConfig.model_validate({"permissions": {"restrict_to": restrict_to}})
    assert set(config.permissions.restrict_to) == set(restrict_to)
    assert config.permissions.restriction_for("deploy", read_only=False) == ["alice"]

"""The files a plan names are shown to the coder up front, bounded, and only from the checkout."""

from __future__ import annotations

from pathlib import Path

from agents.plan_files import HEADING, plan_files_section, plan_paths
from agents.planner import ContextRef, PlanResult, PlanStep


def make_plan(context: list[str], step_files: tuple[str, ...] = ()) -> PlanResult:
    return PlanResult(
        issue_number=7,
        title="Fix it",
        goal="Fix it.",
        context=[ContextRef(path, "named") for path in context],
        steps=[PlanStep(title="Change it", details="", files=step_files)],
    )


def test_paths_are_taken_from_context_then_steps_without_line_refs_or_duplicates() -> None:
    plan = make_plan(
        ["src/app.py:10-20", "`src/cli.py`", "./README.md", "src/app.py (the entry point)"],
        ("src/cli.py", "tests/test_new.py"),
    )
    assert plan_paths(plan) == ["src/app.py", "src/cli.py", "README.md", "tests/test_new.py"]


def test_named_files_are_shown_numbered_as_data_and_the_rest_left_out(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("def main():\n    return 1\n")
    (tmp_path / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("[remote]\n")
    (tmp_path.parent / "outside.py").write_text("SECRET = 1\n")
    plan = make_plan(
        ["src/app.py", "src", "logo.png", ".git/config", "../outside.py", "/etc/passwd"],
        ("src/new_module.py",),  # to be created: nothing to show yet
    )

    section = plan_files_section(plan, tmp_path)

    assert section.startswith(HEADING)
    assert "### src/app.py\n<untrusted_data" in section
    assert "     1\tdef main():\n     2\t    return 1\n[lines 1-2 of 2; end of file]" in section
    for absent in ("### src\n", "logo.png", ".git", "outside", "SECRET", "passwd", "new_module"):
        assert absent not in section


def test_long_files_are_cut_to_fit_and_what_does_not_fit_is_named(tmp_path: Path) -> None:
    (tmp_path / "big.py").write_text("".join(f"x_{n} = {n}\n" for n in range(1, 5001)))
    (tmp_path / "small.py").write_text("y = 1\n")
    (tmp_path / "other.py").write_text("z = 2\n" * 200)
    plan = make_plan(["big.py", "other.py", "small.py"])

    section = plan_files_section(plan, tmp_path, max_chars=8_000, max_lines_per_file=1_000)

    assert len(section) < 8_000 + 500  # the budget, plus the heading and the closing note
    assert "### big.py" in section and "x_1 = 1\n" in section
    assert "more lines: read_file with start_line=" in section  # cut, and says how to go on
    assert "x_1000 = 1000" not in section
    assert "### small.py" in section  # a later small file still fits
    assert "Not shown, to keep the prompt small (use read_file): other.py" in section


def test_a_plan_naming_no_existing_file_adds_nothing(tmp_path: Path) -> None:
    assert plan_files_section(make_plan(["missing.py"]), tmp_path) == ""
    assert plan_files_section(make_plan([]), tmp_path) == ""


def _long_module(functions: int = 60) -> str:
    return "".join(
        f"def handler_{n}(value):\n"
        f'    """Handle case {n}."""\n'
        + "".join(f"    value = value + {n * 100 + k}  # step {k}\n" for k in range(16))
        + "    return value\n\n\n"
        for n in range(1, functions + 1)
    )


def test_a_long_file_shows_the_definitions_the_plan_names_and_an_outline_of_the_rest(
    tmp_path: Path,
) -> None:
    text = "import os\n\n\n" + _long_module()
    (tmp_path / "handlers.py").write_text(text)
    lines = text.splitlines()
    start = lines.index("def handler_30(value):") + 1
    plan = PlanResult(
        issue_number=7,
        title="handler_30 adds the wrong offset",
        goal="Fix `handler_30`.",
        context=[ContextRef("handlers.py", "defines handler_30")],
        steps=[PlanStep(title="Change one line", details="", files=("handlers.py",))],
    )

    section = plan_files_section(plan, tmp_path)

    assert len(text) > 20_000 and len(section) < 8_000
    # The named function, numbered as read_file numbers it, with its surroundings.
    assert f"{start:>6}\tdef handler_30(value):\n{start + 1:>6}\t" in section
    assert "value = value + 3015  # step 15" in section
    # The module's opening, and every other function by name and line, without its body.
    assert "     1\timport os" in section
    other = lines.index("def handler_7(value):") + 1
    assert f"{other:>6}\tdef handler_7(value):" in section
    assert "value = value + 715" not in section
    assert "read_file with start_line for any other part" in section


def test_line_ranges_the_plan_cites_are_shown_from_a_long_file(tmp_path: Path) -> None:
    text = _long_module()
    (tmp_path / "handlers.py").write_text(text)

    section = plan_files_section(make_plan(["handlers.py:200-204"]), tmp_path)

    lines = text.splitlines()
    assert f"   200\t{lines[199]}" in section and f"   204\t{lines[203]}" in section
    assert "lines 200-204 the plan cites" in section
    assert "value = value + 101  # step 1\n" not in section  # not shown whole

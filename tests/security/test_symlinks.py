"""Symlinks in a clone never let the bot's own code read or write a host file.

The repository commits symlinks to files and a directory on the bot's host (a secret beside the
workspaces, which the sandbox cannot see but the bot's process can), a relative link climbing
out of the clone, and a link loop. The coder's in-process tools (read_file, search, find_symbol,
list_files), the plan-files prompt section and the knowledge indexer all run in the bot's
process, so none of them may follow such a link. Links the model makes with run_command, then
writes through with create_file or edit_file, must not change a host file either.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.plan_files import plan_files_section
from agents.planner import ContextRef, PlanResult, PlanStep
from agents.sandbox import BubblewrapSandbox
from agents.tools.coder_tools import CoderTools
from knowledge.embeddings import SentenceTransformerEmbedder
from knowledge.indexer import RepositoryIndexer
from knowledge.lexical import LexicalIndex
from knowledge.store import ChromaStore
from tests.fakegithub import FakeGitHub
from tests.fakegithub.gitrepo import Author
from tests.test_workspace import REPO, Bot

SECRET = "HOST-SECRET-7f3a"
SECRET_PATTERN = "HOST-SECRET-[0-9a-f]+"  # a search for it, not echoing it in "no matches"
SECRET_FUNCTION = "leaked_host_function"


def host_secrets(root: Path) -> tuple[Path, Path]:
    """A secret file and a directory of secrets on the host, outside every workspace."""
    directory = root / "host-secrets"
    directory.mkdir()
    (directory / "only-on-the-host.txt").write_text(f"{SECRET}\n")
    (directory / "secret.py").write_text(f"def {SECRET_FUNCTION}():\n    return '{SECRET}'\n")
    secret = root / "secret.txt"
    secret.write_text(f"{SECRET}\n")
    return secret, directory


def commit_links(fake: FakeGitHub, links: dict[str, str]) -> None:
    """The attacker's merged commit on main: symlinks (mode 120000) to the given targets."""
    repo = fake.git(REPO)
    index = {"GIT_INDEX_FILE": str(repo.path / "links-index")}
    repo.git("read-tree", "main", env=index)
    for path, target in links.items():
        blob = repo.out("hash-object", "-w", "--stdin", input=target.encode()).strip()
        repo.git("update-index", "--add", "--cacheinfo", f"120000,{blob},{path}", env=index)
    tree = repo.out("write-tree", env=index).strip()
    (repo.path / "links-index").unlink()
    parent = repo.rev_parse("refs/heads/main")
    assert parent is not None
    sha = repo.commit_tree(tree, [parent], "Add links", Author("mallory", "m@example.com"))
    repo.update_ref("refs/heads/main", sha, parent)


def committed_links(secret: Path, directory: Path) -> dict[str, str]:
    return {
        "leak.txt": str(secret),
        "src/leak.py": str(directory / "secret.py"),
        "linkdir": str(directory),
        # repo -> ws-xxxx -> workspaces -> the test's directory, where secret.txt is.
        "climb.txt": "../../../secret.txt",
        "loop": "loop",
    }


async def test_committed_symlinks_are_never_followed_by_the_bots_tools(
    bot: Bot, fake: FakeGitHub, tmp_path: Path
) -> None:
    secret, directory = host_secrets(tmp_path)
    links = committed_links(secret, directory)
    commit_links(fake, links)
    reads = [*links, "linkdir/only-on-the-host.txt", "linkdir/secret.py", "loop/x"]

    async with await bot.workspace() as ws:
        await ws.clone()
        assert (ws.path / "leak.txt").is_symlink()
        assert (ws.path / "climb.txt").resolve() == secret  # the link does reach the host
        # A sandbox whose shell cannot run the search script (as where neither rg nor git is
        # installed), so the search falls back to reading files in the bot's process.
        for sandbox in (
            BubblewrapSandbox(ws.path, git_dir=ws.git_dir),
            BubblewrapSandbox(ws.path, git_dir=ws.git_dir, shell="/usr/bin/env"),
        ):
            tools = CoderTools(ws.path, sandbox)
            outputs = [await tools.call("read_file", {"path": path}) for path in reads]
            assert all(result.is_error for result in outputs), outputs
            for where in (".", "linkdir", "leak.txt", "src"):
                query = {"pattern": SECRET_PATTERN, "path": where}
                outputs.append(await tools.call("search", query))
            outputs.append(await tools.call("find_symbol", {"name": SECRET_FUNCTION}))
            listing = await tools.call("list_files", {"path": ".", "depth": 5})
            outputs.append(listing)
            for result in outputs:
                assert SECRET not in result.content, result
                assert SECRET_FUNCTION + "()" not in result.content, result
            assert "only-on-the-host.txt" not in listing.content
            assert "linkdir -> " in listing.content

        plan = PlanResult(
            issue_number=1,
            title="Read the links",
            goal="Read the links.",
            context=[ContextRef(path, "named") for path in reads],
            steps=[PlanStep(title="Edit", details="", files=("leak.txt", "linkdir/secret.py"))],
        )
        section = plan_files_section(plan, ws.path)

        lexical = LexicalIndex(tmp_path / "lexical.db")
        try:
            indexer = RepositoryIndexer(
                store=ChromaStore(path=tmp_path / "chroma"),
                embedder=SentenceTransformerEmbedder(),
                lexical=lexical,
            )
            report = indexer.index_directory(REPO, ws.path, embed=False)
            indexed = lexical.paths(REPO)
            chunks = lexical.chunks_of(REPO, indexed)
        finally:
            lexical.close()

    assert section == ""
    assert report.files_written > 0 and "README.md" in indexed
    assert not set(indexed) & {*links, "linkdir/only-on-the-host.txt", "linkdir/secret.py"}
    assert not any(SECRET in repr(records) for records in chunks.values())


@pytest.mark.parametrize("tool", ["create_file", "edit_file"], ids=["create_file", "edit_file"])
async def test_links_the_model_makes_cannot_carry_a_write_to_the_host(
    bot: Bot, tmp_path: Path, tool: str
) -> None:
    secret, directory = host_secrets(tmp_path)
    before = sorted(p.name for p in directory.iterdir())
    async with await bot.workspace() as ws:
        await ws.clone()
        config_before = (ws.git_dir / "config").read_bytes()
        sandbox = BubblewrapSandbox(ws.path, git_dir=ws.git_dir)
        made = await sandbox.run(
            f"ln -s {secret} made.txt && ln -s made.txt chain.txt && "
            f"ln -s {directory} madedir && ln -s {directory}/new.txt dangling.txt && "
            "ln -s loop loop && ln -s ../.. up && "
            f"(ln {ws.git_dir}/config hard.txt || echo 'no hard link' && touch hard.txt) && "
            "echo @@made@@",
            cwd=ws.path,
            timeout_s=60,
        )
        assert "@@made@@" in made.stdout, made
        assert (ws.path / "made.txt").is_symlink()
        tools = CoderTools(ws.path, sandbox)
        targets = [
            "made.txt",
            "chain.txt",
            "madedir/only-on-the-host.txt",
            "madedir/new.txt",
            "dangling.txt",
            "loop",
            "up/secret.txt",
            "hard.txt",
        ]
        results = {}
        for path in targets:
            if tool == "create_file":
                arguments = {"path": path, "content": "overwritten\n", "overwrite": True}
            else:
                arguments = {"path": path, "old_text": SECRET, "new_text": "overwritten"}
            results[path] = await tools.call(tool, arguments)
        config_after = (ws.git_dir / "config").read_bytes()

    refused = {path for path, result in results.items() if result.is_error}
    assert refused >= set(targets) - {"hard.txt"}, results
    assert secret.read_text() == f"{SECRET}\n"
    assert sorted(p.name for p in directory.iterdir()) == before
    assert (directory / "only-on-the-host.txt").read_text() == f"{SECRET}\n"
    assert not (tmp_path / "workspaces" / "secret.txt").exists()
    assert config_after == config_before


async def test_a_tracked_directory_swapped_for_a_link_is_neither_read_nor_written_through(
    bot: Bot, fake: FakeGitHub, tmp_path: Path
) -> None:
    """The model replaces the tracked `src/` with a link to a host directory. Committing
    records the link itself (not the host's files), and restoring the branch (`reset --hard`,
    what a redone coder try does) puts `src/` back without writing into the host directory."""
    _, directory = host_secrets(tmp_path)
    before = {p.name: p.read_bytes() for p in directory.iterdir()}
    branch = "factory/issue-10-swapped"
    async with await bot.workspace() as ws:
        await ws.clone()
        start = await ws.checkout_branch(branch)
        sandbox = BubblewrapSandbox(ws.path, git_dir=ws.git_dir)
        swapped = await sandbox.run(
            f"rm -rf src && ln -s {directory} src && echo @@swapped@@", cwd=ws.path, timeout_s=60
        )
        assert "@@swapped@@" in swapped.stdout, swapped
        sha = await ws.commit_all("Swap src for a link")
        await ws.push()
        await ws.git("reset", "--hard", "--quiet", start)
        await ws.git("clean", "-fd", "--quiet")
        restored = (ws.path / "src").is_symlink(), (ws.path / "src" / "app.py").read_text()

    assert sha is not None and fake.branch_sha(REPO, branch) == sha
    entries = fake.git(REPO).out("ls-tree", "-r", sha).splitlines()
    assert [e.split("\t")[1] for e in entries if e.startswith("120000 ")] == ["src"]
    assert fake.file_at(REPO, branch, "src") == str(directory)
    listed = fake.git(REPO).git("grep", "-l", "-F", "-e", SECRET, sha, check=False)
    assert listed.returncode == 1  # no pushed file holds the secret
    assert restored == (False, "print('hello')\n")
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == before

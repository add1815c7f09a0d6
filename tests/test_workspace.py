"""Workspaces: branch names, worktrees from a cached clone, read-only diffs."""

from __future__ import annotations

from bot.config import RepoConfig
from bot.workspace import Workspaces, branch_name
from tests.support import git


def test_branch_names_follow_the_contract():
    assert branch_name(42, 7, "Division is broken!", set()) == (
        "swarm/42-division-is-broken"
    )
    assert branch_name(None, 7, "Add a dark mode toggle", set()) == (
        "swarm/job-7-add-a-dark-mode-toggle"
    )
    long = branch_name(42, 7, "word " * 40, set())
    assert len(long) <= 60 and not long.endswith("-")
    assert branch_name(42, 7, "Ünïcode ✓ title", set()) == "swarm/42-unicode-title"


def test_a_taken_branch_name_gets_a_suffix():
    taken = {"swarm/42-fix", "swarm/42-fix-2"}

    assert branch_name(42, 7, "fix", taken) == "swarm/42-fix-3"


def test_worktrees_share_one_clone_and_keep_their_branches(tmp_path, origin):
    workspaces = Workspaces(tmp_path / "data", "bot <bot@example.com>")
    repo = RepoConfig(name="api", url=str(origin))

    first = workspaces.prepare(repo, 1, "swarm/job-1-a")
    second = workspaces.prepare(repo, 2, "swarm/job-2-b")

    assert first.path != second.path
    assert git("branch", "--show-current", cwd=first.path) == "swarm/job-1-a"
    assert git("branch", "--show-current", cwd=second.path) == "swarm/job-2-b"
    assert sorted(p.name for p in workspaces.clones.iterdir()) == ["api"]

    workspaces.remove(repo, str(first.path))

    assert not first.path.exists()
    assert "swarm/job-1-a" in git("branch", "--list", cwd=workspaces.clones / "api")


def test_a_fresh_job_never_takes_over_an_existing_branch(tmp_path, origin):
    seed = tmp_path / "api-seed"
    git("push", "-q", str(origin), "HEAD:refs/heads/swarm/42-fix", cwd=seed)
    workspaces = Workspaces(tmp_path / "data", "bot <bot@example.com>")
    repo = RepoConfig(name="api", url=str(origin))

    worktree = workspaces.prepare(repo, 1, "swarm/42-fix")

    assert worktree.branch == "swarm/42-fix-2"


def test_diffstat_shows_new_files_and_leaves_the_index_alone(tmp_path, origin):
    workspaces = Workspaces(tmp_path / "data", "bot <bot@example.com>")
    worktree = workspaces.prepare(RepoConfig(name="api", url=str(origin)), 1, "b")
    (worktree.path / "calc.py").write_text("def divide(a, b):\n    return a / b\n")
    (worktree.path / "notes.txt").write_text("new\n")
    before = git("status", "--porcelain", cwd=worktree.path)

    stat = workspaces.diffstat(worktree)

    assert "calc.py" in stat
    assert "notes.txt (new, not yet added)" in stat
    assert git("status", "--porcelain", cwd=worktree.path) == before

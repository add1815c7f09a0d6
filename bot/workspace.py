"""Git workspaces: a cached clone per repo and one worktree per job.

Everything here blocks; the engine calls it from worker threads. Git errors
become `WorkspaceError` with a short message; the log has git's own words,
with any credentials in URLs redacted.
"""

from __future__ import annotations

import base64
import logging
import re
import shutil
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import git

from bot.config import RepoConfig

log = logging.getLogger(__name__)

BRANCH_PREFIX = "swarm/"
MAX_BRANCH = 60
CREDENTIALS_IN_URL = re.compile(r"(://)[^/@\s]+@")


class WorkspaceError(Exception):
    """A git step failed; the message is short and safe to show in chat."""


@dataclass(frozen=True)
class Worktree:
    path: Path
    branch: str
    base: str


def branch_name(issue: int | None, job_id: int, title: str, taken: set[str]) -> str:
    """`swarm/<issue>-<slug>` or `swarm/job-<id>-<slug>`, unique among `taken`."""
    stem = (
        f"{BRANCH_PREFIX}{issue}"
        if issue is not None
        else f"{BRANCH_PREFIX}job-{job_id}"
    )
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    room = MAX_BRANCH - len(stem) - 1 - 3  # keep space for a "-NN" suffix
    slug = slug[:room].rstrip("-")
    name = f"{stem}-{slug}" if slug else stem
    return _next_free(name, taken) if name in taken else name


def auth_env(github_token: str, url: str) -> dict[str, str]:
    """Credentials for GitHub over https, passed in the environment, not argv."""
    if not (github_token and url.startswith("https://")):
        return {}
    basic = base64.b64encode(f"x-access-token:{github_token}".encode()).decode()
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.extraHeader",
        "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
        "GIT_TERMINAL_PROMPT": "0",
    }


def _next_free(name: str, taken: set[str]) -> str:
    n = 2
    while f"{name}-{n}" in taken:
        n += 1
    return f"{name}-{n}"


def redact(text: str) -> str:
    """Strip credentials from URLs in git output."""
    return CREDENTIALS_IN_URL.sub(r"\1***@", text)


class Workspaces:
    """Clones under `data_dir/repos`, worktrees under `data_dir/worktrees`."""

    def __init__(
        self, data_dir: Path, commit_author: str, github_token: str = ""
    ) -> None:
        self.clones = data_dir / "repos"
        self.worktrees = data_dir / "worktrees"
        self.author = _parse_author(commit_author)
        self.github_token = github_token
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def prepare(
        self,
        repo: RepoConfig,
        job_id: int,
        branch: str,
        existing: str = "",
        fresh: bool = True,
    ) -> Worktree:
        """Fetch and give the job a worktree on `branch`.

        A worktree still on disk is reused. A job that has worked before (a
        retry or a follow-up) gets its branch checked out again. A fresh job
        gets a new branch from `origin/<base>`; if its name turned out to be
        taken, a suffixed name, returned in the worktree.
        """
        if existing and (Path(existing) / ".git").exists():
            return Worktree(Path(existing), branch, repo.base)

        with self._lock(repo.name):
            clone = self._clone(repo)
            self._fetch(clone, repo)
            path = self.worktrees / f"{repo.name}-{job_id}"
            if path.exists():
                self._prune(clone, path)
            path.parent.mkdir(parents=True, exist_ok=True)

            local_names = {head.name for head in clone.heads}
            remote_names = {ref.remote_head for ref in clone.remotes.origin.refs}
            if fresh and branch in local_names | remote_names:
                branch = _next_free(branch, local_names | remote_names)
            local = branch in local_names
            remote = branch in remote_names
            try:
                if local:
                    clone.git.worktree("add", str(path), branch)
                elif remote:
                    clone.git.worktree(
                        "add", "-b", branch, str(path), f"origin/{branch}"
                    )
                else:
                    clone.git.worktree(
                        "add",
                        "--no-track",
                        "-b",
                        branch,
                        str(path),
                        f"origin/{repo.base}",
                    )
            except git.GitCommandError as exc:
                raise self._error(
                    f"could not create a worktree on {branch}", exc
                ) from exc

        log.info("Job %s: worktree %s on %s", job_id, path, branch)
        return Worktree(path, branch, repo.base)

    def taken_branches(self, repo: RepoConfig) -> set[str]:
        """Branch names already used locally or on origin (as last fetched)."""
        try:
            clone = git.Repo(self.clones / repo.name)
            names = {head.name for head in clone.heads}
            return names | {ref.remote_head for ref in clone.remotes.origin.refs}
        except (git.InvalidGitRepositoryError, git.NoSuchPathError, ValueError):
            return set()  # not cloned yet, or a clone in progress

    def has_changes(self, worktree: Worktree) -> bool:
        """True when the worktree differs from `origin/<base>` in any way."""
        repo = git.Repo(worktree.path)
        if repo.is_dirty(untracked_files=True):
            return True
        ahead = repo.git.rev_list("--count", f"origin/{worktree.base}..HEAD")
        return int(ahead) > 0

    def commit(self, worktree: Worktree, message: str) -> str:
        """Commit whatever the agent left uncommitted; returns HEAD's sha."""
        repo = git.Repo(worktree.path)
        try:
            repo.git.add("--all")
            if repo.is_dirty(index=True, working_tree=False):
                name, email = self.author
                repo.git.commit(
                    "-m",
                    message,
                    env={
                        "GIT_AUTHOR_NAME": name,
                        "GIT_AUTHOR_EMAIL": email,
                        "GIT_COMMITTER_NAME": name,
                        "GIT_COMMITTER_EMAIL": email,
                    },
                )
        except git.GitCommandError as exc:
            raise self._error("could not commit the changes", exc) from exc
        return repo.head.commit.hexsha

    def push(self, worktree: Worktree, repo_config: RepoConfig) -> None:
        """Push the branch to origin; never force."""
        repo = git.Repo(worktree.path)
        try:
            repo.git.push(
                "origin",
                f"HEAD:refs/heads/{worktree.branch}",
                env=auth_env(self.github_token, repo_config.url),
            )
        except git.GitCommandError as exc:
            raise self._error(f"could not push {worktree.branch}", exc) from exc

    def diffstat(self, worktree: Worktree) -> str:
        """`git diff --stat` of everything the job changed, new files included.

        Read-only: the agent may be working in the worktree at the same time.
        """
        try:
            repo = git.Repo(worktree.path)
            stat = repo.git.diff("--stat", f"origin/{worktree.base}")
            new = repo.git.ls_files("--others", "--exclude-standard").splitlines()
        except (git.GitError, OSError) as exc:
            log.warning("No diffstat for %s: %s", worktree.path, exc)
            raise WorkspaceError("no diff is available") from exc
        lines = [stat] if stat else []
        lines += [f" {name} (new, not yet added)" for name in new]
        return "\n".join(lines)

    def branch_diffstat(self, repo_config: RepoConfig, branch: str) -> str:
        """Diffstat of a branch whose worktree is gone."""
        try:
            clone = git.Repo(self.clones / repo_config.name)
            return clone.git.diff("--stat", f"origin/{repo_config.base}...{branch}")
        except (git.GitError, OSError) as exc:
            log.warning("No diffstat for %s: %s", branch, exc)
            raise WorkspaceError("no diff is available") from exc

    def changed_files(self, worktree: Worktree) -> int:
        """How many files differ from `origin/<base>`."""
        repo = git.Repo(worktree.path)
        names = repo.git.diff("--name-only", f"origin/{worktree.base}", "HEAD")
        return len([line for line in names.splitlines() if line.strip()])

    def remove(self, repo_config: RepoConfig, path: str) -> None:
        """Remove a job's worktree; its branch stays in the clone."""
        if not path:
            return
        clone_path = self.clones / repo_config.name
        with self._lock(repo_config.name):
            if clone_path.exists():
                self._prune(git.Repo(clone_path), Path(path))
            else:
                shutil.rmtree(path, ignore_errors=True)

    def _clone(self, repo: RepoConfig) -> git.Repo:
        path = self.clones / repo.name
        if (path / ".git").exists():
            return git.Repo(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        log.info("Cloning %s into %s", redact(repo.url), path)
        try:
            clone = git.Repo.clone_from(
                repo.url,
                path,
                no_checkout=True,
                env=auth_env(self.github_token, repo.url),
            )
        except git.GitCommandError as exc:
            shutil.rmtree(path, ignore_errors=True)
            raise self._error(f"could not clone {repo.name}", exc) from exc

        name, email = self.author
        with clone.config_writer() as config:
            config.set_value("user", "name", name)
            config.set_value("user", "email", email)
        return clone

    def _fetch(self, clone: git.Repo, repo: RepoConfig) -> None:
        try:
            clone.git.fetch(
                "origin", "--prune", env=auth_env(self.github_token, repo.url)
            )
        except git.GitCommandError as exc:
            raise self._error(f"could not fetch {repo.name}", exc) from exc
        if f"origin/{repo.base}" not in [ref.name for ref in clone.remotes.origin.refs]:
            raise WorkspaceError(f"{repo.name} has no branch {repo.base} on origin")

    def _prune(self, clone: git.Repo, path: Path) -> None:
        try:
            clone.git.worktree("remove", "--force", str(path))
        except git.GitCommandError:
            shutil.rmtree(path, ignore_errors=True)
        clone.git.worktree("prune")

    def _error(self, what: str, exc: git.GitCommandError) -> WorkspaceError:
        stderr = redact(str(exc.stderr or "")).strip()
        log.error(
            "git failed: %s: %s", what, stderr.replace(self.github_token or "\0", "***")
        )
        return WorkspaceError(f"git {what}")

    def _lock(self, name: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(name, threading.Lock())


def _parse_author(author: str) -> tuple[str, str]:
    match = re.match(r"^\s*(.*?)\s*<([^>]+)>\s*$", author)
    if not match:
        return author.strip() or "swarmbot", "swarmbot@localhost"
    return match.group(1) or "swarmbot", match.group(2)

"""`swarmbot doctor`: checks the setup and says what to fix."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

from bot.config import Config, RepoConfig
from bot.workspace import auth_env, redact


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def run_checks(config: Config) -> list[Check]:
    """Every check, in the order a person would fix things."""
    checks = [_config(config), _git(), _data_dir(config), _agent(config)]
    checks += [_repo(config, repo) for repo in config.repos.values()]
    if config.telegram.enabled:
        checks.append(_telegram(config))
    if config.whatsapp.enabled:
        checks.append(_whatsapp(config))
    return checks


def _config(config: Config) -> Check:
    where = (
        str(config.path)
        if config.path and config.path.exists()
        else "embedded defaults"
    )
    channels = ["web chat"]
    channels += ["telegram"] if config.telegram.enabled else []
    channels += ["whatsapp"] if config.whatsapp.enabled else []
    detail = f"{where}; channels: {', '.join(channels)}; {len(config.repos)} repo(s)"
    if not config.repos:
        return Check(
            "config", False, f"{detail}. Add a [repos.<name>] table with a url."
        )
    return Check("config", True, detail)


def _git() -> Check:
    path = shutil.which("git")
    if path is None:
        return Check("git", False, "git is not on PATH; install git.")
    version = subprocess.run(
        [path, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return Check("git", True, version)


def _data_dir(config: Config) -> Check:
    data_dir = config.bot.data_dir
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=data_dir):
            pass
    except OSError as exc:
        return Check("data dir", False, f"{data_dir} is not writable ({exc.strerror}).")
    return Check("data dir", True, str(data_dir))


def _agent(config: Config) -> Check:
    if config.agent.backend == "command":
        program = config.agent.command[0]
        found = shutil.which(program)
        if found is None:
            return Check(
                "agent", False, f"{program} is not on PATH; fix [agent] command."
            )
        return Check("agent", True, f"command backend: {found}")

    from bot.agents.claude import cli_path, cli_version

    path = cli_path()
    if path is None:
        return Check(
            "agent", False, "Claude Code CLI not found; reinstall claude-agent-sdk."
        )
    try:
        version = asyncio.run(cli_version())
    except Exception as exc:  # the CLI's own failure, shown as a hint
        return Check("agent", False, f"{path} does not run: {type(exc).__name__}")
    env = {**os.environ, **config.agent.env}
    has_key = bool(env.get("ANTHROPIC_API_KEY") or env.get("CLAUDE_CODE_OAUTH_TOKEN"))
    login = (
        "API key set" if has_key else "no ANTHROPIC_API_KEY; using Claude Code's login"
    )
    number = version.split()[0] if version else "?"
    return Check("agent", True, f"Claude Code {number} at {path} ({login})")


def _repo(config: Config, repo: RepoConfig) -> Check:
    env = {**os.environ, **auth_env(config.github.token, repo.url)}
    env["GIT_TERMINAL_PROMPT"] = "0"
    try:
        result = subprocess.run(
            ["git", "ls-remote", "--heads", repo.url, repo.base],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Check(
            f"repo {repo.name}", False, f"{redact(repo.url)} did not answer in 30 s."
        )
    if result.returncode != 0:
        return Check(
            f"repo {repo.name}",
            False,
            f"cannot read {redact(repo.url)}; check the url and the GitHub token.",
        )
    if not result.stdout.strip():
        return Check(f"repo {repo.name}", False, f"no branch {repo.base}; fix base.")
    detail = f"{redact(repo.url)} @ {repo.base}"
    if not repo.test:
        detail += "; no test command, so nothing is verified"
    if repo.github:
        from bot.forge import ForgeError

        try:
            forge = _forge(config, repo)
            detail += f"; {forge.check()}"
        except ForgeError as exc:
            return Check(f"repo {repo.name}", False, f"{detail}; GitHub: {exc}")
    return Check(f"repo {repo.name}", True, detail)


def _forge(config: Config, repo: RepoConfig):
    from bot.forge import GitHubForge

    return GitHubForge(config.github.token, config.github.api_url, repo.github)


def _telegram(config: Config) -> Check:
    from adapters.telegram import check

    try:
        return Check("telegram", True, asyncio.run(check(config.telegram)))
    except Exception as exc:
        return Check("telegram", False, str(exc))


def _whatsapp(config: Config) -> Check:
    from adapters.whatsapp import check

    try:
        return Check("whatsapp", True, check(config.whatsapp))
    except Exception as exc:
        return Check("whatsapp", False, str(exc))

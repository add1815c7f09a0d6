"""Test helpers: sample repos with an origin, configs, and a running bot."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.config import Config, load_config
from bot.engine import Engine
from bot.web import make_server
from tests.fakes.anthropic import FakeAnthropic, tool_use

FIXER = Path(__file__).parent / "agents" / "fixer.py"

CALC_BUGGY = """\
def divide(a, b):
    return a * b
"""

CALC_FIXED = """\
def divide(a, b):
    if b == 0:
        raise ZeroDivisionError("b must not be 0")
    return a / b
"""

TEST_CALC = """\
import unittest

from calc import divide


class DivideTest(unittest.TestCase):
    def test_divides(self):
        self.assertEqual(divide(6, 3), 2)


if __name__ == "__main__":
    unittest.main()
"""

TEST_COMMAND = "python3 -m unittest -q test_calc"

Turn = Callable[[dict[str, Any]], list[dict[str, Any]]]


def git(*args: str, cwd: Path) -> str:
    """Run git in `cwd` and return its output."""
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def make_origin(root: Path, name: str = "api") -> Path:
    """A bare repo with a small Python project whose test fails on `main`."""
    work = root / f"{name}-seed"
    work.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=work)
    git("config", "user.email", "dev@example.com", cwd=work)
    git("config", "user.name", "Dev", cwd=work)
    (work / "calc.py").write_text(CALC_BUGGY)
    (work / "test_calc.py").write_text(TEST_CALC)
    (work / "AGENTS.md").write_text("Keep functions small.\n")
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", "Initial commit", cwd=work)
    origin = root / f"{name}.git"
    git("clone", "-q", "--bare", str(work), str(origin), cwd=root)
    return origin


def write_config(path: Path, text: str) -> Config:
    """Write a swarmbot.toml and load it the way the CLI does."""
    path.write_text(textwrap.dedent(text))
    return load_config(path)


def basic_config(
    tmp_path: Path,
    origin: Path,
    *,
    agent: str = "",
    github: str = "",
    extra: str = "",
    max_parallel: int = 3,
    test: str = TEST_COMMAND,
) -> Config:
    """A config with one repo `api` at `origin` and the given extra sections."""
    repo_github = 'github = "acme/api"' if github else ""
    return write_config(
        tmp_path / "swarmbot.toml",
        f"""
        [bot]
        data_dir = "data"
        max_parallel = {max_parallel}

        {textwrap.dedent(agent)}

        {textwrap.dedent(github)}

        [repos.api]
        url = "{origin}"
        base = "main"
        test = "{test}"
        {repo_github}

        {textwrap.dedent(extra)}
        """,
    )


def command_agent(mode: str, *args: str) -> str:
    """An [agent] section running tests/agents/fixer.py in `mode` with `args`."""
    command = [sys.executable, str(FIXER), mode, "{prompt}", *args]
    return f"""
    [agent]
    backend = "command"
    command = [{", ".join(json.dumps(part) for part in command)}]
    timeout_minutes = 1
    """


def claude_agent(
    api: FakeAnthropic,
    config_dir: Path,
    *,
    max_turns: int = 20,
    timeout_minutes: float = 3,
) -> str:
    """An [agent] section pointing the claude backend at the fake Anthropic API."""
    env = ", ".join(
        f"{json.dumps(key)} = {json.dumps(value)}"
        for key, value in api.env(config_dir).items()
    )
    return f"""
    [agent]
    backend = "claude"
    max_turns = {max_turns}
    timeout_minutes = {timeout_minutes}
    env = {{ {env} }}
    """


def worktree_of(body: dict[str, Any]) -> Path:
    """The job's worktree, as the CLI tells the model in its system prompt."""
    system = json.dumps(body.get("system"))
    found = re.search(r"(/[^\s\"\\]+/worktrees/api-\d+)", system)
    assert found, "the system prompt names the worktree"
    return Path(found[1])


def write_calc(content: str) -> Turn:
    """A model turn that writes calc.py into the worktree the session runs in."""

    def turn(body: dict[str, Any]) -> list[dict[str, Any]]:
        path = worktree_of(body) / "calc.py"
        return [tool_use("Write", {"file_path": str(path), "content": content})]

    return turn


class RunningBot:
    """An engine on its own loop thread, with `serve`'s HTTP app on a free port."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._server = None
        self.url = ""

    def start(self, http: bool = True) -> RunningBot:
        self._thread.start()
        self.call(self.engine.start())
        if http:
            self._server = make_server(self.engine, "127.0.0.1", 0, threads=4)
            threading.Thread(target=self._server.run, daemon=True).start()
            self.url = f"http://127.0.0.1:{self._server.effective_port}"
        return self

    def call(self, coro, timeout: float = 60) -> Any:
        """Run a coroutine on the bot's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.call(self.engine.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def wait_for_job(self, job_id: int, states: tuple[str, ...], timeout: float = 120):
        """Wait until the job reaches one of `states`; returns the job."""
        return wait_until(
            lambda: (
                (job := self.engine.storage.jobs.get(job_id))
                and job.state in states
                and job
            ),
            timeout,
            f"job {job_id} to reach {states}",
        )


class WebChat:
    """Drives the local web chat over HTTP, the way the page does."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seen: list[dict[str, Any]] = []

    def send(self, text: str, question_id: int | None = None) -> None:
        body = json.dumps({"text": text, "question_id": question_id}).encode()
        req = urllib.request.Request(
            f"{self.url}/api/messages",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=10) as response:
            assert response.status == 202

    def poll(self) -> list[dict[str, Any]]:
        after = self.seen[-1]["seq"] if self.seen else 0
        with urllib.request.urlopen(
            f"{self.url}/api/messages?after={after}", timeout=10
        ) as r:
            entries = json.loads(r.read())
        self.seen.extend(entries)
        return entries

    def bot_texts(self) -> list[str]:
        self.poll()
        return [entry["text"] for entry in self.seen if entry["from"] == "bot"]

    def mark(self) -> int:
        """A point in the conversation; `wait_for(..., since=mark)` looks after it."""
        self.poll()
        return len(self.seen)

    def wait_for(
        self, pattern: str, timeout: float = 120, since: int = 0
    ) -> dict[str, Any]:
        """Wait for a bot message matching the regex `pattern`; returns it."""

        def find():
            self.poll()
            for entry in self.seen[since:]:
                if entry["from"] == "bot" and re.search(pattern, entry["text"]):
                    return entry
            return None

        return wait_until(find, timeout, f"a bot message matching {pattern!r}")


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `predicate` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")

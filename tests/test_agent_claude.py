"""The claude backend, driving the real bundled Claude Code CLI against a fake API."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bot.agents.base import AgentEvent, AgentRequest
from bot.agents.claude import ClaudeAgent, cli_path, cli_version
from bot.config import AgentConfig
from tests.fakes.anthropic import (
    ApiError,
    FakeAnthropic,
    Hang,
    ask_user_question,
    conversation_text,
    result_text,
    text,
    tool_results,
    tool_use,
)

pytestmark = pytest.mark.timeout(60)

CHECK_SCRIPT = "echo 'all 3 checks passed'\n"


@dataclass
class Human:
    """The person on the phone: answers questions, approves or refuses."""

    answer: str = ""
    approves: bool = False
    asked: list[tuple[str, list[str]]] = field(default_factory=list)
    approvals: list[str] = field(default_factory=list)
    events: list[AgentEvent] = field(default_factory=list)

    async def progress(self, event: AgentEvent) -> None:
        self.events.append(event)

    async def ask(self, question: str, options: list[str]) -> str:
        self.asked.append((question, options))
        return self.answer

    async def approve(self, description: str) -> bool:
        self.approvals.append(description)
        return self.approves

    def kinds(self) -> set[str]:
        return {event.kind for event in self.events}


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    root = tmp_path / "worktree"
    root.mkdir()
    (root / "parser.py").write_text("def parse(text):\n    return text.split()\n")
    (root / "check.sh").write_text(CHECK_SCRIPT)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "."], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=root, check=True)
    return root


@pytest.fixture
def api_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[FakeAnthropic] = []

    def start(script: list[Any]) -> tuple[FakeAnthropic, AgentConfig]:
        api = FakeAnthropic(script).start()
        started.append(api)
        config = AgentConfig(max_turns=10, env=api.env(tmp_path / "claude-config"))
        return api, config

    yield start
    for api in started:
        api.close()


def request(worktree: Path, prompt: str = "Fix #42", **kwargs: Any) -> AgentRequest:
    return AgentRequest(prompt=prompt, worktree=worktree, job_id=42, **kwargs)


async def test_asks_the_human_then_edits_the_worktree(
    worktree: Path, api_factory: Any
) -> None:
    question = ask_user_question(
        "Keep the parser or rewrite it?",
        "Parser",
        [("Keep it", "Smallest change"), ("Rewrite it", "Cleaner")],
    )

    def write_per_answer(body: dict[str, Any]) -> list[dict[str, Any]]:
        answer = result_text(tool_results(body)[0])
        new = "def parse(text):\n    return text.strip().split()\n"
        if "Rewrite it" not in answer:
            return [text("Keeping it.")]
        path = str(worktree / "parser.py")
        return [tool_use("Write", {"file_path": path, "content": new})]

    api, config = api_factory(
        [
            [
                text("One question first."),
                tool_use("AskUserQuestion", question),
            ],
            write_per_answer,
            [text("Rewrote the parser.")],
        ]
    )
    human = Human(answer="Rewrite it")

    result = await ClaudeAgent(config).run(request(worktree), human)

    assert human.asked == [
        ("Keep the parser or rewrite it?", ["Keep it", "Rewrite it"])
    ]
    answer = result_text(tool_results(api.main_requests[1])[0])
    assert "Rewrite it" in answer
    assert "strip()" in (worktree / "parser.py").read_text()
    assert result.ok, result.error
    assert result.session_id
    assert result.cost_usd > 0
    assert result.summary == "Rewrote the parser."
    assert result.files == ["parser.py"]
    assert {"started", "edit", "text", "tool"} <= human.kinds()
    assert AgentEvent("edit", "parser.py") in human.events
    system = json.dumps(api.main_requests[0]["system"])
    assert "Do not push" in system
    assert str(worktree.resolve()) in system


async def test_writing_outside_the_worktree_is_refused(
    worktree: Path, api_factory: Any, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    api, config = api_factory(
        [[tool_use("Write", {"file_path": str(outside), "content": "escaped"})]]
    )

    result = await ClaudeAgent(config).run(request(worktree), Human())

    assert not outside.exists()
    refusal = tool_results(api.main_requests[1])[0]
    assert refusal.get("is_error")
    assert "outside the worktree" in result_text(refusal)
    assert result.ok
    assert result.files == []


async def test_commands_off_the_list_need_approval_but_tests_do_not(
    worktree: Path, api_factory: Any
) -> None:
    api, config = api_factory(
        [
            [tool_use("Bash", {"command": "touch made-by-agent.txt"})],
            [tool_use("Bash", {"command": "sh check.sh"})],
            [tool_use("Bash", {"command": "git status --short"})],
        ]
    )
    human = Human(approves=False)

    result = await ClaudeAgent(config).run(
        request(worktree, test_command="sh check.sh"), human
    )

    assert human.approvals == ["Run: touch made-by-agent.txt"]
    assert not (worktree / "made-by-agent.txt").exists()
    refused = tool_results(api.main_requests[1])[0]
    assert refused.get("is_error")
    assert "did not allow" in result_text(refused)
    tests_output = result_text(tool_results(api.main_requests[2])[0])
    assert "all 3 checks passed" in tests_output
    assert AgentEvent("command", "sh check.sh") in human.events
    assert result.ok


async def test_approved_command_runs(worktree: Path, api_factory: Any) -> None:
    _, config = api_factory([[tool_use("Bash", {"command": "touch approved.txt"})]])
    human = Human(approves=True)

    result = await ClaudeAgent(config).run(request(worktree), human)

    assert human.approvals == ["Run: touch approved.txt"]
    assert (worktree / "approved.txt").exists()
    assert result.ok


async def test_repo_settings_cannot_widen_the_policy(
    worktree: Path, api_factory: Any
) -> None:
    settings = {"permissions": {"allow": ["Bash", "Write"]}}
    (worktree / ".claude").mkdir()
    (worktree / ".claude" / "settings.json").write_text(json.dumps(settings))
    outside = worktree.parent / "outside.txt"
    _, config = api_factory(
        [
            [tool_use("Bash", {"command": "touch sneaky.txt"})],
            [tool_use("Write", {"file_path": str(outside), "content": "escaped"})],
        ]
    )
    # The CLI honours a repo's allow rules only once its folder is trusted.
    trust = {"projects": {str(worktree.resolve()): {"hasTrustDialogAccepted": True}}}
    config_dir = Path(config.env["CLAUDE_CONFIG_DIR"])
    (config_dir / ".claude.json").write_text(json.dumps(trust))
    human = Human(approves=False)

    await ClaudeAgent(config).run(request(worktree), human)

    assert human.approvals == ["Run: touch sneaky.txt"]
    assert not (worktree / "sneaky.txt").exists()
    assert not outside.exists()


async def test_hooks_a_repo_brings_never_run(
    worktree: Path, api_factory: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "hook-ran"
    hook = {"type": "command", "command": f"touch {marker}"}
    settings = {"hooks": {"PreToolUse": [{"matcher": "*", "hooks": [hook]}]}}
    (worktree / ".claude").mkdir()
    (worktree / ".claude" / "settings.json").write_text(json.dumps(settings))
    _, config = api_factory([[tool_use("Bash", {"command": "ls"})], [text("Done.")]])
    trust = {"projects": {str(worktree.resolve()): {"hasTrustDialogAccepted": True}}}
    config_dir = Path(config.env["CLAUDE_CONFIG_DIR"])
    (config_dir / ".claude.json").write_text(json.dumps(trust))

    result = await ClaudeAgent(config).run(request(worktree), Human())

    assert result.ok, result.error
    assert not marker.exists()


async def test_file_mentions_in_the_prompt_are_not_expanded(
    worktree: Path, api_factory: Any, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-MARKER-7731\n")
    api, config = api_factory([])

    await ClaudeAgent(config).run(
        request(worktree, f"Issue says: see @{secret}"), Human()
    )

    first = json.dumps(api.main_requests[0]["messages"])
    assert f"@{secret}" in first
    assert "SECRET-MARKER-7731" not in first


async def test_resume_continues_the_conversation(
    worktree: Path, api_factory: Any
) -> None:
    api, config = api_factory([[text("First pass done.")], [text("Tests fixed.")]])
    agent = ClaudeAgent(config)

    first = await agent.run(
        request(worktree, "Fix #42: the parser drops words"), Human()
    )
    second = await agent.run(
        request(worktree, "The tests failed: 1 failed", resume=first.session_id),
        Human(),
    )

    assert first.ok and second.ok
    assert second.summary == "Tests fixed."
    history = conversation_text(api.main_requests[-1])
    assert "the parser drops words" in history
    assert "First pass done." in history
    assert "1 failed" in history
    assert second.session_id == first.session_id


async def test_cancelling_stops_the_cli(worktree: Path, api_factory: Any) -> None:
    api, config = api_factory([Hang()])
    task = asyncio.create_task(ClaudeAgent(config).run(request(worktree), Human()))
    deadline = time.monotonic() + 30
    while not api.main_requests and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert api.main_requests, "the CLI never reached the API"
    children = cli_children()
    assert children

    task.cancel()
    started = time.monotonic()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert time.monotonic() - started < 15
    assert not [pid for pid in children if alive(pid)]


async def test_cancelling_while_the_human_thinks_stops_the_cli(
    worktree: Path, api_factory: Any
) -> None:
    question = ask_user_question(
        "Which one?", "Pick", [("A", "The first"), ("B", "The second")]
    )
    _, config = api_factory([[tool_use("AskUserQuestion", question)]])
    asked = asyncio.Event()

    class SlowHuman(Human):
        async def ask(self, question: str, options: list[str]) -> str:
            asked.set()
            await asyncio.sleep(3600)
            return "A"

    task = asyncio.create_task(ClaudeAgent(config).run(request(worktree), SlowHuman()))
    await asyncio.wait_for(asked.wait(), 30)
    children = cli_children()

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert children
    assert not [pid for pid in children if alive(pid)]


async def test_rejected_api_key_fails_cleanly(worktree: Path, api_factory: Any) -> None:
    _, config = api_factory(
        [ApiError(401, "authentication_error", "invalid x-api-key")]
    )

    result = await ClaudeAgent(config).run(request(worktree), Human())

    assert not result.ok
    assert result.error
    assert config.env["ANTHROPIC_API_KEY"] not in result.error


async def test_server_errors_fail_cleanly(worktree: Path, api_factory: Any) -> None:
    _, config = api_factory([ApiError(500)] * 20)

    result = await ClaudeAgent(config).run(request(worktree), Human())

    assert not result.ok
    assert result.error


async def test_unknown_session_fails_cleanly(worktree: Path, api_factory: Any) -> None:
    _, config = api_factory([])
    missing = "00000000-0000-4000-8000-000000000000"

    result = await ClaudeAgent(config).run(request(worktree, resume=missing), Human())

    assert not result.ok
    assert result.error


async def test_doctor_finds_the_cli() -> None:
    path = cli_path()
    assert path is not None and path.exists()
    assert "Claude Code" in await cli_version()


def cli_children() -> list[int]:
    """Pids of Claude Code processes started by this test process."""
    cli = str(cli_path())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            exe = os.readlink(entry / "exe")
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == os.getpid() and exe == cli:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"

"""The `claude` backend: Claude Code, driven through the official Agent SDK.

Every tool call is judged by `bot.policy`; questions and approvals go to the
human through the job's callbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

import claude_agent_sdk
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ClaudeSDKClient,
    ClaudeSDKError,
    CLINotFoundError,
    HookMatcher,
    PermissionResultAllow,
    PermissionResultDeny,
    ResultMessage,
    SystemMessage,
    TextBlock,
    ToolPermissionContext,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
)

from bot import policy
from bot.agents.base import (
    AgentCallbacks,
    AgentError,
    AgentEvent,
    AgentRequest,
    AgentResult,
    EventKind,
)
from bot.config import AgentConfig

log = logging.getLogger(__name__)

DETAIL_LIMIT = 200
ERROR_LIMIT = 300
INTERRUPT_TIMEOUT = 2.0
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)

SYSTEM_PROMPT = """\
You are working for swarmbot on job #{job_id}, in a git worktree at {worktree}
made for this job. Stay inside it: do not cd out of it and do not read or
write files outside it. Do not push, fetch, add remotes or change git
configuration: when you finish, the bot commits your changes, runs the tests
and opens the pull request. If you need a decision from the human, ask with
the AskUserQuestion tool; they answer from their phone, so keep questions
short with clear options.{tests}"""


class ClaudeAgent:
    """Runs Claude Code in a job's worktree.

    Failures of Claude Code itself (not installed, crashed, API errors, an
    error result) are returned as `AgentResult(ok=False, error=...)` with a
    short description that never contains secrets; `run` raises only
    `CancelledError`, after stopping the CLI process.
    """

    def __init__(self, config: AgentConfig) -> None:
        self.config = config

    async def run(
        self, request: AgentRequest, callbacks: AgentCallbacks
    ) -> AgentResult:
        """Work on `request` until Claude Code stops; see the class docstring."""
        session = _Session(self.config, request, callbacks)
        return await session.run()


def cli_path() -> Path | None:
    """The Claude Code CLI: the SDK's bundled binary, else `claude` on PATH."""
    bundled = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
    if bundled.is_file():
        return bundled
    found = shutil.which("claude")
    return Path(found) if found else None


async def cli_version() -> str:
    """The CLI's `--version` output, e.g. `2.1.332 (Claude Code)`."""
    path = cli_path()
    if path is None:
        raise AgentError("Claude Code CLI not found; reinstall claude-agent-sdk")
    try:
        process = await asyncio.create_subprocess_exec(
            str(path),
            "--version",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise AgentError(f"{path} cannot be started: {exc.strerror}") from exc
    try:
        stdout, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    except TimeoutError as exc:
        process.kill()
        await process.wait()
        raise AgentError(f"{path} --version did not answer within 60s") from exc
    if process.returncode != 0:
        raise AgentError(f"{path} --version failed with exit code {process.returncode}")
    return stdout.decode(errors="replace").strip()


class _Session:
    """One run of Claude Code: options, permission decisions, progress."""

    def __init__(
        self, config: AgentConfig, request: AgentRequest, callbacks: AgentCallbacks
    ) -> None:
        self.config = config
        self.request = request
        self.callbacks = callbacks
        self.worktree = request.worktree.resolve()
        self.job = request.job_id
        self.started = False
        self.session_id: str | None = request.resume
        self.pending_edits: dict[str, str] = {}
        self.files: list[str] = []

    def options(self) -> ClaudeAgentOptions:
        tests = ""
        if self.request.test_command:
            tests = f"\nThe repository's tests run with: {self.request.test_command}"
        prompt = SYSTEM_PROMPT.format(
            job_id=self.job, worktree=self.worktree, tests=tests
        )
        return ClaudeAgentOptions(
            cwd=str(self.worktree),
            permission_mode="default",
            can_use_tool=self.can_use_tool,
            hooks={
                "PreToolUse": [
                    HookMatcher(hooks=[self.pre_tool_use], on_failure="block")
                ]
            },
            system_prompt={"type": "preset", "preset": "claude_code", "append": prompt},
            # The operator's own settings apply; the repo's do not, since an
            # agent could write hooks there that a resumed session would run.
            # The job's prompt carries CLAUDE.md and AGENTS.md instead, and the
            # PreToolUse hook keeps any allow rules from widening the policy.
            setting_sources=["user"],
            disallowed_tools=sorted(policy.FORBIDDEN_TOOLS),
            max_turns=self.config.max_turns,
            max_budget_usd=min(
                self.config.max_budget_usd,
                self.request.budget_usd or self.config.max_budget_usd,
            ),
            model=self.config.model or None,
            resume=self.request.resume,
            # The SDK merges this over os.environ for the CLI process.
            env=dict(self.config.env),
            # The prompt carries issue text from strangers: an `@/path` in it
            # must not make Claude Code read a file, nor `/cmd` run a command.
            verbatim_prompts=True,
            stderr=self.on_stderr,
        )

    async def run(self) -> AgentResult:
        log.info(
            "job %s: starting Claude Code in %s (resume=%s)",
            self.job,
            self.worktree,
            self.request.resume or "-",
        )
        client = ClaudeSDKClient(self.options())
        try:
            await client.connect()
            await client.query(self.request.prompt)
            async for message in client.receive_response():
                if isinstance(message, ResultMessage):
                    return self.result(message)
                await self.on_message(message)
            return self.failure("Claude Code stopped without a result")
        except CLINotFoundError:
            return self.failure("Claude Code CLI not found; reinstall claude-agent-sdk")
        except (ClaudeSDKError, OSError) as exc:
            return self.failure(f"Claude Code failed: {self.safe(exc)}")
        except asyncio.CancelledError:
            log.info("job %s: cancelled, stopping Claude Code", self.job)
            # Interrupting first ends the turn in flight, so the CLI exits on
            # end of input instead of being terminated after a grace period.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.interrupt(), INTERRUPT_TIMEOUT)
            raise
        finally:
            await client.disconnect()
            log.debug("job %s: Claude Code process closed", self.job)

    async def on_message(self, message: Any) -> None:
        if isinstance(message, SystemMessage) and message.subtype == "init":
            self.session_id = str(message.data.get("session_id") or self.session_id)
            if not self.started:
                self.started = True
                log.info("job %s: session %s started", self.job, self.session_id)
                await self.progress("started", self.session_id or "")
        elif isinstance(message, AssistantMessage):
            for block in message.content:
                if isinstance(block, TextBlock) and block.text.strip():
                    await self.progress("text", block.text.strip())
                elif isinstance(block, ToolUseBlock):
                    await self.on_tool_use(block)
        elif isinstance(message, UserMessage) and isinstance(message.content, list):
            for block in message.content:
                if isinstance(block, ToolResultBlock):
                    await self.on_tool_result(block)

    async def on_tool_use(self, block: ToolUseBlock) -> None:
        if block.name in policy.EDIT_TOOLS:
            path = str(block.input.get(policy.EDIT_TOOLS[block.name]) or "")
            self.pending_edits[block.id] = self.relative(path)
        elif block.name == "Bash":
            await self.progress("command", str(block.input.get("command") or ""))
        else:
            await self.progress("tool", block.name)

    async def on_tool_result(self, block: ToolResultBlock) -> None:
        path = self.pending_edits.pop(block.tool_use_id, None)
        if path is None or block.is_error:
            return
        if path not in self.files:
            self.files.append(path)
        await self.progress("edit", path)

    async def can_use_tool(
        self, tool_name: str, tool_input: dict[str, Any], context: ToolPermissionContext
    ) -> PermissionResultAllow | PermissionResultDeny:
        """The SDK's permission callback: policy first, then the human."""
        try:
            if tool_name == "AskUserQuestion":
                return await self.ask_questions(tool_input)
            decision = self.decide(tool_name, tool_input)
            if decision.action == "ask":
                approved = await self.callbacks.approve(decision.reason)
                log.info(
                    "job %s: human %s %s",
                    self.job,
                    "approved" if approved else "refused",
                    decision.reason,
                )
                if not approved:
                    return PermissionResultDeny(
                        message=f"The human did not allow this: {decision.reason}"
                    )
                return PermissionResultAllow()
            if decision.action == "deny":
                return PermissionResultDeny(message=decision.reason)
            return PermissionResultAllow()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job %s: permission check for %s failed", self.job, tool_name)
            return PermissionResultDeny(
                message="The permission check failed; try again"
            )

    async def ask_questions(
        self, tool_input: dict[str, Any]
    ) -> PermissionResultAllow | PermissionResultDeny:
        answers = {}
        for question in policy.questions(tool_input):
            log.info("job %s: asking the human: %s", self.job, question.text)
            answers[question.text] = await self.callbacks.ask(
                question.text, question.options
            )
        if not answers:
            return PermissionResultDeny(message="AskUserQuestion needs questions")
        return PermissionResultAllow(updated_input=policy.answered(tool_input, answers))

    async def pre_tool_use(
        self, hook_input: Any, tool_use_id: str | None, context: Any
    ) -> dict[str, Any]:
        """Apply the policy to every call, even ones the CLI would allow alone."""
        decision = self.decide(
            str(hook_input.get("tool_name", "")), hook_input.get("tool_input") or {}
        )
        if decision.allowed:
            return {}
        return {
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": decision.action,
                "permissionDecisionReason": decision.reason,
            }
        }

    def decide(self, tool_name: str, tool_input: dict[str, Any]) -> policy.Decision:
        decision = policy.decide(
            tool_name,
            tool_input,
            self.worktree,
            self.request.test_command,
            self.config.allowed_commands,
        )
        if decision.action == "deny":
            log.info("job %s: denied %s: %s", self.job, tool_name, decision.reason)
        return decision

    def result(self, message: ResultMessage) -> AgentResult:
        ok = not message.is_error
        error = ""
        if not ok:
            detail = message.result or ", ".join(message.errors or [])
            if message.subtype != "success":
                detail = f"{message.subtype}: {detail}".rstrip(": ")
            error = self.safe(detail or "Claude Code reported an error")
        log.info(
            "job %s: Claude Code finished ok=%s turns=%s cost=$%.4f %s",
            self.job,
            ok,
            message.num_turns,
            message.total_cost_usd or 0.0,
            error,
        )
        return AgentResult(
            ok=ok,
            session_id=message.session_id or self.session_id,
            summary=message.result or "",
            cost_usd=message.total_cost_usd or 0.0,
            turns=message.num_turns,
            error=error,
            files=list(self.files),
        )

    def failure(self, error: str) -> AgentResult:
        log.warning("job %s: %s", self.job, error)
        return AgentResult(
            ok=False, session_id=self.session_id, error=error, files=list(self.files)
        )

    async def progress(self, kind: EventKind, detail: str) -> None:
        detail = _truncate(detail, DETAIL_LIMIT)
        try:
            await self.callbacks.progress(AgentEvent(kind, detail))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job %s: progress callback failed", self.job)

    def on_stderr(self, line: str) -> None:
        log.debug("job %s: claude stderr: %s", self.job, self.safe(line))

    def relative(self, path: str) -> str:
        try:
            return str(Path(path).resolve().relative_to(self.worktree))
        except ValueError:
            return path

    def safe(self, error: object) -> str:
        """A one-line, truncated description with secret values blanked out."""
        text = " ".join(str(error).split())
        secrets = {**os.environ, **self.config.env}
        for name, value in secrets.items():
            if len(value) >= 8 and SECRET_NAME.search(name):
                text = text.replace(value, "***")
        return _truncate(text, ERROR_LIMIT)


def _truncate(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"

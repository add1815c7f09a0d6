"""The seam between a job and whatever coding agent does the work."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

EventKind = Literal["started", "text", "tool", "edit", "command"]


@dataclass(frozen=True)
class AgentEvent:
    """Something the agent did, for progress reports and the job log.

    A `started` event carries the session id as its detail when the backend
    has resumable sessions, so the job can save it before the session ends.
    """

    kind: EventKind
    detail: str = ""


@dataclass(frozen=True)
class AgentRequest:
    """What one agent session is asked to do and where."""

    prompt: str
    worktree: Path
    test_command: str = ""
    resume: str | None = None
    job_id: int = 0
    budget_usd: float | None = None  # what is left of the job's budget


@dataclass
class AgentResult:
    """How an agent session ended."""

    ok: bool
    session_id: str | None = None
    summary: str = ""
    cost_usd: float = 0.0
    turns: int = 0
    error: str = ""
    files: list[str] = field(default_factory=list)


class AgentCallbacks(Protocol):
    """How an agent reaches the job: progress out, questions to the human."""

    async def progress(self, event: AgentEvent) -> None: ...

    async def ask(self, question: str, options: list[str]) -> str:
        """Ask the human; returns the chosen option's text or free text."""
        ...

    async def approve(self, description: str) -> bool:
        """Ask the human to allow an action, e.g. running a command."""
        ...


class Agent(Protocol):
    """A coding agent backend.

    `run` works in `request.worktree` until the agent stops. Cancelling the
    task that awaits it must stop the agent's processes. Limits (turns, time,
    budget) are also enforced by the caller.
    """

    async def run(
        self, request: AgentRequest, callbacks: AgentCallbacks
    ) -> AgentResult: ...


class AgentError(Exception):
    """The agent could not be started or crashed; the message is safe to log."""

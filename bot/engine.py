"""The engine: one asyncio loop that owns jobs, channels and their state."""

from __future__ import annotations

import asyncio
import fcntl
import logging
from pathlib import Path
from typing import IO, TYPE_CHECKING

from bot.agents.base import Agent
from bot.config import Config
from bot.dispatcher import Dispatcher
from bot.joblog import JobLog
from bot.messages import Message, Outbound
from bot.notify import Notifier
from bot.questions import Questions
from bot.runner import JobRunner
from bot.scheduler import Scheduler
from bot.workspace import Workspaces
from storage import Storage
from storage.jobs import FAILED, PREPARING, QUEUED, RUNNING, WAITING

if TYPE_CHECKING:
    from adapters.base import Adapter
    from bot.forge import GitHubForge

log = logging.getLogger(__name__)

RESUME_PROMPT = (
    "The bot restarted while you were working. Continue the task where you left "
    "off, then reply with a short summary of the change."
)


class EngineError(Exception):
    """The engine cannot start; the message says why and what to do."""


class Engine:
    """Wires storage, workspaces, agents, the scheduler and the channels."""

    def __init__(
        self,
        config: Config,
        progress_interval: float = 5.0,
        recover_channels: set[str] | None = None,
    ) -> None:
        self.config = config
        self.recover_channels = recover_channels
        data_dir = config.bot.data_dir
        self.storage = Storage(data_dir / "swarmbot.json")
        self.joblog = JobLog(data_dir / "logs")
        self.workspaces = Workspaces(
            data_dir, config.bot.commit_author, config.github.token
        )
        self.adapters: dict[str, Adapter] = {}
        self.notifier = Notifier(
            self.adapters, self.storage.conversations, interval=progress_interval
        )
        self.questions = Questions(self.storage, self.notifier)
        self.runner = JobRunner(self)
        self.scheduler = Scheduler(config.bot.max_parallel, self.runner.run)
        self.dispatcher = Dispatcher(self)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping = False
        self._forges: dict[str, GitHubForge] = {}
        self._lock_file: IO[str] | None = None
        self._tasks: set[asyncio.Task] = set()

    @classmethod
    def for_serve(cls, config: Config, **options) -> Engine:
        """An engine with the web chat and every channel the config turns on."""
        from adapters.web import WebChatAdapter

        engine = cls(config, **options)
        engine.add_adapter(WebChatAdapter(engine))
        if config.telegram.enabled:
            from adapters.telegram import TelegramAdapter

            engine.add_adapter(TelegramAdapter(engine))
        if config.whatsapp.enabled:
            from adapters.whatsapp import WhatsAppAdapter

            engine.add_adapter(WhatsAppAdapter(engine))
        return engine

    def add_adapter(self, adapter: Adapter) -> None:
        """Register a channel before `start`."""
        self.adapters[adapter.name] = adapter

    async def start(self) -> None:
        """Take the data dir, start the channels and pick up unfinished jobs."""
        self.loop = asyncio.get_running_loop()
        self._take_data_dir()
        for adapter in self.adapters.values():
            await adapter.start()
        await self.recover()
        log.info(
            "swarmbot started: channels %s, %s repos, %s agents at once",
            ", ".join(self.adapters) or "none",
            len(self.config.repos),
            self.config.bot.max_parallel,
        )

    async def stop(self) -> None:
        """Pause running jobs (they resume at the next start) and stop channels."""
        self.stopping = True
        await self.scheduler.stop()
        for adapter in self.adapters.values():
            try:
                await adapter.stop()
            except Exception:
                log.exception("Stopping the %s channel failed", adapter.name)
        self.storage.close()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
        log.info("swarmbot stopped")

    async def receive(self, message: Message) -> None:
        """Handle one inbound message from any channel."""
        await self.dispatcher.handle(message)

    def receive_threadsafe(self, message: Message) -> None:
        """Hand a message to the loop from another thread; returns at once."""
        if self.loop is None:
            raise EngineError("The engine is not running.")
        self.loop.call_soon_threadsafe(self.spawn, self.receive(message))

    def make_agent(self) -> Agent:
        """A fresh agent of the configured backend."""
        if self.config.agent.backend == "command":
            from bot.agents.command import CommandAgent

            return CommandAgent(self.config.agent)
        from bot.agents.claude import ClaudeAgent

        return ClaudeAgent(self.config.agent)

    def forge_for(self, repo_name: str) -> GitHubForge | None:
        """The repo's GitHub, or None for a repo without one."""
        repo = self.config.repos.get(repo_name)
        if repo is None or not repo.github:
            return None
        if repo_name not in self._forges:
            from bot.forge import GitHubForge

            github = self.config.github
            self._forges[repo_name] = GitHubForge(
                github.token, github.api_url, repo.github
            )
        return self._forges[repo_name]

    async def recover(self) -> None:
        """Requeue jobs a previous run left unfinished; nothing is dropped."""
        for job in self.storage.jobs.active():
            if (
                self.recover_channels is not None
                and job.channel not in self.recover_channels
            ):
                continue
            self.storage.questions.expire(job.id)
            if job.state in (RUNNING, WAITING) and not job.session_id:
                self.storage.jobs.update(
                    job,
                    state=FAILED,
                    error="interrupted by a restart before the agent saved a session",
                )
                await self.notifier.to_job(
                    job,
                    Outbound(
                        text=f"Job {job.id} was interrupted by a restart. "
                        f"Send retry {job.id} to run it again.",
                        kind="failure",
                        job_id=job.id,
                    ),
                )
                continue

            if job.state in (RUNNING, WAITING):
                self.storage.jobs.update(job, state=RUNNING, next_prompt=RESUME_PROMPT)
            elif job.state == PREPARING:
                self.storage.jobs.update(job, state=QUEUED)
            log.info("Job %s: resuming from %s after a restart", job.id, job.state)
            self.scheduler.submit(job)
            if job.state != QUEUED:
                await self.notifier.to_job(
                    job,
                    Outbound(
                        text=f"Job {job.id}: resumed after a restart.",
                        kind="progress",
                        job_id=job.id,
                    ),
                )

    def spawn(self, coro) -> None:
        """Run `coro` as a task on the loop, keeping a reference until it ends."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _take_data_dir(self) -> None:
        # Limitation: one process per data dir; TinyDB has no cross-process locks.
        data_dir: Path = self.config.bot.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        handle = (data_dir / "swarmbot.lock").open("w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.close()
            raise EngineError(
                f"Another swarmbot is already running on {data_dir}. "
                "Stop it, or give this one another [bot] data_dir."
            ) from exc
        self._lock_file = handle

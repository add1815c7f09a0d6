"""From one inbound message to its reply: authorise, parse, act, answer."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bot import commands as cmd
from bot.config import RepoConfig, normalise_number
from bot.forge import ForgeError
from bot.messages import Message, Outbound, format_duration
from bot.questions import choose
from bot.workspace import WorkspaceError, Worktree, branch_name
from storage import Job, Question
from storage.jobs import ACTIVE_STATES, CANCELLED, DONE, QUEUED
from storage.questions import ANSWERED

if TYPE_CHECKING:
    from bot.engine import Engine

log = logging.getLogger(__name__)

MAX_TEXT = 4000
ISSUE_WAIT = 3.0  # seconds the acknowledgement may wait for GitHub


class Dispatcher:
    """Turns messages into actions; every message gets a reply at once."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.config = engine.config
        self.storage = engine.storage
        self._create_lock = asyncio.Lock()

    async def handle(self, message: Message) -> None:
        """Handle one message; errors are logged and answered briefly."""
        try:
            await self._handle(message)
        except Exception:
            log.exception(
                "Failed to handle a %s message from %s",
                message.channel,
                message.sender_id,
            )
            await self.reply(message, "Something went wrong on my side; it is logged.")

    async def reply(self, message: Message, text: str, **fields) -> str | None:
        """Send `text` back to the chat `message` came from."""
        out = Outbound(text=text, **fields)
        return await self.engine.notifier.send(message.channel, message.chat_id, out)

    async def _handle(self, message: Message) -> None:
        if not self.authorised(message):
            await self._refuse(message)
            return
        if len(message.text) > MAX_TEXT:
            log.warning(
                "Rejected a %s-character message from %s",
                len(message.text),
                message.sender_id,
            )
            await self.reply(
                message,
                f"That message is too long ({len(message.text)} characters). "
                f"Keep it under {MAX_TEXT}.",
            )
            return

        if message.question_id is not None:
            await self._answer_question(message, message.question_id, message.text)
            return
        if message.reply_to:
            sent = self.storage.conversations.find_sent(
                message.channel, message.reply_to
            )
            if sent and sent.get("question_id"):
                await self._answer_question(message, sent["question_id"], message.text)
                return

        names = [*self.config.repos, *(r.github for r in self.config.repos.values())]
        command = cmd.parse(message.text, repos=[name for name in names if name])
        log.debug("%s %s: %r", message.channel, message.sender_id, command)
        await self._run(message, command)

    def authorised(self, message: Message) -> bool:
        """Whether the sender may command the bot."""
        if message.trusted:
            return True
        if message.channel == "telegram":
            try:
                return int(message.sender_id) in self.config.telegram.allowed_users
            except ValueError:
                return False
        if message.channel == "whatsapp":
            number = normalise_number(message.sender_id)
            return bool(number) and number in self.config.whatsapp.allowed_numbers
        return False

    async def _refuse(self, message: Message) -> None:
        key = f"{message.channel}:{message.sender_id}"
        log.warning("Refused a %s message from %s", message.channel, message.sender_id)
        if self.storage.conversations.add_once("refused", key):
            await self.reply(
                message,
                "Sorry, this bot only takes work from people on its allow-list. "
                f"Your {message.channel} id is {message.sender_id}; "
                "the bot's owner can add it.",
            )

    async def _run(self, message: Message, command: cmd.Command) -> None:
        match command:
            case cmd.FixIssue(repo=repo_name, issue=issue):
                await self._start(message, repo_name, issue=issue)
            case cmd.RunTask(repo=repo_name, task=task):
                unknown = self.config.find_repo(repo_name) is None
                if unknown and self._pending_for(message):
                    await self._answer(message, message.text.strip(), None)
                    return
                await self._start(message, repo_name, task=task)
            case cmd.Status(job=None):
                await self.reply(message, self._status_all())
            case cmd.Status(job=job_id):
                await self._with_job(message, job_id, self._status_one)
            case cmd.Logs(job=job_id):
                await self._with_job(message, job_id, self._logs)
            case cmd.Diff(job=job_id):
                await self._with_job(message, job_id, self._diff)
            case cmd.Cancel(job=job_id):
                await self._with_job(message, job_id, self._cancel)
            case cmd.Retry(job=job_id):
                await self._with_job(message, job_id, self._retry)
            case cmd.Followup(job=job_id, text=text):
                await self._with_job(
                    message, job_id, lambda m, j: self._followup(m, j, text)
                )
            case cmd.Answer(text=text, job=job_id):
                await self._answer(message, text, job_id)
            case cmd.Repos():
                await self.reply(message, self._repos())
            case cmd.Help():
                await self.reply(message, cmd.HELP)
            case cmd.Unknown(text=text, suggestion=suggestion):
                if self._pending_for(message):
                    await self._answer(message, text, None)
                    return
                hint = f' Did you mean "{suggestion}"?' if suggestion else ""
                await self.reply(
                    message,
                    f"I did not understand that.{hint} Send help for the commands.",
                )

    # Starting work

    async def _start(
        self, message: Message, repo_name: str, issue: int | None = None, task: str = ""
    ) -> None:
        repo = self.config.find_repo(repo_name)
        if repo is None:
            await self.reply(message, self._unknown_repo(repo_name))
            return

        title = task
        forge = self.engine.forge_for(repo.name) if issue is not None else None
        if forge is not None:
            # The issue's title names the branch; a slow GitHub must not hold
            # up the acknowledgement, so after a moment the job starts without.
            lookup = asyncio.ensure_future(asyncio.to_thread(forge.get_issue, issue))
            lookup.add_done_callback(_consume)
            try:
                title = (
                    await asyncio.wait_for(asyncio.shield(lookup), ISSUE_WAIT)
                ).title
            except TimeoutError:
                log.warning(
                    "GitHub was slow to return issue #%s of %s", issue, repo.name
                )
            except ForgeError as exc:
                await self.reply(message, f"Cannot start: {exc}.")
                return
        job = await self._create_job(message, repo, issue, task, title)
        await self._queue(message, job, "fixing" if issue is not None else "working on")

    async def _create_job(
        self,
        message: Message,
        repo: RepoConfig,
        issue: int | None,
        task: str,
        title: str,
    ) -> Job:
        async with self._create_lock:
            taken = await asyncio.to_thread(self.engine.workspaces.taken_branches, repo)
            taken |= self.storage.jobs.branches(repo.name)
            job = self.storage.jobs.create(
                repo=repo.name,
                channel=message.channel,
                chat_id=message.chat_id,
                sender_id=message.sender_id,
                issue=issue,
                task=task,
                title=title,
            )
            branch = branch_name(issue, job.id, title or f"issue-{issue}", taken)
            return self.storage.jobs.update(job, branch=branch)

    async def _queue(self, message: Message, job: Job, verb: str) -> None:
        ahead = self.engine.scheduler.submit(job)  # queued jobs before this one
        if ahead is None:
            where = "started"
        elif ahead == 0:
            where = "queued, next up"
        else:
            where = f"queued, {ahead} ahead"
        log.info(
            "Job %s: %s %s for %s:%s",
            job.id,
            verb,
            job.label,
            message.channel,
            message.sender_id,
        )
        await self.reply(
            message,
            f"Job {job.id}: {verb} {job.label} on branch {job.branch} ({where}).",
            kind="ack",
            job_id=job.id,
        )

    def _unknown_repo(self, name: str) -> str:
        names = sorted(self.config.repos)
        if not names:
            return (
                f"I don't know {name}: no repos are configured. "
                "Add one under [repos] in the config."
            )
        guess = cmd.closest(
            name, names + [r.github for r in self.config.repos.values() if r.github]
        )
        hint = f' Did you mean "{guess}"?' if guess else ""
        return f"I don't know the repo {name}.{hint} Configured: {', '.join(names)}."

    # Jobs

    async def _with_job(self, message: Message, job_id: int, action) -> None:
        job = self.storage.jobs.get(job_id)
        if job is None:
            await self.reply(
                message, f"There is no job {job_id}. Send status for the list."
            )
            return
        await action(message, job)

    def _status_all(self) -> str:
        jobs = self.storage.jobs.recent(limit=8)
        if not jobs:
            return "No jobs yet. Try: fix #42 in <repo>"
        return "\n".join(self._status_line(job) for job in jobs)

    def _status_line(self, job: Job) -> str:
        extra = job.pr_url or job.branch
        return f"{job.id} {job.state} · {job.label} · {extra}"

    async def _status_one(self, message: Message, job: Job) -> None:
        lines = [f"Job {job.id}: {job.label}", f"State: {job.state}"]
        if (
            job.state == QUEUED
            and (position := self.engine.scheduler.position(job.id)) is not None
        ):
            lines.append(f"Queue: {position} ahead")
        lines.append(f"Branch: {job.branch}")
        if job.started_at:
            lines.append(
                f"Time: {format_duration(job.duration)} · cost ${job.cost_usd:.2f}"
            )
        if job.test_result:
            lines.append(f"Tests: {job.test_result}")
        if job.pr_url:
            lines.append(f"PR: {job.pr_url}")
        if job.error:
            lines.append(job.error)
        for question in self.storage.questions.pending(job.id):
            lines.append(f"Waiting for an answer: {question.text}")
        await self.reply(message, "\n".join(lines), job_id=job.id)

    async def _logs(self, message: Message, job: Job) -> None:
        full = self.engine.joblog.tail(job.id, lines=2000)
        if not full:
            await self.reply(message, f"Job {job.id} has no log yet.")
            return
        tail = "\n".join(full.splitlines()[-30:])
        await self.reply(
            message,
            f"Job {job.id} log (last lines):\n{tail}",
            job_id=job.id,
            attachment=full,
            attachment_name=f"job-{job.id}.log",
        )

    async def _diff(self, message: Message, job: Job) -> None:
        repo = self.config.repos.get(job.repo)
        if repo is None or not job.branch or job.state == QUEUED:
            await self.reply(message, f"Job {job.id} has no changes yet.")
            return
        workspaces = self.engine.workspaces
        try:
            if job.worktree:
                worktree = Worktree(Path(job.worktree), job.branch, repo.base)
                stat = await asyncio.to_thread(workspaces.diffstat, worktree)
            else:
                stat = await asyncio.to_thread(
                    workspaces.branch_diffstat, repo, job.branch
                )
        except WorkspaceError:
            await self.reply(message, f"Job {job.id}: no diff is available.")
            return
        await self.reply(
            message, f"Job {job.id} diff:\n{stat or 'no changes'}", job_id=job.id
        )

    async def _cancel(self, message: Message, job: Job) -> None:
        if job.state not in ACTIVE_STATES:
            await self.reply(message, f"Job {job.id} is already {job.state}.")
            return
        if self.engine.scheduler.is_running(job.id):
            self.engine.scheduler.cancel(job.id)  # the runner reports it
            return
        self.engine.scheduler.cancel(job.id)
        self.storage.jobs.update(job, state=CANCELLED, finished_at=time.time())
        await self.reply(
            message, f"Job {job.id} cancelled before it started.", job_id=job.id
        )

    async def _retry(self, message: Message, job: Job) -> None:
        if job.state in ACTIVE_STATES:
            await self.reply(message, f"Job {job.id} is still {job.state}.")
            return
        if job.state == DONE:
            await self.reply(
                message,
                f"Job {job.id} is done. Use followup {job.id}: <what to change>.",
            )
            return
        self.storage.jobs.update(
            job, state=QUEUED, error="", finished_at=None, next_prompt=""
        )
        await self._queue(message, job, "retrying")

    async def _followup(self, message: Message, job: Job, text: str) -> None:
        if job.state in ACTIVE_STATES:
            await self.reply(
                message, f"Job {job.id} is still {job.state}; follow up once it ends."
            )
            return
        if not text.strip():
            await self.reply(
                message,
                f"Say what to change, e.g. followup {job.id}: also update the docs",
            )
            return
        prompt = (
            f"Follow-up request: {text}\n\n"
            "Make this change on top of your earlier work, then summarise it."
        )
        self.storage.jobs.update(
            job,
            state=QUEUED,
            error="",
            finished_at=None,
            next_prompt=prompt,
            followups=[*job.followups, text],
        )
        await self._queue(message, job, "following up on")

    # Answers

    def _pending_for(self, message: Message) -> list[Question]:
        """Pending questions of jobs started from the message's chat."""
        pending = []
        for question in self.storage.questions.pending():
            job = self.storage.jobs.get(question.job_id)
            if (
                job
                and job.channel == message.channel
                and job.chat_id == message.chat_id
            ):
                pending.append(question)
        return pending

    async def _answer(self, message: Message, text: str, job_id: int | None) -> None:
        pending = self._pending_for(message)
        if job_id is not None:
            pending = [q for q in pending if q.job_id == job_id]
        if not pending:
            which = f"Job {job_id} is" if job_id is not None else "No job is"
            await self.reply(message, f"{which} not waiting for an answer.")
            return
        if len({q.job_id for q in pending}) > 1:
            jobs = sorted({q.job_id for q in pending})
            examples = " or ".join(f"answer {j} {text}" for j in jobs[:3])
            await self.reply(
                message,
                f"Several jobs are waiting ({', '.join(map(str, jobs))}). "
                f"Which one? Reply {examples}",
            )
            return
        await self._answer_question(message, pending[0].id, text)

    async def _answer_question(
        self, message: Message, question_id: int, text: str
    ) -> None:
        question = self.storage.questions.get(question_id)
        answer = choose(question, text) if question else ""
        if question is None or not self.engine.questions.answer(
            question, answer, by=message.sender_id
        ):
            await self.reply(message, _closed(self.storage.questions.get(question_id)))
            return
        await self.reply(
            message, f"Job {question.job_id}: got it, {answer}.", job_id=question.job_id
        )

    def _repos(self) -> str:
        if not self.config.repos:
            return "No repos are configured. Add one under [repos] in the config."
        lines = []
        for repo in self.config.repos.values():
            github = f" ({repo.github})" if repo.github else ""
            lines.append(f"{repo.name}{github} · base {repo.base}")
        return "\n".join(lines)


def _consume(future: asyncio.Future) -> None:
    """Mark a background lookup's outcome as seen; the job reports its own."""
    if not future.cancelled():
        future.exception()


def _closed(question: Question | None) -> str:
    """Why a question takes no more answers."""
    if question is not None and question.status == ANSWERED:
        return "That question was already answered."
    return "That question is closed: its job is no longer waiting for it."

"""Questions from agents to the human, and the answers that wake them up."""

from __future__ import annotations

import asyncio
import logging
import re

from bot.messages import Outbound
from bot.notify import Notifier
from storage import Job, Question, Storage
from storage.jobs import WAITING

log = logging.getLogger(__name__)

YES = {"yes", "y", "allow", "ok", "okay", "sure", "approve", "1", "go", "yes please"}


class Questions:
    """Asks through the notifier and waits; answers resolve the waiting agent."""

    def __init__(self, storage: Storage, notifier: Notifier) -> None:
        self.storage = storage
        self.notifier = notifier
        self._waiting: dict[int, asyncio.Future[str]] = {}
        self._jobs_waiting: dict[int, tuple[int, str]] = {}

    async def ask(
        self, job: Job, text: str, options: list[str], approval: bool = False
    ) -> str:
        """Send a question about `job` and wait for the answer's text."""
        question = self.storage.questions.create(
            job_id=job.id, text=text, options=list(options), approval=approval
        )
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting[question.id] = future
        self._mark_waiting(job)
        log.info("Job %s: question %s asked", job.id, question.id)
        await self.notifier.to_job(
            job,
            Outbound(
                text=f"Job {job.id} asks: {text}",
                kind="question",
                job_id=job.id,
                question_id=question.id,
                options=tuple(options),
                approval=approval,
            ),
        )
        try:
            return await future
        finally:
            self._waiting.pop(question.id, None)
            self._mark_answered(job)

    async def approve(self, job: Job, description: str) -> bool:
        """Ask the human to allow an action; True only on a clear yes."""
        answer = await self.ask(job, description, ["Allow", "Deny"], approval=True)
        return is_yes(answer)

    def answer(self, question: Question, text: str, by: str) -> bool:
        """Record `text` as the answer; False when it was already answered."""
        if not self.storage.questions.resolve(question.id, text, by):
            return False
        future = self._waiting.get(question.id)
        if future and not future.done():
            future.set_result(text)
        log.info("Job %s: question %s answered", question.job_id, question.id)
        return True

    def _mark_waiting(self, job: Job) -> None:
        """The job waits for an answer; remember the state it waits in."""
        count, previous = self._jobs_waiting.get(job.id, (0, job.state))
        self._jobs_waiting[job.id] = (count + 1, previous)
        if job.state != WAITING:
            self.storage.jobs.update(job, state=WAITING)

    def _mark_answered(self, job: Job) -> None:
        """Once no question of the job is open, it goes back to its state."""
        count, previous = self._jobs_waiting.pop(job.id, (1, job.state))
        if count > 1:
            self._jobs_waiting[job.id] = (count - 1, previous)
        elif job.state == WAITING:
            self.storage.jobs.update(job, state=previous)


def is_yes(answer: str) -> bool:
    """Whether an answer to an approval request allows the action."""
    return re.sub(r"[^a-z0-9 ]", "", answer.lower()).strip() in YES


def choose(question: Question, text: str) -> str:
    """Map a reply to the question's option: "2" or an option's text, any case."""
    reply = text.strip()
    if question.approval:
        return "Allow" if is_yes(reply) else "Deny"
    if reply.isdigit() and 1 <= int(reply) <= len(question.options):
        return question.options[int(reply) - 1]
    for option in question.options:
        if option.lower() == reply.lower():
            return option
    return reply

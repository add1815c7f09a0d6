"""Getting the bot's words to the right chat, without flooding it."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.messages import Outbound

if TYPE_CHECKING:
    from adapters.base import Adapter
    from storage import Job
    from storage.conversations import ConversationStore

log = logging.getLogger(__name__)


@dataclass
class _Throttle:
    last_sent: float = 0.0
    pending: Outbound | None = None
    flush: asyncio.TimerHandle | None = field(default=None, repr=False)


class Notifier:
    """Sends outbound messages through the adapters; coalesces job progress.

    Progress lines of one job go out at most once every `interval` seconds;
    in between, only the latest is kept. Any other message about the job
    makes a waiting progress line stale, so it is dropped.
    """

    def __init__(
        self,
        adapters: dict[str, Adapter],
        conversations: ConversationStore,
        interval: float = 5.0,
    ) -> None:
        self.adapters = adapters
        self.conversations = conversations
        self.interval = interval
        self._throttles: dict[int, _Throttle] = {}
        self._tasks: set[asyncio.Task] = set()

    async def send(self, channel: str, chat_id: str, out: Outbound) -> str | None:
        """Send one message now; failures are logged, never raised."""
        adapter = self.adapters.get(channel)
        if adapter is None:
            log.warning(
                "No %s channel is running; dropped a message for %s", channel, chat_id
            )
            return None
        try:
            message_id = await adapter.send(chat_id, out)
        except Exception:
            log.exception("Sending to %s chat %s failed", channel, chat_id)
            return None

        if message_id and out.question_id:  # replies to a question answer it
            self.conversations.record_sent(
                channel, chat_id, str(message_id), out.job_id, out.question_id
            )
        return message_id

    async def to_job(self, job: Job, out: Outbound) -> str | None:
        """Send a message about `job` to the chat that started it."""
        throttle = self._throttles.get(job.id)
        if throttle:
            throttle.pending = None
        return await self.send(job.channel, job.chat_id, out)

    async def progress(self, job: Job, text: str) -> None:
        """A status line for `job`, coalesced."""
        out = Outbound(text=f"Job {job.id}: {text}", kind="progress", job_id=job.id)
        throttle = self._throttles.setdefault(job.id, _Throttle())
        wait = throttle.last_sent + self.interval - time.monotonic()
        if wait <= 0 and throttle.flush is None:
            throttle.last_sent = time.monotonic()
            await self.send(job.channel, job.chat_id, out)
            return

        # Limitation: a coalesced line waits in memory; a restart drops it.
        throttle.pending = out
        if throttle.flush is None:
            loop = asyncio.get_running_loop()
            throttle.flush = loop.call_later(max(wait, 0), self._start_flush, job)

    def forget(self, job_id: int) -> None:
        """Drop a finished job's throttle and any progress still waiting."""
        throttle = self._throttles.pop(job_id, None)
        if throttle and throttle.flush:
            throttle.flush.cancel()

    def _start_flush(self, job: Job) -> None:
        task = asyncio.ensure_future(self._flush(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush(self, job: Job) -> None:
        throttle = self._throttles.get(job.id)
        if throttle is None:
            return
        throttle.flush = None
        out, throttle.pending = throttle.pending, None
        if out is not None:
            throttle.last_sent = time.monotonic()
            await self.send(job.channel, job.chat_id, out)

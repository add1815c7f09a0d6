"""First in, first out, at most `max_parallel` jobs at once."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from storage import Job

log = logging.getLogger(__name__)


class Scheduler:
    """Queues jobs and runs them as tasks on the engine's loop."""

    def __init__(
        self, max_parallel: int, run: Callable[[Job], Awaitable[None]]
    ) -> None:
        self.max_parallel = max_parallel
        self._run = run
        self._queue: deque[Job] = deque()
        self._running: dict[int, asyncio.Task] = {}

    def submit(self, job: Job) -> int | None:
        """Queue `job`; returns how many jobs wait ahead of it, None if it started."""
        self._queue.append(job)
        self._fill()
        return self.position(job.id)

    def position(self, job_id: int) -> int | None:
        """Place in the queue (0 = next), or None when not queued."""
        for index, job in enumerate(self._queue):
            if job.id == job_id:
                return index
        return None

    def is_running(self, job_id: int) -> bool:
        return job_id in self._running

    def cancel(self, job_id: int) -> bool:
        """Stop a running job or take a queued one out; False when neither."""
        task = self._running.get(job_id)
        if task is not None:
            task.cancel()
            return True
        for job in list(self._queue):
            if job.id == job_id:
                self._queue.remove(job)
                return True
        return False

    async def stop(self) -> None:
        """Cancel every running task (their jobs stay resumable) and wait."""
        self._queue.clear()
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _fill(self) -> None:
        while self._queue and len(self._running) < self.max_parallel:
            job = self._queue.popleft()
            task = asyncio.get_running_loop().create_task(
                self._run(job), name=f"job-{job.id}"
            )
            self._running[job.id] = task
            task.add_done_callback(lambda _t, job_id=job.id: self._done(job_id))
            log.debug("Job %s: started (%s running)", job.id, len(self._running))

    def _done(self, job_id: int) -> None:
        self._running.pop(job_id, None)
        self._fill()

"""Jobs: one record per piece of work, from the chat message to the PR."""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from tinydb.table import Document

from storage.db import Database

QUEUED = "queued"
PREPARING = "preparing"
RUNNING = "running"
WAITING = "waiting_for_answer"
VERIFYING = "verifying"
PUBLISHING = "publishing"
DONE = "done"
FAILED = "failed"
CANCELLED = "cancelled"

ACTIVE_STATES = (QUEUED, PREPARING, RUNNING, WAITING, VERIFYING, PUBLISHING)
FINAL_STATES = (DONE, FAILED, CANCELLED)


@dataclass
class Job:
    """A job's whole persisted state."""

    id: int
    repo: str
    channel: str
    chat_id: str
    sender_id: str
    issue: int | None = None
    task: str = ""
    title: str = ""
    state: str = QUEUED
    branch: str = ""
    worktree: str = ""
    session_id: str | None = None
    cost_usd: float = 0.0
    turns: int = 0
    pr_url: str = ""
    pr_number: int | None = None
    commit: str = ""
    summary: str = ""
    error: str = ""
    test_result: str = ""
    files_changed: int = 0
    followups: list[str] = field(default_factory=list)
    next_prompt: str = ""
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    updated_at: float = field(default_factory=time.time)
    finished_at: float | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def label(self) -> str:
        """How the job is named in chat: `#42 in api` or `api: add dark mode`."""
        if self.issue is not None:
            return f"#{self.issue} in {self.repo}"
        task = self.task if len(self.task) <= 40 else self.task[:39] + "…"
        return f"{self.repo}: {task}"

    @property
    def duration(self) -> float:
        if self.started_at is None:
            return 0.0
        return (self.finished_at or time.time()) - self.started_at


class JobStore:
    """Persisted jobs with small integer ids."""

    TABLE = "jobs"

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, **values: Any) -> Job:
        """Store a new queued job and return it with its id."""

        def insert(table):
            job_id = max((doc["id"] for doc in table.all()), default=0) + 1
            job = Job(id=job_id, **values)
            table.insert(Document(dataclasses.asdict(job), doc_id=job_id))
            return job

        return self.db.run(self.TABLE, insert)

    def get(self, job_id: int) -> Job | None:
        doc = self.db.run(self.TABLE, lambda t: t.get(doc_id=job_id))
        return _to_job(doc) if doc else None

    def save(self, job: Job) -> Job:
        """Write the whole job back, stamping `updated_at`."""
        job.updated_at = time.time()
        record = dataclasses.asdict(job)
        self.db.run(self.TABLE, lambda t: t.update(record, doc_ids=[job.id]))
        return job

    def update(self, job: Job, **changes: Any) -> Job:
        """Change some fields of `job` in memory and on disk."""
        for key, value in changes.items():
            setattr(job, key, value)
        return self.save(job)

    def all(self) -> list[Job]:
        docs = self.db.run(self.TABLE, lambda t: t.all())
        return sorted((_to_job(doc) for doc in docs), key=lambda job: job.id)

    def active(self) -> list[Job]:
        return [job for job in self.all() if job.active]

    def recent(self, limit: int = 10) -> list[Job]:
        """Active jobs, then the latest finished ones, newest first."""
        jobs = self.all()
        active = [job for job in jobs if job.active]
        finished = [job for job in jobs if not job.active][-limit:]
        return list(reversed(active)) + list(reversed(finished))

    def branches(self, repo: str) -> set[str]:
        return {job.branch for job in self.all() if job.repo == repo and job.branch}


def _to_job(doc: dict[str, Any]) -> Job:
    names = {f.name for f in dataclasses.fields(Job)}
    values = {key: value for key, value in doc.items() if key in names}
    return Job(**copy.deepcopy(values))  # nothing shared with the cache

"""TinyDB-backed persistence: jobs, questions, conversations."""

from __future__ import annotations

from pathlib import Path

from storage.conversations import ConversationStore
from storage.db import Database
from storage.jobs import Job, JobStore
from storage.questions import Question, QuestionStore

__all__ = ["Job", "Question", "Storage"]


class Storage:
    """Every store over one database file."""

    def __init__(self, path: str | Path) -> None:
        self.db = Database(path)
        self.jobs = JobStore(self.db)
        self.questions = QuestionStore(self.db)
        self.conversations = ConversationStore(self.db)

    def close(self) -> None:
        self.db.close()

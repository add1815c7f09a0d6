"""Questions the agents ask the human, and the answers that came back."""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from tinydb import Query
from tinydb.table import Document

from storage.db import Database

PENDING = "pending"
ANSWERED = "answered"
EXPIRED = "expired"


@dataclass
class Question:
    id: int
    job_id: int
    text: str
    options: list[str] = field(default_factory=list)
    approval: bool = False
    status: str = PENDING
    answer: str = ""
    answered_by: str = ""
    asked_at: float = field(default_factory=time.time)
    answered_at: float | None = None


class QuestionStore:
    TABLE = "questions"

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, **values: Any) -> Question:
        def insert(table):
            question_id = max((doc["id"] for doc in table.all()), default=0) + 1
            question = Question(id=question_id, **values)
            table.insert(Document(dataclasses.asdict(question), doc_id=question_id))
            return question

        return self.db.run(self.TABLE, insert)

    def get(self, question_id: int) -> Question | None:
        doc = self.db.run(self.TABLE, lambda t: t.get(doc_id=question_id))
        return Question(**copy.deepcopy(doc)) if doc else None

    def pending(self, job_id: int | None = None) -> list[Question]:
        """Unanswered questions, oldest first, of one job or of all."""
        q = Query()
        cond = q.status == PENDING
        if job_id is not None:
            cond &= q.job_id == job_id
        docs = self.db.run(self.TABLE, lambda t: t.search(cond))
        return sorted(
            (Question(**copy.deepcopy(doc)) for doc in docs), key=lambda x: x.id
        )

    def resolve(self, question_id: int, answer: str, by: str) -> bool:
        """Record an answer; False when the question was no longer pending."""
        q = Query()

        def resolve(table):
            changed = table.update(
                {
                    "status": ANSWERED,
                    "answer": answer,
                    "answered_by": by,
                    "answered_at": time.time(),
                },
                (q.id == question_id) & (q.status == PENDING),
            )
            return bool(changed)

        return self.db.run(self.TABLE, resolve)

    def expire(self, job_id: int) -> None:
        """Close every pending question of a job that stopped waiting."""
        q = Query()
        self.db.run(
            self.TABLE,
            lambda t: t.update(
                {"status": EXPIRED}, (q.job_id == job_id) & (q.status == PENDING)
            ),
        )

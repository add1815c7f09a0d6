"""What the bot said where: outbound message ids, refusals, small channel state."""

from __future__ import annotations

import time
from typing import Any

from tinydb import Query

from storage.db import Database


class ConversationStore:
    """Links channel message ids to jobs and questions; keeps channel state."""

    SENT = "sent"
    STATE = "state"

    def __init__(self, db: Database) -> None:
        self.db = db

    def record_sent(
        self,
        channel: str,
        chat_id: str,
        message_id: str,
        job_id: int | None,
        question_id: int | None,
    ) -> None:
        record = {
            "channel": channel,
            "chat_id": chat_id,
            "message_id": message_id,
            "job_id": job_id,
            "question_id": question_id,
            "at": time.time(),
        }
        self.db.run(self.SENT, lambda t: t.insert(record))

    def find_sent(self, channel: str, message_id: str) -> dict[str, Any] | None:
        """The record of a message the bot sent, looked up by its channel id."""
        q = Query()
        return self.db.run(
            self.SENT,
            lambda t: t.get((q.channel == channel) & (q.message_id == message_id)),
        )

    def get(self, key: str, default: Any = None) -> Any:
        doc = self.db.run(self.STATE, lambda t: t.get(Query().key == key))
        return doc["value"] if doc else default

    def put(self, key: str, value: Any) -> None:
        self.db.run(
            self.STATE,
            lambda t: t.upsert({"key": key, "value": value}, Query().key == key),
        )

    def add_once(self, key: str, member: str) -> bool:
        """Add `member` to the set under `key`; False when it was already there."""

        def add(table):
            doc = table.get(Query().key == key)
            members = list(doc["value"]) if doc else []
            if member in members:
                return False
            members.append(member)
            table.upsert({"key": key, "value": members[-5000:]}, Query().key == key)
            return True

        return self.db.run(self.STATE, add)

"""A TinyDB database whose every write is atomic, shared by the stores.

Writes go to a temporary file that is flushed, fsynced and renamed over the
database, so a crash at any moment leaves either the old or the new file,
never a torn one. One lock serialises all access from every thread.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tinydb import TinyDB
from tinydb.storages import Storage
from tinydb.table import Table

log = logging.getLogger(__name__)
T = TypeVar("T")


class AtomicJSONStorage(Storage):
    """TinyDB storage that replaces its file atomically on every write."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._data: dict[str, dict[str, Any]] | None = None
        self._temp_prefix = f".{self.path.name}-"
        self._swept = False

    def read(self) -> dict[str, dict[str, Any]] | None:
        # TinyDB changes what it read in place and then writes it, so the
        # cache is handed out as it is; `forget` drops it when a change did
        # not reach the disk.
        if self._data is None:
            self._data = self._load()
        return self._data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        text = json.dumps(data, separators=(",", ":"), sort_keys=True)
        if not self._swept:
            self._remove_leftovers()
        fd, tmp = tempfile.mkstemp(
            prefix=self._temp_prefix, suffix=".tmp", dir=self.path.parent
        )
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            self.forget()
            raise
        self._data = data  # on disk now, even if the dir sync fails
        _fsync_dir(self.path.parent)

    def forget(self) -> None:
        """Drop the cache; the next read loads the file again."""
        self._data = None

    def close(self) -> None:
        self.forget()

    def _remove_leftovers(self) -> None:
        """Delete temporary files of writes that a crash cut short.

        Only the writer does this, before its first write: the one process
        that writes holds the data dir, and readers never leave temporary files.
        """
        for entry in self.path.parent.iterdir():
            name = entry.name
            if name.startswith(self._temp_prefix) and name.endswith(".tmp"):
                entry.unlink(missing_ok=True)
        self._swept = True

    def _load(self) -> dict[str, dict[str, Any]] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except UnicodeDecodeError:
            text = "(not UTF-8)"
        if not text.strip():
            return None
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None
        if _is_tables(data):
            return data
        broken = self.path.with_suffix(".corrupt")
        os.replace(self.path, broken)
        log.error("Database %s was unreadable; moved it to %s", self.path, broken)
        return None


def _is_tables(data: Any) -> bool:
    """Whether `data` has TinyDB's shape: tables of documents, all objects."""
    return isinstance(data, dict) and all(
        isinstance(table, dict) and all(isinstance(doc, dict) for doc in table.values())
        for table in data.values()
    )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Database:
    """The bot's database: TinyDB over atomic storage, behind one lock."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._db = TinyDB(self.path, storage=AtomicJSONStorage)

    def run(self, table: str, action: Callable[[Table], T]) -> T:
        """Run `action` on a table while holding the database lock."""
        with self._lock:
            try:
                return action(self._db.table(table, cache_size=0))
            except BaseException:
                self._db.storage.forget()  # a half-made change stays off the cache
                raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

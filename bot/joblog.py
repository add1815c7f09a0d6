"""One plain-text log file per job: what the agent did and what the tests said."""

from __future__ import annotations

import time
from pathlib import Path


class JobLog:
    """Appends to and reads back `logs/job-<id>.log` under the data dir."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, job_id: int) -> Path:
        return self.directory / f"job-{job_id}.log"

    def write(self, job_id: int, text: str) -> None:
        """Append `text`, each line stamped with the time."""
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%H:%M:%S")
        lines = text.rstrip("\n").splitlines() or [""]
        with self.path(job_id).open("a", encoding="utf-8") as handle:
            handle.writelines(f"{stamp} {line}\n" for line in lines)

    def tail(self, job_id: int, lines: int = 30) -> str:
        """The last `lines` lines, or an empty string for a job without a log."""
        try:
            text = self.path(job_id).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

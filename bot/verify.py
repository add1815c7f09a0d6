"""Verification: the repo's own test command, run in the job's worktree."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

TAIL_LINES = 60
MAX_OUTPUT = 4 * 1024 * 1024


@dataclass(frozen=True)
class TestRun:
    passed: bool
    output: str
    timed_out: bool = False

    @property
    def tail(self) -> str:
        """The last lines of the output, where test runners put the verdict."""
        return "\n".join(self.output.rstrip().splitlines()[-TAIL_LINES:])

    @property
    def verdict(self) -> str:
        """One line for chat and the PR body, e.g. `3 passed in 0.1s`."""
        if self.timed_out:
            return "failed (timed out)"
        lines = [line.strip(" =") for line in self.output.strip().splitlines()]
        last = lines[-1] if lines else ""
        word = "passed" if self.passed else "failed"
        return f"{word} ({last[:120]})" if last else word


async def run_tests(
    command: str, worktree: Path, timeout_s: float, env: dict[str, str] | None = None
) -> TestRun:
    """Run `command` (from the config file, never from chat) in `worktree`."""
    # Limitation: the tests run code the agent wrote, with the bot's rights;
    # only the operating system (a dedicated user, a container) confines it.
    process = await asyncio.create_subprocess_exec(
        "/bin/sh",
        "-c",
        command,
        cwd=worktree,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    chunks: list[bytes] = []

    async def collect() -> None:
        assert process.stdout is not None
        while chunk := await process.stdout.read(65536):
            chunks.append(chunk)
            if sum(map(len, chunks)) > MAX_OUTPUT:
                del chunks[: len(chunks) // 2]  # keep the end, where the verdict is
        await process.wait()

    try:
        await asyncio.wait_for(collect(), timeout_s)
    except (TimeoutError, asyncio.CancelledError) as exc:
        _kill_group(process.pid)
        await process.wait()
        if isinstance(exc, asyncio.CancelledError):
            raise
        output = b"".join(chunks).decode("utf-8", "replace")
        log.warning("Tests in %s timed out after %.0f s", worktree, timeout_s)
        return TestRun(passed=False, output=output, timed_out=True)

    output = b"".join(chunks).decode("utf-8", "replace")
    return TestRun(passed=process.returncode == 0, output=output)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        log.debug("Test process group %s already gone", pid)

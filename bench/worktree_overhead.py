"""Time from a chat message to the agent's start, against a bare `git worktree add`.

Runs the real engine on a throwaway origin and prints both medians and their
ratio; see bench/README.md. Run from the repo root:
`.venv/bin/python bench/worktree_overhead.py --runs 10`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.config import load_config  # noqa: E402
from bot.engine import Engine  # noqa: E402
from bot.messages import Message  # noqa: E402
from storage.jobs import FINAL_STATES  # noqa: E402
from tests.support import git, make_origin  # noqa: E402

# The agent only notes the moment it started; -I -S keep Python's startup short.
AGENT = """\
import sys, time
with open(sys.argv[1], "w") as stamp:
    stamp.write(repr(time.time()))
"""


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile, `q` in (0, 1]."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summary(values: list[float]) -> str:
    median, p90 = statistics.median(values), percentile(values, 0.9)
    return f"median {median * 1000:7.1f} ms, p90 {p90 * 1000:7.1f} ms"


def write_config(root: Path, origin: Path) -> Path:
    """A config whose `command` agent writes its start time to stamps/<job>."""
    agent = root / "agent.py"
    agent.write_text(AGENT)
    command = [sys.executable, "-I", "-S", str(agent), str(root / "stamps" / "{job}")]
    path = root / "swarmbot.toml"
    path.write_text(
        "[bot]\n"
        'data_dir = "data"\n'
        "max_parallel = 1\n\n"
        "[agent]\n"
        'backend = "command"\n'
        f"command = {json.dumps(command)}\n"
        "timeout_minutes = 1\n\n"
        "[repos.api]\n"
        f"url = {json.dumps(str(origin))}\n"
        'base = "main"\n'
    )
    (root / "stamps").mkdir()
    return path


async def wait_for(predicate, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.002)
    raise TimeoutError("the engine did not get there in time")


async def message_to_agent(root: Path, origin: Path, runs: int) -> list[float]:
    """Seconds from `receive` to the agent's first instruction, per message.

    The first message clones the repo and is returned first, apart from `runs`.
    """
    engine = Engine.for_serve(load_config(write_config(root, origin)))
    await engine.start()
    stamps = root / "stamps"
    seconds = []
    try:
        for _ in range(runs + 1):
            sent = time.time()
            await engine.receive(
                Message(
                    channel="web",
                    chat_id="browser",
                    sender_id="local",
                    text="in api: noop",
                    trusted=True,
                )
            )
            job_id = engine.storage.jobs.all()[-1].id
            stamp = stamps / str(job_id)
            await wait_for(lambda s=stamp: s.exists() and s.read_text())
            seconds.append(float(stamp.read_text()) - sent)
            # The agent changed nothing, so the job ends as failed: no changes.
            await wait_for(
                lambda j=job_id: engine.storage.jobs.get(j).state in FINAL_STATES
            )
    finally:
        await engine.stop()
    return seconds


def bare_worktree_add(root: Path, origin: Path, runs: int) -> list[float]:
    """Seconds for `git worktree add -b <branch> <path> origin/main` on a clone."""
    clone = root / "clone"
    git("clone", "-q", "--no-checkout", str(origin), str(clone), cwd=root)
    seconds = []
    for n in range(runs):
        argv = ["git", "worktree", "add", "-q", "-b", f"bench-{n}"]
        argv += [str(root / "worktrees" / f"api-{n}"), "origin/main"]
        start = time.perf_counter()
        subprocess.run(argv, cwd=clone, check=True, capture_output=True)
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="timed runs of each")
    runs = max(1, parser.parse_args().runs)
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="swarmbot-bench-") as tmp:
        root = Path(tmp)
        origin = make_origin(root / "origin")
        (root / "engine").mkdir()
        (root / "git").mkdir()
        cold, *engine = asyncio.run(message_to_agent(root / "engine", origin, runs))
        bare = bare_worktree_add(root / "git", origin, runs)

    ratio = statistics.median(engine) / statistics.median(bare)
    print(f"{runs} runs each, warm clone; the first, cold message took {cold:.2f} s")
    print(f"message -> agent start  {summary(engine)}")
    print(f"git worktree add        {summary(bare)}")
    print(f"ratio of medians        {ratio:.1f}x")


if __name__ == "__main__":
    main()

"""Verification runs the repo's own test command in the worktree."""

from __future__ import annotations

import time

from bot.verify import run_tests


async def test_a_passing_command(tmp_path):
    run = await run_tests("echo '3 passed in 0.1s'", tmp_path, timeout_s=30)

    assert run.passed
    assert run.verdict == "passed (3 passed in 0.1s)"


async def test_a_failing_command_keeps_the_tail(tmp_path):
    command = "for i in $(seq 1 500); do echo line $i; done; echo '1 failed'; exit 1"

    run = await run_tests(command, tmp_path, timeout_s=30)

    assert not run.passed
    assert run.tail.splitlines()[-1] == "1 failed"
    assert "line 1\n" not in run.tail
    assert run.verdict == "failed (1 failed)"


async def test_a_hanging_command_is_killed_with_its_children(tmp_path):
    marker = tmp_path / "still-running"
    command = f"echo started; (sleep 5; touch {marker}) & sleep 60"

    run = await run_tests(command, tmp_path, timeout_s=1)

    assert run.timed_out and not run.passed
    assert "started" in run.output
    assert run.verdict == "failed (timed out)"
    time.sleep(5.5)
    assert not marker.exists()


async def test_runs_in_the_worktree(tmp_path):
    (tmp_path / "here.txt").write_text("x")

    run = await run_tests("test -f here.txt", tmp_path, timeout_s=30)

    assert run.passed

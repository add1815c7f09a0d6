"""The `swarmbot` command line, run as a user runs it."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.support import basic_config, command_agent, git, wait_until

SWARMBOT = str(Path(sys.executable).parent / "swarmbot")


def swarmbot(*args: str, stdin: str = "", cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SWARMBOT, *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_chat_on_a_pipe_runs_a_job_to_the_end(tmp_path, origin):
    basic_config(tmp_path, origin, agent=command_agent("fix"))

    result = swarmbot("chat", stdin="in api: make divide safe\n", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "Job 1: working on api: make divide safe on branch "
        "swarm/job-1-make-divide-safe (started)."
    )
    assert any(
        line.startswith("Job 1 done: pushed branch swarm/job-1-") for line in lines
    )
    assert "ZeroDivisionError" in git(
        "show", "swarm/job-1-make-divide-safe:calc.py", cwd=origin
    )


def test_chat_answers_a_question_typed_at_the_prompt(tmp_path, origin):
    basic_config(tmp_path, origin, agent=command_agent("ask"))
    chat = subprocess.Popen(
        [SWARMBOT, "chat"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    chat.stdin.write("in api: fix divide\n")
    chat.stdin.flush()
    seen = []
    for line in chat.stdout:
        seen.append(line.rstrip())
        if line.startswith("Reply with a number"):
            break
    assert "Job 1 asks: Which fix?" in seen
    assert "1. Raise an error" in seen

    out, err = chat.communicate("1\n", timeout=120)

    assert chat.returncode == 0, err
    assert "Job 1: got it, Raise an error." in out
    assert "Job 1 done: pushed branch" in out


def test_jobs_lists_what_ran(tmp_path, origin):
    basic_config(tmp_path, origin, agent=command_agent("fix"))
    swarmbot("chat", stdin="in api: make divide safe\n", cwd=tmp_path)

    result = swarmbot("jobs", cwd=tmp_path)

    assert result.returncode == 0
    header, row = result.stdout.splitlines()[:2]
    assert header.split()[:3] == ["ID", "STATE", "JOB"]
    assert row.split()[:2] == ["1", "done"]
    assert "swarm/job-1-make-divide-safe" in row


def test_doctor_checks_the_setup(tmp_path, origin):
    basic_config(tmp_path, origin, agent=command_agent("fix"))

    result = swarmbot("doctor", cwd=tmp_path)

    assert result.returncode == 0, result.stdout
    assert "ok    git: git version" in result.stdout
    assert "ok    repo api:" in result.stdout
    assert "All good." in result.stdout


def test_doctor_finds_the_bundled_claude_code(tmp_path, origin):
    basic_config(tmp_path, origin)

    result = swarmbot("doctor", cwd=tmp_path)

    agent = next(line for line in result.stdout.splitlines() if "agent:" in line)
    assert agent.startswith("ok    agent: Claude Code 2.")
    assert "claude_agent_sdk/_bundled/claude" in agent


def test_doctor_says_what_to_fix(tmp_path, origin):
    basic_config(tmp_path, tmp_path / "missing.git", agent=command_agent("fix"))

    result = swarmbot("doctor", cwd=tmp_path)

    assert result.returncode == 1
    assert "FAIL  repo api: cannot read" in result.stdout
    assert "check the url" in result.stdout


def test_a_config_mistake_stops_the_start_with_the_fix(tmp_path):
    (tmp_path / "swarmbot.toml").write_text('[agent]\nbackend = "gpt"\n')

    result = swarmbot("serve", "--port", "0", cwd=tmp_path)

    assert result.returncode == 1
    assert 'agent.backend must be "claude" or "command"' in result.stderr


def test_ask_outside_an_agent_explains_itself(tmp_path):
    result = swarmbot("ask", "Which?", "--option", "a", cwd=tmp_path)

    assert result.returncode == 1
    assert "only inside a swarmbot command agent" in result.stderr


def test_serve_answers_health_checks_and_stops_cleanly(tmp_path, origin):
    basic_config(tmp_path, origin, agent=command_agent("fix"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [SWARMBOT, "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:

        def healthy():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz") as r:
                    return json.loads(r.read())
            except OSError:
                return None

        health = wait_until(healthy, 30, "serve to answer /healthz")
        assert health["status"] == "ok"
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=30)

    assert server.returncode == 0, err
    assert f"serving on http://127.0.0.1:{port}/" in out
    assert "running jobs resume at the next start" in out


def test_serve_on_a_busy_port_says_so(tmp_path, origin):
    basic_config(tmp_path, origin, agent=command_agent("fix"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = swarmbot("serve", "--port", str(port), cwd=tmp_path)

    assert result.returncode == 1
    assert f"Cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr

"""Storage: jobs, questions and conversations survive restarts, crashes and threads.

Every test reopens the database in a fresh `Storage`, the way the bot does
after a restart, and checks what came back.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import storage.db
from storage import Storage
from storage.jobs import DONE, FAILED, QUEUED, RUNNING, WAITING
from storage.questions import ANSWERED, EXPIRED, PENDING

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "data" / "swarmbot.json"


def reopen(path: Path) -> Storage:
    """A fresh Storage on the same file: what the bot sees after a restart."""
    return Storage(path)


def new_job(store: Storage, **values):
    fields = {"repo": "api", "channel": "web", "chat_id": "browser"}
    fields |= {"sender_id": "local", **values}
    return store.jobs.create(**fields)


def temp_files(path: Path) -> list[str]:
    """Whatever sits next to the database besides the database itself."""
    return sorted(p.name for p in path.parent.iterdir() if p.name != path.name)


# Jobs


def test_every_field_of_a_job_survives_a_restart(db_path):
    store = Storage(db_path)
    job = store.jobs.create(
        repo="api",
        channel="telegram",
        chat_id="-100200",
        sender_id="123456789",
        issue=42,
        title="Division is broken",
    )
    store.jobs.update(
        job,
        state=DONE,
        branch="swarm/42-division-is-broken",
        worktree="/srv/swarmbot/worktrees/api-1",
        session_id="5f0c6c1e-session",
        cost_usd=0.4375,
        turns=12,
        pr_url="https://github.com/acme/api/pull/7",
        pr_number=7,
        commit="0123456789abcdef0123456789abcdef01234567",
        summary="Divide now raises on zero.",
        error="tests failed once: AssertionError",
        test_result="passed",
        files_changed=2,
        followups=["also handle floats"],
        started_at=1_700_000_000.25,
        finished_at=1_700_000_321.5,
    )
    store.close()

    again = reopen(db_path)
    assert again.jobs.get(job.id) == job
    assert again.jobs.get(job.id).label == "#42 in api"
    assert again.jobs.get(99) is None


def test_job_ids_are_small_integers_that_keep_counting_after_a_restart(db_path):
    store = Storage(db_path)
    assert [new_job(store, task=f"task {n}").id for n in range(3)] == [1, 2, 3]
    store.close()

    again = reopen(db_path)
    assert new_job(again, task="after the restart").id == 4
    assert [job.id for job in again.jobs.all()] == [1, 2, 3, 4]


def test_active_recent_and_branches_after_a_restart(db_path):
    store = Storage(db_path)
    states = [DONE, RUNNING, FAILED, QUEUED, DONE, WAITING]
    for n, state in enumerate(states, 1):
        job = new_job(store, repo="api" if n % 2 else "web", task=f"task {n}")
        store.jobs.update(job, state=state, branch=f"swarm/job-{n}-task-{n}")
    store.close()

    again = reopen(db_path)
    assert [job.id for job in again.jobs.active()] == [2, 4, 6]
    # Active jobs first, newest first; then the latest finished ones.
    assert [job.id for job in again.jobs.recent()] == [6, 4, 2, 5, 3, 1]
    assert [job.id for job in again.jobs.recent(limit=2)] == [6, 4, 2, 5, 3]
    assert again.jobs.branches("api") == {
        "swarm/job-1-task-1",
        "swarm/job-3-task-3",
        "swarm/job-5-task-5",
    }
    assert again.jobs.branches("nowhere") == set()


@settings(max_examples=25, deadline=None)
@given(
    task=st.text(max_size=200),
    summary=st.text(max_size=200),
    cost=st.floats(min_value=0, max_value=1e6, allow_nan=False),
    followups=st.lists(st.text(max_size=40), max_size=4),
)
def test_any_text_and_cost_survive_a_restart(task, summary, cost, followups):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "swarmbot.json"
        store = Storage(path)
        job = new_job(store, task=task)
        store.jobs.update(job, summary=summary, cost_usd=cost, followups=followups)
        store.close()
        assert reopen(path).jobs.all() == [job]


def test_threads_creating_jobs_at_once_get_distinct_ids(db_path):
    store = Storage(db_path)
    threads, per_thread = 8, 5
    start = threading.Barrier(threads)
    made: list[int] = []

    def work(worker: int) -> None:
        start.wait()
        for n in range(per_thread):
            job = new_job(store, task=f"worker {worker} task {n}")
            store.jobs.update(job, state=RUNNING)
            made.append(job.id)

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()

    total = threads * per_thread
    assert sorted(made) == list(range(1, total + 1))
    again = reopen(db_path)
    jobs = again.jobs.all()
    assert [job.id for job in jobs] == list(range(1, total + 1))
    assert {job.state for job in jobs} == {RUNNING}
    assert len({job.task for job in jobs}) == total


# Crashes


WRITER = textwrap.dedent(
    """
    import sys

    from storage import Storage
    from storage.jobs import RUNNING

    store = Storage(sys.argv[1])
    print("ready", flush=True)
    while True:
        job = store.jobs.create(
            repo="api", channel="web", chat_id="browser", sender_id="local",
            task="x" * 1000,
        )
        print(f"created {job.id}", flush=True)
        store.jobs.update(job, state=RUNNING, branch=f"swarm/job-{job.id}")
        print(f"updated {job.id}", flush=True)
    """
)


def test_a_writer_killed_at_random_moments_leaves_a_readable_database(db_path):
    """SIGKILL a process that writes jobs; every job it reported is on disk."""
    rng = random.Random(20240611)
    created: set[int] = set()
    updated: set[int] = set()
    for kill in range(20):
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db_path)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout.readline() == "ready\n"
        first = child.stdout.readline()  # the child is writing by now
        time.sleep(rng.uniform(0, 0.15))
        child.send_signal(signal.SIGKILL)
        output = first + child.communicate()[0]
        assert child.returncode == -signal.SIGKILL
        for line in output.splitlines(keepends=True):
            if line.endswith("\n"):
                what, job_id = line.split()
                (created if what == "created" else updated).add(int(job_id))

        # What the child was writing when killed may or may not be there;
        # at most that one temporary file is left beside the database.
        assert len(temp_files(db_path)) <= 1, temp_files(db_path)
        store = reopen(db_path)
        jobs = {job.id: job for job in store.jobs.all()}
        assert created <= set(jobs), f"kill {kill}: committed jobs are missing"
        assert sorted(jobs) == list(range(1, len(jobs) + 1))
        for job_id in updated:
            assert jobs[job_id].state == RUNNING
            assert jobs[job_id].branch == f"swarm/job-{job_id}"
        created |= set(jobs)
        store.close()

    assert len(created) > 20
    assert not db_path.with_suffix(".corrupt").exists()
    # The next writer clears what a killed one left behind.
    new_job(reopen(db_path), task="after the crashes")
    assert temp_files(db_path) == []


def fail_fsync(monkeypatch):
    def fsync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", fsync)


def fail_replace(monkeypatch):
    def replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", replace)


def fail_directory_sync(monkeypatch):
    def sync(path):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(storage.db, "_fsync_dir", sync)


@pytest.mark.parametrize("fail", [fail_fsync, fail_replace, fail_directory_sync])
def test_a_failed_write_leaves_disk_and_reads_in_agreement(db_path, monkeypatch, fail):
    store = Storage(db_path)
    first = new_job(store, task="before the failure")
    before = db_path.read_text()

    with monkeypatch.context() as patch:
        fail(patch)
        with pytest.raises(OSError):
            new_job(store, task="during the failure")

    # The file is whole, and this storage reads what a restart would read.
    on_disk = reopen(db_path).jobs.all()
    assert store.jobs.all() == on_disk
    assert on_disk[0] == first
    if fail is not fail_directory_sync:  # the rename had not happened yet
        assert db_path.read_text() == before
        assert on_disk == [first]
    assert temp_files(db_path) == []

    after = new_job(store, task="after the failure")
    assert after.id == len(on_disk) + 1
    assert reopen(db_path).jobs.all() == [*on_disk, after]


@pytest.mark.parametrize(
    "garbage",
    [
        b'{"jobs": {"1": {"id": 1, "repo": "ap',  # cut short
        b"<html>502 Bad Gateway</html>\n",
        b"\xff\xfe\x00\x00binary",
        b"[1, 2, 3]",
        b'{"jobs": [1, 2]}',
    ],
)
def test_a_corrupted_file_is_moved_aside_and_the_bot_starts_empty(db_path, garbage):
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(garbage)

    store = Storage(db_path)
    assert store.jobs.all() == []
    assert store.questions.pending() == []
    assert db_path.with_suffix(".corrupt").read_bytes() == garbage

    assert new_job(store, task="a fresh start").id == 1
    assert list(json.loads(db_path.read_text())) == ["jobs"]
    assert [job.task for job in reopen(db_path).jobs.all()] == ["a fresh start"]


def test_an_empty_file_is_an_empty_database(db_path):
    db_path.parent.mkdir(parents=True)
    db_path.write_text("")
    assert Storage(db_path).jobs.all() == []
    assert not db_path.with_suffix(".corrupt").exists()


# Questions and conversations


def test_questions_are_asked_answered_once_and_expired(db_path):
    store = Storage(db_path)
    which = store.questions.create(
        job_id=1, text="Which fix?", options=["Raise an error", "Return 0"]
    )
    push = store.questions.create(job_id=1, text="Push to main?", approval=True)
    other = store.questions.create(job_id=2, text="Which file?")
    assert [which.id, push.id, other.id] == [1, 2, 3]
    assert [q.id for q in store.questions.pending()] == [1, 2, 3]
    assert [q.id for q in store.questions.pending(job_id=1)] == [1, 2]
    store.close()

    store = reopen(db_path)
    assert store.questions.resolve(which.id, "Raise an error", by="telegram:7")
    assert not store.questions.resolve(which.id, "Return 0", by="whatsapp:+1555")
    store.questions.expire(job_id=1)
    assert not store.questions.resolve(push.id, "yes", by="telegram:7")
    store.close()

    store = reopen(db_path)
    answered = store.questions.get(which.id)
    assert (answered.status, answered.answer) == (ANSWERED, "Raise an error")
    assert answered.answered_by == "telegram:7"
    assert answered.answered_at is not None
    assert answered.options == ["Raise an error", "Return 0"]
    assert store.questions.get(push.id).status == EXPIRED
    assert store.questions.get(push.id).approval is True
    assert [(q.id, q.status) for q in store.questions.pending()] == [(3, PENDING)]
    assert store.questions.get(42) is None


def test_sent_messages_and_channel_state_survive_a_restart(db_path):
    store = Storage(db_path)
    store.conversations.record_sent("telegram", "-100", "501", job_id=1, question_id=2)
    store.conversations.record_sent(
        "whatsapp", "+1555", "SM9", job_id=3, question_id=None
    )
    assert store.conversations.add_once("refused", "telegram:99")
    assert not store.conversations.add_once("refused", "telegram:99")
    assert store.conversations.add_once("refused", "whatsapp:+1666")
    store.conversations.put("telegram.offset", 1001)
    store.conversations.put("telegram.offset", 1002)
    store.close()

    store = reopen(db_path)
    sent = store.conversations.find_sent("telegram", "501")
    assert (sent["chat_id"], sent["job_id"], sent["question_id"]) == ("-100", 1, 2)
    assert store.conversations.find_sent("whatsapp", "SM9")["question_id"] is None
    assert store.conversations.find_sent("whatsapp", "501") is None
    assert not store.conversations.add_once("refused", "telegram:99")
    assert store.conversations.get("refused") == ["telegram:99", "whatsapp:+1666"]
    assert store.conversations.get("telegram.offset") == 1002
    assert store.conversations.get("missing") is None
    assert store.conversations.get("missing", default=0) == 0

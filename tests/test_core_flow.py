"""A chat message becomes a pull request: the core flow through the web chat."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.engine import Engine
from tests.fakes.github import FakeGitHub
from tests.support import RunningBot, WebChat, basic_config, command_agent, git


@pytest.fixture
def github():
    with FakeGitHub(token="gh-secret-token") as fake:
        fake.add_repo("acme/api")
        fake.add_issue("acme/api", 42, "Division is broken", "divide(6, 3) returns 18")
        yield fake


def github_section(fake: FakeGitHub) -> str:
    return f"""
    [github]
    token = "gh-secret-token"
    api_url = "{fake.api_url}"
    """


@pytest.fixture
def start_bot(tmp_path):
    bots = []

    def start(config) -> tuple[RunningBot, WebChat]:
        bot = RunningBot(Engine.for_serve(config, progress_interval=0)).start()
        bots.append(bot)
        return bot, WebChat(bot.url)

    yield start
    for bot in bots:
        bot.stop()


def test_issue_to_pull_request_with_a_question(tmp_path, origin, github, start_bot):
    config = basic_config(
        tmp_path, origin, agent=command_agent("ask"), github=github_section(github)
    )
    bot, chat = start_bot(config)

    chat.send("fix #42 in api")
    ack = chat.wait_for(r"^Job 1: fixing #42 in api")
    assert "swarm/42-division-is-broken" in ack["text"]

    question = chat.wait_for(r"Which fix\?")
    assert question["options"] == ["Raise an error", "Return 0"]
    chat.send("1")

    done = chat.wait_for(r"^Job 1 done")
    pull = github.pulls[0]
    assert pull["title"] == "Fix #42: Division is broken"
    assert "Fixes #42" in pull["body"]
    assert pull["head"] == "swarm/42-division-is-broken"
    assert pull["base"] == "main"
    assert pull["html_url"] in done["text"]
    assert "tests passed" in done["text"]

    pushed = git("show", "swarm/42-division-is-broken:calc.py", cwd=origin)
    assert "ZeroDivisionError" in pushed
    job = bot.engine.storage.jobs.get(1)
    assert job.state == "done"
    assert not Path(job.worktree or "/nonexistent").exists()


def test_failing_tests_go_back_to_the_agent(tmp_path, origin, github, start_bot):
    config = basic_config(
        tmp_path, origin, agent=command_agent("twice"), github=github_section(github)
    )
    bot, chat = start_bot(config)

    chat.send("fix issue 42 in acme/api")
    chat.wait_for(r"tests failed \(round 1 of 2\)")
    chat.wait_for(r"^Job 1 done")

    log = bot.engine.joblog.tail(1, lines=500)
    assert "The tests fail" in log
    assert "AssertionError" in log  # the failure output reached the agent
    assert "ZeroDivisionError" in git(
        "show", "swarm/42-division-is-broken:calc.py", cwd=origin
    )


def test_still_failing_offers_a_draft_pr(tmp_path, origin, github, start_bot):
    config = basic_config(
        tmp_path,
        origin,
        agent=command_agent("break"),
        github=github_section(github),
        extra="[verify]\nrounds = 1",
    )
    _bot, chat = start_bot(config)

    chat.send("fix #42 in api")
    question = chat.wait_for(r"still fail after 1 round")
    assert question["options"] == ["Open a draft PR", "Keep the branch", "Discard"]
    chat.send("Open a draft PR", question_id=question["question_id"])

    done = chat.wait_for(r"^Job 1 done: draft PR")
    assert github.pulls[0]["draft"] is True
    assert "tests failed" in done["text"]


def test_keep_the_branch_pushes_without_a_pr(tmp_path, origin, github, start_bot):
    config = basic_config(
        tmp_path,
        origin,
        agent=command_agent("break"),
        github=github_section(github),
        extra="[verify]\nrounds = 0",
    )
    bot, chat = start_bot(config)

    chat.send("fix #42 in api")
    chat.wait_for(r"still fail")
    chat.send("2")

    chat.wait_for(r"^Job 1: tests still fail, so no PR. Pushed branch swarm/42-")
    assert github.pulls == []
    assert "a + b" in git("show", "swarm/42-division-is-broken:calc.py", cwd=origin)
    assert bot.engine.storage.jobs.get(1).state == "failed"


def test_repo_without_forge_gets_the_branch(tmp_path, origin, start_bot):
    _bot, chat = start_bot(basic_config(tmp_path, origin, agent=command_agent("fix")))

    chat.send("in api: make divide safe")
    ack = chat.wait_for(r"^Job 1: working on api: make divide safe")
    assert "swarm/job-1-make-divide-safe" in ack["text"]

    done = chat.wait_for(
        r"^Job 1 done: pushed branch swarm/job-1-make-divide-safe at \w+"
    )
    sha = git("rev-parse", "swarm/job-1-make-divide-safe", cwd=origin)
    assert sha[:10] in done["text"]


def test_no_changes_is_not_done(tmp_path, origin, start_bot):
    bot, chat = start_bot(
        basic_config(tmp_path, origin, agent=command_agent("noop"), test="")
    )

    chat.send("in api: look around")
    reply = chat.wait_for(r"^Job 1: no changes")
    assert "done" not in reply["text"]
    assert bot.engine.storage.jobs.get(1).state == "failed"
    assert "swarm/job-1-look-around" not in git("branch", "--list", cwd=origin)


def test_cancel_stops_the_agent_and_keeps_the_branch(tmp_path, origin, start_bot):
    bot, chat = start_bot(basic_config(tmp_path, origin, agent=command_agent("sleep")))

    chat.send("in api: take your time")
    chat.wait_for(r"agent started")
    chat.send("cancel 1")

    chat.wait_for(r"^Job 1 cancelled\. Branch swarm/job-1-take-your-time is kept")
    job = bot.engine.storage.jobs.get(1)
    assert job.state == "cancelled"
    assert Path(job.worktree).exists()  # the work so far stays for retry 1
    assert "take-your-time" in git(
        "branch", "--list", cwd=bot.engine.workspaces.clones / "api"
    )


def test_hung_agent_is_stopped_at_the_time_limit(tmp_path, origin, start_bot):
    agent = command_agent("sleep").replace(
        "timeout_minutes = 1", "timeout_minutes = 0.02"
    )
    bot, chat = start_bot(basic_config(tmp_path, origin, agent=agent))

    chat.send("in api: never finish")
    reply = chat.wait_for(r"ran out of time")
    assert "was stopped" in reply["text"]
    assert bot.engine.storage.jobs.get(1).state == "failed"


def test_agent_crash_is_reported(tmp_path, origin, start_bot):
    _bot, chat = start_bot(basic_config(tmp_path, origin, agent=command_agent("crash")))

    chat.send("in api: explode")
    reply = chat.wait_for(r"^Job 1: the agent stopped with an error")
    assert "logs 1" in reply["text"]

    chat.send("logs 1")
    log = chat.wait_for(r"^Job 1 log")
    assert "agent exploded" in log["text"]


def test_unknown_repo_lists_the_configured_ones(tmp_path, origin, start_bot):
    bot, chat = start_bot(basic_config(tmp_path, origin, agent=command_agent("fix")))

    chat.send("fix #42 in apx")
    reply = chat.wait_for(r"I don't know the repo apx")
    assert 'Did you mean "api"?' in reply["text"]
    assert "Configured: api" in reply["text"]
    assert bot.engine.storage.jobs.all() == []
    assert not (bot.engine.workspaces.clones / "apx").exists()


def test_parallel_jobs_do_not_cross_talk(tmp_path, origin, start_bot):
    bot, chat = start_bot(basic_config(tmp_path, origin, agent=command_agent("ask")))

    for name in ("one", "two", "three"):
        chat.send(f"in api: task {name}")
    for job_id in (1, 2, 3):
        chat.wait_for(rf"^Job {job_id} asks: Which fix\?")
    worktrees = {bot.engine.storage.jobs.get(n).worktree for n in (1, 2, 3)}
    assert len(worktrees) == 3

    chat.send("2")  # ambiguous: three jobs wait
    chat.wait_for(r"Several jobs are waiting \(1, 2, 3\)")
    chat.send("answer 2 1")
    chat.send("answer 1 2")
    chat.send("answer 3 Raise an error")
    for job_id in (1, 2, 3):
        chat.wait_for(rf"^Job {job_id} done: pushed branch swarm/job-{job_id}-task-")

    answers = {n: bot.engine.joblog.tail(n, 500) for n in (1, 2, 3)}
    assert "human said: Return 0" in answers[1]
    assert "human said: Raise an error" in answers[2]
    assert "human said: Raise an error" in answers[3]
    branches = git("branch", "--list", "swarm/*", cwd=origin)
    assert all(f"swarm/job-{n}-task-" in branches for n in (1, 2, 3))


def test_max_parallel_queues_the_rest(tmp_path, origin, start_bot):
    config = basic_config(
        tmp_path, origin, agent=command_agent("slowfix"), max_parallel=1
    )
    bot, chat = start_bot(config)

    chat.send("in api: first")
    chat.send("in api: second")
    chat.send("in api: third")
    assert "(started)" in chat.wait_for(r"^Job 1: working on")["text"]
    assert "(queued, next up)" in chat.wait_for(r"^Job 2: working on")["text"]
    assert "(queued, 1 ahead)" in chat.wait_for(r"^Job 3: working on")["text"]

    chat.wait_for(r"^Job 3 done", timeout=60)
    jobs = [bot.engine.storage.jobs.get(n) for n in (1, 2, 3)]
    assert jobs[0].finished_at <= jobs[1].started_at
    assert jobs[1].finished_at <= jobs[2].started_at


def test_status_diff_and_followup(tmp_path, origin, github, start_bot):
    config = basic_config(
        tmp_path, origin, agent=command_agent("fix"), github=github_section(github)
    )
    _bot, chat = start_bot(config)
    chat.send("fix #42 in api")
    chat.wait_for(r"^Job 1 done")

    chat.send("status 1")
    status = chat.wait_for(r"^Job 1: #42 in api\nState: done")
    assert github.pulls[0]["html_url"] in status["text"]
    chat.send("diff 1")
    assert "calc.py" in chat.wait_for(r"^Job 1 diff")["text"]
    chat.send("status")
    assert chat.wait_for(r"^1 done · #42 in api")

    mark = chat.mark()
    chat.send("followup 1: also mention it in the docs")
    chat.wait_for(
        r"^Job 1: following up on #42 in api on branch swarm/42-division-is-broken"
    )
    chat.wait_for(r"^Job 1 done: PR", timeout=60, since=mark)
    updated = github.requests_to("PATCH", r"/repos/acme/api/pulls/\d+")
    assert len(github.pulls) == 1 and updated  # same PR, updated


def test_unauthorised_sender_is_refused_once(tmp_path, origin, start_bot):
    from bot.messages import Message

    bot, chat = start_bot(basic_config(tmp_path, origin, agent=command_agent("fix")))
    stranger = Message(
        channel="web", chat_id="browser", sender_id="mallory", text="fix #42 in api"
    )

    bot.call(bot.engine.receive(stranger))
    bot.call(bot.engine.receive(stranger))

    refusals = [t for t in chat.bot_texts() if "allow-list" in t]
    assert len(refusals) == 1
    assert "mallory" in refusals[0]
    assert bot.engine.storage.jobs.all() == []


def test_a_job_stops_once_its_budget_is_spent(tmp_path, origin, start_bot):
    bot, chat = start_bot(basic_config(tmp_path, origin, agent=command_agent("fix")))
    chat.send("in api: make divide safe")
    chat.wait_for(r"^Job 1 done")
    job = bot.engine.storage.jobs.get(1)
    bot.engine.storage.jobs.update(job, cost_usd=10.5)

    chat.send("followup 1: one more thing")

    reply = chat.wait_for(r"^Job 1 stopped: its budget of \$10\.00 is spent\.")
    assert reply["kind"] == "failure"


def test_a_slow_github_does_not_hold_up_the_ack(tmp_path, origin, github, start_bot):
    config = basic_config(
        tmp_path, origin, agent=command_agent("fix"), github=github_section(github)
    )
    _bot, chat = start_bot(config)
    github.stall(6)

    chat.send("fix #42 in api")

    ack = chat.wait_for(r"^Job 1: fixing #42 in api", timeout=5)
    assert "branch swarm/42-issue-42" in ack["text"]
    github.stall(0)
    chat.wait_for(r"^Job 1 done: PR ", timeout=60)
    assert github.pulls[0]["title"] == "Fix #42: Division is broken"

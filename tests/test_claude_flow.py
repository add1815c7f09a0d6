"""End to end with the real Claude Code CLI: a chat message becomes a PR.

The CLI bundled in claude-agent-sdk talks to a fake Anthropic API that plays
a scripted session; GitHub is a fake too, and origin is a bare repo.
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.engine import Engine
from tests.fakes.anthropic import (
    FakeAnthropic,
    Hang,
    ask_user_question,
    conversation_text,
    result_text,
    text,
    tool_results,
    tool_use,
)
from tests.fakes.github import FakeGitHub
from tests.support import (
    CALC_FIXED,
    RunningBot,
    WebChat,
    basic_config,
    claude_agent,
    git,
    wait_until,
    write_calc,
)

pytestmark = pytest.mark.timeout(180)

QUESTION = ask_user_question(
    "How should divide handle b == 0?",
    "Zero",
    [("Raise an error", "ZeroDivisionError"), ("Return 0", "Quietly")],
)


@pytest.fixture
def github():
    with FakeGitHub(token="gh-token") as fake:
        fake.add_repo("acme/api")
        fake.add_issue(
            "acme/api",
            42,
            "Division is broken",
            "divide(6, 3) returns 18",
            comments=[("alice", "Seen in production too.")],
        )
        yield fake


def github_section(fake: FakeGitHub) -> str:
    return f'[github]\ntoken = "gh-token"\napi_url = "{fake.api_url}"\n'


@pytest.fixture
def bots():
    started: list[RunningBot] = []
    yield started
    for bot in started:
        bot.stop()


def start(bots: list[RunningBot], config) -> tuple[RunningBot, WebChat]:
    bot = RunningBot(Engine.for_serve(config, progress_interval=0)).start()
    bots.append(bot)
    return bot, WebChat(bot.url)


def test_fix_issue_with_a_question_to_pull_request(tmp_path, origin, github, bots):
    def fix_per_answer(body: dict[str, Any]) -> list[dict[str, Any]]:
        answer = result_text(tool_results(body)[0])
        content = CALC_FIXED if "Raise an error" in answer else "oops\n"
        return write_calc(content)(body)

    script = [
        [
            text("One question first."),
            tool_use("AskUserQuestion", QUESTION),
        ],
        fix_per_answer,
        [text("divide() now divides, and raises ZeroDivisionError when b is 0.")],
    ]
    with FakeAnthropic(script) as api:
        config = basic_config(
            tmp_path,
            origin,
            agent=claude_agent(api, tmp_path / "claude"),
            github=github_section(github),
        )
        bot, chat = start(bots, config)

        chat.send("fix #42 in api")
        ack = chat.wait_for(r"^Job 1: fixing #42 in api")
        assert "branch swarm/42-division-is-broken" in ack["text"]

        question = chat.wait_for(r"^Job 1 asks: How should divide handle b == 0\?")
        assert question["options"] == ["Raise an error", "Return 0"]
        chat.send("1")

        done = chat.wait_for(r"^Job 1 done: PR ")

    first_prompt = conversation_text(api.main_requests[0])
    assert "Division is broken" in first_prompt
    assert "Seen in production too." in first_prompt
    assert "Keep functions small." in first_prompt  # the repo's AGENTS.md

    pull = github.pulls[0]
    assert pull["title"] == "Fix #42: Division is broken"
    assert pull["head"] == "swarm/42-division-is-broken"
    assert "Fixes #42" in pull["body"]
    assert "raises ZeroDivisionError" in pull["body"]
    assert "python3 -m unittest -q test_calc" in pull["body"]
    assert pull["html_url"] in done["text"]
    assert "1 file changed" in done["text"]

    pushed = git("show", "swarm/42-division-is-broken:calc.py", cwd=origin)
    assert pushed == CALC_FIXED.strip()
    author = git(
        "log", "-1", "--format=%an <%ae>", "swarm/42-division-is-broken", cwd=origin
    )
    assert author == "swarmbot <swarmbot@localhost>"

    transcript = chat.bot_texts()
    assert transcript.index(ack["text"]) < transcript.index(question["text"])
    assert transcript.index(question["text"]) < transcript.index(done["text"])
    job = bot.engine.storage.jobs.get(1)
    assert job.session_id and job.cost_usd > 0


def test_test_failures_go_back_to_the_same_session(tmp_path, origin, github, bots):
    def fix_after_failure(body: dict[str, Any]) -> list[dict[str, Any]]:
        assert "AssertionError" in conversation_text(body)
        return write_calc(CALC_FIXED)(body)

    script = [
        write_calc("def divide(a, b):\n    return a - b\n"),
        [text("Changed the operator.")],
        fix_after_failure,
        [text("Now it really divides.")],
    ]
    with FakeAnthropic(script) as api:
        config = basic_config(
            tmp_path,
            origin,
            agent=claude_agent(api, tmp_path / "claude"),
            github=github_section(github),
        )
        bot, chat = start(bots, config)

        chat.send("fix #42 in api")
        chat.wait_for(r"^Job 1: tests failed \(round 1 of 2\)")
        chat.wait_for(r"^Job 1 done: PR ")

    assert bot.engine.storage.jobs.get(1).test_result.startswith("passed")
    feedback = conversation_text(api.main_requests[-1])
    assert "Division is broken" in feedback  # the same conversation, resumed
    assert "Changed the operator." in feedback
    assert (
        git("show", "swarm/42-division-is-broken:calc.py", cwd=origin)
        == CALC_FIXED.strip()
    )


def test_restart_resumes_the_session(tmp_path, origin, github, bots):
    script = [
        write_calc("def divide(a, b):\n    return a - b\n"),
        Hang(),
    ]
    with FakeAnthropic(script) as api:
        config = basic_config(
            tmp_path,
            origin,
            agent=claude_agent(api, tmp_path / "claude"),
            github=github_section(github),
        )
        bot, chat = start(bots, config)
        chat.send("fix #42 in api")
        bot.wait_for_job(1, ("running",), timeout=60)
        wait_until(lambda: len(api.main_requests) >= 2, 60, "the agent's second turn")
        session = bot.engine.storage.jobs.get(1).session_id
        assert session
        bot.stop()
        bots.remove(bot)
        assert bot.engine.storage.jobs.get(1).state == "running"

        api.script += [write_calc(CALC_FIXED), [text("Finished after the restart.")]]
        bot, chat = start(bots, config)
        chat.wait_for(r"^Job 1: resumed after a restart")
        done = chat.wait_for(r"^Job 1 done: PR ")

    assert "Finished after the restart." in github.pulls[0]["body"]
    assert "restarted while you were working" in conversation_text(
        api.main_requests[-2]
    )
    assert bot.engine.storage.jobs.get(1).session_id == session
    assert done


def test_an_agent_out_of_turns_is_reported(tmp_path, origin, bots):
    looking = [tool_use("Bash", {"command": "ls", "description": "List files"})]
    with FakeAnthropic([looking, looking, looking, looking]) as api:
        agent = claude_agent(api, tmp_path / "claude", max_turns=2)
        bot, chat = start(bots, basic_config(tmp_path, origin, agent=agent))

        chat.send("in api: look around forever")
        reply = chat.wait_for(r"^Job 1: the agent used all 2 turns without finishing")

    assert "logs 1" in reply["text"]
    assert bot.engine.storage.jobs.get(1).state == "failed"

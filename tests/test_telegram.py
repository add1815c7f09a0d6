"""The Telegram channel: the real python-telegram-bot against a fake Bot API."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.telegram import (
    TelegramAdapter,
    TelegramCheckError,
    check,
    split_text,
)
from bot.config import TelegramConfig
from bot.engine import Engine, EngineError
from bot.messages import Outbound
from tests.fakes.anthropic import FakeAnthropic, ask_user_question, text, tool_use
from tests.fakes.github import FakeGitHub
from tests.fakes.telegram import BOT_USERNAME, TOKEN, FakeTelegram, Sent
from tests.support import (
    CALC_FIXED,
    RunningBot,
    basic_config,
    claude_agent,
    command_agent,
    write_calc,
)

pytestmark = [
    pytest.mark.timeout(120),
    # PTB warns about its own RetryAfter.retry_after type change on every 429.
    pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning"),
]

ALICE, BOB, CAROL, DAVE = 1001, 1002, 1003, 1004
STRANGER = 6666
GROUP = -100500
SECRET = "s3cret-webhook-value"
FAST = {
    "poll_timeout": 1.0,
    "chat_interval": 0.02,
    "group_interval": 0.02,
    "retry_backoff": 0.05,
    "drain_timeout": 3.0,
}

ASKING_AGENT = command_agent(
    "choose", "Raise or return None on zero?", "Raise", "Return None"
)


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram(TOKEN) as fake:
        yield fake


@pytest.fixture
def start_bot(
    tmp_path: Path, origin: Path, telegram: FakeTelegram
) -> Iterator[Callable[..., RunningBot]]:
    bots: list[RunningBot] = []

    def start(
        agent: str = "", github: str = "", telegram_extra: str = "", **adapter: Any
    ) -> RunningBot:
        extra = f"""
        [telegram]
        token = "{TOKEN}"
        api_url = "{telegram.url}"
        allowed_users = [{ALICE}, {BOB}, {CAROL}, {DAVE}]
        {telegram_extra}
        """
        config = basic_config(
            tmp_path,
            origin,
            agent=agent or ASKING_AGENT,
            github=github,
            extra=extra,
        )
        engine = Engine(config, progress_interval=0.1)
        engine.add_adapter(TelegramAdapter(engine, **{**FAST, **adapter}))
        bot = RunningBot(engine).start()
        bots.append(bot)
        return bot

    yield start
    for bot in bots:
        if bot.loop.is_running():
            bot.stop()


def question_in(fake: FakeTelegram, chat_id: int, timeout: float = 60) -> Sent:
    """The first message with buttons in a chat."""
    return fake.wait_for(
        lambda: next((s for s in fake.messages_to(chat_id) if s.buttons), None),
        timeout,
        f"a question with buttons in {chat_id}",
    )


def quiet_for(seconds: float) -> None:
    time.sleep(seconds)


# A whole job


def test_a_job_from_fix_to_the_pr_link_with_a_button_answer(
    start_bot: Callable[..., RunningBot], telegram: FakeTelegram, tmp_path: Path
) -> None:
    question = ask_user_question(
        "Raise or return None on zero?",
        "Zero",
        [("Raise", "ZeroDivisionError"), ("Return None", "Quietly")],
    )
    script = [
        [text("One question."), tool_use("AskUserQuestion", question)],
        write_calc(CALC_FIXED),
        [text("divide now raises on zero.")],
    ]
    with (
        FakeGitHub(token="ghp_fake") as github,
        FakeAnthropic(script) as api,
    ):
        github.add_repo("acme/api")
        github.add_issue("acme/api", 42, "divide multiplies")
        start_bot(
            agent=claude_agent(api, tmp_path / "claude-config", max_turns=10),
            github=f"""
            [github]
            token = "ghp_fake"
            api_url = "{github.api_url}"
            """,
        )

        telegram.user_sends(ALICE, ALICE, "fix #42 in api")

        ack = telegram.wait_for_text(ALICE, r"^Job 1: fixing")
        assert "branch" in ack.text
        asked = question_in(telegram, ALICE)
        assert asked.text.startswith("Job 1 asks: Raise or return None on zero?")
        assert "reply to this message with your own answer" in asked.text
        buttons = asked.buttons
        assert [label for label, _ in buttons] == ["Raise", "Return None"]
        assert all(len(data.encode()) <= 64 for _, data in buttons)

        telegram.user_taps(ALICE, ALICE, asked.message_id, buttons[0][1])

        telegram.wait_for_text(ALICE, r"^Job 1: got it, Raise\.")
        closed = telegram.wait_for_edit(asked.message_id, r"→ Raise$")
        assert closed.reply_markup is None
        assert "reply to this message" not in closed.text
        assert telegram.callback_answers[0]["text"] is None
        done = telegram.wait_for_text(ALICE, r"^Job 1 done: PR http", timeout=90)

        assert github.pulls[0]["html_url"] in done.text
        assert len(api.main_requests) == 3
        assert not done.silent
        status = [s for s in telegram.messages_to(ALICE) if s.silent]
        assert len(status) == 1, [s.text for s in status]
        edits = [e.text for e in telegram.edits if e.message_id == status[0].message_id]
        assert edits and any("tests pass" in e or "publishing" in e for e in edits)
        assert not [
            s
            for s in telegram.messages_to(ALICE)
            if re.match(r"Job 1: (running tests|tests pass|publishing)", s.text)
            and s.message_id != status[0].message_id
        ]
        assert telegram.messages_to(ALICE)[-1] is done

        before, edits = len(telegram.messages_to(ALICE)), len(telegram.edits)
        telegram.user_taps(ALICE, ALICE, asked.message_id, buttons[1][1])
        telegram.wait_for(
            lambda: len(telegram.callback_answers) == 2, 10, "the second tap's answer"
        )
        assert telegram.callback_answers[1]["text"] == "Already answered"
        quiet_for(0.5)
        assert len(telegram.messages_to(ALICE)) == before
        assert len(telegram.edits) == edits
        assert asked.text.endswith("zero?\n→ Raise")


# Who may command the bot


def test_a_stranger_gets_their_id_once_and_nothing_runs(
    start_bot: Callable[..., RunningBot], telegram: FakeTelegram
) -> None:
    bot = start_bot()

    telegram.user_sends(STRANGER, STRANGER, "fix #42 in api")
    refusal = telegram.wait_for_text(STRANGER, "allow-list")
    telegram.user_sends(STRANGER, STRANGER, "status")
    telegram.user_sends(ALICE, ALICE, "status")
    telegram.wait_for_text(ALICE, "No jobs yet")
    quiet_for(0.5)

    assert str(STRANGER) in refusal.text
    assert [s.text for s in telegram.messages_to(STRANGER)] == [refusal.text]
    assert bot.engine.storage.jobs.all() == []


def test_a_group_answers_only_what_is_meant_for_the_bot(
    start_bot: Callable[..., RunningBot], telegram: FakeTelegram
) -> None:
    bot = start_bot()

    telegram.user_sends(GROUP, ALICE, "hello team, status of the release?")
    telegram.user_sends(GROUP, ALICE, "/status@OtherBot")
    telegram.user_sends(GROUP, ALICE, f"/status@{BOT_USERNAME}")
    telegram.wait_for_text(GROUP, "No jobs yet")
    telegram.user_sends(GROUP, BOB, f"@{BOT_USERNAME} fix #42 in api")
    telegram.wait_for_text(GROUP, r"^Job 1: fixing")
    asked = question_in(telegram, GROUP)

    telegram.user_taps(GROUP, STRANGER, asked.message_id, asked.buttons[1][1])
    telegram.wait_for_text(GROUP, f"Your telegram id is {STRANGER}")
    assert bot.engine.storage.questions.get(1).status == "pending"
    assert telegram.messages_to(GROUP)[-2].buttons  # the keyboard is still there

    telegram.user_sends(GROUP, CAROL, "Return None", reply_to=asked.message_id)
    telegram.wait_for_text(GROUP, r"Job 1: got it, Return None\.")
    telegram.wait_for_edit(asked.message_id, r"→ Return None$")
    telegram.wait_for_text(GROUP, r"^Job 1 done: pushed branch", timeout=60)

    texts = [s.text for s in telegram.messages_to(GROUP)]
    assert sum("No jobs yet" in t for t in texts) == 1
    assert not any("did not understand" in t for t in texts)


# Delivery


def test_flood_control_during_a_job_loses_no_message(
    start_bot: Callable[..., RunningBot], telegram: FakeTelegram
) -> None:
    start_bot(agent=command_agent("fix"))
    telegram.fail_with_502(2)
    telegram.fail_with_429(4, retry_after=1)

    telegram.user_sends(ALICE, ALICE, "fix #42 in api")

    telegram.wait_for_text(ALICE, r"^Job 1: fixing", timeout=30)
    done = telegram.wait_for_text(ALICE, r"^Job 1 done: pushed branch", timeout=60)
    assert telegram.rejected == 6
    texts = [s.text for s in telegram.messages_to(ALICE)]
    assert texts[0].startswith("Job 1: fixing")
    assert texts[-1] == done.text
    assert len([s for s in telegram.messages_to(ALICE) if s.silent]) == 1


def test_chats_do_not_wait_for_each_other(
    start_bot: Callable[..., RunningBot], telegram: FakeTelegram
) -> None:
    start_bot(chat_interval=0.3)
    telegram.user_sends(ALICE, ALICE, "fix #42 in api")
    asked = question_in(telegram, ALICE)
    telegram.fail_with_429(1, retry_after=3, chat_id=ALICE)
    telegram.user_sends(ALICE, ALICE, "status 1")

    started = time.monotonic()
    for chat in (BOB, CAROL, DAVE):
        telegram.user_sends(chat, chat, "fix #7 in api")
    acks = [
        telegram.wait_for_text(chat, r"^Job \d: fixing") for chat in (BOB, CAROL, DAVE)
    ]
    assert {re.match(r"Job (\d)", a.text)[1] for a in acks} == {"2", "3", "4"}

    status = telegram.wait_for_text(ALICE, r"^Job 1: #42")
    assert status.at - started > 2  # ALICE's own reply waited out the 429 ...
    assert all(ack.at < status.at for ack in acks)  # ... and nobody else did
    telegram.user_sends(ALICE, ALICE, "cancel 1")
    telegram.wait_for_text(ALICE, r"Job 1 cancelled")
    telegram.wait_for_edit(asked.message_id, r"→ \(closed\)$")


def test_messages_in_one_chat_are_paced(
    start_bot: Callable[..., RunningBot], telegram: FakeTelegram
) -> None:
    start_bot(chat_interval=0.25)

    for _ in range(4):
        telegram.user_sends(ALICE, ALICE, "repos")
    telegram.user_sends(BOB, BOB, "repos")
    telegram.wait_for(lambda: len(telegram.messages_to(ALICE)) == 4, 10, "4 replies")
    bob = telegram.wait_for_text(BOB, "api")

    times = [s.at for s in telegram.messages_to(ALICE)]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert min(gaps) >= 0.2
    assert bob.at < times[1]


def test_long_logs_are_split_and_the_full_log_sent_as_a_file(
    start_bot: Callable[..., RunningBot], telegram: FakeTelegram
) -> None:
    bot = start_bot()
    storage = bot.engine.storage
    job = storage.jobs.create(
        repo="api", channel="telegram", chat_id=str(ALICE), sender_id=str(ALICE)
    )
    storage.jobs.update(job, state="failed", branch="fix/1")
    lines = [f"line {n} " + "x" * 290 for n in range(40)]
    bot.engine.joblog.write(job.id, "\n".join(lines))

    telegram.user_sends(ALICE, ALICE, f"logs {job.id}")

    document = telegram.wait_for(
        lambda: next((s for s in telegram.messages_to(ALICE) if s.document), None),
        20,
        "the log file",
    )
    texts = [s for s in telegram.messages_to(ALICE) if not s.document]
    assert len(texts) >= 3
    assert all(len(s.text) <= 4096 for s in texts)
    assert texts[0].text.startswith(f"Job {job.id} log (last lines):")
    shown = "\n".join(s.text for s in texts)
    assert "line 10 " in shown and "line 39 " in shown and "line 9 " not in shown
    name, content = document.document
    assert name == f"job-{job.id}.log"
    assert b"line 0 " in content and b"line 39 " in content
    assert telegram.messages_to(ALICE)[-1] is document


def test_the_status_message_survives_a_restart(
    start_bot: Callable[..., RunningBot], telegram: FakeTelegram
) -> None:
    def progress(bot: RunningBot, text: str) -> str:
        out = Outbound(text=text, kind="progress", job_id=5)
        return bot.call(bot.engine.notifier.send("telegram", str(ALICE), out))

    bot = start_bot()
    first = progress(bot, "Job 5: agent started")
    assert progress(bot, "Job 5: agent started") == first
    bot.stop()
    bot = start_bot()
    again = progress(bot, "Job 5: running tests")

    assert again == first
    assert [s.text for s in telegram.messages_to(ALICE)] == ["Job 5: running tests"]
    assert telegram.messages_to(ALICE)[0].silent
    assert len(telegram.edits) == 1

    telegram.forget(ALICE, int(first))
    replaced = progress(bot, "Job 5: publishing")
    assert replaced != first
    assert telegram.messages_to(ALICE)[-1].text == "Job 5: publishing"


def test_splitting_keeps_lines_whole_and_cuts_overlong_ones() -> None:
    text = "\n".join(["a" * 3000, "b" * 3000, "c" * 10, "d" * 9000])

    chunks = split_text(text, limit=4096)

    assert all(len(chunk) <= 4096 for chunk in chunks)
    assert chunks[0] == "a" * 3000
    assert chunks[1] == "b" * 3000 + "\n" + "c" * 10
    assert "".join(chunks[2:]) == "d" * 9000
    assert split_text("short") == ["short"]
    assert split_text("\n\n") == []
    assert all(len(c.encode("utf-16-le")) // 2 <= 10 for c in split_text("😀" * 12, 10))


def test_what_users_write_is_sent_back_as_plain_text(
    start_bot: Callable[..., RunningBot], telegram: FakeTelegram
) -> None:
    start_bot()

    telegram.user_sends(ALICE, ALICE, "fix #1 in _my_repo_")
    telegram.user_sends(BOB, BOB, "stauts <b>*[x](y)*</b>")

    assert "_my_repo_" in telegram.wait_for_text(ALICE, "I don't know the repo").text
    telegram.wait_for_text(BOB, "did not understand")
    assert all(s.parse_mode is None for s in telegram.sent)


def test_approvals_get_allow_and_deny_buttons(
    start_bot: Callable[..., RunningBot], telegram: FakeTelegram
) -> None:
    bot = start_bot()
    engine = bot.engine
    job = engine.storage.jobs.create(
        repo="api", channel="telegram", chat_id=str(ALICE), sender_id=str(ALICE)
    )
    decision = asyncio.run_coroutine_threadsafe(
        engine.questions.approve(job, "Run: make clean"), bot.loop
    )

    asked = question_in(telegram, ALICE)
    buttons = asked.buttons
    assert [label for label, _ in buttons] == ["Allow", "Deny"]
    assert asked.text == "Job 1 asks: Run: make clean"
    telegram.user_taps(ALICE, ALICE, asked.message_id, buttons[0][1])

    assert decision.result(10) is True
    telegram.wait_for_edit(asked.message_id, "→ Allow$")
    telegram.wait_for_text(ALICE, r"^Job 1: got it, Allow\.")


def test_the_token_never_reaches_the_log(
    start_bot: Callable[..., RunningBot],
    telegram: FakeTelegram,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    bot = start_bot()
    telegram.fail_with_429(1)
    telegram.user_sends(ALICE, ALICE, "help")
    telegram.wait_for_text(ALICE, "^Commands:")
    bot.stop()

    assert "getUpdates" in caplog.text or "Telegram" in caplog.text
    assert TOKEN not in caplog.text


# Receiving


def test_start_and_help_answer_and_the_menu_is_set(
    start_bot: Callable[..., RunningBot], telegram: FakeTelegram
) -> None:
    start_bot()

    assert [c["command"] for c in telegram.commands] == [
        "fix",
        "status",
        "logs",
        "diff",
        "cancel",
        "retry",
        "followup",
        "answer",
        "repos",
        "help",
    ]
    telegram.user_sends(ALICE, ALICE, "/start")
    telegram.user_sends(BOB, BOB, f"/help@{BOT_USERNAME}")

    for chat in (ALICE, BOB):
        assert "fix #42 in api" in telegram.wait_for_text(chat, "^Commands:").text
    assert "deleteWebhook" in telegram.calls
    assert "getUpdates" in telegram.calls


def test_webhook_mode_checks_the_secret(
    start_bot: Callable[..., RunningBot], telegram: FakeTelegram
) -> None:
    bot = start_bot(
        telegram_extra=f'mode = "webhook"\n        webhook_secret = "{SECRET}"'
    )
    assert telegram.webhook["url"] == "http://127.0.0.1:8000/webhooks/telegram"
    assert telegram.webhook["secret_token"] == SECRET
    endpoint = f"{bot.url}/webhooks/telegram"

    forged = telegram.message_update(ALICE, ALICE, "fix #42 in api")
    assert post(endpoint, json.dumps(forged).encode(), "wrong-secret") == 403
    assert post(endpoint, json.dumps(forged).encode(), None) == 403
    assert post(endpoint, b"{not json", SECRET) == 400
    assert post(endpoint, b'{"hello": 1}', SECRET) == 400

    telegram.webhook_target = endpoint
    telegram.user_sends(ALICE, ALICE, "status")
    telegram.wait_for_text(ALICE, "No jobs yet")
    quiet_for(0.3)

    assert bot.engine.storage.jobs.all() == []
    assert "getUpdates" not in telegram.calls
    assert len(telegram.messages_to(ALICE)) == 1


def post(url: str, body: bytes, secret: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


# Doctor


async def test_check_names_the_bot(telegram: FakeTelegram) -> None:
    config = TelegramConfig(token=TOKEN, api_url=telegram.url)

    assert await check(config) == f"@{BOT_USERNAME} reachable; long polling"


async def test_check_tells_whether_the_webhook_is_set(telegram: FakeTelegram) -> None:
    config = TelegramConfig(
        token=TOKEN, api_url=telegram.url, mode="webhook", webhook_secret=SECRET
    )

    assert await check(config) == "@SwarmBot reachable; no webhook yet (serve sets it)"
    telegram.webhook = {"url": "https://bot.example.com/webhooks/telegram"}
    assert await check(config) == (
        "@SwarmBot reachable; webhook https://bot.example.com/webhooks/telegram"
    )


async def test_check_explains_a_bad_token_without_showing_it(
    telegram: FakeTelegram,
) -> None:
    config = TelegramConfig(token="123:not-the-token", api_url=telegram.url)

    with pytest.raises(TelegramCheckError) as failure:
        await check(config)

    assert "@BotFather" in str(failure.value)
    assert "not-the-token" not in str(failure.value)


async def test_check_explains_an_unreachable_api() -> None:
    with FakeTelegram(TOKEN) as gone:
        url = gone.url
    config = TelegramConfig(token=TOKEN, api_url=url)

    with pytest.raises(TelegramCheckError, match="Cannot reach"):
        await check(config)


def test_a_bad_token_stops_serve_with_a_hint(
    tmp_path: Path, origin: Path, telegram: FakeTelegram
) -> None:
    config = basic_config(
        tmp_path,
        origin,
        extra=f"""
        [telegram]
        token = "123:wrong"
        api_url = "{telegram.url}"
        """,
    )
    engine = Engine(config)
    engine.add_adapter(TelegramAdapter(engine, **FAST))
    bot = RunningBot(engine)

    try:
        with pytest.raises(EngineError, match="BotFather") as failure:
            bot.start(http=False)
    finally:
        bot.stop()

    assert "123:wrong" not in str(failure.value)

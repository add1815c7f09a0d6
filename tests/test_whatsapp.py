"""The WhatsApp channel: the real engine and `twilio` client against a fake Twilio."""

from __future__ import annotations

import logging
import re
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from twilio.request_validator import RequestValidator

from adapters.whatsapp import WhatsAppAdapter, WhatsAppError, check, split_body
from bot.commands import HELP
from bot.config import Config, WhatsAppConfig, load_config
from bot.engine import Engine
from bot.messages import Outbound
from tests.fakes.anthropic import (
    FakeAnthropic,
    ask_user_question,
    result_text,
    text,
    tool_results,
    tool_use,
)
from tests.fakes.github import FakeGitHub
from tests.fakes.twilio import FakeTwilio, SentMessage, post_form, post_signed
from tests.support import (
    CALC_FIXED,
    RunningBot,
    basic_config,
    claude_agent,
    command_agent,
    wait_until,
    write_calc,
)

pytestmark = pytest.mark.timeout(90)

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "twilio-auth-token-do-not-leak-4f1c"
BOT_NUMBER = "whatsapp:+14155238886"
ADA = "whatsapp:+15550001111"
STRANGER = "whatsapp:+15559990000"
TEMPLATE = "HX" + "ab" * 16
GITHUB_TOKEN = "ghp_fake_token_for_tests"
HOUR = 3600.0
NO_JOBS = "No jobs yet. Try: fix #42 in <repo>"

ASK_AGENT = command_agent(
    "choose", "Guard against zero how?", "Raise an error", "Return None"
)


@dataclass
class Clock:
    """Wall-clock time the test can move forward."""

    now: float = field(default_factory=time.time)

    def __call__(self) -> float:
        return self.now

    def advance(self, hours: float) -> None:
        self.now += hours * HOUR


@dataclass
class Rig:
    """A running bot with its WhatsApp adapter, and the fake Twilio behind it."""

    bot: RunningBot
    adapter: WhatsAppAdapter
    twilio: FakeTwilio
    clock: Clock

    @property
    def engine(self) -> Engine:
        return self.bot.engine

    def phone(self, number: str = ADA, name: str = "Ada") -> Phone:
        return Phone(self, number, name)

    def say(self, chat_id: str, out: Outbound) -> str | None:
        """Have the core send `out` to `chat_id`, as jobs do."""
        return self.bot.call(self.engine.notifier.send("whatsapp", chat_id, out))


@dataclass
class Phone:
    """A person on WhatsApp: writes through Twilio's webhook, reads what arrived."""

    rig: Rig
    number: str
    name: str

    def send(self, body: str, *, reply_to: str = "", sid: str = "") -> str:
        """Write `body` (optionally quoting a bot message); returns its SID."""
        sid = sid or f"SM{uuid.uuid4().hex}"
        status = post_signed(
            AUTH_TOKEN, self.webhook_url, self.params(body, sid, reply_to)
        )
        assert status == 200
        return sid

    def params(self, body: str, sid: str, reply_to: str = "") -> dict[str, str]:
        """The form Twilio posts for an inbound WhatsApp message."""
        params = {
            "MessageSid": sid,
            "SmsMessageSid": sid,
            "SmsSid": sid,
            "AccountSid": ACCOUNT_SID,
            "From": self.number,
            "To": BOT_NUMBER,
            "Body": body,
            "ProfileName": self.name,
            "WaId": self.number.removeprefix("whatsapp:+"),
            "NumMedia": "0",
            "NumSegments": "1",
            "MessageType": "text",
            "SmsStatus": "received",
            "ApiVersion": "2010-04-01",
        }
        if reply_to:
            params["OriginalRepliedMessageSid"] = reply_to
            params["OriginalRepliedMessageSender"] = BOT_NUMBER
        return params

    @property
    def webhook_url(self) -> str:
        return f"{self.rig.bot.url}/webhooks/twilio"

    def received(self) -> list[SentMessage]:
        return self.rig.twilio.messages_to(self.number)

    def texts(self) -> list[str]:
        return [message.body for message in self.received()]

    def wait_for(self, pattern: str, timeout: float = 30) -> SentMessage:
        """The first message to this phone whose body matches `pattern`."""

        def find() -> SentMessage | None:
            for message in self.received():
                if re.search(pattern, message.body):
                    return message
            return None

        return wait_until(find, timeout, f"a WhatsApp message matching {pattern!r}")


def whatsapp_section(twilio: FakeTwilio, extra: str = "") -> str:
    return textwrap.dedent(
        f"""
        [whatsapp]
        account_sid = "{ACCOUNT_SID}"
        auth_token = "{AUTH_TOKEN}"
        from = "{BOT_NUMBER}"
        allowed_numbers = ["+1 555 000 1111"]
        api_url = "{twilio.url}"
        """
    ) + textwrap.dedent(extra)


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio(ACCOUNT_SID, AUTH_TOKEN) as fake:
        yield fake


@pytest.fixture
def start(tmp_path: Path, origin: Path, twilio: FakeTwilio) -> Iterator[Any]:
    """Start a bot with the WhatsApp channel; call with `config=` to restart."""
    running: list[RunningBot] = []

    def start(
        *,
        agent: str = "",
        github: str = "",
        whatsapp: str = "",
        config: Config | None = None,
        clock: Clock | None = None,
        send_interval: float = 0.0,
    ) -> Rig:
        if config is None:
            config = basic_config(
                tmp_path,
                origin,
                agent=agent,
                github=github,
                extra=whatsapp_section(twilio, whatsapp),
            )
        clock = clock or Clock()
        engine = Engine(config)
        adapter = WhatsAppAdapter(
            engine, clock=clock, send_interval=send_interval, retry_delay=0.01
        )
        engine.add_adapter(adapter)
        bot = RunningBot(engine).start()
        config.bot.public_url = bot.url  # the port is known only now
        running.append(bot)
        return Rig(bot, adapter, twilio, clock)

    def stop(rig: Rig) -> None:
        running.remove(rig.bot)
        rig.bot.stop()

    start.stop = stop  # type: ignore[attr-defined]
    yield start
    for bot in running:
        bot.stop()


# A whole job


def test_a_job_from_fix_to_pull_request_link(start: Any, tmp_path: Path) -> None:
    question = ask_user_question(
        "divide(6, 0) should do what?",
        "Zero",
        [("Return None", "Quiet"), ("Raise ZeroDivisionError", "Loud")],
    )

    def write_fix(body: dict[str, Any]) -> list[dict[str, Any]]:
        answer = result_text(tool_results(body)[0])
        if "Raise ZeroDivisionError" not in answer:
            return [text(f"Unexpected answer: {answer}")]
        return write_calc(CALC_FIXED)(body)

    script = [
        [text("One question."), tool_use("AskUserQuestion", question)],
        write_fix,
        [text("divide() now divides and raises on zero.")],
    ]
    with (
        FakeAnthropic(script) as api,
        FakeGitHub(token=GITHUB_TOKEN) as github,
    ):
        github.add_repo("acme/api")
        github.add_issue("acme/api", 42, "divide() multiplies")
        rig = start(
            agent=claude_agent(api, tmp_path / "claude-config", max_turns=10),
            github=f'[github]\ntoken = "{GITHUB_TOKEN}"\n'
            f'api_url = "{github.api_url}"\n',
        )
        ada = rig.phone()

        ada.send("fix #42 in api")
        ada.wait_for(r"^Job 1: fixing #42")
        asked = ada.wait_for(r"^Job 1 asks: divide\(6, 0\) should do what\?", 60)
        assert "1. Return None\n2. Raise ZeroDivisionError" in asked.body
        ada.send("2")
        ada.wait_for(r"^Job 1: got it, Raise ZeroDivisionError\.")
        done = ada.wait_for(r"^Job 1 done: PR ", 60)

    pull = github.pulls[0]
    assert done.body.startswith(f"Job 1 done: PR {pull['html_url']}\n")
    assert "1 file changed · tests passed" in done.body
    assert pull["head"] == "swarm/42-divide-multiplies"
    texts = ada.texts()
    assert len(texts) == 4, texts  # ack, question, answer, result: no progress
    assert all(message.from_ == BOT_NUMBER for message in ada.received())
    callback = f"{rig.bot.url}/webhooks/twilio/status"
    assert all(message.status_callback == callback for message in ada.received())


# Webhook security


def test_unsigned_and_forged_webhooks_are_refused(
    start: Any, caplog: pytest.LogCaptureFixture
) -> None:
    rig = start()
    ada = rig.phone()
    params = ada.params("fix #42 in api", "SMforged")

    unsigned = post_form(ada.webhook_url, params, {})
    forged = post_signed("not-the-auth-token", ada.webhook_url, params)
    signature = RequestValidator(AUTH_TOKEN).compute_signature(ada.webhook_url, params)
    tampered = post_form(
        ada.webhook_url,
        {**params, "Body": "fix #1 in api"},
        {"X-Twilio-Signature": signature},
    )
    status_forged = post_signed("nope", f"{rig.bot.url}/webhooks/twilio/status", params)

    assert (unsigned, forged, tampered, status_forged) == (403, 403, 403, 403)
    ada.send("help")
    ada.wait_for("Commands:")
    assert ada.texts() == [HELP]
    assert rig.engine.storage.jobs.all() == []
    rejected = [r for r in caplog.records if "Rejected a Twilio webhook" in r.message]
    assert len(rejected) == 4
    assert all(r.levelno == logging.WARNING for r in rejected)


def test_a_retried_delivery_is_handled_once(start: Any) -> None:
    rig = start()
    ada = rig.phone()

    sid = ada.send("status")
    ada.send("status", sid=sid)
    ada.send("status", sid=sid)
    ada.send("help")
    ada.wait_for("Commands:")

    assert ada.texts() == [NO_JOBS, HELP]


def test_signature_is_checked_against_the_public_https_url(start: Any) -> None:
    rig = start()
    rig.engine.config.bot.public_url = "https://bot.example.com"
    ada = rig.phone()
    path = "/webhooks/twilio?route=main&x=1"
    params = ada.params("help", "SMviaproxy")

    local = post_signed(AUTH_TOKEN, f"{rig.bot.url}{path}", params)
    signature = RequestValidator(AUTH_TOKEN).compute_signature(
        f"https://bot.example.com{path}", params
    )
    through_proxy = post_form(
        f"{rig.bot.url}{path}", params, {"X-Twilio-Signature": signature}
    )

    assert local == 403
    assert through_proxy == 200
    ada.wait_for("Commands:")


# Who may use it


def test_an_unknown_number_gets_one_short_refusal(start: Any) -> None:
    rig = start()
    stranger = rig.phone(STRANGER, "Mallory")
    ada = rig.phone()

    stranger.send("fix #42 in api")
    refusal = stranger.wait_for("allow-list")
    stranger.send("fix #42 in api")
    ada.send("status")
    ada.wait_for("No jobs yet")

    assert stranger.texts() == [refusal.body]
    assert "+15559990000" in refusal.body
    assert rig.engine.storage.jobs.all() == []


# Outbound shape


def test_a_long_reply_is_split_at_line_boundaries(start: Any) -> None:
    rig = start()
    ada = rig.phone()
    ada.send("status")
    ada.wait_for("No jobs yet")
    lines = [f"line {n:03d}: " + "x" * 60 for n in range(60)]

    rig.say(ADA, Outbound("\n".join(lines), kind="result", job_id=7))

    parts = ada.texts()[1:]
    assert len(parts) == 3
    assert all(len(part) <= 1600 for part in parts)
    assert "\n".join(parts).split("\n") == lines


def test_sends_are_paced_per_sender(start: Any) -> None:
    rig = start(send_interval=0.2)
    ada = rig.phone()
    ada.send("status")
    ada.wait_for("No jobs yet")

    rig.say(ADA, Outbound("\n".join(["y" * 1000] * 3), kind="result"))

    times = [message.at for message in ada.received()[1:]]
    assert len(times) == 3
    assert all(later - earlier >= 0.18 for earlier, later in pairwise(times))


def test_split_body_cuts_an_endless_line_at_spaces() -> None:
    words = " ".join(["word"] * 1000)

    parts = split_body(words, limit=100)

    assert all(len(part) <= 100 for part in parts)
    assert " ".join(parts) == words
    assert split_body("a\n\n\nb", limit=3) == ["a", "b"]


# The 24-hour window


def test_a_message_outside_the_window_waits_for_the_next_message(
    start: Any, tmp_path: Path
) -> None:
    clock = Clock()
    rig = start(clock=clock)
    ada = rig.phone()
    ada.send("status")
    ada.wait_for("No jobs yet")
    clock.advance(hours=25)

    sent = rig.say(ADA, Outbound("Job 7 done: PR https://x/pull/7", kind="result"))

    assert sent is None
    assert len(ada.received()) == 1
    start.stop(rig)  # held messages survive a restart
    again = start(config=load_config(tmp_path / "swarmbot.toml"), clock=clock)
    ada = again.phone()

    ada.send("status")
    wait_until(lambda: ada.texts().count(NO_JOBS) == 2, 10, "the second reply")

    assert ada.texts() == [
        NO_JOBS,
        "While you were away:\nJob 7 done: PR https://x/pull/7",
        NO_JOBS,
    ]
    assert not any(message.content_sid for message in ada.received())


def test_a_question_refused_with_63016_reaches_the_phone_after_the_template(
    start: Any, tmp_path: Path
) -> None:
    rig = start(
        agent=ASK_AGENT,
        whatsapp=f'content_sid = "{TEMPLATE}"\n'
        'content_variables = \'{"1": "swarmbot"}\'\n',
    )
    ada = rig.phone()
    rig.twilio.fail_next(63016, body="^Job 1 asks")

    ada.send("fix #1 in api")
    template = wait_until(
        lambda: [m for m in ada.received() if m.content_sid], 30, "the template"
    )
    assert [(m.content_sid, m.content_variables) for m in template] == [
        (TEMPLATE, '{"1": "swarmbot"}')
    ]
    assert ada.texts()[0].startswith("Job 1: fixing #1")
    assert not any("asks" in body for body in ada.texts())

    ada.send("Show me", reply_to=template[0].sid)
    asked = ada.wait_for("^While you were away:\nJob 1 asks: Guard against zero how")
    ada.send("2", reply_to=asked.sid)
    ada.wait_for("^Job 1: got it, Return None.")
    ada.wait_for("^Job 1 done: pushed branch", 60)

    assert not any("understand" in body for body in ada.texts())
    assert rig.engine.storage.jobs.get(1).summary.endswith("Chose: Return None")


def test_a_reply_to_the_template_only_reopens_the_chat(start: Any) -> None:
    clock = Clock()
    rig = start(clock=clock, whatsapp=f'content_sid = "{TEMPLATE}"\n')
    ada = rig.phone()
    ada.send("status")
    ada.wait_for("No jobs yet")
    clock.advance(hours=30)

    rig.say(ADA, Outbound("Job 4 done.", kind="result", job_id=4))
    rig.say(ADA, Outbound("Job 5 done.", kind="result", job_id=5))
    template = wait_until(
        lambda: [m for m in ada.received() if m.content_sid], 10, "the template"
    )
    assert len(template) == 1

    ada.send("Show me", reply_to=template[0].sid)
    ada.wait_for("Job 5 done")
    ada.send("help")
    ada.wait_for("Commands:")

    assert ada.texts()[2:] == ["While you were away:\nJob 4 done.", "Job 5 done.", HELP]


# Questions


def test_replies_to_question_messages_go_to_their_job(
    start: Any, tmp_path: Path
) -> None:
    rig = start(agent=ASK_AGENT)
    ada = rig.phone()

    ada.send("fix #1 in api")
    ada.wait_for("^Job 1 asks")
    ada.send("fix #2 in api")
    second = ada.wait_for("^Job 2 asks")
    first = ada.wait_for("^Job 1 asks")
    assert first.body.endswith(
        "1. Raise an error\n2. Return None\nReply with a number or your own answer."
    )

    ada.send("2")
    ada.wait_for("Several jobs are waiting")
    ada.send("2", reply_to=second.sid)
    ada.wait_for("^Job 2: got it, Return None.")
    ada.send("1", reply_to=first.sid)
    ada.wait_for("^Job 1: got it, Raise an error.")

    ada.wait_for("^Job 1 done: pushed branch", 60)
    ada.wait_for("^Job 2 done: pushed branch", 60)
    jobs = rig.engine.storage.jobs
    assert jobs.get(1).summary.endswith("Chose: Raise an error")
    assert jobs.get(2).summary.endswith("Chose: Return None")


# Delivery status and errors


def test_a_failed_delivery_is_sent_again_a_few_times(start: Any) -> None:
    rig = start()
    ada = rig.phone()
    ada.send("status")
    ada.wait_for("No jobs yet")

    rig.say(ADA, Outbound("Job 8 done: PR https://x/pull/8", kind="result"))
    for attempt in range(1, 4):
        copies = [m for m in ada.received() if m.body.startswith("Job 8 done")]
        assert len(copies) == attempt
        assert rig.twilio.send_status(copies[-1].sid, "failed", "30008") == 204
        if attempt < 3:
            wait_until(
                lambda n=attempt: (
                    len([m for m in ada.received() if m.body.startswith("Job 8 done")])
                    > n
                ),
                10,
                "the message sent again",
            )

    ada.send("help")
    ada.wait_for("Commands:")
    assert len([t for t in ada.texts() if t.startswith("Job 8 done")]) == 3


def test_a_status_callback_with_63016_holds_the_message(start: Any) -> None:
    rig = start()
    ada = rig.phone()
    ada.send("status")
    ada.wait_for("No jobs yet")
    sid = rig.say(ADA, Outbound("Job 9 done.", kind="result", job_id=9))
    assert sid is not None

    assert rig.twilio.send_status(sid, "sent") == 204
    assert rig.twilio.send_status(sid, "undelivered", "63016") == 204
    wait_until(lambda: not rig.adapter._window_open(ADA), 10, "the window to close")
    rig.say(ADA, Outbound("Job 10 done.", kind="result", job_id=10))
    ada.send("help")
    ada.wait_for("Commands:")

    assert ada.texts()[2:] == [
        "While you were away:\nJob 9 done.",
        "Job 10 done.",
        HELP,
    ]


def test_twilio_errors_are_logged_and_never_reach_the_chat(
    start: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rig = start()
    ada = rig.phone()
    ada.send("status")
    ada.wait_for("No jobs yet")

    rig.twilio.fail_next(20500, status=500)
    rig.twilio.fail_next(20429, status=429)
    retried = rig.say(ADA, Outbound("Job 1 done.", kind="result"))
    rig.twilio.fail_next(21211, status=400)
    refused = rig.say(ADA, Outbound("Job 2 done.", kind="result"))
    rig.twilio.fail_next(20500, status=500, times=3)
    gave_up = rig.say(ADA, Outbound("Job 3 done.", kind="result"))
    after = rig.say(ADA, Outbound("Job 4 done.", kind="result"))

    assert retried and after
    assert refused is None and gave_up is None
    assert ada.texts()[1:] == ["Job 1 done.", "Job 4 done."]
    assert "error 21211 (HTTP 400)" in caplog.text
    assert "gave up sending" in caplog.text
    assert AUTH_TOKEN not in caplog.text


def test_an_unreachable_twilio_does_not_break_the_bot(
    start: Any, caplog: pytest.LogCaptureFixture
) -> None:
    rig = start()
    ada = rig.phone()
    ada.send("status")
    ada.wait_for("No jobs yet")
    rig.twilio.stop()

    assert rig.say(ADA, Outbound("Job 1 done.", kind="result")) is None
    assert "ConnectionError" in caplog.text
    assert AUTH_TOKEN not in caplog.text


# swarmbot doctor


def test_check_reports_the_account(twilio: FakeTwilio) -> None:
    config = WhatsAppConfig(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        from_=BOT_NUMBER,
        api_url=twilio.url,
    )

    assert check(config) == (
        f"account My first Twilio account (active), sending from {BOT_NUMBER}"
    )


def test_check_explains_a_wrong_token_without_showing_it(twilio: FakeTwilio) -> None:
    wrong = "wrong-token-1234"
    config = WhatsAppConfig(
        account_sid=ACCOUNT_SID, auth_token=wrong, from_=BOT_NUMBER, api_url=twilio.url
    )

    with pytest.raises(WhatsAppError, match="check \\[whatsapp\\] account_sid") as err:
        check(config)
    assert wrong not in str(err.value)


def test_check_explains_an_unreachable_api(twilio: FakeTwilio) -> None:
    twilio.stop()
    config = WhatsAppConfig(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        from_=BOT_NUMBER,
        api_url=twilio.url,
    )

    with pytest.raises(WhatsAppError, match="cannot reach Twilio"):
        check(config)

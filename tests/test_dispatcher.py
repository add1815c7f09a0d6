"""The dispatcher on its own: any text gets a short answer and nothing breaks."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.base import Adapter
from bot.engine import Engine
from bot.messages import Message, Outbound
from tests.support import RunningBot, basic_config, command_agent


class Recorder(Adapter):
    """A channel that keeps what the bot says."""

    name = "web"

    def __init__(self, hub) -> None:
        super().__init__(hub)
        self.sent: list[Outbound] = []

    async def send(self, chat_id: str, out: Outbound) -> str | None:
        self.sent.append(out)
        return str(len(self.sent))


def start_bot(tmp_path, origin, mode: str = "sleep") -> tuple[RunningBot, Recorder]:
    engine = Engine(basic_config(tmp_path, origin, agent=command_agent(mode)))
    recorder = Recorder(engine)
    engine.add_adapter(recorder)
    return RunningBot(engine).start(http=False), recorder


def say(bot: RunningBot, text: str, **fields) -> None:
    message = Message(
        channel="web",
        chat_id="browser",
        sender_id="local",
        text=text,
        trusted=True,
        **fields,
    )
    bot.call(bot.engine.receive(message))


def test_no_input_crashes_the_dispatcher(tmp_path, origin):
    bot, recorder = start_bot(tmp_path, origin)
    commands = st.sampled_from(
        [
            "status",
            "logs",
            "diff",
            "cancel",
            "retry",
            "followup",
            "answer",
            "help",
            "fix",
        ]
    )
    texts = st.one_of(
        st.text(max_size=300),
        st.builds(lambda c, n: f"{c} {n}", commands, st.integers(-5, 10**12)),
        st.builds(lambda c, t: f"{c} {t}", commands, st.text(max_size=50)),
    )

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(texts)
    def check(text: str) -> None:
        before = len(recorder.sent)
        say(bot, text)
        replies = recorder.sent[before:]
        if text.strip():
            assert replies, f"no reply to {text!r}"
        for reply in replies:
            assert "Traceback" not in reply.text
            assert "Something went wrong" not in reply.text
            assert len(reply.text) < 5000

    try:
        check()
    finally:
        bot.stop()


def test_a_huge_message_gets_a_short_refusal(tmp_path, origin):
    bot, recorder = start_bot(tmp_path, origin)
    try:
        say(bot, "in api: " + "x" * 100_000)
        assert recorder.sent[-1].text.startswith("That message is too long")
        assert bot.engine.storage.jobs.all() == []
    finally:
        bot.stop()


def test_cancel_takes_a_queued_job_out(tmp_path, origin):
    config = basic_config(
        tmp_path, origin, agent=command_agent("sleep"), max_parallel=1
    )
    engine = Engine(config)
    recorder = Recorder(engine)
    engine.add_adapter(recorder)
    bot = RunningBot(engine).start(http=False)
    try:
        say(bot, "in api: first")
        say(bot, "in api: second")
        say(bot, "cancel 2")
        assert recorder.sent[-1].text == "Job 2 cancelled before it started."
        assert engine.storage.jobs.get(2).state == "cancelled"
        assert engine.scheduler.is_running(1)
    finally:
        bot.stop()


def test_restart_without_a_session_offers_a_retry(tmp_path, origin):
    config = basic_config(tmp_path, origin, agent=command_agent("sleep"))
    engine = Engine(config)
    engine.add_adapter(Recorder(engine))
    bot = RunningBot(engine).start(http=False)
    say(bot, "in api: long one")
    bot.wait_for_job(1, ("running",))
    bot.stop()

    engine = Engine(config)
    recorder = Recorder(engine)
    engine.add_adapter(recorder)
    bot = RunningBot(engine).start(http=False)
    try:
        texts = [out.text for out in recorder.sent]
        assert (
            "Job 1 was interrupted by a restart. Send retry 1 to run it again." in texts
        )
        assert engine.storage.jobs.get(1).state == "failed"
        say(bot, "retry 1")
        assert recorder.sent[-1].text.startswith("Job 1: retrying api: long one")
        assert engine.scheduler.is_running(1)
    finally:
        bot.stop()


def test_progress_is_coalesced(tmp_path, origin):
    engine = Engine(basic_config(tmp_path, origin, agent=command_agent("fix")))
    recorder = Recorder(engine)
    engine.add_adapter(recorder)
    engine.notifier.interval = 0.5
    job = engine.storage.jobs.create(
        repo="api", channel="web", chat_id="b", sender_id="x"
    )

    async def burst() -> None:
        for n in range(20):
            await engine.notifier.progress(job, f"step {n}")
        await asyncio.sleep(0.8)

    asyncio.run(burst())

    assert [out.text for out in recorder.sent] == ["Job 1: step 0", "Job 1: step 19"]

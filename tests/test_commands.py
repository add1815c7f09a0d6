"""Tests for the chat grammar in bot.commands."""

from __future__ import annotations

import re
from typing import get_args

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from bot.commands import (
    HELP,
    USAGE,
    Answer,
    Cancel,
    Command,
    Diff,
    FixIssue,
    Followup,
    Help,
    Logs,
    Repos,
    Retry,
    RunTask,
    Status,
    Unknown,
    closest,
    parse,
    render,
)

COMMAND_TYPES = get_args(Command)

CASES: list[tuple[str, Command]] = [
    # The contract lines, verbatim.
    ("fix #42 in api", FixIssue("api", 42)),
    ("fix issue 42 in acme/api", FixIssue("acme/api", 42)),
    ("work on #42 in api", FixIssue("api", 42)),
    ("in api: add a dark mode toggle", RunTask("api", "add a dark mode toggle")),
    ("status", Status()),
    ("jobs", Status()),
    ("status 7", Status(7)),
    ("logs 7", Logs(7)),
    ("diff 7", Diff(7)),
    ("cancel 7", Cancel(7)),
    ("retry 7", Retry(7)),
    ("followup 7: also update the docs", Followup(7, "also update the docs")),
    ("answer 7 2", Answer("2", 7)),
    ("2", Answer("2")),
    ("repos", Repos()),
    ("help", Help()),
    # Case, whitespace, Telegram slashes and bot names.
    ("  FIX #42 IN api  ", FixIssue("api", 42)),
    ("Status", Status()),
    ("/status", Status()),
    ("/status@SwarmBot 7", Status(7)),
    ("/fix 42 in api", FixIssue("api", 42)),
    ("/fix@SwarmBot #42 in api", FixIssue("api", 42)),
    ("/logs_7", Logs(7)),
    ("/start", Help()),
    ("/help", Help()),
    ("@SwarmBot status 7", Status(7)),
    ("?", Help()),
    # Issue references, prepositions and verbs.
    ("fix issues 42 in api", FixIssue("api", 42)),
    ("fix issue number 42 in api", FixIssue("api", 42)),
    ("fix number 42 in api", FixIssue("api", 42)),
    ("please fix #42 in api", FixIssue("api", 42)),
    ("fix #42 in api please", FixIssue("api", 42)),
    ("can you fix #42 in api?", FixIssue("api", 42)),
    ("fix #42 in api!", FixIssue("api", 42)),
    ("fix #42 in api, thanks!", FixIssue("api", 42)),
    ("fix #42 on api", FixIssue("api", 42)),
    ("fix #42 for api", FixIssue("api", 42)),
    ("fix api#42", FixIssue("api", 42)),
    ("fix acme/api#42", FixIssue("acme/api", 42)),
    ("fix api issue 42", FixIssue("api", 42)),
    ("resolve #42 in api", FixIssue("api", 42)),
    ("solve #42 in api", FixIssue("api", 42)),
    ("close #42 in api", FixIssue("api", 42)),
    ("address #42 in api", FixIssue("api", 42)),
    ("work on issue #42 in repo api", FixIssue("api", 42)),
    ("fix #42 in the api repo", FixIssue("api", 42)),
    ("fix https://github.com/acme/api/issues/42", FixIssue("acme/api", 42)),
    ("Fix #42 in Acme/API", FixIssue("Acme/API", 42)),
    ("fix #42 in my-repo.js", FixIssue("my-repo.js", 42)),
    # Job references.
    ("status #7", Status(7)),
    ("status job 7", Status(7)),
    ("status of job 7", Status(7)),
    ("job 7", Status(7)),
    ("cancel job 7", Cancel(7)),
    ("cancel #7.", Cancel(7)),
    ("stop 7", Cancel(7)),
    ("logs for job 7", Logs(7)),
    ("show me the logs of 7", Logs(7)),
    ("show diff 7", Diff(7)),
    ("retry job #7 please", Retry(7)),
    ("rerun 7", Retry(7)),
    ("status 007", Status(7)),
    ("status 999999999", Status(999_999_999)),
    # Tasks.
    ("in api, add a dark mode toggle", RunTask("api", "add a dark mode toggle")),
    ("in acme/api: Add  a Toggle.", RunTask("acme/api", "Add  a Toggle.")),
    ("IN API: keep My Case", RunTask("API", "keep My Case")),
    ("in api - add tests", RunTask("api", "add tests")),
    ("in the api repo: add tests", RunTask("api", "add tests")),
    ("acme/api: add tests", RunTask("acme/api", "add tests")),
    ("in api:\n  line one\n  line two\n", RunTask("api", "line one\n  line two")),
    ("in api: fix #42", FixIssue("api", 42)),
    ("in api: fix #42 and add a test", RunTask("api", "fix #42 and add a test")),
    # Followups.
    ("follow up 7: also the docs", Followup(7, "also the docs")),
    ("follow-up on #7: also the docs", Followup(7, "also the docs")),
    ("followup 7 also update the docs", Followup(7, "also update the docs")),
    ("FOLLOWUP job 7 — Keep Case", Followup(7, "Keep Case")),
    ("/followup@SwarmBot 7 more", Followup(7, "more")),
    # Answers.
    ("answer 2", Answer("2")),
    ("answer 7 use a hash", Answer("use a hash", 7)),
    ("answer #7: option 3", Answer("3", 7)),
    ("answer: use a hash", Answer("use a hash")),
    ("answer no", Answer("no")),
    ("reply 7 Use A Hash", Answer("Use A Hash", 7)),
    ("2.", Answer("2")),
    ("option 2", Answer("2")),
    # Repos and help.
    ("list repos", Repos()),
    ("my repositories", Repos()),
    ("Help!", Help()),
    ("commands", Help()),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_phrasings(text: str, expected: Command) -> None:
    assert parse(text) == expected


UNKNOWN: list[tuple[str, str]] = [
    # Misspellings suggest the corrected command.
    ("stauts 7", "status 7"),
    ("stauts", "status"),
    ("cancle 3", "cancel 3"),
    ("hepl", "help"),
    ("lgos 7", "logs 7"),
    ("rety 7", "retry 7"),
    ("fxi #42 in api", "fix #42 in api"),
    ("folowup 7: x", "followup 7: x"),
    ("repso", "repos"),
    # Missing values suggest a usage with placeholders.
    ("cancel", "cancel <job>"),
    ("logs", "logs <job>"),
    ("diff please", "diff <job>"),
    ("retry it", "retry <job>"),
    ("cancle", "cancel <job>"),
    ("status 0", "status <job>"),
    ("cancel 1000000000", "cancel <job>"),
    ("fix #42", "fix #42 in <repo>"),
    ("fix issue #42", "fix #42 in <repo>"),
    ("fix #42 in", "fix #42 in <repo>"),
    ("fix #0 in api", "fix #<issue> in api"),
    ("fix the login bug in api", "in api: fix the login bug"),
    ("followup 7", "followup 7: <text>"),
    ("followup 0: x", "followup <job>: <text>"),
    ("answer", "answer <job> <reply>"),
    ("answer 0 2", "answer <job> <reply>"),
    ("in api:", "in api: <task>"),
    # Ordinary answers stay unknown, without a misleading suggestion.
    ("hash", ""),
    ("yes", ""),
    ("use a hash, not a salt", ""),
    ("Note: use hashes", ""),
    ("api: add a toggle", ""),
    ("in fact, use a hash", ""),
    ("in short: yes", ""),
    ("#7", ""),
    ("7 2", ""),
    ("/", ""),
    ("", ""),
]


@pytest.mark.parametrize(("text", "suggestion"), UNKNOWN)
def test_unknown_and_suggestions(text: str, suggestion: str) -> None:
    assert parse(text) == Unknown(text.strip(), suggestion)


def test_unknown_keeps_the_stripped_original() -> None:
    assert parse("  Use  a HASH \n") == Unknown("Use  a HASH")


def test_alias_task_needs_known_repos() -> None:
    assert parse("api: add a toggle", repos=["api"]) == RunTask("api", "add a toggle")
    assert parse("API: add", repos=["acme/api"]) == RunTask("API", "add")
    assert parse("api: fix #42", repos=["api"]) == FixIssue("api", 42)
    assert parse("Note: use hashes", repos=["api"]) == Unknown("Note: use hashes")


def test_closest() -> None:
    assert closest("apu", ["web", "acme/api"]) == "acme/api"
    assert closest("API", ["api", "web"]) == "api"
    assert closest("web", ["acme/api", "Web"]) == "Web"
    assert closest("acme/apj", ["acme/api", "acme/web"]) == "acme/api"
    assert closest("zzzz", ["api", "web"]) is None
    assert closest("", ["api"]) is None
    assert closest("api", []) is None
    assert closest("x" * 1_000_000, ["api"]) is None


def test_help_text_is_phone_friendly() -> None:
    lines = HELP.splitlines()
    assert all(len(line) <= 34 for line in lines)
    for word in ("fix", "status", "logs", "diff", "cancel", "retry", "followup"):
        assert word in HELP
    for word in ("answer", "repos", "help"):
        assert word in HELP


def test_usage_placeholders_never_start_work() -> None:
    actions = (FixIssue, RunTask, Followup, Cancel, Retry, Logs, Diff)
    for usage in USAGE.values():
        assert not isinstance(parse(usage), actions), usage


@pytest.mark.parametrize(
    "text",
    [
        "a" * 1_000_000,
        "in api: " + "x" * 1_000_000,
        "fix " + "#" * 1_000_000,
        "fix " + "1" * 1_000_000 + " in api",
        "1" * 1_000_000,
        " " * 1_000_000,
        "answer " + "7 " * 500_000,
        "followup 7 " + "9" * 1_000_000,
        "stauts " + "x " * 500_000,
        "in " + "a" * 1_000_000 + ": go",
        "status " + "#" * 1_000_000,
        ("fix " + "issue " * 200_000) + "42 in api",
        "\u202e" * 1_000_000,
        "in api: " + "\x00🚀" * 500_000,
    ],
)
def test_huge_input_returns(text: str) -> None:
    assert isinstance(parse(text), COMMAND_TYPES)


def test_huge_task_keeps_its_text() -> None:
    task = "add " + "x" * 1_000_000
    assert parse(f"in api: {task}") == RunTask("api", task)


# --- property tests -------------------------------------------------------

STOP = {"a", "an", "the", "in", "on", "for", "at", "from", "to", "of", "it"}
NAME = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,20}", fullmatch=True).filter(
    lambda name: (
        name.lower() not in STOP
        and name.lower()
        not in {"repo", "repository", "project", "issue", "issues", "bug", "ticket"}
        and name.lower() not in {"number", "job", "please", "this", "that", "my"}
        and name.lower() not in {"your", "fact", "short", "general", "case", "brief"}
        and name.lower() not in {"addition", "particular", "theory", "practice"}
        and name.lower() not in {"total", "summary", "pls", "plz", "thanks", "thx"}
    )
)
REPO = st.one_of(NAME, st.builds(lambda o, n: f"{o}/{n}", NAME, NAME))
NUMBER = st.integers(min_value=1, max_value=10**9 - 1)
FIX_VERBS = re.compile(r"\s*(fix|resolve|solve|close|address|tackle|work)", re.I)
FREE_TEXT = st.text(min_size=1).filter(
    lambda t: bool(t.strip()) and not FIX_VERBS.match(t)
)
FOLLOW_TEXT = FREE_TEXT.filter(
    lambda t: t.strip()[:1] not in {":", ",", ";", "-", "\u2013", "\u2014"}
)
WORDS = st.from_regex(r"[A-Za-z][A-Za-z ,.!?]{0,40}", fullmatch=True).filter(
    lambda t: not FIX_VERBS.match(t)
)

FIX_TEMPLATES = [
    "fix #{n} in {r}",
    "fix issue {n} in {r}",
    "fix issues #{n} in {r}",
    "work on #{n} in {r}",
    "fix #{n} on {r}",
    "fix {r}#{n}",
    "/fix {n} in {r}",
    "/fix@SwarmBot {n} in {r}",
    "please resolve #{n} in {r}!",
    "solve #{n} in {r}.",
    "close issue number {n} in {r}",
    "address #{n} in repo {r}",
    "work on issue #{n} in repo {r}",
    "in {r}: fix #{n}",
    "  Fix   #{n}   in {r}  ",
]
JOB_TEMPLATES: list[tuple[str, type]] = [
    ("status {j}", Status),
    ("status #{j}", Status),
    ("/status@SwarmBot {j}", Status),
    ("job {j}", Status),
    ("logs {j}", Logs),
    ("logs job {j}", Logs),
    ("/logs_{j}", Logs),
    ("diff {j}", Diff),
    ("diff #{j}?", Diff),
    ("cancel {j}", Cancel),
    ("cancel job {j}", Cancel),
    ("retry {j}", Retry),
    ("retry #{j} please", Retry),
]


@st.composite
def valid_phrases(draw: st.DrawFn) -> str:
    """A generated, well-formed command phrase of any kind."""
    kind = draw(st.sampled_from(["fix", "job", "task", "followup", "answer", "fixed"]))
    if kind == "fix":
        template = draw(st.sampled_from(FIX_TEMPLATES))
        return template.format(n=draw(NUMBER), r=draw(REPO))
    if kind == "job":
        template, _ = draw(st.sampled_from(JOB_TEMPLATES))
        return template.format(j=draw(NUMBER))
    if kind == "task":
        return f"in {draw(REPO)}: {draw(WORDS)}"
    if kind == "followup":
        return f"followup {draw(NUMBER)}: {draw(WORDS)}"
    if kind == "answer":
        return f"answer {draw(NUMBER)} {draw(WORDS)}"
    return draw(st.sampled_from(["status", "jobs", "repos", "help", "/start", "2"]))


@st.composite
def commands(draw: st.DrawFn) -> Command:
    """A generated command value of a kind that parse can produce."""
    job = draw(NUMBER)
    return draw(
        st.sampled_from(
            [
                FixIssue(draw(REPO), draw(NUMBER)),
                RunTask(draw(REPO), draw(FREE_TEXT).strip()),
                Status(),
                Status(job),
                Logs(job),
                Diff(job),
                Cancel(job),
                Retry(job),
                Followup(job, draw(FOLLOW_TEXT).strip()),
                Answer(draw(WORDS).strip() or "ok", job),
                Answer(str(job)),
                Repos(),
                Help(),
            ]
        )
    )


PREFIXES = st.sampled_from(
    ["", "/", "fix ", "in ", "in api: ", "answer ", "followup 7 ", "status ", "@x "]
)


@given(st.text())
def test_parse_never_raises(text: str) -> None:
    assert isinstance(parse(text), COMMAND_TYPES)


@given(PREFIXES, st.text(), st.sampled_from(["", "!", " please", "?", "🙏"]))
def test_parse_never_raises_near_commands(prefix: str, text: str, tail: str) -> None:
    assert isinstance(parse(prefix + text + tail), COMMAND_TYPES)


@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=1000, max_size=5000))
def test_parse_never_raises_on_long_text(text: str) -> None:
    assert isinstance(parse(text), COMMAND_TYPES)


@given(valid_phrases())
def test_valid_phrases_are_recognised(phrase: str) -> None:
    assert not isinstance(parse(phrase), Unknown)


@given(valid_phrases(), st.sampled_from([str.upper, str.lower, str.title]))
def test_command_words_are_case_insensitive(phrase: str, change) -> None:
    assert type(parse(change(phrase))) is type(parse(phrase))


@given(st.sampled_from(FIX_TEMPLATES), NUMBER, REPO)
def test_fix_round_trip(template: str, issue: int, repo: str) -> None:
    assert parse(template.format(n=issue, r=repo)) == FixIssue(repo, issue)


@given(st.sampled_from(JOB_TEMPLATES), NUMBER)
def test_job_round_trip(template_kind: tuple[str, type], job: int) -> None:
    template, kind = template_kind
    assert parse(template.format(j=job)) == kind(job)


@given(REPO, FREE_TEXT, st.sampled_from([": ", ", ", ":", " - "]))
def test_task_round_trip(repo: str, task: str, separator: str) -> None:
    assume(not task.lstrip().startswith(("-", "\u2013", "\u2014")))
    assert parse(f"in {repo}{separator}{task}") == RunTask(repo, task.strip())


@given(NUMBER, FOLLOW_TEXT, st.sampled_from([": ", " ", " - ", ", "]))
def test_followup_round_trip(job: int, text: str, separator: str) -> None:
    parsed = parse(f"follow up {job}{separator}{text}")
    assert parsed == Followup(job, text.strip())


@given(NUMBER, WORDS)
def test_answer_round_trip(job: int, text: str) -> None:
    assume(text.strip())
    assert parse(f"answer {job} {text}") == Answer(text.strip(), job)


@given(NUMBER)
def test_bare_and_single_number_answers(option: int) -> None:
    assert parse(str(option)) == Answer(str(option))
    assert parse(f"answer {option}") == Answer(str(option))


@given(commands())
def test_render_round_trip(command: Command) -> None:
    assert parse(render(command)) == command


@given(NUMBER.map(lambda n: n + 10**9 - 1), st.sampled_from(JOB_TEMPLATES))
def test_numbers_too_big_are_unknown(big: int, template_kind: tuple[str, type]) -> None:
    template, _ = template_kind
    assert isinstance(parse(template.format(j=big)), Unknown)
    assert isinstance(parse(f"fix #{big} in api"), Unknown)

"""The GitHub forge, driven through the real PyGithub client against a fake API."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Iterator

import pytest

from bot.forge import (
    ForgeError,
    GitHubForge,
    pull_request_body,
    pull_request_title,
    verify_webhook_signature,
)
from tests.fakes.github import FakeGitHub

TOKEN = "ghp_s3cret_token_value"
REPO = "acme/api"


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub(token=TOKEN) as gh:
        gh.add_repo(REPO)
        gh.add_issue(
            REPO,
            42,
            "Division by zero in stats",
            "`mean([])` raises ZeroDivisionError.",
            comments=[("alice", "seen on prod"), ("bob", "happens with empty input")],
        )
        yield gh


@pytest.fixture
def forge(fake: FakeGitHub) -> GitHubForge:
    return GitHubForge(TOKEN, fake.api_url, REPO)


def open_fix_42(forge: GitHubForge, draft: bool = False, summary: str = "Guarded."):
    return forge.open_pull_request(
        head="swarm/fix-42",
        base="main",
        title=pull_request_title(42, "Division by zero in stats"),
        body=pull_request_body(42, summary, "pytest -q", "12 passed", 95, 0.31),
        draft=draft,
    )


# -- reading issues -------------------------------------------------------


def test_reads_an_issue_with_its_comments(forge: GitHubForge, fake: FakeGitHub):
    issue = forge.get_issue(42)

    assert issue.number == 42
    assert issue.title == "Division by zero in stats"
    assert issue.body == "`mean([])` raises ZeroDivisionError."
    assert issue.comments == ["alice: seen on prod", "bob: happens with empty input"]
    assert issue.url == f"{fake.web_url}/acme/api/issues/42"


def test_keeps_only_the_last_twenty_comments(forge: GitHubForge, fake: FakeGitHub):
    fake.add_issue(
        REPO, 7, "Flaky", comments=[(f"u{i}", f"note {i}") for i in range(130)]
    )

    issue = forge.get_issue(7)

    assert len(issue.comments) == 20
    assert issue.comments[0] == "u110: note 110"
    assert issue.comments[-1] == "u129: note 129"
    assert len(fake.requests_to("GET", r"/repos/acme/api/issues/7/comments")) <= 2


def test_an_issue_without_body_or_comments_reads_as_empty(
    forge: GitHubForge, fake: FakeGitHub
):
    fake.add_issue(REPO, 8, "Bare", body=None)

    issue = forge.get_issue(8)

    assert (issue.body, issue.comments) == ("", [])
    assert fake.requests_to("GET", r".*/comments") == []


def test_a_public_issue_reads_without_a_token(fake: FakeGitHub):
    issue = GitHubForge("", fake.api_url, REPO).get_issue(42)

    assert issue.title == "Division by zero in stats"


def test_unknown_issue_is_named_in_the_error(forge: GitHubForge):
    with pytest.raises(ForgeError, match=r"issue #404 not found in acme/api"):
        forge.get_issue(404)


def test_unknown_repository_is_named_in_the_error(fake: FakeGitHub):
    forge = GitHubForge(TOKEN, fake.api_url, "acme/nope")

    with pytest.raises(ForgeError, match=r"acme/nope not found"):
        forge.get_issue(42)


# -- pull requests --------------------------------------------------------


def test_opens_a_pull_request(forge: GitHubForge, fake: FakeGitHub):
    pr = open_fix_42(forge)

    assert pr.created
    assert pr.url == f"{fake.web_url}/acme/api/pull/{pr.number}"
    [opened] = fake.pulls
    assert opened["number"] == pr.number
    assert opened["title"] == "Fix #42: Division by zero in stats"
    assert opened["body"].startswith("Fixes #42")
    assert (opened["head"], opened["base"]) == ("swarm/fix-42", "main")
    assert opened["draft"] is False


def test_opens_a_draft_when_asked(forge: GitHubForge, fake: FakeGitHub):
    open_fix_42(forge, draft=True)

    assert fake.pulls[0]["draft"] is True
    assert fake.requests_to("POST", r"/repos/acme/api/pulls")[0].json["draft"] is True


def test_falls_back_to_a_ready_pr_where_drafts_are_unsupported(
    forge: GitHubForge, fake: FakeGitHub
):
    fake.fail_next(
        422,
        "Draft pull requests are not supported in this repository.",
        method="POST",
    )

    pr = open_fix_42(forge, draft=True)

    assert pr.created
    assert fake.pulls[0]["draft"] is False


def test_a_followup_updates_the_open_pull_request(forge: GitHubForge, fake: FakeGitHub):
    first = open_fix_42(forge, summary="First try.")
    second = open_fix_42(forge, summary="Second try, with a test.")

    assert not second.created
    assert (second.number, second.url) == (first.number, first.url)
    assert len(fake.pulls) == 1
    assert "Second try, with a test." in fake.pulls[0]["body"]
    assert len(fake.requests_to("POST", r"/repos/acme/api/pulls")) == 1
    assert len(fake.requests_to("PATCH", rf"/repos/acme/api/pulls/{first.number}")) == 1


def test_a_closed_pull_request_does_not_count_as_open(
    forge: GitHubForge, fake: FakeGitHub
):
    old = fake.add_pull(REPO, head="swarm/fix-42", state="closed")

    pr = open_fix_42(forge)

    assert pr.created
    assert pr.number != old["number"]


def test_github_validation_errors_reach_the_user(forge: GitHubForge, fake: FakeGitHub):
    fake.fail_next(422, "No commits between main and swarm/fix-42", method="POST")

    with pytest.raises(ForgeError, match="No commits between main and swarm/fix-42"):
        open_fix_42(forge)


def test_a_token_without_pr_rights_is_told_what_it_needs(
    forge: GitHubForge, fake: FakeGitHub
):
    fake.fail_next(403, method="POST")

    with pytest.raises(ForgeError) as caught:
        open_fix_42(forge)

    assert "403" in str(caught.value)
    assert "write access to Pull requests" in str(caught.value)


def test_disabled_issues_are_reported(forge: GitHubForge, fake: FakeGitHub):
    fake.fail_next(410, "Issues are disabled for this repo")

    with pytest.raises(ForgeError, match="Issues are disabled for this repo"):
        forge.get_issue(42)


def test_opening_a_pull_request_without_a_token_asks_for_one(fake: FakeGitHub):
    forge = GitHubForge("", fake.api_url, REPO)

    with pytest.raises(ForgeError, match=r"set \[github\] token"):
        open_fix_42(forge)


def test_works_with_a_github_enterprise_api_prefix():
    with FakeGitHub(token=TOKEN, prefix="/api/v3") as gh:
        gh.add_repo(REPO)
        gh.add_issue(REPO, 42, "Division by zero in stats")
        forge = GitHubForge(TOKEN, gh.api_url, REPO)

        assert gh.api_url.endswith("/api/v3")
        assert forge.get_issue(42).title == "Division by zero in stats"
        pr = open_fix_42(forge)
        assert pr.url == f"{gh.web_url}/acme/api/pull/{pr.number}"
        assert forge.check() == "acme/api reachable, push access"


# -- failures -------------------------------------------------------------


def test_a_wrong_token_is_reported_without_revealing_it(
    fake: FakeGitHub, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    wrong = "ghp_wrong_token_1234567890"
    forge = GitHubForge(wrong, fake.api_url, REPO)

    with pytest.raises(ForgeError) as caught:
        forge.get_issue(42)

    message = str(caught.value)
    assert "token" in message
    assert "401" in message
    assert wrong not in message
    assert wrong not in repr(forge)
    assert wrong not in caplog.text
    assert "Traceback" not in message


def test_a_dead_api_fails_within_seconds():
    with FakeGitHub(token=TOKEN) as gh:
        api_url = gh.api_url
    forge = GitHubForge(TOKEN, api_url, REPO)

    started = time.monotonic()
    with pytest.raises(ForgeError, match="GitHub is unreachable"):
        forge.get_issue(42)

    assert time.monotonic() - started < 5


def test_a_silent_api_times_out(fake: FakeGitHub):
    fake.stall(3)
    forge = GitHubForge(TOKEN, fake.api_url, REPO, timeout=1)

    started = time.monotonic()
    with pytest.raises(ForgeError, match=r"did not answer within 1 s"):
        forge.get_issue(42)

    assert time.monotonic() - started < 3
    fake.stall(0)


def test_a_passing_server_error_is_retried(forge: GitHubForge, fake: FakeGitHub):
    fake.fail_next(502)

    assert forge.get_issue(42).number == 42


def test_a_lasting_server_error_is_reported(forge: GitHubForge, fake: FakeGitHub):
    fake.fail_next(503, times=5)

    with pytest.raises(ForgeError, match=r"internal error \(503\)"):
        forge.get_issue(42)


def test_rate_limit_says_when_to_retry(forge: GitHubForge, fake: FakeGitHub):
    fake.fail_next(
        403,
        "API rate limit exceeded for user ID 1.",
        headers={
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(int(time.time()) + 600),
        },
    )

    with pytest.raises(ForgeError, match=r"rate limit reached; try again in 10 min"):
        forge.get_issue(42)


# -- doctor ---------------------------------------------------------------


def test_check_reports_push_access(forge: GitHubForge):
    assert forge.check() == "acme/api reachable, push access"


def test_check_explains_a_read_only_token(fake: FakeGitHub):
    fake.add_repo("acme/docs", push=False)

    with pytest.raises(ForgeError, match="cannot push"):
        GitHubForge(TOKEN, fake.api_url, "acme/docs").check()


def test_check_asks_for_a_missing_token(fake: FakeGitHub):
    with pytest.raises(ForgeError, match=r"set \[github\] token"):
        GitHubForge("", fake.api_url, REPO).check()


def test_check_rejects_a_wrong_token(fake: FakeGitHub):
    with pytest.raises(ForgeError, match=r"refused the token"):
        GitHubForge("nope", fake.api_url, REPO).check()


def test_check_rejects_a_malformed_slug(fake: FakeGitHub):
    with pytest.raises(ForgeError, match="owner/name"):
        GitHubForge(TOKEN, fake.api_url, "just-a-name").check()


# -- texts ----------------------------------------------------------------


def test_body_links_the_issue_and_reports_the_run():
    body = pull_request_body(
        42,
        summary="Return 0 for an empty list and add a regression test.",
        test_command="pytest -q",
        test_result="12 passed in 0.31s",
        duration_s=754,
        cost_usd=0.4213,
    )

    assert body.startswith("Fixes #42\n")
    assert "Return 0 for an empty list and add a regression test." in body
    assert "`pytest -q`" in body
    assert "12 passed in 0.31s" in body
    assert "12 min 34 s" in body
    assert "$0.42" in body


def test_body_without_issue_or_tests_says_so():
    body = pull_request_body(None, "Renamed the flag.", "", "", 42, 0)

    assert "Fixes" not in body
    assert "No test command is configured" in body
    assert "42 s" in body


def test_body_fences_long_test_output_safely():
    output = "FAILED test_stats.py::test_mean\n```\nE   ZeroDivisionError\n1 failed"

    body = pull_request_body(42, "Tried.", "pytest", output, 5, 0.1)

    assert "````text\n" + output + "\n````" in body


def test_title_names_the_issue():
    assert pull_request_title(42, "Division by zero in stats") == (
        "Fix #42: Division by zero in stats"
    )


def test_title_from_a_task_is_its_first_line_trimmed():
    task = (
        "add a --dry-run flag to the deploy script so people can preview "
        "what would change\nand document it"
    )

    title = pull_request_title(None, task)

    assert title.startswith("Add a --dry-run flag to the deploy script")
    assert len(title) <= 70
    assert title.endswith("…")
    assert "document" not in title


# -- webhooks -------------------------------------------------------------


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_webhook_signature_accepts_github_signature():
    body = b'{"action":"opened"}'

    assert verify_webhook_signature("hook-secret", body, sign("hook-secret", body))


@pytest.mark.parametrize(
    "header",
    [
        sign("other-secret", b'{"action":"opened"}'),
        sign("hook-secret", b'{"action":"closed"}'),
        None,
        "",
        "sha256=",
        "sha1=0123abcd",
        "sha256=not-hex-at-all-é",
        "garbage",
    ],
)
def test_webhook_signature_refuses_forged_or_missing(header: str | None):
    assert not verify_webhook_signature("hook-secret", b'{"action":"opened"}', header)


def test_webhook_signature_refuses_everything_without_a_secret():
    body = b"{}"

    assert not verify_webhook_signature("", body, sign("", body))

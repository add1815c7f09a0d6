"""The GitHub forge: read issues, open or update pull requests, check webhooks.

Every PyGithub and network error becomes a ForgeError whose message is short,
safe to show in chat and never contains the token.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import github
import requests
from github import Auth, Github, GithubException
from github.Issue import Issue as GhIssue
from github.PullRequest import PullRequest as GhPull
from github.Repository import Repository as GhRepo
from urllib3.exceptions import NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.util.retry import Retry

from bot.messages import format_duration

log = logging.getLogger(__name__)

TIMEOUT_S = 10
LAST_COMMENTS = 20
PER_PAGE = 100
TASK_TITLE_CHARS = 70
MAX_TITLE_CHARS = 256
MAX_BODY_CHARS = 60_000
MAX_SUMMARY_CHARS = 40_000
MAX_RESULT_CHARS = 8_000
MAX_RESULT_LINES = 60
WRITE_HINT = (
    "give the token read and write access to Contents and Pull requests "
    "on the repository"
)


@dataclass(frozen=True)
class Issue:
    """A GitHub issue as the agent's prompt needs it."""

    number: int
    title: str
    body: str
    comments: list[str]
    url: str


@dataclass(frozen=True)
class PullRequest:
    """An opened or updated pull request; `created` is False for an update."""

    number: int
    url: str
    created: bool


class ForgeError(Exception):
    """GitHub could not do it; the message is short and safe to send to chat."""


class GitHubForge:
    """One GitHub repository, reached through PyGithub; every call blocks."""

    def __init__(
        self, token: str, api_url: str, slug: str, *, timeout: int = TIMEOUT_S
    ) -> None:
        _quiet_http_logs()
        self._token = token.strip()
        self.slug = slug.strip().strip("/")
        self.api_url = (api_url or "https://api.github.com").rstrip("/")
        self.timeout = timeout
        self.host = urlsplit(self.api_url).hostname or self.api_url
        self._github = Github(
            auth=Auth.Token(self._token) if self._token else None,
            base_url=self.api_url,
            timeout=timeout,
            per_page=PER_PAGE,
            retry=Retry(
                total=2,
                connect=2,
                read=1,
                status=2,
                backoff_factor=0.5,
                status_forcelist=(500, 502, 503, 504),
                raise_on_status=False,
                respect_retry_after_header=False,
            ),
            # A job makes a handful of calls; PyGithub's default pauses between
            # requests only slow a bot this small down.
            seconds_between_requests=None,
            seconds_between_writes=None,
            lazy=True,
        )

    def __repr__(self) -> str:
        return f"GitHubForge({self.slug!r}, api_url={self.api_url!r})"

    def get_issue(self, number: int) -> Issue:
        """Issue `number` with its title, body and last 20 comments."""
        self._require_slug()
        not_found = f"issue #{number} not found in {self.slug}"
        try:
            with self._errors(
                f"read issue #{number}", not_found, "read access to Issues"
            ):
                issue = self._github.get_repo(self.slug).get_issue(number)
                title, body, url = issue.title or "", issue.body or "", issue.html_url
                if url is None:
                    raise ForgeError(self._not_github())
                count = issue.comments or 0
                comments = self._last_comments(issue, count) if count else []
        except ForgeError as exc:
            cause = exc.__cause__
            if (
                isinstance(cause, GithubException)
                and cause.status == 404
                and not self._repo_visible()
            ):
                raise ForgeError(self._repo_not_found()) from cause
            raise
        log.info("read issue #%s of %s (%d comments)", number, self.slug, count)
        return Issue(number, title, body, comments, url)

    def open_pull_request(
        self, head: str, base: str, title: str, body: str, draft: bool = False
    ) -> PullRequest:
        """Open a pull request from `head`, or update the open one it already has."""
        self._require_slug()
        owner = self.slug.split("/", 1)[0]
        label = head if ":" in head else f"{owner}:{head}"
        with self._errors(
            f"open a pull request from {head}",
            self._repo_not_found(),
            "write access to Pull requests",
        ):
            repo = self._github.get_repo(self.slug)
            existing = self._open_pull(repo, label)
            if existing is None:
                try:
                    pull = self._create_pull(repo, head, base, title, body, draft)
                except GithubException as exc:
                    existing = self._open_pull(repo, label) if _exists(exc) else None
                    if existing is None:
                        raise
                else:
                    log.info("opened pull request #%s in %s", pull.number, self.slug)
                    return PullRequest(pull.number, pull.html_url, created=True)
            existing.edit(title=title, body=body)
            log.info("updated pull request #%s in %s", existing.number, self.slug)
            return PullRequest(existing.number, existing.html_url, created=False)

    def check(self) -> str:
        """Fetch the repository and say whether the token can push to it."""
        self._require_slug()
        if not self._token:
            raise ForgeError(
                f"no GitHub token: set [github] token to a token with access to "
                f"{self.slug} ({WRITE_HINT})"
            )
        with self._errors(
            "reach the repository",
            self._repo_not_found(),
            "read access to Metadata",
        ):
            repo = self._github.get_repo(self.slug)
            permissions = repo.permissions
            if repo.id is None:
                raise ForgeError(self._not_github())
            name = repo.full_name or self.slug
        if permissions is None:
            return f"{name} reachable"
        if not permissions.push:
            raise ForgeError(
                f"{name} is reachable but the token cannot push: {WRITE_HINT}"
            )
        return f"{name} reachable, push access"

    # -- internals --------------------------------------------------------

    def _repo_not_found(self) -> str:
        return (
            f"{self.slug} not found on GitHub, or the token cannot see it: check "
            "the repo's github setting and the token's repository access"
        )

    def _repo_visible(self) -> bool:
        """False only when GitHub answers 404 for the repository itself."""
        try:
            self._github.get_repo(self.slug).id  # noqa: B018 (fetches the repo)
        except GithubException as exc:
            return exc.status != 404
        except requests.RequestException:
            return True
        return True

    def _require_slug(self) -> None:
        if not re.fullmatch(r"[^/\s]+/[^/\s]+", self.slug):
            raise ForgeError(
                f"{self.slug or 'no GitHub repository'} is not owner/name: "
                'set github = "owner/name" for the repo'
            )

    def _last_comments(self, issue: GhIssue, count: int) -> list[str]:
        """The last comments as `author: text`, oldest first, in one or two pages."""
        pages = issue.get_comments()
        first = max(0, count - LAST_COMMENTS)
        comments = []
        for page in range(first // PER_PAGE, (count - 1) // PER_PAGE + 1):
            comments.extend(pages.get_page(page))
        lines = [
            f"{c.user.login if c.user else 'ghost'}: {(c.body or '').strip()}"
            for c in comments
        ]
        return lines[-LAST_COMMENTS:]

    @staticmethod
    def _open_pull(repo: GhRepo, label: str) -> GhPull | None:
        for pull in repo.get_pulls(state="open", head=label):
            return pull
        return None

    def _create_pull(
        self, repo: GhRepo, head: str, base: str, title: str, body: str, draft: bool
    ) -> GhPull:
        try:
            return repo.create_pull(
                base=base, head=head, title=title, body=body, draft=draft
            )
        except GithubException as exc:
            if not (draft and exc.status == 422 and "draft" in _details(exc).lower()):
                raise
            log.warning(
                "%s does not allow draft pull requests; opening a ready one", self.slug
            )
            return repo.create_pull(base=base, head=head, title=title, body=body)

    @contextmanager
    def _errors(self, action: str, not_found: str, access: str) -> Iterator[None]:
        """Turn PyGithub and requests failures inside the block into ForgeError."""
        try:
            yield
        except ForgeError:
            raise
        except GithubException as exc:
            log.warning(
                "GitHub: %s in %s failed: %s", action, self.slug, self._scrub(str(exc))
            )
            message = self._explain(exc, action, not_found, access)
            raise ForgeError(self._scrub(message)) from exc
        except requests.RequestException as exc:
            log.warning("GitHub: %s failed: %s", action, self._scrub(str(exc)))
            raise ForgeError(self._network_problem(exc)) from exc
        except (
            github.BadAttributeException,
            ValueError,
            TypeError,
            KeyError,
            AttributeError,
        ) as exc:
            log.warning(
                "GitHub: %s: unexpected answer: %s",
                action,
                self._scrub(repr(exc)),
                exc_info=True,
            )
            raise ForgeError(self._not_github()) from exc

    def _network_problem(self, exc: requests.RequestException) -> str:
        reason = getattr(exc.args[0] if exc.args else None, "reason", None)
        refused = isinstance(reason, NewConnectionError)  # a Timeout subclass
        if isinstance(exc, requests.ConnectTimeout) or refused:
            return f"GitHub is unreachable ({self.host})"
        if isinstance(exc, requests.Timeout) or isinstance(reason, Urllib3Timeout):
            return f"GitHub did not answer within {self.timeout} s ({self.host})"
        if isinstance(exc, requests.exceptions.SSLError):
            return f"GitHub's TLS certificate was refused ({self.host})"
        if isinstance(exc, requests.ConnectionError):
            return f"GitHub is unreachable ({self.host})"
        return f"GitHub request failed ({type(exc).__name__})"

    def _not_github(self) -> str:
        return (
            f"{self.api_url} did not answer like the GitHub API: check [github] "
            "api_url (GitHub Enterprise uses https://HOST/api/v3)"
        )

    def _explain(
        self, exc: GithubException, action: str, not_found: str, access: str
    ) -> str:
        status = exc.status
        details = _details(exc)
        if status == 401:
            if not self._token:
                return f"GitHub needs a token to {action}: set [github] token"
            return "GitHub refused the token (401): check [github] token"
        if isinstance(exc, github.RateLimitExceededException) or status == 429:
            return f"GitHub rate limit reached; {self._retry_after(exc)}"
        if status == 403:
            return (
                f"GitHub refused to {action} in {self.slug} (403: {details}); "
                f"the token needs {access}"
            )
        if status == 404:
            return not_found
        if status == 422:
            return f"GitHub rejected the request to {action}: {details}"
        if status >= 500:
            return f"GitHub had an internal error ({status}); try again in a minute"
        return f"GitHub could not {action} ({status}: {details})"

    @staticmethod
    def _retry_after(exc: GithubException) -> str:
        headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
        try:
            reset = float(headers["x-ratelimit-reset"])
        except (KeyError, ValueError):
            return "try again later"
        minutes = max(1, round((reset - time.time()) / 60))
        return f"try again in {minutes} min"

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text


def pull_request_body(
    issue: int | None,
    summary: str,
    test_command: str,
    test_result: str,
    duration_s: float,
    cost_usd: float,
) -> str:
    """The Markdown body of a pull request: issue link, summary, tests, run cost."""
    parts = []
    if issue is not None:
        parts.append(f"Fixes #{issue}")
    summary = _tail_trim(summary.strip(), MAX_SUMMARY_CHARS, keep_end=False)
    parts.append("## Summary\n\n" + (summary or "_The agent left no summary._"))
    parts.append("## Verification\n\n" + _verification(test_command, test_result))
    cost = f"${cost_usd:.2f}" if cost_usd > 0 else "cost not reported"
    parts.append(
        f"---\nOpened by swarmbot · agent time {format_duration(duration_s)} · {cost}"
    )
    return _tail_trim("\n\n".join(parts) + "\n", MAX_BODY_CHARS, keep_end=False)


def pull_request_title(issue: int | None, title: str) -> str:
    """`Fix #42: <issue title>`, or the task's first line trimmed to ~70 chars."""
    lines = [line for line in title.splitlines() if line.strip()]
    text = " ".join(lines[0].split()) if lines else ""
    if issue is not None:
        head = f"Fix #{issue}"
        return _shorten(f"{head}: {text}", MAX_TITLE_CHARS) if text else head
    text = text[:1].upper() + text[1:]
    return _shorten(text, TASK_TITLE_CHARS) or "Changes by swarmbot"


def verify_webhook_signature(secret: str, body: bytes, header: str | None) -> bool:
    """True when `header` is GitHub's valid `sha256=<hmac>` of `body` under `secret`."""
    if not secret or not header:
        return False
    scheme, sep, digest = header.strip().partition("=")
    if scheme.lower() != "sha256" or not sep or not digest:
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), digest.strip().lower().encode())


def _verification(command: str, result: str) -> str:
    command, result = command.strip(), result.strip()
    if not command:
        text = "No test command is configured for this repository, so nothing ran."
        return f"{text}\n\n{_result_block(result)}" if result else text
    lines = [f"**Command:** {_inline_code(command)}"]
    if not result:
        lines.append("**Result:** not reported")
    elif "\n" not in result and len(result) <= 200:
        lines.append(f"**Result:** {result}")
    else:
        lines.append("**Result:**\n\n" + _result_block(result))
    return "\n\n".join(lines)


def _result_block(result: str) -> str:
    lines = result.splitlines()
    if len(lines) > MAX_RESULT_LINES:
        lines = ["…", *lines[-MAX_RESULT_LINES:]]
    text = _tail_trim("\n".join(lines), MAX_RESULT_CHARS, keep_end=True)
    fence = "`" * max(3, _longest_run(text, "`") + 1)
    return f"{fence}text\n{text}\n{fence}"


def _inline_code(text: str) -> str:
    ticks = "`" * (_longest_run(text, "`") + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def _longest_run(text: str, char: str) -> int:
    runs = re.findall(f"{re.escape(char)}+", text)
    return max((len(run) for run in runs), default=0)


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,.;:-") + "…"


def _tail_trim(text: str, limit: int, keep_end: bool) -> str:
    if len(text) <= limit:
        return text
    return "…" + text[-(limit - 1) :] if keep_end else text[: limit - 1] + "…"


def _details(exc: GithubException) -> str:
    """GitHub's own words from an error answer, short."""
    data = exc.data if isinstance(exc.data, dict) else {}
    messages = []
    for error in data.get("errors") or []:
        if isinstance(error, dict):
            text = error.get("message") or " ".join(
                str(error[k]) for k in ("field", "code") if error.get(k)
            )
            messages.append(str(text))
        elif error:
            messages.append(str(error))
    text = "; ".join(messages) or str(data.get("message") or exc.message or "")
    text = " ".join(text.split()).rstrip(".")
    return _shorten(text, 160) if text else "no details"


def _exists(exc: GithubException) -> bool:
    return exc.status == 422 and "already exists" in _details(exc).lower()


def _quiet_http_logs() -> None:
    """Keep request-level debug logs (headers, URLs) of urllib3 and PyGithub out."""
    for name in ("urllib3", "github"):
        logging.getLogger(name).setLevel(logging.WARNING)

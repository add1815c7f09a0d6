"""A fake GitHub REST API on 127.0.0.1 that speaks enough for PyGithub.

It serves repositories, issues, issue comments and pull requests, checks the
token, paginates like GitHub, records every request and fails on demand.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from tests.fakes.server import FakeServer

DOCS = "https://docs.github.com/rest"
Query = dict[str, str]
Answer = tuple[int, Any, dict[str, str]]  # status, JSON body, extra headers
STAMP = "2024-05-01T12:00:00Z"
REASONS = {
    400: "Problems parsing JSON",
    401: "Bad credentials",
    403: "Resource not accessible by personal access token",
    404: "Not Found",
    410: "Gone",
    422: "Validation Failed",
    500: "Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class Request:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    authorization: str | None


@dataclass
class Failure:
    """A canned error answer for the next request that matches."""

    status: int
    message: str
    headers: dict[str, str]
    method: str | None = None
    path: str | None = None

    def matches(self, method: str, path: str) -> bool:
        """True when this failure applies to `method path`."""
        if self.method is not None and self.method != method:
            return False
        return self.path is None or re.fullmatch(self.path, path) is not None


@dataclass
class Repo:
    """One repository with its issues and their comments."""

    slug: str
    id: int
    push: bool = True
    private: bool = False
    default_branch: str = "main"
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def owner(self) -> str:
        """The `owner` of `owner/name`."""
        return self.slug.split("/", 1)[0]


class FakeGitHub(FakeServer):
    """A threaded fake of GitHub's REST API; use as a context manager."""

    def __init__(self, token: str | None, prefix: str = "") -> None:
        """`token=None` accepts any token; `prefix` is e.g. `/api/v3`."""
        self.token = token
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.repos: dict[str, Repo] = {}
        self.pulls: list[dict[str, Any]] = []
        self.requests: list[Request] = []
        self.lock = threading.RLock()
        self._failures: deque[Failure] = deque()
        self._stall = 0.0
        self._ids = 1000
        handler = type("Handler", (_Handler,), {"fake": self})
        super().__init__(handler, "fake-github")

    # -- addresses --------------------------------------------------------

    @property
    def web_url(self) -> str:
        """Where the HTML pages would live, e.g. `http://127.0.0.1:PORT`."""
        return self.url

    @property
    def api_url(self) -> str:
        """The base URL to give a client, with the prefix when one is set."""
        return f"{self.web_url}{self.prefix}"

    # -- seeding ----------------------------------------------------------

    def add_repo(
        self,
        slug: str,
        *,
        push: bool = True,
        private: bool = False,
        default_branch: str = "main",
    ) -> None:
        """Create repository `owner/name`; `push=False` makes the token read-only."""
        with self.lock:
            self.repos[slug] = Repo(
                slug, self._next_id(), push, private, default_branch
            )

    def add_issue(
        self,
        slug: str,
        number: int,
        title: str,
        body: str | None = "",
        comments: list[tuple[str, str]] | None = None,
        author: str = "octocat",
    ) -> None:
        """Add issue `number` with `(author, text)` comments, oldest first."""
        with self.lock:
            repo = self.repos[slug]
            repo.issues[number] = {
                "number": number,
                "title": title,
                "body": body,
                "author": author,
                "state": "open",
            }
            repo.comments[number] = []
            for login, text in comments or []:
                self.add_comment(slug, number, login, text)

    def add_comment(self, slug: str, number: int, author: str, text: str) -> None:
        """Append a comment to issue `number`."""
        with self.lock:
            self.repos[slug].comments[number].append(
                {"id": self._next_id(), "author": author, "body": text}
            )

    def add_pull(
        self,
        slug: str,
        head: str,
        base: str = "main",
        title: str = "Existing pull request",
        body: str = "",
        state: str = "open",
        draft: bool = False,
    ) -> dict[str, Any]:
        """Seed a pull request as if someone had opened it earlier."""
        with self.lock:
            return self._create_pull(
                self.repos[slug], head, base, title, body, draft, state
            )

    # -- failure injection ------------------------------------------------

    def fail_next(
        self,
        status: int,
        message: str = "",
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next `times` matching requests with `status` and an error body.

        `method` ("POST") and `path` (a regex over the path without the prefix,
        e.g. `r"/repos/.+/pulls"`) narrow which requests fail; 422 failures
        carry `message` in `errors` like GitHub's validation errors.
        """
        text = message or REASONS.get(status, "Error")
        with self.lock:
            for _ in range(times):
                failure = Failure(status, text, headers or {}, method, path)
                self._failures.append(failure)

    def stall(self, seconds: float) -> None:
        """Wait `seconds` before answering every request (0 to stop stalling)."""
        self._stall = seconds

    # -- inspection -------------------------------------------------------

    def requests_to(self, method: str, path_pattern: str) -> list[Request]:
        """Recorded requests whose method matches and path matches the regex."""
        return [
            r
            for r in self.requests
            if r.method == method and re.fullmatch(path_pattern, r.path)
        ]

    # -- internals --------------------------------------------------------

    def _take_failure(self, method: str, path: str) -> Failure | None:
        for failure in self._failures:
            if failure.matches(method, path):
                self._failures.remove(failure)
                return failure
        return None

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def _next_number(self, repo: Repo) -> int:
        used = list(repo.issues) + [
            p["number"] for p in self.pulls if p["repo"] == repo.slug
        ]
        return max(used, default=0) + 1

    def _create_pull(
        self,
        repo: Repo,
        head: str,
        base: str,
        title: str,
        body: str | None,
        draft: bool,
        state: str = "open",
    ) -> dict[str, Any]:
        number = self._next_number(repo)
        pull = {
            "repo": repo.slug,
            "id": self._next_id(),
            "number": number,
            "title": title,
            "body": body,
            "head": head.split(":", 1)[-1],
            "head_owner": head.split(":", 1)[0] if ":" in head else repo.owner,
            "base": base,
            "draft": bool(draft),
            "state": state,
            "html_url": f"{self.web_url}/{repo.slug}/pull/{number}",
        }
        self.pulls.append(pull)
        return pull

    def user_json(self, login: str) -> dict[str, Any]:
        """A user object as GitHub embeds it."""
        return {
            "login": login,
            "id": sum(map(ord, login)),
            "type": "User",
            "site_admin": False,
            "url": f"{self.api_url}/users/{login}",
            "html_url": f"{self.web_url}/{login}",
            "avatar_url": f"{self.web_url}/avatars/{login}",
        }

    def repo_json(self, repo: Repo, authenticated: bool) -> dict[str, Any]:
        """A repository; `permissions` only for an authenticated caller."""
        owner, name = repo.slug.split("/", 1)
        data: dict[str, Any] = {
            "id": repo.id,
            "name": name,
            "full_name": repo.slug,
            "owner": self.user_json(owner),
            "private": repo.private,
            "fork": False,
            "default_branch": repo.default_branch,
            "url": f"{self.api_url}/repos/{repo.slug}",
            "html_url": f"{self.web_url}/{repo.slug}",
            "clone_url": f"{self.web_url}/{repo.slug}.git",
            "created_at": STAMP,
            "updated_at": STAMP,
            "pushed_at": STAMP,
        }
        if authenticated:
            data["permissions"] = {
                "admin": False,
                "maintain": False,
                "push": repo.push,
                "triage": repo.push,
                "pull": True,
            }
        return data

    def issue_json(self, repo: Repo, number: int) -> dict[str, Any]:
        """An issue as `GET /repos/{o}/{r}/issues/{n}` returns it."""
        issue = repo.issues[number]
        url = f"{self.api_url}/repos/{repo.slug}/issues/{number}"
        return {
            "id": number + repo.id * 100,
            "number": number,
            "title": issue["title"],
            "body": issue["body"],
            "state": issue["state"],
            "user": self.user_json(issue["author"]),
            "labels": [],
            "assignees": [],
            "comments": len(repo.comments[number]),
            "url": url,
            "comments_url": f"{url}/comments",
            "repository_url": f"{self.api_url}/repos/{repo.slug}",
            "html_url": f"{self.web_url}/{repo.slug}/issues/{number}",
            "created_at": STAMP,
            "updated_at": STAMP,
            "closed_at": None,
        }

    def pull_as_issue_json(self, repo: Repo, pull: dict[str, Any]) -> dict[str, Any]:
        """A pull request seen through the issues API, as GitHub shows it."""
        number = pull["number"]
        url = f"{self.api_url}/repos/{repo.slug}/issues/{number}"
        return {
            "id": pull["id"],
            "number": number,
            "title": pull["title"],
            "body": pull["body"],
            "state": pull["state"],
            "user": self.user_json("swarmbot"),
            "labels": [],
            "comments": 0,
            "url": url,
            "comments_url": f"{url}/comments",
            "html_url": pull["html_url"],
            "pull_request": {
                "url": f"{self.api_url}/repos/{repo.slug}/pulls/{number}",
                "html_url": pull["html_url"],
            },
            "created_at": STAMP,
            "updated_at": STAMP,
        }

    def comment_json(
        self, repo: Repo, number: int, comment: dict[str, Any]
    ) -> dict[str, Any]:
        """An issue comment."""
        cid = comment["id"]
        return {
            "id": cid,
            "body": comment["body"],
            "user": self.user_json(comment["author"]),
            "url": f"{self.api_url}/repos/{repo.slug}/issues/comments/{cid}",
            "html_url": (
                f"{self.web_url}/{repo.slug}/issues/{number}#issuecomment-{cid}"
            ),
            "issue_url": f"{self.api_url}/repos/{repo.slug}/issues/{number}",
            "created_at": STAMP,
            "updated_at": STAMP,
        }

    def pull_json(self, repo: Repo, pull: dict[str, Any]) -> dict[str, Any]:
        """A pull request as the pulls API returns it."""
        number = pull["number"]
        url = f"{self.api_url}/repos/{repo.slug}/pulls/{number}"
        repo_data = self.repo_json(repo, authenticated=False)
        sha = f"{pull['id']:040x}"
        return {
            "id": pull["id"],
            "number": number,
            "state": pull["state"],
            "title": pull["title"],
            "body": pull["body"],
            "draft": pull["draft"],
            "merged": False,
            "locked": False,
            "user": self.user_json("swarmbot"),
            "url": url,
            "html_url": pull["html_url"],
            "diff_url": f"{pull['html_url']}.diff",
            "issue_url": f"{self.api_url}/repos/{repo.slug}/issues/{number}",
            "head": {
                "label": f"{pull['head_owner']}:{pull['head']}",
                "ref": pull["head"],
                "sha": sha,
                "user": self.user_json(pull["head_owner"]),
                "repo": repo_data,
            },
            "base": {
                "label": f"{repo.owner}:{pull['base']}",
                "ref": pull["base"],
                "sha": "0" * 40,
                "user": self.user_json(repo.owner),
                "repo": repo_data,
            },
            "created_at": STAMP,
            "updated_at": STAMP,
        }


ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (method, re.compile(pattern), name)
    for method, pattern, name in [
        ("GET", r"/repos/(?P<slug>[^/]+/[^/]+)", "get_repo"),
        ("GET", r"/repos/(?P<slug>[^/]+/[^/]+)/issues/(?P<n>\d+)", "get_issue"),
        (
            "GET",
            r"/repos/(?P<slug>[^/]+/[^/]+)/issues/(?P<n>\d+)/comments",
            "list_comments",
        ),
        ("GET", r"/repos/(?P<slug>[^/]+/[^/]+)/pulls", "list_pulls"),
        ("GET", r"/repos/(?P<slug>[^/]+/[^/]+)/pulls/(?P<n>\d+)", "get_pull"),
        ("POST", r"/repos/(?P<slug>[^/]+/[^/]+)/pulls", "create_pull"),
        ("PATCH", r"/repos/(?P<slug>[^/]+/[^/]+)/pulls/(?P<n>\d+)", "edit_pull"),
    ]
]


class HttpError(Exception):
    """Raised inside a route to answer with GitHub's error body."""

    def __init__(self, status: int, message: str = "", errors: list | None = None):
        super().__init__(message)
        self.status = status
        self.message = message or REASONS.get(status, "Error")
        self.errors = errors


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGitHub
    server_version = "GitHub.com"

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet; tests read `fake.requests` instead."""

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def _handle(self) -> None:
        fake = self.fake
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query))
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = None
        path = parts.path
        in_prefix = path.startswith(fake.prefix + "/") if fake.prefix else True
        path = path[len(fake.prefix) :] if fake.prefix and in_prefix else path
        auth = self.headers.get("Authorization")
        with fake.lock:
            fake.requests.append(Request(self.command, path, query, payload, auth))
            failure = fake._take_failure(self.command, path)
        if fake._stall:
            fake.stopped.wait(fake._stall)
        try:
            if failure is not None:
                raise _failure_error(failure)
            if not in_prefix:
                raise HttpError(404)
            authenticated = self._authenticate(auth)
            status, body, headers = self._route(path, query, payload, authenticated)
        except HttpError as exc:
            status = exc.status
            body = {"message": exc.message, "documentation_url": DOCS}
            body["status"] = str(exc.status)
            if exc.errors is not None:
                body["errors"] = exc.errors
            headers = failure.headers if failure is not None else {}
        self._send(status, body, headers)

    def _authenticate(self, auth: str | None) -> bool:
        fake = self.fake
        if auth is None:
            if self.command != "GET":
                raise HttpError(401, "Requires authentication")
            return False
        scheme, _, token = auth.partition(" ")
        wrong = fake.token is not None and token != fake.token
        if scheme.lower() not in ("token", "bearer") or wrong:
            raise HttpError(401, "Bad credentials")
        return True

    def _route(
        self, path: str, query: dict[str, str], payload: Any, authenticated: bool
    ) -> Answer:
        for method, pattern, name in ROUTES:
            match = pattern.fullmatch(path)
            if match and method == self.command:
                args = match.groupdict()
                with self.fake.lock:
                    repo = self.fake.repos.get(args["slug"])
                    if repo is None or (repo.private and not authenticated):
                        raise HttpError(404)
                    number = int(args["n"]) if "n" in args else 0
                    route = getattr(self, f"_{name}")
                    return route(repo, number, query, payload, authenticated)
        raise HttpError(404)

    # -- routes -----------------------------------------------------------

    def _get_repo(self, repo: Repo, _n: int, _q: Query, _p: Any, auth: bool) -> Answer:
        return 200, self.fake.repo_json(repo, auth), {}

    def _get_issue(self, repo: Repo, n: int, _q: Query, _p: Any, _a: bool) -> Answer:
        if n in repo.issues:
            return 200, self.fake.issue_json(repo, n), {}
        for pull in self.fake.pulls:
            if pull["repo"] == repo.slug and pull["number"] == n:
                return 200, self.fake.pull_as_issue_json(repo, pull), {}
        raise HttpError(404)

    def _list_comments(
        self, repo: Repo, n: int, query: Query, _p: Any, _a: bool
    ) -> Answer:
        if n not in repo.issues:
            raise HttpError(404)
        items = [self.fake.comment_json(repo, n, c) for c in repo.comments[n]]
        return self._page(items, query)

    def _list_pulls(
        self, repo: Repo, _n: int, query: Query, _p: Any, _a: bool
    ) -> Answer:
        state = query.get("state", "open")
        pulls = [p for p in self.fake.pulls if p["repo"] == repo.slug]
        if state != "all":
            pulls = [p for p in pulls if p["state"] == state]
        if "head" in query:
            owner, _, ref = query["head"].partition(":")
            if ref:
                pulls = [
                    p for p in pulls if p["head_owner"] == owner and p["head"] == ref
                ]
            else:
                pulls = [p for p in pulls if p["head_owner"] == owner]
        if "base" in query:
            pulls = [p for p in pulls if p["base"] == query["base"]]
        pulls.sort(key=lambda p: -p["number"])
        return self._page([self.fake.pull_json(repo, p) for p in pulls], query)

    def _get_pull(self, repo: Repo, n: int, _q: Query, _p: Any, _a: bool) -> Answer:
        return 200, self.fake.pull_json(repo, self._find_pull(repo, n)), {}

    def _create_pull(
        self, repo: Repo, _n: int, _q: Query, payload: Any, _a: bool
    ) -> Answer:
        if not repo.push:
            raise HttpError(403)
        payload = payload if isinstance(payload, dict) else {}
        missing = [k for k in ("title", "head", "base") if not payload.get(k)]
        if missing:
            raise HttpError(
                422,
                errors=[
                    {"resource": "PullRequest", "code": "missing_field", "field": k}
                    for k in missing
                ],
            )
        head = str(payload["head"])
        owner = head.split(":", 1)[0] if ":" in head else repo.owner
        ref = head.split(":", 1)[-1]
        for pull in self.fake.pulls:
            if (
                pull["repo"] == repo.slug
                and pull["state"] == "open"
                and (pull["head_owner"], pull["head"]) == (owner, ref)
            ):
                raise HttpError(
                    422,
                    errors=[
                        {
                            "resource": "PullRequest",
                            "code": "custom",
                            "message": (
                                f"A pull request already exists for {owner}:{ref}."
                            ),
                        }
                    ],
                )
        pull = self.fake._create_pull(
            repo,
            head,
            str(payload["base"]),
            str(payload["title"]),
            payload.get("body"),
            bool(payload.get("draft", False)),
        )
        return 201, self.fake.pull_json(repo, pull), {"Location": pull["html_url"]}

    def _edit_pull(
        self, repo: Repo, n: int, _q: Query, payload: Any, _a: bool
    ) -> Answer:
        pull = self._find_pull(repo, n)
        if not repo.push:
            raise HttpError(403)
        payload = payload if isinstance(payload, dict) else {}
        for key in ("title", "body", "state", "base"):
            if key in payload:
                pull[key] = payload[key]
        return 200, self.fake.pull_json(repo, pull), {}

    # -- helpers ----------------------------------------------------------

    def _find_pull(self, repo: Repo, n: int) -> dict[str, Any]:
        for pull in self.fake.pulls:
            if pull["repo"] == repo.slug and pull["number"] == n:
                return pull
        raise HttpError(404)

    def _page(self, items: list[Any], query: dict[str, str]) -> Answer:
        try:
            per_page = max(1, min(100, int(query.get("per_page", 30))))
            page = max(1, int(query.get("page", 1)))
        except ValueError as exc:
            raise HttpError(422) from exc
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        links = []
        base = f"{self.fake.web_url}{urlsplit(self.path).path}"
        for rel, target in (("next", page + 1), ("last", last)):
            if page < last:
                params = {**query, "per_page": str(per_page), "page": str(target)}
                links.append(f'<{base}?{urlencode(params)}>; rel="{rel}"')
        return 200, chunk, {"Link": ", ".join(links)} if links else {}

    def _send(self, status: int, body: Any, headers: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-GitHub-Media-Type", "github.v3; format=json")
        for name, value in headers.items():
            self.send_header(name, value)
        try:
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting, as a timing-out client does


def _failure_error(failure: Failure) -> HttpError:
    if failure.status == 422:
        return HttpError(
            422,
            errors=[
                {
                    "resource": "PullRequest",
                    "code": "custom",
                    "message": failure.message,
                }
            ],
        )
    return HttpError(failure.status, failure.message)

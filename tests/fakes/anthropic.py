"""A fake Anthropic Messages API that plays a script, for driving the real CLI.

Each main-conversation request (one that offers tools) takes the next turn
of the script; side requests (titles, summaries, token counts) get short
canned answers so they never consume a turn.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.fakes.server import FakeServer

log = logging.getLogger(__name__)

Block = dict[str, Any]

_ids = itertools.count(1)


def text(value: str) -> Block:
    """A text content block for a scripted assistant turn."""
    return {"type": "text", "text": value}


def tool_use(name: str, input: dict[str, Any]) -> Block:
    """A tool_use content block for a scripted assistant turn."""
    return {
        "type": "tool_use",
        "id": f"toolu_fake{next(_ids):04d}",
        "name": name,
        "input": input,
    }


def ask_user_question(
    question: str, header: str, options: list[tuple[str, str]]
) -> dict[str, Any]:
    """AskUserQuestion's input: one single-choice question of (label, description)."""
    choices = [{"label": label, "description": note} for label, note in options]
    return {
        "questions": [
            {
                "question": question,
                "header": header,
                "options": choices,
                "multiSelect": False,
            }
        ]
    }


@dataclass(frozen=True)
class ApiError:
    """A scripted turn answered with an HTTP error, as the real API sends it."""

    status: int = 500
    type: str = "api_error"
    message: str = "Internal server error"


@dataclass(frozen=True)
class Hang:
    """A scripted turn whose request never gets an answer until the fake stops."""


Turn = list[Block] | Callable[[dict[str, Any]], list[Block]] | ApiError | Hang
"""A scripted answer: blocks, a function of the request body, an error, a hang."""


@dataclass
class Request:
    """One HTTP request the fake received."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def is_main(self) -> bool:
        """Whether this is a turn of the agent conversation (it offers tools)."""
        return (
            self.method == "POST"
            and self.path.split("?")[0] == "/v1/messages"
            and bool(self.body.get("tools"))
        )


def tool_results(body: dict[str, Any]) -> list[Block]:
    """The tool_result blocks of the last user message in a request body."""
    messages = body.get("messages") or []
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, list):
            found = [b for b in content if b.get("type") == "tool_result"]
            if found:
                return found
        return []
    return []


def result_text(block: Block) -> str:
    """The text of a tool_result block, whether a string or a list of parts."""
    content = block.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content)
    return ""


def conversation_text(body: dict[str, Any]) -> str:
    """Every text and tool input/result of a request's messages, joined."""
    return json.dumps(body.get("messages") or [])


class FakeAnthropic(FakeServer):
    """The fake server; use as a context manager and pass `env()` to the CLI."""

    def __init__(self, script: list[Turn] | None = None, *, model: str = "") -> None:
        self.script: list[Turn] = list(script or [])
        self.model = model
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._turn = 0
        super().__init__(self._handler(), "fake-anthropic")

    @property
    def main_requests(self) -> list[dict[str, Any]]:
        """Bodies of the main-conversation requests, in order."""
        with self._lock:
            return [r.body for r in self.requests if r.is_main]

    def env(self, config_dir: Path) -> dict[str, str]:
        """Environment for a CLI that should talk to this fake only."""
        config_dir.mkdir(parents=True, exist_ok=True)
        return {
            "ANTHROPIC_BASE_URL": self.url,
            "ANTHROPIC_API_KEY": "sk-ant-fake-key-for-tests",
            "CLAUDE_CONFIG_DIR": str(config_dir),
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "CLAUDE_CODE_MAX_RETRIES": "0",
            "API_TIMEOUT_MS": "60000",
        }

    def _next_turn(self) -> Turn:
        with self._lock:
            if self._turn < len(self.script):
                turn = self.script[self._turn]
                self._turn += 1
                return turn
            return [text("Done.")]

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)
        log.debug(
            "fake api %s %s main=%s", request.method, request.path, request.is_main
        )

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                fake._record(Request("GET", self.path, dict(self.headers), {}))
                self._json(404, _error_body("not_found_error", "Not found"))

            def do_HEAD(self) -> None:
                fake._record(Request("HEAD", self.path, dict(self.headers), {}))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                request = Request("POST", self.path, dict(self.headers), body)
                fake._record(request)
                path = self.path.split("?")[0]
                if path.endswith("/count_tokens"):
                    self._json(200, {"input_tokens": 100})
                elif path != "/v1/messages":
                    self._json(404, _error_body("not_found_error", "Not found"))
                elif request.is_main:
                    self._answer(body, fake._next_turn())
                else:
                    self._answer(body, [text("Fake side answer")])

            def _answer(self, body: dict[str, Any], turn: Turn) -> None:
                if callable(turn):
                    turn = turn(body)
                if isinstance(turn, Hang):
                    fake.stopped.wait(timeout=120)
                    self.close_connection = True
                    return
                if isinstance(turn, ApiError):
                    self._json(turn.status, _error_body(turn.type, turn.message))
                    return
                model = fake.model or str(body.get("model") or "claude-sonnet-4-5")
                if body.get("stream"):
                    self._stream(_events(turn, model))
                else:
                    self._json(200, _message(turn, model))

            def _json(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("request-id", f"req_fake{next(_ids)}")
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, events: Iterator[tuple[str, dict[str, Any]]]) -> None:
                chunks = [
                    f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
                    for name, data in events
                ]
                payload = b"".join(chunks)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("request-id", f"req_fake{next(_ids)}")
                self.end_headers()
                self.wfile.write(payload)

        return Handler


def _error_body(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


def _stop_reason(blocks: list[Block]) -> str:
    return "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"


def _usage() -> dict[str, int]:
    return {
        "input_tokens": 1000,
        "output_tokens": 100,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def _message(blocks: list[Block], model: str) -> dict[str, Any]:
    return {
        "id": f"msg_fake{next(_ids):04d}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": _stop_reason(blocks),
        "stop_sequence": None,
        "usage": _usage(),
    }


def _events(blocks: list[Block], model: str) -> Iterator[tuple[str, dict[str, Any]]]:
    start = {**_message([], model), "stop_reason": None}
    start["usage"] = {**_usage(), "output_tokens": 1}
    yield "message_start", {"type": "message_start", "message": start}
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            yield (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                },
            )
            yield (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "text_delta", "text": block["text"]},
                },
            )
        else:
            yield (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {**block, "input": {}},
                },
            )
            yield (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {
                        "type": "input_json_delta",
                        "partial_json": json.dumps(block["input"]),
                    },
                },
            )
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": _stop_reason(blocks), "stop_sequence": None},
            "usage": {"output_tokens": 100},
        },
    )
    yield "message_stop", {"type": "message_stop"}

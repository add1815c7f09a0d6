"""A fake Telegram Bot API on 127.0.0.1 for the real python-telegram-bot client.

Tests play the users (`user_sends`, `user_taps`) and read what the bot did
(`sent`, `edits`, `callback_answers`); updates go out by long polling, or
by POST to the webhook once one is set and a delivery target is given.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.fakes.server import FakeServer, send_json
from tests.support import wait_until

TOKEN = "123:abc"
BOT_ID = 7000001
BOT_USERNAME = "SwarmBot"
BOT_USER = {
    "id": BOT_ID,
    "is_bot": True,
    "first_name": "Swarm Bot",
    "username": BOT_USERNAME,
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
MAX_TEXT = 4096
SEND_METHODS = frozenset({"sendMessage", "editMessageText", "sendDocument"})
JSON_FIELDS = ("reply_markup", "allowed_updates", "commands", "reply_parameters")


@dataclass
class Sent:
    """A message the bot sent, as it looks now (edits applied)."""

    message_id: int
    chat_id: int
    text: str
    reply_markup: dict[str, Any] | None = None
    silent: bool = False
    parse_mode: str | None = None
    document: tuple[str, bytes] | None = None
    at: float = field(default_factory=time.monotonic)

    @property
    def buttons(self) -> list[tuple[str, str]]:
        """The inline buttons as (label, callback data), row by row."""
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [(b["text"], b.get("callback_data", "")) for row in rows for b in row]


@dataclass(frozen=True)
class Edit:
    """One editMessageText call that changed a message."""

    chat_id: int
    message_id: int
    text: str
    reply_markup: dict[str, Any] | None
    at: float


@dataclass
class _Failure:
    remaining: int
    retry_after: int
    methods: frozenset[str]
    chat_id: int | None
    status: int = 429


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up on a long poll is normal; stay quiet."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeTelegram(FakeServer):
    """The fake server; a context manager, with `url` to use as `api_url`."""

    server_class = _Server

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.sent: list[Sent] = []
        self.edits: list[Edit] = []
        self.callback_answers: list[dict[str, Any]] = []
        self.calls: list[str] = []
        self.commands: list[dict[str, Any]] = []
        self.webhook: dict[str, Any] = {}
        self.webhook_target = ""
        self.rejected = 0
        self._updates: list[dict[str, Any]] = []
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._failures: list[_Failure] = []
        self._ids = itertools.count(100)
        self._update_ids = itertools.count(1)
        self._cond = threading.Condition()
        super().__init__(_handler(self), "fake-telegram")

    def _release(self) -> None:
        """Wake the long polls, which see `stopped` and answer."""
        with self._cond:
            self._cond.notify_all()

    # Playing the users

    def user_sends(
        self,
        chat_id: int,
        user_id: int,
        text: str,
        reply_to: int | None = None,
        name: str = "",
    ) -> int:
        """A user writes `text` in a chat; returns the new message's id."""
        with self._cond:
            message_id = next(self._ids)
            message: dict[str, Any] = {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": _chat(chat_id),
                "from": _user(user_id, name),
                "text": text,
            }
            entities = _entities(text)
            if entities:
                message["entities"] = entities
            if reply_to is not None:
                message["reply_to_message"] = self._messages[(chat_id, reply_to)]
            self._messages[(chat_id, message_id)] = message
        self._deliver({"message": message})
        return message_id

    def user_taps(self, chat_id: int, user_id: int, message_id: int, data: str) -> str:
        """A user presses a button; returns the callback query's id."""
        with self._cond:
            query_id = f"cq{next(self._ids)}"
            query = {
                "id": query_id,
                "from": _user(user_id),
                "message": self._messages[(chat_id, message_id)],
                "chat_instance": f"ci{chat_id}",
                "data": data,
            }
        self._deliver({"callback_query": query})
        return query_id

    def update(self, payload: dict[str, Any]) -> dict[str, Any]:
        """A full update around `payload` (e.g. {"message": ...}), not delivered."""
        return {"update_id": next(self._update_ids), **payload}

    def message_update(self, chat_id: int, user_id: int, text: str) -> dict[str, Any]:
        """An update carrying a new user message, not delivered."""
        message = {
            "message_id": next(self._ids),
            "date": int(time.time()),
            "chat": _chat(chat_id),
            "from": _user(user_id),
            "text": text,
        }
        return self.update({"message": message})

    def fail_with_429(
        self,
        n: int,
        retry_after: int = 1,
        methods: frozenset[str] = SEND_METHODS,
        chat_id: int | None = None,
    ) -> None:
        """Answer the next `n` matching calls with flood control (HTTP 429)."""
        with self._cond:
            self._failures.append(_Failure(n, retry_after, frozenset(methods), chat_id))

    def fail_with_502(self, n: int, methods: frozenset[str] = SEND_METHODS) -> None:
        """Answer the next `n` matching calls with a gateway error (HTTP 502)."""
        with self._cond:
            self._failures.append(_Failure(n, 0, frozenset(methods), None, status=502))

    def forget(self, chat_id: int, message_id: int) -> None:
        """Delete a message, as a user clearing the chat would."""
        with self._cond:
            self._messages.pop((chat_id, message_id), None)
            self.sent = [
                s
                for s in self.sent
                if (s.chat_id, s.message_id) != (chat_id, message_id)
            ]

    # Reading what the bot did

    def messages_to(self, chat_id: int) -> list[Sent]:
        """Messages the bot sent to a chat, oldest first."""
        with self._cond:
            return [sent for sent in self.sent if sent.chat_id == chat_id]

    def wait_for_text(self, chat_id: int, pattern: str, timeout: float = 20) -> Sent:
        """The first message to `chat_id` whose current text matches `pattern`."""
        return self.wait_for(
            lambda: next(
                (s for s in self.messages_to(chat_id) if re.search(pattern, s.text)),
                None,
            ),
            timeout,
            f"a message to {chat_id} matching {pattern!r}",
        )

    def wait_for_edit(self, message_id: int, pattern: str, timeout: float = 20) -> Edit:
        """The first edit of a message whose text matches `pattern`."""

        def find() -> Edit | None:
            with self._cond:
                edits = list(self.edits)
            return next(
                (
                    e
                    for e in edits
                    if e.message_id == message_id and re.search(pattern, e.text)
                ),
                None,
            )

        return self.wait_for(find, timeout, f"an edit of {message_id} ~ {pattern!r}")

    @staticmethod
    def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        """Poll `predicate` until it returns something truthy."""
        return wait_until(predicate, timeout, what)

    # The Bot API

    def _deliver(self, payload: dict[str, Any]) -> None:
        with self._cond:
            update = {"update_id": next(self._update_ids), **payload}
            target = self.webhook_target if self.webhook.get("url") else ""
            if not target:
                self._updates.append(update)
                self._cond.notify_all()
                return
            secret = self.webhook.get("secret_token", "")
        request = urllib.request.Request(
            target,
            data=json.dumps(update).encode(),
            headers={
                "Content-Type": "application/json",
                "X-Telegram-Bot-Api-Secret-Token": secret,
            },
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200, response.status

    def call(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Run one Bot API method; returns the HTTP status and the JSON reply."""
        with self._cond:
            self.calls.append(method)
            failure = self._failure_for(method, params)
            if failure is not None:
                self.rejected += 1
                if failure.status != 429:
                    return _error(failure.status, "Bad Gateway")
                wait = failure.retry_after
                return 429, {
                    "ok": False,
                    "error_code": 429,
                    "description": f"Too Many Requests: retry after {wait}",
                    "parameters": {"retry_after": wait},
                }
        if method == "getUpdates":
            return self._get_updates(params)
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return _error(404, "Not Found: method not found")
        with self._cond:
            return handler(params)

    def _failure_for(self, method: str, params: dict[str, Any]) -> _Failure | None:
        for failure in self._failures:
            if failure.remaining <= 0 or method not in failure.methods:
                continue
            chat = params.get("chat_id")
            if failure.chat_id is not None and str(failure.chat_id) != str(chat):
                continue
            failure.remaining -= 1
            return failure
        return None

    def _get_updates(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        deadline = time.monotonic() + float(params.get("timeout") or 0)
        with self._cond:
            if self.webhook.get("url"):
                return _error(
                    409,
                    "Conflict: can't use getUpdates method while webhook is active; "
                    "use deleteWebhook to delete the webhook first",
                )
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            while not self._updates and not self.stopped.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return 200, _ok(self._updates[:limit])

    def _m_getMe(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, _ok(BOT_USER)

    def _m_sendMessage(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        text = str(params.get("text", ""))
        if not text.strip():
            return _error(400, "Bad Request: message text is empty")
        if _units(text) > MAX_TEXT:
            return _error(400, "Bad Request: message is too long")
        chat_id = int(params["chat_id"])
        markup = params.get("reply_markup")
        message = self._bot_message(chat_id, {"text": text}, markup)
        silent = str(params.get("disable_notification", "")).lower() == "true"
        parse_mode = params.get("parse_mode")
        self.sent.append(
            Sent(message["message_id"], chat_id, text, markup, silent, parse_mode)
        )
        return 200, _ok(message)

    def _m_sendDocument(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        chat_id = int(params["chat_id"])
        document = params.get("document")
        if not isinstance(document, tuple):
            return _error(400, "Bad Request: there is no document in the request")
        name, _ = document
        caption = str(params.get("caption", ""))
        extra = {
            "document": {"file_id": f"doc{next(self._ids)}", "file_unique_id": "u1"},
            "caption": caption,
        }
        extra["document"]["file_name"] = name
        message = self._bot_message(chat_id, extra, None)
        self.sent.append(
            Sent(message["message_id"], chat_id, caption, document=document)
        )
        return 200, _ok(message)

    def _m_editMessageText(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        chat_id, message_id = int(params["chat_id"]), int(params["message_id"])
        message = self._messages.get((chat_id, message_id))
        if message is None or message["from"]["id"] != BOT_ID:
            return _error(400, "Bad Request: message to edit not found")
        text = str(params.get("text", ""))
        if _units(text) > MAX_TEXT or not text.strip():
            return _error(400, "Bad Request: message text is empty or too long")
        markup = params.get("reply_markup")
        if message.get("text") == text and message.get("reply_markup") == markup:
            return _error(
                400,
                "Bad Request: message is not modified: specified new message content "
                "and reply markup are exactly the same as a current content and reply "
                "markup of the message",
            )
        message["text"] = text
        message["edit_date"] = int(time.time())
        if markup:
            message["reply_markup"] = markup
        else:
            message.pop("reply_markup", None)
        for sent in self.sent:
            if sent.chat_id == chat_id and sent.message_id == message_id:
                sent.text, sent.reply_markup = text, markup
        self.edits.append(Edit(chat_id, message_id, text, markup, time.monotonic()))
        return 200, _ok(message)

    def _m_answerCallbackQuery(
        self, params: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        self.callback_answers.append(
            {"id": params.get("callback_query_id"), "text": params.get("text")}
        )
        return 200, _ok(True)

    def _m_setWebhook(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.webhook = {
            "url": params.get("url", ""),
            "secret_token": params.get("secret_token", ""),
            "allowed_updates": params.get("allowed_updates"),
        }
        return 200, _ok(True)

    def _m_deleteWebhook(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.webhook = {}
        return 200, _ok(True)

    def _m_getWebhookInfo(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        info = {
            "url": self.webhook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        return 200, _ok(info)

    def _m_setMyCommands(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.commands = list(params.get("commands") or [])
        return 200, _ok(True)

    def _m_getMyCommands(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, _ok(self.commands)

    def _m_deleteMyCommands(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.commands = []
        return 200, _ok(True)

    def _m_sendChatAction(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, _ok(True)

    def _m_close(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, _ok(True)

    def _m_logOut(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, _ok(True)

    def _bot_message(
        self, chat_id: int, content: dict[str, Any], markup: dict[str, Any] | None
    ) -> dict[str, Any]:
        message = {
            "message_id": next(self._ids),
            "date": int(time.time()),
            "chat": _chat(chat_id),
            "from": BOT_USER,
            **content,
        }
        if markup:
            message["reply_markup"] = markup
        self._messages[(chat_id, message["message_id"])] = message
        return message


def _handler(fake: FakeTelegram) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            self._handle(b"")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self._handle(self.rfile.read(length) if length else b"")

        def _handle(self, raw: bytes) -> None:
            parts = urlsplit(self.path)
            found = re.fullmatch(r"/bot(?P<token>[^/]+)/(?P<method>\w+)", parts.path)
            if found is None:
                self._reply(
                    404, {"ok": False, "error_code": 404, "description": "Not Found"}
                )
                return
            if found["token"] != fake.token:
                self._reply(
                    401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
                )
                return
            params = dict(parse_qsl(parts.query))
            params.update(_parse_body(self.headers.get("Content-Type", ""), raw))
            for key in JSON_FIELDS:
                if isinstance(params.get(key), str):
                    params[key] = json.loads(params[key])
            status, body = fake.call(found["method"], params)
            self._reply(status, body)

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            send_json(self, status, body)

    return Handler


def _parse_body(content_type: str, raw: bytes) -> dict[str, Any]:
    """Form, multipart or JSON parameters; files become (name, bytes)."""
    if not raw:
        return {}
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json":
        return dict(json.loads(raw))
    if kind == "multipart/form-data":
        head = f"Content-Type: {content_type}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + raw)
        params: dict[str, Any] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            filename = part.get_filename()
            if filename is not None:
                params[name] = (filename, payload)
            else:
                params[name] = payload.decode("utf-8")
        return params
    return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))


def _ok(result: Any) -> dict[str, Any]:
    return {"ok": True, "result": result}


def _error(code: int, description: str) -> tuple[int, dict[str, Any]]:
    return code, {"ok": False, "error_code": code, "description": description}


def _chat(chat_id: int) -> dict[str, Any]:
    if chat_id > 0:
        return {"id": chat_id, "type": "private", "first_name": f"User{chat_id}"}
    return {"id": chat_id, "type": "supergroup", "title": "Team"}


def _user(user_id: int, name: str = "") -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": name or f"User{user_id}"}


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _entities(text: str) -> list[dict[str, Any]]:
    """bot_command and mention entities, with offsets in UTF-16 units."""
    found = []
    command = re.match(r"/\w+(?:@\w+)?", text)
    if command:
        found.append(("bot_command", command.start(), command.end()))
    for mention in re.finditer(r"(?<![\w/])@\w+", text):
        found.append(("mention", mention.start(), mention.end()))
    return [
        {
            "type": kind,
            "offset": _units(text[:start]),
            "length": _units(text[start:end]),
        }
        for kind, start, end in found
    ]

"""A fake Twilio REST API on 127.0.0.1, enough for the `twilio` client's messages.

It checks Basic auth, records every message sent, fails on demand and can
post signed status callbacks the way Twilio does.
"""

from __future__ import annotations

import base64
import itertools
import re
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from twilio.request_validator import RequestValidator

from tests.fakes.server import FakeServer, send_json

MESSAGES = "/2010-04-01/Accounts/{sid}/Messages.json"
ACCOUNT = "/2010-04-01/Accounts/{sid}.json"
MESSAGES_ERRORS = {
    63016: "Failed to send freeform message because you are outside the allowed "
    "window. If you are using WhatsApp, please use a Message Template.",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
}


@dataclass(frozen=True)
class SentMessage:
    """One message the bot asked Twilio to send."""

    sid: str
    to: str
    from_: str
    body: str
    content_sid: str
    content_variables: str
    status_callback: str
    at: float


@dataclass(frozen=True)
class Failure:
    """The answer for the next send: an HTTP status and a Twilio error code."""

    status: int
    code: int
    message: str
    body: str = ""

    def matches(self, form: dict[str, str]) -> bool:
        """Whether this failure applies to a send with this form."""
        return re.search(self.body, form.get("Body", "")) is not None


class FakeTwilio(FakeServer):
    """A threaded fake of Twilio's REST API; use as a context manager."""

    def __init__(self, account_sid: str, auth_token: str) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.sent: list[SentMessage] = []
        self.lock = threading.Lock()
        self._failures: deque[Failure] = deque()
        self._ids = itertools.count(1)
        super().__init__(_handler(self), "fake-twilio")

    def fail_next(
        self, code: int, status: int = 400, times: int = 1, body: str = ""
    ) -> None:
        """Answer the next `times` sends (whose body matches the regex `body`)
        with Twilio error `code` and HTTP `status`."""
        failure = Failure(status, code, MESSAGES_ERRORS.get(code, "Error"), body)
        with self.lock:
            self._failures.extend(failure for _ in range(times))

    def messages_to(self, to: str) -> list[SentMessage]:
        """Messages sent to `to`, oldest first."""
        with self.lock:
            return [message for message in self.sent if message.to == to]

    def send_status(self, sid: str, status: str, error_code: str = "") -> int:
        """POST a signed status callback for message `sid`, as Twilio does."""
        with self.lock:
            message = next(m for m in self.sent if m.sid == sid)
        params = {
            "MessageSid": sid,
            "SmsSid": sid,
            "MessageStatus": status,
            "SmsStatus": status,
            "AccountSid": self.account_sid,
            "From": message.from_,
            "To": message.to,
            "ApiVersion": "2010-04-01",
            "ChannelPrefix": "whatsapp",
        }
        if error_code:
            params["ErrorCode"] = error_code
        return post_signed(self.auth_token, message.status_callback, params)

    # Answers

    def _take_failure(self, form: dict[str, str]) -> Failure | None:
        with self.lock:
            for failure in self._failures:
                if failure.matches(form):
                    self._failures.remove(failure)
                    return failure
        return None

    def _record(self, form: dict[str, str]) -> SentMessage:
        message = SentMessage(
            sid=f"SM{next(self._ids):032x}",
            to=form.get("To", ""),
            from_=form.get("From", ""),
            body=form.get("Body", ""),
            content_sid=form.get("ContentSid", ""),
            content_variables=form.get("ContentVariables", ""),
            status_callback=form.get("StatusCallback", ""),
            at=time.monotonic(),
        )
        with self.lock:
            self.sent.append(message)
        return message

    def message_json(self, message: SentMessage) -> dict[str, Any]:
        """The Message resource as Twilio answers it."""
        now = formatdate(usegmt=True)
        uri = f"{MESSAGES.format(sid=self.account_sid)[:-5]}/{message.sid}.json"
        return {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": message.body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": message.from_,
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": message.sid,
            "status": "queued",
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": message.to,
            "uri": uri,
        }

    def account_json(self) -> dict[str, Any]:
        """The Account resource as Twilio answers it."""
        now = formatdate(usegmt=True)
        return {
            "date_created": now,
            "date_updated": now,
            "friendly_name": "My first Twilio account",
            "owner_account_sid": self.account_sid,
            "sid": self.account_sid,
            "status": "active",
            "subresource_uris": {},
            "type": "Full",
            "uri": ACCOUNT.format(sid=self.account_sid),
        }


def post_signed(auth_token: str, url: str, params: dict[str, str]) -> int:
    """POST `params` form-encoded to `url`, signed like a Twilio webhook."""
    signature = RequestValidator(auth_token).compute_signature(url, params)
    return post_form(url, params, {"X-Twilio-Signature": signature})


def post_form(url: str, params: dict[str, str], headers: dict[str, str]) -> int:
    """POST `params` form-encoded; returns the HTTP status."""
    req = urllib.request.Request(
        url,
        data=urlencode(params).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _error(status: int, code: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def _handler(fake: FakeTwilio) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            if not self._authorised():
                return
            if urlsplit(self.path).path == ACCOUNT.format(sid=fake.account_sid):
                self._json(200, fake.account_json())
            else:
                self._json(
                    404, _error(404, 20404, "The requested resource was not found")
                )

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            if not self._authorised():
                return
            if urlsplit(self.path).path != MESSAGES.format(sid=fake.account_sid):
                self._json(
                    404, _error(404, 20404, "The requested resource was not found")
                )
                return
            form = {key: values[-1] for key, values in parse_qs(raw).items()}
            if not form.get("To") or not (form.get("Body") or form.get("ContentSid")):
                self._json(400, _error(400, 21602, "Message body is required."))
                return
            failure = fake._take_failure(form)
            if failure is not None:
                self._json(
                    failure.status,
                    _error(failure.status, failure.code, failure.message),
                )
                return
            self._json(201, fake.message_json(fake._record(form)))

        def _authorised(self) -> bool:
            if fake.stopped.is_set():
                self.close_connection = True
                return False
            expected = f"{fake.account_sid}:{fake.auth_token}".encode()
            header = self.headers.get("Authorization", "")
            if header == f"Basic {base64.b64encode(expected).decode()}":
                return True
            self._json(401, _error(401, 20003, "Authenticate"))
            return False

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            send_json(self, status, payload)

    return Handler

"""The local web chat at `/`: send messages, see replies, click an option.

It is a trusted channel, so it only answers requests from this machine:
anything from another address, through a proxy, or from another site's
page gets 403.
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import threading
import time
from collections import deque
from importlib import resources
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request

from adapters.base import Adapter, Hub
from bot.messages import Message, Outbound

log = logging.getLogger(__name__)

CHAT_ID = "browser"
KEEP = 500
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
FORWARDING_HEADERS = ("X-Forwarded-For", "X-Forwarded-Host", "Forwarded", "X-Real-Ip")


class WebChatAdapter(Adapter):
    """Keeps the recent conversation in memory for the page to poll."""

    name = "web"

    def __init__(self, hub: Hub) -> None:
        super().__init__(hub)
        self._entries: deque[dict[str, Any]] = deque(maxlen=KEEP)
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    async def send(self, chat_id: str, out: Outbound) -> str | None:
        """Append the bot's message to the conversation."""
        return self._append(
            {
                "from": "bot",
                "text": out.text,
                "kind": out.kind,
                "job_id": out.job_id,
                "question_id": out.question_id,
                "options": list(out.options),
            }
        )

    def entries(self, after: int) -> list[dict[str, Any]]:
        """Conversation entries newer than sequence number `after`."""
        with self._lock:
            return [entry for entry in self._entries if entry["seq"] > after]

    def blueprint(self) -> Blueprint:
        bp = Blueprint("webchat", __name__)
        bp.before_request(_local_only)

        @bp.get("/")
        def page() -> Response:
            """The chat page."""
            html = resources.files("adapters").joinpath("static/chat.html").read_text()
            return Response(html, mimetype="text/html")

        @bp.get("/api/messages")
        def messages() -> Response:
            """Entries after `?after=N`."""
            after = request.args.get("after", "0")
            return jsonify(self.entries(int(after) if after.isdigit() else 0))

        @bp.post("/api/messages")
        def post_message() -> tuple[Response, int]:
            """A message typed on the page, or an option clicked."""
            body = request.get_json(silent=True)
            if not isinstance(body, dict) or not str(body.get("text", "")).strip():
                return jsonify(error="send JSON with a non-empty text"), 400
            text = str(body["text"]).strip()
            question_id = body.get("question_id")
            seq = self._append({"from": "you", "text": text})
            self.hub.receive_threadsafe(
                Message(
                    channel=self.name,
                    chat_id=CHAT_ID,
                    sender_id="local",
                    sender_name="you",
                    text=text,
                    message_id=seq,
                    trusted=True,
                    question_id=question_id if isinstance(question_id, int) else None,
                )
            )
            return jsonify(seq=seq), 202

        @bp.get("/api/jobs")
        def jobs() -> Response:
            """The job list shown beside the chat."""
            return jsonify(
                [
                    {
                        "id": job.id,
                        "state": job.state,
                        "label": job.label,
                        "branch": job.branch,
                        "pr_url": job.pr_url,
                        "cost_usd": round(job.cost_usd, 4),
                    }
                    for job in self.hub.storage.jobs.recent(limit=30)
                ]
            )

        return bp

    def _append(self, entry: dict[str, Any]) -> str:
        with self._lock:
            seq = next(self._seq)
            self._entries.append({**entry, "seq": seq, "at": time.time()})
        return str(seq)


def _local_only() -> None:
    """Refuse anything that is not a same-site request from this machine.

    A tunnel or reverse proxy on this machine connects from loopback too, so
    the Host header must name this machine as well, and no forwarding header
    may be present; the Origin check stops other sites' pages.
    """
    try:
        local = ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        local = False
    host = request.host.rsplit(":", 1)[0] if "]" not in request.host else request.host
    local_host = host.strip("[]").split("%")[0] in LOCAL_HOSTS
    forwarded = any(name in request.headers for name in FORWARDING_HEADERS)
    origin = request.headers.get("Origin")
    same_site = origin is None or origin == request.host_url.rstrip("/")
    if not (local and local_host) or forwarded or not same_site:
        log.warning(
            "Web chat refused a request from %s for %s", request.remote_addr, host
        )
        abort(403, "The web chat only answers this machine.")

"""WhatsApp through Twilio: signed webhooks in, paced REST messages out.

Messages the 24-hour customer-service window would refuse are held and
delivered, with a note, the next time the person writes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from flask import Blueprint, Response, request
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from adapters.base import Adapter, Hub
from bot.config import WhatsAppConfig, normalise_number
from bot.messages import Message, Outbound, render_plain, split_message

log = logging.getLogger(__name__)

MAX_BODY = 1600
WINDOW = 24 * 3600 - 60  # WhatsApp's 24 hours, less a minute of slack
OUTSIDE_WINDOW = 63016
SEND_ATTEMPTS = 3
DELIVERY_ATTEMPTS = 3
HTTP_TIMEOUT = 15.0
HELD_KEEP = 50
OUTBOX_KEEP = 300
OUTBOX_AGE = 2 * 24 * 3600
AWAY_NOTE = "While you were away:"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'

SEEN_KEY = "twilio-sids"
INBOUND_KEY = "whatsapp-last-inbound"
HELD_KEY = "whatsapp-held"
TEMPLATE_KEY = "whatsapp-template"
OUTBOX_KEY = "whatsapp-outbox"


class WhatsAppError(Exception):
    """Twilio cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class Held:
    """A message kept back until the person reopens the 24-hour window."""

    text: str
    job_id: int | None = None
    question_id: int | None = None


@dataclass
class _Send:
    """One REST call waiting in the send queue: a text part or the template."""

    chat_id: str
    body: str = ""
    content_sid: str = ""
    content_variables: str = ""
    job_id: int | None = None
    question_id: int | None = None
    deliveries: int = 1
    record: bool = False
    future: asyncio.Future[str | None] | None = field(default=None, repr=False)

    @property
    def held(self) -> Held:
        return Held(self.body, self.job_id, self.question_id)


class _BaseUrlHttpClient(TwilioHttpClient):
    """Twilio's HTTP client, sending every request to `base_url` instead."""

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.base_url = base_url.rstrip("/")

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        parts = urlsplit(url)
        query = f"?{parts.query}" if parts.query else ""
        return super().request(
            method, f"{self.base_url}{parts.path}{query}", *args, **kwargs
        )


def make_client(config: WhatsAppConfig) -> Client:
    """A Twilio REST client for `config`, aimed at `api_url` when one is set."""
    http: TwilioHttpClient
    if config.api_url:
        http = _BaseUrlHttpClient(config.api_url, HTTP_TIMEOUT)
    else:
        http = TwilioHttpClient(timeout=HTTP_TIMEOUT)
    return Client(
        config.account_sid,
        config.auth_token,
        http_client=http,
        environment={},
    )


def check(config: WhatsAppConfig) -> str:
    """Fetch the Twilio account, for `swarmbot doctor`; raises with a fix-it hint."""
    try:
        account = make_client(config).api.v2010.accounts(config.account_sid).fetch()
    except TwilioRestException as exc:
        if exc.status in (401, 403):
            raise WhatsAppError(
                "Twilio refused the credentials; check [whatsapp] account_sid "
                "and auth_token."
            ) from None
        if exc.status == 404:
            raise WhatsAppError(
                f"Twilio has no account {config.account_sid}; check [whatsapp] "
                "account_sid."
            ) from None
        raise WhatsAppError(
            f"Twilio answered HTTP {exc.status} (error {exc.code}); try again later."
        ) from None
    except (TwilioException, requests.RequestException, OSError):
        host = urlsplit(config.api_url).netloc if config.api_url else "api.twilio.com"
        raise WhatsAppError(
            f"cannot reach Twilio at {host}; check the network or [whatsapp] api_url."
        ) from None
    if account.status and account.status != "active":
        raise WhatsAppError(
            f"the Twilio account is {account.status}; reactivate it in the console."
        )
    name = account.friendly_name or config.account_sid
    return f"account {name} ({account.status or 'active'}), sending from {config.from_}"


def split_body(text: str, limit: int = MAX_BODY) -> list[str]:
    """`text` in parts of at most `limit` characters, cut at line ends if possible."""
    return split_message(text, limit)


class WhatsAppAdapter(Adapter):
    """Twilio's WhatsApp API: webhooks on `serve`'s server, replies over REST.

    `clock` (wall-clock seconds) decides the 24-hour window; `send_interval`
    paces the sender number; `retry_delay` spaces retries after errors.
    """

    name = "whatsapp"

    def __init__(
        self,
        hub: Hub,
        *,
        client: Client | None = None,
        clock: Callable[[], float] = time.time,
        send_interval: float = 1.0,
        retry_delay: float = 1.0,
        stop_timeout: float = 5.0,
    ) -> None:
        super().__init__(hub)
        self.config = hub.config.whatsapp
        self.client = client or make_client(self.config)
        self.clock = clock
        self.send_interval = send_interval
        self.retry_delay = retry_delay
        self.stop_timeout = stop_timeout
        self.validator = RequestValidator(self.config.auth_token)
        self._queue: asyncio.Queue[_Send] | None = None
        self._worker: asyncio.Task | None = None
        self._busy = asyncio.Lock()
        self._tasks: set[asyncio.Task] = set()
        self._last_sent = 0.0

    # Lifecycle

    async def start(self) -> None:
        """Start the send queue's worker."""
        self._queue = asyncio.Queue()
        self._worker = asyncio.create_task(self._work(), name="whatsapp-send")

    async def stop(self) -> None:
        """Send what is queued for a few seconds, then hold the rest."""
        if self._queue is None or self._worker is None:
            return
        try:
            await asyncio.wait_for(self._queue.join(), self.stop_timeout)
        except TimeoutError:
            log.warning(
                "WhatsApp: stopping with %s message(s) unsent", self._queue.qsize()
            )
        self._worker.cancel()
        await asyncio.gather(self._worker, return_exceptions=True)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.stop_timeout)
        queue, self._queue, self._worker = self._queue, None, None
        while not queue.empty():
            item = queue.get_nowait()
            if item.body:
                self._hold(item.chat_id, item.held)
            _resolve(item, None)

    # Outbound

    async def send(self, chat_id: str, out: Outbound) -> str | None:
        """Queue `out` for the paced sender; returns the last part's message SID."""
        if out.kind == "progress":
            return None  # WhatsApp cannot edit messages, so only milestones go out
        # Limitation: attachments (the full log of `logs N`) are not sent; Twilio
        # needs a public media URL for them. The text already holds the tail.
        text = render_plain(out).strip()
        if not text:
            return None
        if not self._window_open(chat_id):
            self._hold(chat_id, Held(text, out.job_id, out.question_id))
            self._offer_template(chat_id)
            return None
        parts = split_body(text)
        futures = []
        for n, part in enumerate(parts, 1):
            item = _Send(
                chat_id,
                body=part,
                job_id=out.job_id,
                question_id=out.question_id,
                record=n < len(parts),
            )
            futures.append(self._enqueue(item, wait=True))
        sids = await asyncio.gather(*futures)
        return sids[-1]

    def _enqueue(self, item: _Send, wait: bool = False) -> asyncio.Future[str | None]:
        if self._queue is None:  # stopped: keep it for the next start
            if item.body:
                self._hold(item.chat_id, item.held)
            return _done_future(None)
        if wait:
            item.future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(item)
        return item.future if item.future is not None else _done_future(None)

    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            item = await self._queue.get()
            sid = None
            try:
                wait = self._last_sent + self.send_interval - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                sid = await self._deliver(item)
            except asyncio.CancelledError:
                _resolve(item, None)
                raise
            except Exception:
                log.exception("WhatsApp: sending to %s failed", item.chat_id)
            finally:
                self._queue.task_done()
            _resolve(item, sid)

    async def _deliver(self, item: _Send) -> str | None:
        """Send one item, retrying passing errors; None when it did not go out."""
        reason = ""
        for attempt in range(1, SEND_ATTEMPTS + 1):
            # Webhooks wait for the lock, so they see the bookkeeping of any
            # message Twilio has accepted: its SID, the template, the outbox.
            async with self._busy:
                sid, reason = await self._attempt(item)
            if not reason:
                return sid
            if attempt < SEND_ATTEMPTS:
                log.warning(
                    "WhatsApp: sending to %s failed (%s); retry %s of %s",
                    item.chat_id,
                    reason,
                    attempt,
                    SEND_ATTEMPTS - 1,
                )
                await asyncio.sleep(self.retry_delay * attempt)
        log.error(
            "WhatsApp: gave up sending to %s after %s attempts (%s)",
            item.chat_id,
            SEND_ATTEMPTS,
            reason,
        )
        return None

    async def _attempt(self, item: _Send) -> tuple[str | None, str]:
        """One try: the SID, or None and why a retry may help ("" when not)."""
        if item.body and not self._window_open(item.chat_id):
            self._outside_window(item)
            return None, ""
        try:
            message = await asyncio.to_thread(self._create, item)
        except TwilioRestException as exc:
            if exc.code == OUTSIDE_WINDOW and item.body:
                self._outside_window(item)
                return None, ""
            if exc.status == 429 or exc.status >= 500:
                return None, f"HTTP {exc.status}"
            log.error(
                "WhatsApp: Twilio refused a message to %s: error %s (HTTP %s)",
                item.chat_id,
                exc.code,
                exc.status,
            )
            return None, ""
        except requests.ReadTimeout:
            log.error(
                "WhatsApp: Twilio did not answer in time for a message to %s; "
                "not retrying, as it may have been sent",
                item.chat_id,
            )
            return None, ""
        except (TwilioException, requests.RequestException, OSError) as exc:
            return None, type(exc).__name__
        finally:
            self._last_sent = time.monotonic()
        if message.error_code == OUTSIDE_WINDOW and item.body:
            self._outside_window(item)
            return None, ""
        self._sent(item, str(message.sid))
        return str(message.sid), ""

    @property
    def status_url(self) -> str:
        """Where Twilio reports delivery status of the messages sent."""
        return f"{self.hub.config.bot.public_url}/webhooks/twilio/status"

    def _create(self, item: _Send) -> Any:
        """The REST call itself; runs in a worker thread."""
        fields: dict[str, Any] = {
            "to": item.chat_id,
            "from_": self.config.from_,
            "status_callback": self.status_url,
        }
        if item.content_sid:
            fields["content_sid"] = item.content_sid
            if item.content_variables:
                fields["content_variables"] = item.content_variables
        else:
            fields["body"] = item.body
        return self.client.messages.create(**fields)

    def _sent(self, item: _Send, sid: str) -> None:
        conversations = self.hub.storage.conversations
        if item.content_sid:
            templates = conversations.get(TEMPLATE_KEY, {})
            number = normalise_number(item.chat_id)
            templates[number] = {**templates.get(number, {}), "sid": sid}
            conversations.put(TEMPLATE_KEY, templates)
            return
        if item.record and (item.job_id or item.question_id):
            conversations.record_sent(
                self.name, item.chat_id, sid, item.job_id, item.question_id
            )
        now = self.clock()
        outbox = {
            key: entry
            for key, entry in conversations.get(OUTBOX_KEY, {}).items()
            if now - entry["at"] < OUTBOX_AGE
        }
        outbox[sid] = {
            "chat_id": item.chat_id,
            "deliveries": item.deliveries,
            "at": now,
            **asdict(item.held),
        }
        conversations.put(OUTBOX_KEY, dict(list(outbox.items())[-OUTBOX_KEEP:]))

    # The 24-hour window

    def _window_open(self, chat_id: str) -> bool:
        inbound = self.hub.storage.conversations.get(INBOUND_KEY, {})
        last = inbound.get(normalise_number(chat_id))
        return last is not None and self.clock() - last < WINDOW

    def _set_window(self, chat_id: str, at: float | None) -> None:
        conversations = self.hub.storage.conversations
        now = self.clock()
        inbound = {
            number: seen
            for number, seen in conversations.get(INBOUND_KEY, {}).items()
            if now - seen < WINDOW
        }
        number = normalise_number(chat_id)
        if at is None:
            inbound.pop(number, None)
        else:
            inbound[number] = at
        conversations.put(INBOUND_KEY, inbound)

    def _outside_window(self, item: _Send) -> None:
        log.info("WhatsApp: %s is outside the 24-hour window; holding", item.chat_id)
        self._set_window(item.chat_id, None)
        self._hold(item.chat_id, item.held)
        self._offer_template(item.chat_id)

    def _hold(self, chat_id: str, held: Held) -> None:
        conversations = self.hub.storage.conversations
        everyone = conversations.get(HELD_KEY, {})
        kept = [*everyone.get(chat_id, []), asdict(held)]
        if len(kept) > HELD_KEEP:
            log.warning("WhatsApp: dropping the oldest held message for %s", chat_id)
        everyone[chat_id] = kept[-HELD_KEEP:]
        conversations.put(HELD_KEY, everyone)
        log.info("WhatsApp: holding a message for %s until they write", chat_id)

    def _offer_template(self, chat_id: str) -> None:
        """Send the configured template, once per closed window, to reopen it."""
        if not self.config.content_sid:
            return
        conversations = self.hub.storage.conversations
        number = normalise_number(chat_id)
        templates = conversations.get(TEMPLATE_KEY, {})
        sent_at = templates.get(number, {}).get("at")
        last_inbound = conversations.get(INBOUND_KEY, {}).get(number)
        now = self.clock()
        recent = sent_at is not None and now - sent_at < WINDOW
        if recent and (last_inbound is None or sent_at > last_inbound):
            return
        templates[number] = {"at": now, "sid": ""}
        conversations.put(TEMPLATE_KEY, templates)
        log.info("WhatsApp: sending the template to reopen the chat with %s", chat_id)
        self._enqueue(
            _Send(
                chat_id,
                content_sid=self.config.content_sid,
                content_variables=self.config.content_variables,
            )
        )

    def _release_held(self, chat_id: str) -> bool:
        """Queue the held messages, the first with a note; False when none."""
        conversations = self.hub.storage.conversations
        everyone = conversations.get(HELD_KEY, {})
        held = [Held(**entry) for entry in everyone.pop(chat_id, [])]
        if not held:
            return False
        conversations.put(HELD_KEY, everyone)
        log.info("WhatsApp: delivering %s held message(s) to %s", len(held), chat_id)
        for n, message in enumerate(held):
            text = f"{AWAY_NOTE}\n{message.text}" if n == 0 else message.text
            for part in split_body(text):
                self._enqueue(
                    _Send(
                        chat_id,
                        body=part,
                        job_id=message.job_id,
                        question_id=message.question_id,
                        record=True,
                    )
                )
        return True

    # Inbound

    def blueprint(self) -> Blueprint:
        """Twilio's webhooks: inbound messages and delivery status callbacks."""
        bp = Blueprint("whatsapp", __name__)

        @bp.post("/webhooks/twilio")
        def inbound() -> Response:
            """A WhatsApp message from Twilio; answered at once with empty TwiML."""
            if not self._signed():
                return _forbidden()
            form = request.form
            sid = form.get("MessageSid", "")
            sender = form.get("From", "")
            if not sid or not sender:
                return Response("MessageSid and From are required.", status=400)
            if not self.hub.storage.conversations.add_once(SEEN_KEY, sid):
                log.info("WhatsApp: ignored a repeated delivery of %s", sid)
                return _twiml()
            # Limitation: only the text is read; photos, voice notes and other
            # media arrive as an empty or caption-only message.
            message = Message(
                channel=self.name,
                chat_id=sender,
                sender_id=normalise_number(sender),
                text=form.get("Body", ""),
                message_id=sid,
                reply_to=form.get("OriginalRepliedMessageSid", ""),
                sender_name=form.get("ProfileName", ""),
            )
            button = bool(form.get("ButtonPayload") or form.get("ButtonText"))
            self._call_on_loop(self._arrived, message, button)
            return _twiml()

        @bp.post("/webhooks/twilio/status")
        def status() -> Response:
            """A delivery status callback for a message the bot sent."""
            if not self._signed():
                return _forbidden()
            form = request.form
            sid = form.get("MessageSid", "")
            state = form.get("MessageStatus") or form.get("SmsStatus", "")
            if sid and state in ("failed", "undelivered"):
                code = form.get("ErrorCode", "")
                self._call_on_loop(self._failed, sid, state, code)
            elif sid and state in ("delivered", "read"):
                self._call_on_loop(self._delivered, sid)
            return Response("", status=204)

        return bp

    def _signed(self) -> bool:
        """Whether the request carries Twilio's signature for the URL it called."""
        # Limitation: only auth-token signatures (HMAC-SHA1) are checked; webhooks
        # signed with a Twilio SharedKey (HMAC-SHA256) are refused.
        signature = request.headers.get("X-Twilio-Signature", "")
        url = f"{self.hub.config.bot.public_url}{request.path}"
        if request.query_string:
            url += "?" + request.query_string.decode("latin-1")
        if signature and self.validator.validate(url, request.form, signature):
            return True
        log.warning(
            "Rejected a Twilio webhook to %s with a %s signature from %s",
            request.path,
            "wrong" if signature else "missing",
            request.remote_addr,
        )
        return False

    def _call_on_loop(
        self, function: Callable[..., Coroutine[Any, Any, None]], *args: Any
    ) -> None:
        """Run `function(*args)` as a task on the engine's loop, in arrival order."""
        self.hub.loop.call_soon_threadsafe(self._spawn, function, args)

    def _spawn(
        self, function: Callable[..., Coroutine[Any, Any, None]], args: tuple
    ) -> None:
        task = asyncio.ensure_future(function(*args))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _arrived(self, message: Message, button: bool) -> None:
        """On the loop: open the window, deliver what was held, then hand over."""
        async with self._busy:
            self._arrived_now(message, button)

    def _arrived_now(self, message: Message, button: bool) -> None:
        self._set_window(message.chat_id, self.clock())
        released = self._release_held(message.chat_id)
        if released and self._answers_template(message, button):
            log.info("WhatsApp: %s answered the template", message.sender_id)
            return
        self.hub.receive_threadsafe(message)

    def _answers_template(self, message: Message, button: bool) -> bool:
        """A tap on, or reply to, the template only reopens the chat."""
        templates = self.hub.storage.conversations.get(TEMPLATE_KEY, {})
        template = templates.get(normalise_number(message.chat_id), {})
        replied = bool(message.reply_to) and message.reply_to == template.get("sid")
        return replied or (button and bool(template))

    async def _failed(self, sid: str, state: str, code: str) -> None:
        """On the loop: a sent message did not arrive; hold it or send it again."""
        async with self._busy:
            self._failed_now(sid, state, code)

    def _failed_now(self, sid: str, state: str, code: str) -> None:
        conversations = self.hub.storage.conversations
        outbox = conversations.get(OUTBOX_KEY, {})
        entry = outbox.pop(sid, None)
        if entry is None:
            log.warning("WhatsApp: message %s was %s (error %s)", sid, state, code)
            return
        conversations.put(OUTBOX_KEY, outbox)
        item = _Send(
            entry["chat_id"],
            body=entry["text"],
            job_id=entry["job_id"],
            question_id=entry["question_id"],
            deliveries=entry["deliveries"] + 1,
            record=True,
        )
        if code == str(OUTSIDE_WINDOW):
            self._outside_window(item)
            return
        if entry["deliveries"] >= DELIVERY_ATTEMPTS:
            log.error(
                "WhatsApp: message %s to %s was %s (error %s) %s times; giving up",
                sid,
                item.chat_id,
                state,
                code or "none",
                entry["deliveries"],
            )
            return
        log.warning(
            "WhatsApp: message %s to %s was %s (error %s); sending it again",
            sid,
            item.chat_id,
            state,
            code or "none",
        )
        self._enqueue(item)

    async def _delivered(self, sid: str) -> None:
        async with self._busy:
            self._forget_sent(sid)

    def _forget_sent(self, sid: str) -> None:
        conversations = self.hub.storage.conversations
        outbox = conversations.get(OUTBOX_KEY, {})
        if outbox.pop(sid, None) is not None:
            conversations.put(OUTBOX_KEY, outbox)


def _resolve(item: _Send, sid: str | None) -> None:
    if item.future is not None and not item.future.done():
        item.future.set_result(sid)


def _done_future(value: str | None) -> asyncio.Future[str | None]:
    future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
    future.set_result(value)
    return future


def _twiml() -> Response:
    return Response(EMPTY_TWIML, mimetype="text/xml")


def _forbidden() -> Response:
    return Response("Invalid Twilio signature.", status=403)

"""The Telegram channel on python-telegram-bot: long polling or a webhook, inline
buttons for questions, one status message per job edited in place."""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from telegram import (
    Bot,
    BotCommand,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Update,
)
from telegram import Message as TgMessage
from telegram.constants import ChatType, MessageEntityType, MessageLimit
from telegram.error import (
    BadRequest,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from adapters.base import Adapter, Hub
from bot.messages import Message, Outbound, split_message
from storage.questions import ANSWERED, PENDING, Question

if TYPE_CHECKING:
    from flask import Blueprint

    from bot.config import TelegramConfig

log = logging.getLogger(__name__)

T = TypeVar("T")

WEBHOOK_PATH = "/webhooks/telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name)
DEFAULT_API = "https://api.telegram.org"
MAX_TEXT = MessageLimit.MAX_TEXT_LENGTH
ALLOWED_UPDATES = ["message", "callback_query"]
HINT = "or reply to this message with your own answer"
FREE_HINT = "Reply to this message with your answer."
APPROVAL_OPTIONS = ("Allow", "Deny")
BUTTON_LABEL = 60
COMMANDS = (
    ("fix", "fix #42 in api: work on an issue"),
    ("status", "status, or status 7: how the jobs are doing"),
    ("logs", "logs 7: a job's recent output"),
    ("diff", "diff 7: the changes a job made"),
    ("cancel", "cancel 7: stop a job"),
    ("retry", "retry 7: run a failed job again"),
    ("followup", "followup 7: more work on a finished job"),
    ("answer", "answer 7 2: answer a job's question"),
    ("repos", "the repos I work on"),
    ("help", "what I understand"),
)
_CALLBACK = re.compile(r"q:(\d{1,12}):(\d{1,3})")
_HELP_COMMAND = re.compile(
    r"/(?:start|help)(?:@\w+)?(?:\s.*)?", re.IGNORECASE | re.DOTALL
)


class TelegramSendError(Exception):
    """Telegram did not take a message; the text is short and safe to log."""


class TelegramCheckError(Exception):
    """`swarmbot doctor` found Telegram unusable; the text says what to fix."""


@dataclass
class _Keyboard:
    """A question message whose buttons are still showing."""

    chat_id: str
    message_id: int
    text: str


@dataclass
class _Chat:
    """One chat's outbound queue: its work runs in order, paced."""

    interval: float
    next_at: float = 0.0
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    worker: asyncio.Task | None = None

    async def pace(self) -> None:
        """Wait until this chat may get its next request."""
        wait = self.next_at - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self.next_at = time.monotonic() + self.interval


class _Pacer:
    """Spaces requests across all chats to at most `per_second`."""

    def __init__(self, per_second: float) -> None:
        self.gap = 1.0 / per_second
        self.next_at = 0.0

    async def wait(self) -> None:
        """Take the next free slot, sleeping until it comes."""
        now = time.monotonic()
        slot = max(now, self.next_at)
        self.next_at = slot + self.gap
        if slot > now:
            await asyncio.sleep(slot - now)


class TelegramAdapter(Adapter):
    """Telegram chats in and out, on the engine's event loop."""

    name = "telegram"

    def __init__(
        self,
        hub: Hub,
        *,
        poll_timeout: float = 30.0,
        poll_interval: float = 0.0,
        chat_interval: float = 1.0,
        group_interval: float = 3.0,
        per_second: float = 30.0,
        max_retries: int = 5,
        retry_backoff: float = 1.0,
        drain_timeout: float = 10.0,
    ) -> None:
        super().__init__(hub)
        self.config: TelegramConfig = hub.config.telegram
        self.poll_timeout = poll_timeout
        self.poll_interval = poll_interval
        self.chat_interval = chat_interval
        self.group_interval = group_interval
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.drain_timeout = drain_timeout
        self._pacer = _Pacer(per_second)
        self._app: Application | None = None
        self._chats: dict[str, _Chat] = {}
        # Limitation: open keyboards are remembered in memory only; after a
        # restart an old question's buttons are closed on their next tap.
        self._keyboards: dict[int, _Keyboard] = {}
        self._closing = False

    # Lifecycle

    async def start(self) -> None:
        """Connect, register the command menu, then poll or set the webhook."""
        from bot.engine import EngineError

        _quiet_http_logs()
        self._closing = False
        app = self._build()
        self._app = app
        try:
            await self._request(None, app.initialize)
            await self._register_commands()
            await app.start()
            if self.config.mode == "webhook":
                await self._set_webhook()
            else:
                assert app.updater is not None  # start_polling deletes any webhook
                await app.updater.start_polling(
                    poll_interval=self.poll_interval,
                    timeout=timedelta(seconds=self.poll_timeout),
                    bootstrap_retries=3,
                    allowed_updates=ALLOWED_UPDATES,
                    error_callback=_polling_error,
                )
        except BaseException as exc:
            self._app = None
            await self._shutdown(app)
            if isinstance(exc, InvalidToken):
                raise EngineError(_token_hint(self.config.api_url)) from None
            if isinstance(exc, TelegramError):
                raise EngineError(_start_failed(self.config.api_url, exc)) from None
            raise
        log.info("Telegram: @%s is %s", app.bot.username, self._mode_label())

    async def stop(self) -> None:
        """Stop receiving, deliver what is queued, then close the connections."""
        app = self._app
        if app is None:
            return
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
        workers = [c.worker for c in self._chats.values() if c.worker is not None]
        if workers:
            _, late = await asyncio.wait(workers, timeout=self.drain_timeout)
            if late:
                log.warning("Telegram: %s chat(s) still had messages queued", len(late))
        self._closing = True
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        for chat in self._chats.values():
            while not chat.queue.empty():
                _, future = chat.queue.get_nowait()
                if not future.done():
                    future.set_exception(NetworkError("the Telegram channel stopped"))
        await self._shutdown(app)
        self._app = None

    def _build(self) -> Application:
        builder = ApplicationBuilder().token(self.config.token).concurrent_updates(True)
        if self.config.api_url:
            api = self.config.api_url.rstrip("/")
            builder = builder.base_url(f"{api}/bot").base_file_url(f"{api}/file/bot")
        if self.config.mode == "webhook":
            builder = builder.updater(None)
        app = builder.build()
        app.add_handler(CallbackQueryHandler(self._on_tap))
        app.add_handler(
            MessageHandler(filters.UpdateType.MESSAGE & filters.TEXT, self._on_message)
        )
        app.add_error_handler(self._on_error)
        return app

    async def _shutdown(self, app: Application) -> None:
        try:
            if app.updater is not None and app.updater.running:
                await app.updater.stop()
            if app.running:
                await app.stop()
            await app.shutdown()
        except Exception:
            log.exception("Telegram: shutting down failed")

    async def _register_commands(self) -> None:
        assert self._app is not None
        commands = [BotCommand(name, about) for name, about in COMMANDS]
        try:
            await self._request(None, lambda: self._app.bot.set_my_commands(commands))
        except TelegramError as exc:
            log.warning("Telegram: could not set the command menu (%s)", _describe(exc))

    async def _set_webhook(self) -> None:
        assert self._app is not None
        bot = self._app.bot
        url = f"{self.hub.config.bot.public_url}{WEBHOOK_PATH}"
        await self._request(
            None,
            lambda: bot.set_webhook(
                url=url,
                secret_token=self.config.webhook_secret,
                allowed_updates=ALLOWED_UPDATES,
            ),
        )

    def _mode_label(self) -> str:
        if self.config.mode == "webhook":
            return f"on a webhook at {self.hub.config.bot.public_url}{WEBHOOK_PATH}"
        return "long polling"

    # Inbound

    def blueprint(self) -> Blueprint | None:
        """`POST /webhooks/telegram` in webhook mode; nothing when polling."""
        if self.config.mode != "webhook":
            return None
        from flask import Blueprint, jsonify, request

        bp = Blueprint("telegram", __name__)

        @bp.post(WEBHOOK_PATH)
        def webhook():
            """One update from Telegram, checked against the secret token."""
            expected = self.config.webhook_secret.encode()
            given = request.headers.get(SECRET_HEADER, "").encode()
            if not expected or not hmac.compare_digest(given, expected):
                log.warning(
                    "Telegram: refused a webhook call from %s", request.remote_addr
                )
                return jsonify(error="forbidden"), 403
            app = self._app
            if app is None or not app.running:
                return jsonify(error="not running"), 503
            body = request.get_json(silent=True, force=True)
            update = _parse_update(body, app.bot)
            if update is None:
                return jsonify(error="expected a Telegram update as JSON"), 400
            self.hub.loop.call_soon_threadsafe(app.update_queue.put_nowait, update)
            return jsonify(ok=True), 200

        return bp

    async def _on_message(self, update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
        """A text message or command: hand it to the core if it is meant for us."""
        # Limitation: only text is read; photos, files and captions are ignored.
        message = update.message
        user = message.from_user if message else None
        if message is None or user is None or user.is_bot or message.text is None:
            return
        text = self._addressed_text(message)
        if text is None:
            return
        if _HELP_COMMAND.fullmatch(text):
            text = "help"
        reply = message.reply_to_message
        await self.hub.receive(
            Message(
                channel=self.name,
                chat_id=str(message.chat.id),
                sender_id=str(user.id),
                sender_name=user.full_name or user.username or "",
                text=text,
                message_id=str(message.message_id),
                reply_to=str(reply.message_id) if reply else "",
            )
        )

    async def _on_tap(self, update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
        """A button under a question: answer it once, then close the keyboard."""
        query = update.callback_query
        if query is None:
            return
        found = _CALLBACK.fullmatch(query.data or "")
        shown = query.message if isinstance(query.message, TgMessage) else None
        if found is None or shown is None:
            await self._answer_query(query, None)
            return
        question_id, index = int(found[1]), int(found[2])
        chat_id = str(shown.chat.id)
        question = self.hub.storage.questions.get(question_id)
        if question is None or question.status != PENDING:
            answered = question is not None and question.status == ANSWERED
            await self._answer_query(
                query, "Already answered" if answered else "Closed"
            )
            keyboard = self._keyboards.pop(question_id, None)
            if keyboard is None and shown.reply_markup:  # e.g. from before a restart
                text = _without_hint(shown.text or "")
                keyboard = _Keyboard(chat_id, shown.message_id, text)
            if keyboard is not None:
                closing = keyboard
                await self._in_chat(
                    chat_id, lambda chat: self._close_keyboard(chat, closing, question)
                )
            return
        options = question.options or (
            list(APPROVAL_OPTIONS) if question.approval else []
        )
        if index >= len(options):
            await self._answer_query(query, "That option is no longer offered")
            return
        await self._answer_query(query, None)
        self._keyboards.setdefault(
            question_id,
            _Keyboard(chat_id, shown.message_id, _without_hint(shown.text or "")),
        )
        user = query.from_user
        await self.hub.receive(
            Message(
                channel=self.name,
                chat_id=chat_id,
                sender_id=str(user.id),
                sender_name=user.full_name or user.username or "",
                text=options[index],
                message_id=str(shown.message_id),
                question_id=question_id,
            )
        )
        await self._in_chat(chat_id, lambda chat: self._close_answered(chat, chat_id))

    async def _on_error(
        self, update: object, context: ContextTypes.DEFAULT_TYPE
    ) -> None:
        """Log a failed update; the next one is handled as usual."""
        error = context.error
        log.error(
            "Telegram: handling an update failed (%s)",
            type(error).__name__,
            exc_info=None if isinstance(error, TelegramError) else error,
        )

    def _addressed_text(self, message: TgMessage) -> str | None:
        """The text meant for the bot, or None for group chatter."""
        text = message.text or ""
        if message.chat.type == ChatType.PRIVATE:
            return text
        assert self._app is not None
        me = self._app.bot
        username = (me.username or "").lower()
        addressed = False
        for entity in message.entities:
            value = message.parse_entity(entity)
            if entity.type == MessageEntityType.BOT_COMMAND and entity.offset == 0:
                _, _, target = value.partition("@")
                if target and target.lower() != username:
                    return None
                addressed = True
            elif entity.type == MessageEntityType.MENTION:
                addressed |= value[1:].lower() == username
            elif entity.type == MessageEntityType.TEXT_MENTION and entity.user:
                addressed |= entity.user.id == me.id
        reply = message.reply_to_message
        if reply and reply.from_user and reply.from_user.id == me.id:
            addressed = True
        if not addressed:
            return None
        if username:
            text = re.sub(rf"@{re.escape(username)}\b[\s,:]*", " ", text, flags=re.I)
        return text.strip()

    async def _answer_query(self, query: CallbackQuery, text: str | None) -> None:
        try:
            await self._request(None, lambda: query.answer(text))
        except TelegramError as exc:
            log.warning(
                "Telegram: answering a button press failed (%s)", _describe(exc)
            )

    # Outbound

    async def send(self, chat_id: str, out: Outbound) -> str | None:
        """Show `out` in the chat; progress edits the job's status message."""
        try:
            return await self._in_chat(
                chat_id, lambda chat: self._deliver(chat, chat_id, out)
            )
        except Forbidden:
            raise TelegramSendError(
                "the bot was blocked or removed from the chat"
            ) from None
        except InvalidToken:
            raise TelegramSendError("Telegram rejected the bot token") from None
        except TelegramError as exc:
            raise TelegramSendError(
                f"Telegram did not take it ({_describe(exc)})"
            ) from None

    async def _deliver(self, chat: _Chat, chat_id: str, out: Outbound) -> str | None:
        if out.kind == "progress" and out.job_id is not None:
            return await self._show_progress(chat, chat_id, out)
        bot = self._bot()
        text, markup = _render(out)
        chunks = split_text(text)
        last: TgMessage | None = None
        # Limitation: a question too long for one message has its buttons (and
        # the reply-to-answer link) on the last part only.
        for number, chunk in enumerate(chunks, 1):
            keyboard = markup if number == len(chunks) else None
            last = await self._request(
                chat,
                lambda c=chunk, k=keyboard: bot.send_message(
                    chat_id, c, reply_markup=k
                ),
            )
        if out.attachment and (
            len(chunks) > 1 or out.attachment.strip() not in out.text
        ):
            data = out.attachment.encode("utf-8")
            name = out.attachment_name or "attachment.txt"
            await self._request(
                chat, lambda: bot.send_document(chat_id, document=data, filename=name)
            )
        if last is not None and markup is not None and out.question_id is not None:
            self._keyboards[out.question_id] = _Keyboard(
                chat_id, last.message_id, _without_hint(last.text or chunks[-1])
            )
        await self._close_answered(chat, chat_id)
        return str(last.message_id) if last is not None else None

    async def _show_progress(self, chat: _Chat, chat_id: str, out: Outbound) -> str:
        conversations = self.hub.storage.conversations
        key = f"telegram:status:{chat_id}:{out.job_id}"
        text = _truncate(out.text)
        known = conversations.get(key)
        if known:
            message_id = int(known["message_id"])
            if known.get("text") == text:
                return str(message_id)
            if await self._edit(chat, chat_id, message_id, text):
                conversations.put(key, {"message_id": message_id, "text": text})
                return str(message_id)
        bot = self._bot()
        sent = await self._request(
            chat, lambda: bot.send_message(chat_id, text, disable_notification=True)
        )
        conversations.put(key, {"message_id": sent.message_id, "text": text})
        return str(sent.message_id)

    async def _edit(
        self, chat: _Chat, chat_id: str, message_id: int, text: str
    ) -> bool:
        """Replace a message's text and drop its buttons; False if it is gone."""
        bot = self._bot()
        try:
            await self._request(
                chat,
                lambda: bot.edit_message_text(
                    _truncate(text), chat_id=chat_id, message_id=message_id
                ),
            )
        except BadRequest as exc:
            if "not modified" in exc.message.lower():
                return True
            log.info(
                "Telegram: message %s can't be edited (%s)", message_id, exc.message
            )
            return False
        return True

    async def _close_answered(self, chat: _Chat, chat_id: str) -> None:
        """Swap the buttons of this chat's settled questions for their answer."""
        for question_id, keyboard in list(self._keyboards.items()):
            if keyboard.chat_id != chat_id:
                continue
            question = self.hub.storage.questions.get(question_id)
            if question is not None and question.status == PENDING:
                continue
            self._keyboards.pop(question_id, None)
            await self._close_keyboard(chat, keyboard, question)

    async def _close_keyboard(
        self, chat: _Chat, keyboard: _Keyboard, question: Question | None
    ) -> None:
        answered = question is not None and question.status == ANSWERED
        outcome = question.answer if answered else "(closed)"
        text = f"{keyboard.text}\n→ {outcome}".strip()
        try:
            await self._edit(chat, keyboard.chat_id, keyboard.message_id, text)
        except TelegramError as exc:
            log.warning(
                "Telegram: closing a question's buttons failed (%s)", _describe(exc)
            )

    # Delivery machinery

    def _bot(self) -> Bot:
        if self._app is None:
            raise NetworkError("the Telegram channel is not running")
        return self._app.bot

    async def _in_chat(self, chat_id: str, work: Callable[[_Chat], Awaitable[T]]) -> T:
        """Run `work` in the chat's queue, after what is already queued there."""
        chat = self._chats.get(chat_id)
        if chat is None:
            group = chat_id.startswith("-")
            chat = _Chat(self.group_interval if group else self.chat_interval)
            self._chats[chat_id] = chat
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        chat.queue.put_nowait((work, future))
        if chat.worker is None:
            chat.worker = asyncio.create_task(
                self._work(chat), name=f"telegram-{chat_id}"
            )
        return await future

    async def _work(self, chat: _Chat) -> None:
        try:
            while not chat.queue.empty():
                work, future = chat.queue.get_nowait()
                try:
                    result = await work(chat)
                except asyncio.CancelledError:
                    if not future.done():
                        future.set_exception(
                            NetworkError("the Telegram channel stopped")
                        )
                    raise
                except Exception as exc:
                    if not future.done():
                        future.set_exception(exc)
                else:
                    if not future.done():
                        future.set_result(result)
        finally:
            chat.worker = None

    async def _request(self, chat: _Chat | None, call: Callable[[], Awaitable[T]]) -> T:
        """One Bot API call, paced; flood control waited out, network errors retried."""
        failures = 0
        while True:
            if chat is not None:
                await chat.pace()
            await self._pacer.wait()
            try:
                return await call()
            except RetryAfter as exc:
                if self._closing:
                    raise
                wait = _retry_seconds(exc)
                log.warning("Telegram flood control: retrying in %.1f s", wait)
                await asyncio.sleep(wait)
            except (BadRequest, InvalidToken):
                raise
            except (TimedOut, NetworkError) as exc:
                # Limitation: a send that timed out may have arrived; the retry
                # can then show the message twice.
                failures += 1
                if failures > self.max_retries or self._closing:
                    raise
                delay = self.retry_backoff * 2 ** (failures - 1)
                log.warning(
                    "Telegram request failed (%s); retry %s in %.1f s",
                    _describe(exc),
                    failures,
                    delay,
                )
                await asyncio.sleep(delay)


async def check(config: TelegramConfig) -> str:
    """Call getMe (and getWebhookInfo) for `swarmbot doctor`; raises with a fix."""
    _quiet_http_logs()
    kwargs: dict[str, Any] = {}
    if config.api_url:
        api = config.api_url.rstrip("/")
        kwargs = {"base_url": f"{api}/bot", "base_file_url": f"{api}/file/bot"}
    try:
        bot = Bot(config.token, **kwargs)
        async with bot:
            info = await bot.get_webhook_info()
            username = bot.username
    except InvalidToken:
        raise TelegramCheckError(_token_hint(config.api_url)) from None
    except BadRequest as exc:
        raise TelegramCheckError(f"Telegram said: {_describe(exc)}") from None
    except NetworkError as exc:
        raise TelegramCheckError(_unreachable(config.api_url, exc)) from None
    except TelegramError as exc:
        raise TelegramCheckError(f"Telegram said: {_describe(exc)}") from None
    detail = f"@{username} reachable"
    if config.mode == "webhook":
        if not info.url:
            return f"{detail}; no webhook yet (serve sets it)"
        if info.last_error_message:
            return (
                f"{detail}; webhook {info.url} last failed: {info.last_error_message}"
            )
        return f"{detail}; webhook {info.url}"
    if info.url:
        return f"{detail}; a webhook is set, serve removes it to poll"
    return f"{detail}; long polling"


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Split `text` into messages of at most `limit` UTF-16 units, at line ends."""
    return split_message(text, limit, _units)


def callback_data(question_id: int, index: int) -> str:
    """The data of option `index`'s button under question `question_id`."""
    return f"q:{question_id}:{index}"


def _render(out: Outbound) -> tuple[str, InlineKeyboardMarkup | None]:
    """The text and buttons of an outbound message."""
    if out.kind != "question" or out.question_id is None:
        return out.text, None
    if out.approval:
        row = [
            InlineKeyboardButton(label, callback_data=callback_data(out.question_id, n))
            for n, label in enumerate(APPROVAL_OPTIONS)
        ]
        return out.text, InlineKeyboardMarkup([row])
    if not out.options:
        return f"{out.text}\n\n{FREE_HINT}", None
    rows = [
        [
            InlineKeyboardButton(
                _truncate(option, BUTTON_LABEL),
                callback_data=callback_data(out.question_id, n),
            )
        ]
        for n, option in enumerate(out.options)
    ]
    return f"{out.text}\n\n{HINT}", InlineKeyboardMarkup(rows)


def _without_hint(text: str) -> str:
    return text.removesuffix(HINT).rstrip()


def _units(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units."""
    return len(text) + sum(ord(c) > 0xFFFF for c in text)


def _hard_split(line: str, limit: int) -> list[str]:
    pieces: list[str] = []
    start = units = 0
    for index, char in enumerate(line):
        width = 2 if ord(char) > 0xFFFF else 1
        if units + width > limit:
            pieces.append(line[start:index])
            start, units = index, 0
        units += width
    pieces.append(line[start:])
    return pieces


def _truncate(text: str, limit: int = MAX_TEXT) -> str:
    if _units(text) <= limit:
        return text
    return _hard_split(text, limit - 1)[0] + "…"


def _parse_update(body: Any, bot: Bot) -> Update | None:
    """An Update from a webhook body, or None when it is not one."""
    if not isinstance(body, dict) or not isinstance(body.get("update_id"), int):
        return None
    try:
        return Update.de_json(body, bot)
    except Exception:
        log.warning("Telegram: a webhook body was not a valid update")
        return None


def _retry_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = exc.retry_after
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


def _describe(exc: TelegramError) -> str:
    """A short description of a Telegram error, without the token."""
    if isinstance(exc, InvalidToken):
        return "token rejected"
    if isinstance(exc, RetryAfter):
        return "flood control"
    if isinstance(exc, BadRequest | Forbidden):
        return exc.message[:200]
    return type(exc).__name__


def _host(api_url: str) -> str:
    return urlsplit(api_url or DEFAULT_API).netloc or api_url


def _token_hint(api_url: str) -> str:
    hint = (
        "Telegram rejected the bot token; copy it again from @BotFather "
        "into [telegram] token."
    )
    if api_url:
        hint += f" Also check that [telegram] api_url ({_host(api_url)}) is a Bot API."
    return hint


def _unreachable(api_url: str, exc: TelegramError) -> str:
    return (
        f"Cannot reach the Telegram Bot API at {_host(api_url)} ({_describe(exc)}); "
        "check the network or [telegram] api_url."
    )


def _start_failed(api_url: str, exc: TelegramError) -> str:
    if isinstance(exc, BadRequest):
        return (
            f"Telegram refused the setup ({_describe(exc)}); in webhook mode "
            "[bot] public_url must be your public HTTPS address."
        )
    return _unreachable(api_url, exc)


def _polling_error(exc: TelegramError) -> None:
    log.warning("Telegram: polling failed (%s); retrying", _describe(exc))


def _quiet_http_logs() -> None:
    """URLs hold the bot token: httpx logs them at INFO, PTB at DEBUG."""
    for name, level in (
        ("httpx", logging.WARNING),
        ("httpcore", logging.WARNING),
        ("telegram", logging.INFO),
    ):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(level)

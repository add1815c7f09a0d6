"""The values that cross the line between chat channels and the core."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["reply", "ack", "progress", "question", "result", "failure"]


@dataclass(frozen=True)
class Message:
    """One inbound chat message, whatever channel it came from."""

    channel: str
    chat_id: str
    sender_id: str
    text: str
    sender_name: str = ""
    message_id: str = ""
    reply_to: str = ""
    trusted: bool = False
    question_id: int | None = None


@dataclass(frozen=True)
class Outbound:
    """One message from the bot to a chat.

    `kind` lets a channel choose how to show it: `progress` is a status line
    that may be edited in place or dropped, `question` carries `options`
    (buttons or a numbered list), `result` and `failure` should notify.
    """

    text: str
    kind: Kind = "reply"
    job_id: int | None = None
    question_id: int | None = None
    options: tuple[str, ...] = field(default_factory=tuple)
    approval: bool = False
    attachment: str | None = None
    attachment_name: str = ""


def render_plain(out: Outbound) -> str:
    """The text of `out` for channels without buttons: options as a numbered list."""
    if not out.options:
        return out.text
    if out.approval:
        return f"{out.text}\nReply yes or no."
    lines = [out.text, *(f"{n}. {option}" for n, option in enumerate(out.options, 1))]
    lines.append("Reply with a number or your own answer.")
    return "\n".join(lines)


def format_duration(seconds: float) -> str:
    """`42 s`, `4 min 12 s` or `1 h 3 min`."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"

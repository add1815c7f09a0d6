"""The values that cross the line between chat channels and the core."""

from __future__ import annotations

from collections.abc import Callable
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


def split_message(
    text: str, limit: int, measure: Callable[[str], int] = len
) -> list[str]:
    """`text` in parts of at most `limit` (by `measure`), cut at line ends.

    A line longer than `limit` is cut at a space near its end, or hard where
    there is none. Blank parts are dropped.
    """
    parts: list[str] = []
    current: str | None = None
    for line in text.split("\n"):
        for piece in _wrap(line, limit, measure):
            if current is None:
                current = piece
            elif measure(current) + 1 + measure(piece) <= limit:
                current = f"{current}\n{piece}"
            else:
                parts.append(current)
                current = piece
    if current is not None:
        parts.append(current)
    return [part.strip("\n") for part in parts if part.strip()]


def _wrap(line: str, limit: int, measure: Callable[[str], int]) -> list[str]:
    pieces = []
    while measure(line) > limit:
        end = _fit(line, limit, measure)
        cut = line.rfind(" ", 0, end + 1)
        if cut < end // 2:
            cut = end
        pieces.append(line[:cut])
        line = line[cut:].lstrip(" ")
    pieces.append(line)
    return pieces


def _fit(line: str, limit: int, measure: Callable[[str], int]) -> int:
    """How many characters of `line` fit in `limit`."""
    used = 0
    for index, char in enumerate(line):
        used += measure(char)
        if used > limit:
            return max(index, 1)
    return len(line)

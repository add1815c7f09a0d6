"""The one small interface every chat channel implements.

An adapter turns its transport's updates into `Message` values and hands
them to the hub; it shows the hub's `Outbound` messages in its own way.
Parsing, authorisation and decisions all live in `bot/`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

from bot.messages import Message, Outbound

if TYPE_CHECKING:
    from flask import Blueprint

    from bot.config import Config
    from storage import Storage


class Hub(Protocol):
    """What an adapter may use of the engine."""

    config: Config
    storage: Storage
    loop: asyncio.AbstractEventLoop

    async def receive(self, message: Message) -> None:
        """Handle one inbound message (on the engine's loop)."""
        ...

    def receive_threadsafe(self, message: Message) -> None:
        """Hand a message over from another thread, e.g. a webhook."""
        ...


class Adapter:
    """Base class of chat channels; `name` is the `Message.channel` it emits."""

    name = ""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def blueprint(self) -> Blueprint | None:
        """Flask routes this channel needs on `serve`'s web server, if any."""
        return None

    async def start(self) -> None:
        """Start receiving (polling loops run as tasks on the engine's loop)."""

    async def stop(self) -> None:
        """Stop receiving and release connections."""

    async def send(self, chat_id: str, out: Outbound) -> str | None:
        """Show one outbound message; returns the channel's id for it, if any."""
        raise NotImplementedError

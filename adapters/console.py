"""The terminal chat: one message per input line, replies printed as they come."""

from __future__ import annotations

import asyncio
import itertools
import sys
import threading
from typing import TextIO

from adapters.base import Adapter, Hub
from bot.messages import Message, Outbound, render_plain

CHAT_ID = "terminal"


class ConsoleAdapter(Adapter):
    """A trusted local channel on standard input and output."""

    name = "console"

    def __init__(
        self, hub: Hub, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout
    ) -> None:
        super().__init__(hub)
        self.stdin = stdin
        self.stdout = stdout
        self._ids = itertools.count(1)

    async def send(self, chat_id: str, out: Outbound) -> str | None:
        """Print the message; options as a numbered list."""
        self.stdout.write(render_plain(out) + "\n")
        self.stdout.flush()
        return str(next(self._ids))

    async def run(self) -> None:
        """Read lines until end of input, handing each to the hub."""
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str | None] = asyncio.Queue()

        def read() -> None:
            for line in self.stdin:
                loop.call_soon_threadsafe(lines.put_nowait, line)
            loop.call_soon_threadsafe(lines.put_nowait, None)

        threading.Thread(target=read, name="console-input", daemon=True).start()
        while (line := await lines.get()) is not None:
            text = line.strip()
            if not text:
                continue
            await self.hub.receive(
                Message(
                    channel=self.name,
                    chat_id=CHAT_ID,
                    sender_id="local",
                    sender_name="you",
                    text=text,
                    trusted=True,
                )
            )

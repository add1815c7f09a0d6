"""The `command` backend: any CLI agent, given as an argv template.

The template's items may contain `{prompt}`, `{worktree}` and `{job}`; they
are substituted item by item, never through a shell. The agent can ask the
human with the helper `swarmbot ask "Which one?" --option a --option b`,
which blocks until the chat answers and prints the answer. The helper finds
the bot through `SWARMBOT_ASK_ADDR` and `SWARMBOT_ASK_TOKEN`, which this
backend puts in the agent's environment.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
from collections import deque

from bot.agents.base import (
    AgentCallbacks,
    AgentError,
    AgentEvent,
    AgentRequest,
    AgentResult,
)
from bot.config import AgentConfig

log = logging.getLogger(__name__)

MAX_REQUEST = 64 * 1024


class CommandAgent:
    """Runs the configured argv in the worktree and relays its questions."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config

    async def run(
        self, request: AgentRequest, callbacks: AgentCallbacks
    ) -> AgentResult:
        """Run the command to its end; its last lines of output are the summary."""
        token = secrets.token_urlsafe(24)
        asking: set[asyncio.Task] = set()

        async def serve(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            task = asyncio.current_task()
            assert task is not None
            asking.add(task)
            try:
                await self._serve_ask(reader, writer, token, callbacks)
            finally:
                asking.discard(task)

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        host, port = server.sockets[0].getsockname()[:2]
        argv = [self._fill(item, request) for item in self.config.command]
        env = {
            **os.environ,
            **self.config.env,
            "SWARMBOT_ASK_ADDR": f"{host}:{port}",
            "SWARMBOT_ASK_TOKEN": token,
            "SWARMBOT_JOB": str(request.job_id),
        }
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=request.worktree,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                limit=1024 * 1024,
            )
        except OSError as exc:
            server.close()
            raise AgentError(f"could not start {argv[0]}: {exc.strerror}") from exc

        log.info("Job %s: started %s (pid %s)", request.job_id, argv[0], process.pid)
        await callbacks.progress(AgentEvent("started"))
        tail: deque[str] = deque(maxlen=20)
        try:
            assert process.stdout is not None
            async for raw in process.stdout:
                line = raw.decode("utf-8", "replace").rstrip()
                tail.append(line)
                await callbacks.progress(AgentEvent("text", line[:500]))
            code = await process.wait()
        except asyncio.CancelledError:
            await _stop(process)
            raise
        finally:
            server.close()
            for task in list(asking):  # questions nobody will answer now
                task.cancel()

        summary = "\n".join(tail).strip()
        if code != 0:
            return AgentResult(
                ok=False, summary=summary, error=f"exited with status {code}"
            )
        return AgentResult(ok=True, summary=summary)

    @staticmethod
    def _fill(item: str, request: AgentRequest) -> str:
        return (
            item.replace("{prompt}", request.prompt)
            .replace("{worktree}", str(request.worktree))
            .replace("{job}", str(request.job_id))
        )

    @staticmethod
    async def _serve_ask(
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        token: str,
        callbacks: AgentCallbacks,
    ) -> None:
        """One question per connection: a JSON line in, a JSON line out."""
        try:
            line = await reader.readline()
            request = json.loads(line[:MAX_REQUEST] or b"{}")
            if not secrets.compare_digest(str(request.get("token", "")), token):
                reply = {"error": "bad token"}
            else:
                question = str(request.get("question", "")).strip() or "?"
                options = [str(option) for option in request.get("options", [])][:10]
                reply = {"answer": await callbacks.ask(question, options)}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (json.JSONDecodeError, AttributeError, ConnectionError):
            log.warning("A malformed question reached the ask helper's socket")
        finally:
            writer.close()


def ask(question: str, options: list[str]) -> str:
    """Ask the human from inside a command agent; blocks until answered."""
    import socket

    address = os.environ.get("SWARMBOT_ASK_ADDR", "")
    token = os.environ.get("SWARMBOT_ASK_TOKEN", "")
    if not address or not token:
        raise AgentError("swarmbot ask runs only inside a swarmbot command agent")
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port))) as conn:
        payload = {"token": token, "question": question, "options": options}
        conn.sendall(json.dumps(payload).encode() + b"\n")
        reply = json.loads(conn.makefile("rb").readline() or b"{}")
    if "answer" not in reply:
        raise AgentError(reply.get("error", "no answer"))
    return str(reply["answer"])


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM the agent's process group, then SIGKILL what is left."""
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            await asyncio.wait_for(asyncio.shield(process.wait()), grace)
            break
        except TimeoutError:
            continue
    await process.wait()

"""The `swarmbot` command: serve, chat, jobs, doctor, and the agents' ask helper."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

import click

from bot.config import Config, ConfigError, load_config
from bot.engine import Engine, EngineError
from bot.logs import setup_logging

log = logging.getLogger(__name__)

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Config file (default: $SWARMBOT_CONFIG, then ./swarmbot.toml).",
)


def _load(config_path: Path | None) -> Config:
    try:
        return load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
@click.version_option(package_name="swarmbot")
def main() -> None:
    """Run a swarm of coding agents from your phone."""


@main.command()
@config_option
@click.option("--host", default=None, help="Address to listen on.")
@click.option(
    "--port", type=int, default=None, help="Port (default: $PORT, then 8000)."
)
def serve(config_path: Path | None, host: str | None, port: int | None) -> None:
    """Run the bot: channels, webhooks, the local web chat and the jobs."""
    config = _load(config_path)
    setup_logging(config, console_level=logging.INFO)
    if port is None:
        port = int(os.environ.get("PORT") or 8000)
    if host is None:
        host = "0.0.0.0" if os.environ.get("PORT") else "127.0.0.1"  # noqa: S104
    try:
        asyncio.run(_serve(config, host, port))
    except EngineError as exc:
        raise click.ClickException(str(exc)) from exc


async def _serve(config: Config, host: str, port: int) -> None:
    from bot.web import make_server

    engine = Engine.for_serve(config)
    await engine.start()
    try:
        try:
            server = make_server(engine, host, port)
        except OSError as exc:
            raise EngineError(
                f"Cannot listen on {host}:{port} ({exc.strerror}); pick another --port."
            ) from exc
        threading.Thread(target=server.run, name="http", daemon=True).start()
        click.echo(f"swarmbot is serving on http://{host}:{server.effective_port}/")

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        click.echo("Stopping; running jobs resume at the next start.")
        server.close()
    finally:
        await engine.stop()


@main.command()
@config_option
def chat(config_path: Path | None) -> None:
    """Chat with the bot in the terminal; works on a pipe, one message per line."""
    config = _load(config_path)
    setup_logging(config, console_level=logging.WARNING)
    try:
        asyncio.run(_chat(config))
    except EngineError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        click.echo("Stopped; unfinished jobs resume at the next start.", err=True)


async def _chat(config: Config) -> None:
    from adapters.console import ConsoleAdapter

    engine = Engine(config, recover_channels={"console"})
    console = ConsoleAdapter(engine)
    engine.add_adapter(console)
    await engine.start()
    try:
        await console.run()
        await _wait_for_jobs(engine, "console")
    finally:
        await engine.stop()


async def _wait_for_jobs(engine: Engine, channel: str) -> None:
    """Wait until this channel's jobs end, or only wait for answers no one can give."""
    while True:
        jobs = [job for job in engine.storage.jobs.active() if job.channel == channel]
        if not jobs:
            return
        if all(engine.storage.questions.pending(job.id) for job in jobs):
            ids = ", ".join(str(job.id) for job in jobs)
            click.echo(
                f"Input ended while job {ids} waits for an answer; "
                "it resumes at the next start.",
                err=True,
            )
            return
        await asyncio.sleep(0.2)


@main.command()
@config_option
def jobs(config_path: Path | None) -> None:
    """Print a table of jobs."""
    from storage import Storage

    config = _load(config_path)
    storage = Storage(config.bot.data_dir / "swarmbot.json")
    rows = storage.jobs.all()
    if not rows:
        click.echo("No jobs yet.")
        return
    click.echo(
        f"{'ID':>4}  {'STATE':<18}  {'JOB':<32}  {'BRANCH / PR':<40}  {'COST':>6}  AGE"
    )
    now = time.time()
    for job in reversed(rows):
        where = job.pr_url or job.branch
        age = _age(now - job.created_at)
        click.echo(
            f"{job.id:>4}  {job.state:<18}  {job.label[:32]:<32}  "
            f"{where[:40]:<40}  {job.cost_usd:>6.2f}  {age}"
        )


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


@main.command()
@config_option
def doctor(config_path: Path | None) -> None:
    """Check git, the agent, the config, the repos and the tokens."""
    from bot.doctor import run_checks

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        click.echo(f"FAIL  config: {exc}")
        sys.exit(1)
    failures = 0
    for check in run_checks(config):
        mark = "ok  " if check.ok else "FAIL"
        click.echo(f"{mark}  {check.name}: {check.detail}")
        failures += not check.ok
    if failures:
        click.echo(
            f"{failures} check(s) failed; fix them and run swarmbot doctor again."
        )
        sys.exit(1)
    click.echo("All good.")


@main.command()
@click.argument("question")
@click.option("--option", "options", multiple=True, help="A choice; repeat for more.")
def ask(question: str, options: tuple[str, ...]) -> None:
    """Ask the human from inside a command agent; prints the answer."""
    from bot.agents.base import AgentError
    from bot.agents.command import ask as ask_human

    try:
        click.echo(ask_human(question, list(options)))
    except (AgentError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc

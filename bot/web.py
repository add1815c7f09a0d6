"""The HTTP side of `serve`: health, webhooks and each channel's routes."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import waitress
from flask import Flask, jsonify, request

from bot.forge import verify_webhook_signature
from bot.messages import Outbound
from storage.jobs import ACTIVE_STATES

if TYPE_CHECKING:
    from bot.engine import Engine

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024


def make_server(engine: Engine, host: str, port: int, threads: int = 8):
    """A waitress server for `engine`'s app; `run()` it in a thread."""
    return waitress.create_server(
        create_app(engine),
        host=host,
        port=port,
        threads=threads,
        clear_untrusted_proxy_headers=False,  # the web chat must see them to refuse
    )


def create_app(engine: Engine) -> Flask:
    """The Flask app for `engine`: every adapter's routes plus the bot's own."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY

    for adapter in engine.adapters.values():
        blueprint = adapter.blueprint()
        if blueprint is not None:
            app.register_blueprint(blueprint)

    @app.get("/healthz")
    def healthz():
        """Liveness and a little status."""
        jobs = engine.storage.jobs.all()
        return jsonify(
            status="ok",
            channels=sorted(engine.adapters),
            active_jobs=sum(job.state in ACTIVE_STATES for job in jobs),
            jobs=len(jobs),
        )

    @app.post("/webhooks/github")
    def github_webhook():
        """GitHub events; a merged or closed PR is reported to the job's chat."""
        secret = engine.config.github.webhook_secret
        signature = request.headers.get("X-Hub-Signature-256")
        if not verify_webhook_signature(secret, request.get_data(), signature):
            log.warning(
                "Rejected a GitHub webhook with a bad signature from %s",
                request.remote_addr,
            )
            return jsonify(error="bad signature"), 403

        event = request.headers.get("X-GitHub-Event", "")
        payload = request.get_json(silent=True)
        if not isinstance(payload, dict):
            return jsonify(error="expected a JSON body"), 400
        if event == "pull_request" and payload.get("action") == "closed":
            pull = payload.get("pull_request") or {}
            _report_closed_pull(engine, pull)
        return jsonify(ok=True), 200

    return app


def _report_closed_pull(engine: Engine, pull: dict) -> None:
    url = str(pull.get("html_url", ""))
    for job in engine.storage.jobs.all():
        if url and job.pr_url == url:
            verb = "merged" if pull.get("merged") else "closed without merging"
            out = Outbound(
                text=f"Job {job.id}: PR {verb}.", kind="result", job_id=job.id
            )
            engine.loop.call_soon_threadsafe(
                engine.spawn, engine.notifier.to_job(job, out)
            )
            log.info("Job %s: PR %s", job.id, verb)

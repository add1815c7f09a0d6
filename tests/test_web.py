"""`serve`'s HTTP side: health, the local web chat's guard, the GitHub webhook."""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request

import pytest

from bot.engine import Engine
from tests.support import RunningBot, basic_config, command_agent

SECRET = "hook-secret"


@pytest.fixture
def bot(tmp_path, origin):
    extra = f'[github]\nwebhook_secret = "{SECRET}"\n'
    config = basic_config(tmp_path, origin, agent=command_agent("fix"), github=extra)
    running = RunningBot(Engine.for_serve(config)).start()
    yield running
    running.stop()


def request(bot, path, body=None, headers=None, method=None):
    data = (
        body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    )
    req = urllib.request.Request(
        bot.url + path, data=data, headers=headers or {}, method=method
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def signed(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_healthz(bot):
    status, body = request(bot, "/healthz")

    assert status == 200
    health = json.loads(body)
    assert health["status"] == "ok"
    assert health["channels"] == ["web"]


def test_the_web_chat_page_is_served(bot):
    status, body = request(bot, "/")

    assert status == 200
    assert b"<title>swarmbot</title>" in body


def test_the_web_chat_refuses_proxied_and_cross_site_requests(bot):
    body = {"text": "fix #42 in api"}
    json_header = {"Content-Type": "application/json"}

    proxied = {**json_header, "X-Forwarded-For": "203.0.113.9"}
    assert request(bot, "/api/messages", body, proxied)[0] == 403
    cross_site = {**json_header, "Origin": "https://evil.example"}
    assert request(bot, "/api/messages", body, cross_site)[0] == 403
    assert request(bot, "/", headers={"X-Forwarded-For": "203.0.113.9"})[0] == 403
    assert bot.engine.storage.jobs.all() == []


def test_the_web_chat_rejects_a_malformed_message(bot):
    status, body = request(
        bot, "/api/messages", b"not json", {"Content-Type": "text/plain"}
    )

    assert status == 400
    assert b"non-empty text" in body


def test_github_webhook_checks_the_signature(bot):
    payload = json.dumps({"zen": "Keep it logically awesome."}).encode()
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "ping"}

    forged = {**headers, "X-Hub-Signature-256": signed(payload, "wrong")}
    assert request(bot, "/webhooks/github", payload, forged)[0] == 403
    assert request(bot, "/webhooks/github", payload, headers)[0] == 403
    good = {**headers, "X-Hub-Signature-256": signed(payload)}
    assert request(bot, "/webhooks/github", payload, good)[0] == 200


def test_a_merged_pull_request_is_reported_to_the_chat(bot):
    from tests.support import WebChat

    job = bot.engine.storage.jobs.create(
        repo="api", channel="web", chat_id="browser", sender_id="local", issue=42
    )
    bot.engine.storage.jobs.update(
        job, state="done", pr_url="http://gh/acme/api/pull/7"
    )
    payload = json.dumps(
        {
            "action": "closed",
            "pull_request": {"html_url": "http://gh/acme/api/pull/7", "merged": True},
        }
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "pull_request",
        "X-Hub-Signature-256": signed(payload),
    }

    assert request(bot, "/webhooks/github", payload, headers)[0] == 200
    assert WebChat(bot.url).wait_for(r"^Job 1: PR merged\.", timeout=10)


def test_an_oversized_body_is_refused(bot):
    payload = b"x" * (2 * 1024 * 1024)
    status, _ = request(bot, "/webhooks/github", payload, {"X-GitHub-Event": "ping"})

    assert status == 413


def test_the_web_chat_refuses_a_tunnel_to_this_machine(bot):
    tunnel = {"Host": "swarm.example-tunnel.io", "Content-Type": "application/json"}

    assert request(bot, "/api/messages", {"text": "status"}, tunnel)[0] == 403
    assert request(bot, "/api/jobs", headers=tunnel)[0] == 403

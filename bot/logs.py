"""Logging setup: a file under the data dir, the console, and no secrets."""

from __future__ import annotations

import logging
from logging.handlers import RotatingFileHandler

from bot.config import Config

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
NOISY = ("httpx", "httpcore", "urllib3", "github", "twilio.http_client", "telegram.ext")


class RedactSecrets(logging.Filter):
    """Replaces every configured secret in a record's text with `***`."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [secret for secret in secrets if len(secret) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        text = record.getMessage()
        redacted = text
        for secret in self.secrets:
            redacted = redacted.replace(secret, "***")
        if redacted != text:
            record.msg, record.args = redacted, None
        return True


def secrets_of(config: Config) -> list[str]:
    """Every secret value the config holds."""
    values = [
        config.telegram.token,
        config.telegram.webhook_secret,
        config.whatsapp.auth_token,
        config.github.token,
        config.github.webhook_secret,
    ]
    values += [
        value
        for key, value in config.agent.env.items()
        if any(word in key.upper() for word in ("KEY", "TOKEN", "SECRET", "PASSWORD"))
    ]
    return [value for value in values if value]


def setup_logging(config: Config, console_level: int = logging.INFO) -> None:
    """Log to `data_dir/logs/swarmbot.log` at DEBUG and to stderr at `console_level`."""
    log_dir = config.bot.data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    redact = RedactSecrets(secrets_of(config))

    file_handler = RotatingFileHandler(
        log_dir / "swarmbot.log", maxBytes=5_000_000, backupCount=3, encoding="utf-8"
    )
    file_handler.setLevel(logging.DEBUG)
    console = logging.StreamHandler()
    console.setLevel(console_level)
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    for handler in (file_handler, console):
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(redact)
        root.addHandler(handler)
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("telegram").setLevel(logging.INFO)  # DEBUG lines carry the URL

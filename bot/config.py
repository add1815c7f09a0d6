"""Configuration: defaults, then the TOML file, then the environment.

`${VAR}` inside any string is replaced by the environment variable of that
name (empty when unset). Errors name the key and say how to fix it.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
REPO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
GITHUB_SLUG = re.compile(r"^[A-Za-z0-9-]+/[A-Za-z0-9._-]+$")


class ConfigError(Exception):
    """The configuration is unusable; the message says which key and the fix."""


@dataclass
class BotConfig:
    data_dir: Path
    max_parallel: int = 3
    public_url: str = "http://127.0.0.1:8000"
    commit_author: str = "swarmbot <swarmbot@localhost>"


@dataclass
class AgentConfig:
    backend: str = "claude"
    model: str = ""
    max_turns: int = 80
    timeout_minutes: float = 60
    max_budget_usd: float = 10.0
    command: list[str] = field(default_factory=list)
    allowed_commands: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class VerifyConfig:
    rounds: int = 2
    timeout_minutes: float = 15


@dataclass
class TelegramConfig:
    token: str = ""
    allowed_users: list[int] = field(default_factory=list)
    api_url: str = ""
    mode: str = "polling"
    webhook_secret: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.token)


@dataclass
class WhatsAppConfig:
    account_sid: str = ""
    auth_token: str = ""
    from_: str = ""
    allowed_numbers: list[str] = field(default_factory=list)
    api_url: str = ""
    content_sid: str = ""
    content_variables: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.account_sid and self.auth_token)


@dataclass
class GitHubConfig:
    token: str = ""
    api_url: str = "https://api.github.com"
    webhook_secret: str = ""


@dataclass
class RepoConfig:
    name: str
    url: str
    github: str = ""
    base: str = "main"
    test: str = ""


@dataclass
class Config:
    bot: BotConfig
    agent: AgentConfig = field(default_factory=AgentConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    telegram: TelegramConfig = field(default_factory=TelegramConfig)
    whatsapp: WhatsAppConfig = field(default_factory=WhatsAppConfig)
    github: GitHubConfig = field(default_factory=GitHubConfig)
    repos: dict[str, RepoConfig] = field(default_factory=dict)
    path: Path | None = None

    def find_repo(self, name: str) -> RepoConfig | None:
        """The repo called `name` in chat, by alias or `owner/name`, any case."""
        wanted = name.strip().lower().removesuffix(".git")
        if not wanted:
            return None
        for repo in self.repos.values():
            if wanted in (repo.name.lower(), repo.github.lower()):
                return repo
        return None


def default_config_path() -> Path:
    """`$SWARMBOT_CONFIG`, else `./swarmbot.toml`."""
    return Path(os.environ.get("SWARMBOT_CONFIG") or "swarmbot.toml")


def load_config(path: Path | str | None = None) -> Config:
    """Read the config file; no ./swarmbot.toml gives the embedded defaults.

    A file named by `path` or `$SWARMBOT_CONFIG` must exist.
    """
    given = Path(path) if path else None
    path = given or default_config_path()
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    elif given is not None:
        raise ConfigError(
            f"The config file {path} does not exist. "
            "Create it from swarmbot.example.toml or give another path."
        )
    elif os.environ.get("SWARMBOT_CONFIG"):
        raise ConfigError(
            f"SWARMBOT_CONFIG points at {path}, which does not exist. "
            "Create it from swarmbot.example.toml or unset the variable."
        )

    return parse_config(expand_env(raw), base_dir=path.resolve().parent, path=path)


def expand_env(value: Any) -> Any:
    """Replace `${VAR}` in every string of a parsed TOML tree."""
    if isinstance(value, str):
        return ENV_PATTERN.sub(lambda m: os.environ.get(m.group(1), ""), value)
    if isinstance(value, list):
        return [expand_env(item) for item in value]
    if isinstance(value, dict):
        return {key: expand_env(item) for key, item in value.items()}
    return value


def parse_config(
    raw: dict[str, Any], base_dir: Path, path: Path | None = None
) -> Config:
    """Build and validate a Config from a parsed TOML tree."""
    known = {"bot", "agent", "verify", "telegram", "whatsapp", "github", "repos"}
    for section in raw:
        if section not in known:
            raise ConfigError(
                f"Unknown section [{section}]. "
                f"Known sections: {', '.join(sorted(known))}."
            )

    bot = _section(raw, "bot", BotConfig, {"data_dir": "data"})
    bot.data_dir = (base_dir / str(bot.data_dir)).resolve()
    _require(bot.max_parallel >= 1, "bot.max_parallel", "must be 1 or more")
    bot.public_url = bot.public_url.rstrip("/")

    agent = _section(raw, "agent", AgentConfig)
    _require(
        agent.backend in ("claude", "command"),
        "agent.backend",
        'must be "claude" or "command"',
    )
    _require(
        agent.backend != "command" or bool(agent.command),
        "agent.command",
        'is required when backend = "command", e.g. ["aider", "--message", "{prompt}"]',
    )
    _require(agent.max_turns >= 1, "agent.max_turns", "must be 1 or more")
    _require(agent.timeout_minutes > 0, "agent.timeout_minutes", "must be positive")
    _require(agent.max_budget_usd > 0, "agent.max_budget_usd", "must be positive")
    agent.env = {str(k): str(v) for k, v in agent.env.items()}

    verify = _section(raw, "verify", VerifyConfig)
    _require(verify.rounds >= 0, "verify.rounds", "must be 0 or more")

    telegram = _section(raw, "telegram", TelegramConfig)
    _require(
        telegram.mode in ("polling", "webhook"),
        "telegram.mode",
        'must be "polling" or "webhook"',
    )
    try:
        telegram.allowed_users = [int(user) for user in telegram.allowed_users]
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            "telegram.allowed_users must hold numeric Telegram user ids, "
            "e.g. [123456789]; the bot tells a refused user their id."
        ) from exc
    if telegram.enabled and telegram.mode == "webhook":
        _require(
            bool(telegram.webhook_secret),
            "telegram.webhook_secret",
            "is required in webhook mode (any random string)",
        )

    whatsapp_raw = dict(raw.get("whatsapp", {}))
    if "from" in whatsapp_raw:
        whatsapp_raw["from_"] = whatsapp_raw.pop("from")
    whatsapp = _section({"whatsapp": whatsapp_raw}, "whatsapp", WhatsAppConfig)
    whatsapp.allowed_numbers = [
        normalise_number(number) for number in whatsapp.allowed_numbers
    ]
    if whatsapp.enabled:
        _require(
            bool(whatsapp.from_),
            "whatsapp.from",
            'is required, e.g. "whatsapp:+14155238886"',
        )

    github = _section(raw, "github", GitHubConfig)
    github.api_url = github.api_url.rstrip("/")

    repos = {}
    repos_raw = raw.get("repos", {})
    if not isinstance(repos_raw, dict):
        raise ConfigError("[repos] must be tables like [repos.api] with a url key.")
    for name, table in repos_raw.items():
        repos[name] = _repo(name, table, base_dir)

    return Config(
        bot=bot,
        agent=agent,
        verify=verify,
        telegram=telegram,
        whatsapp=whatsapp,
        github=github,
        repos=repos,
        path=path,
    )


def normalise_number(number: str) -> str:
    """`whatsapp:+1 555-123` and `+1555123` both become `+1555123`."""
    number = str(number).strip().removeprefix("whatsapp:")
    digits = re.sub(r"[^\d]", "", number)
    return f"+{digits}" if digits else ""


def _repo(name: str, table: Any, base_dir: Path) -> RepoConfig:
    key = f"repos.{name}"
    _require(
        bool(REPO_NAME.match(name)),
        key,
        "names may use letters, digits, '.', '_' and '-' only",
    )
    if not isinstance(table, dict):
        raise ConfigError(f"[{key}] must be a table with at least a url key.")
    repo = _section({key: table}, key, RepoConfig, {"name": name, "url": ""})
    _require(bool(repo.url), f"{key}.url", "is required: a clone URL or a local path")
    if "://" not in repo.url and not repo.url.startswith("git@"):
        repo.url = str((base_dir / repo.url).resolve())
    _require(
        not repo.github or bool(GITHUB_SLUG.match(repo.github)),
        f"{key}.github",
        'must look like "owner/name"',
    )
    return repo


def _section(
    raw: dict[str, Any], name: str, cls: type, defaults: dict[str, Any] | None = None
) -> Any:
    table = raw.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"[{name}] must be a table.")
    fields = cls.__dataclass_fields__
    values = dict(defaults or {})
    for key, value in table.items():
        if key not in fields or key == "name":
            shown = sorted(f.rstrip("_") for f in fields if f != "name")
            raise ConfigError(
                f"Unknown key {name}.{key.rstrip('_')}. Known keys: {', '.join(shown)}."
            )
        values[key] = _coerce(f"{name}.{key.rstrip('_')}", value, fields[key].type)
    return cls(**values)


def _coerce(key: str, value: Any, kind: str) -> Any:
    """Check a value against its field's annotation, converting numeric text.

    `kind` is the annotation as text (this module postpones annotations).
    """
    if kind in ("int", "float"):
        number = int if kind == "int" else float
        wrong = f"{key} must be {'a whole' if kind == 'int' else 'a'} number, "
        if isinstance(value, str):
            try:
                return number(value)
            except ValueError as exc:
                raise ConfigError(f"{wrong}not {value!r}.") from exc
        if isinstance(value, bool) or not isinstance(value, number | int):
            raise ConfigError(f"{wrong}not {value!r}.")
        return value
    if kind in ("str", "Path") and not isinstance(value, str):
        raise ConfigError(f"{key} must be a string, not {value!r}.")
    if kind.startswith("list[") and not isinstance(value, list):
        raise ConfigError(f'{key} must be a list, e.g. ["..."], not {value!r}.')
    if kind.startswith("dict[") and not isinstance(value, dict):
        raise ConfigError(
            f'{key} must be a table, e.g. {{ NAME = "value" }}, not {value!r}.'
        )
    return value


def _require(condition: bool, key: str, fix: str) -> None:
    if not condition:
        raise ConfigError(f"{key} {fix}.")

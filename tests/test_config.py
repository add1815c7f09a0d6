"""Configuration: the example file, `${VAR}` expansion, defaults and error messages.

Each test writes a swarmbot.toml the way a user would and loads it with
`load_config`, as the CLI does.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import (
    AgentConfig,
    ConfigError,
    GitHubConfig,
    TelegramConfig,
    VerifyConfig,
    load_config,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "swarmbot.example.toml"
EXAMPLE_VARS = (
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_WEBHOOK_SECRET",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "GITHUB_TOKEN",
    "GITHUB_WEBHOOK_SECRET",
    "ANTHROPIC_API_KEY",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """No config path and none of the example's variables leak in from outside."""
    for name in ("SWARMBOT_CONFIG", *EXAMPLE_VARS):
        monkeypatch.delenv(name, raising=False)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(tmp_path: Path, text: str):
    return load_config(write(tmp_path / "swarmbot.toml", text))


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    return str(caught.value)


# The shipped example and the defaults


def test_the_example_config_loads_with_every_channel_off():
    config = load_config(EXAMPLE)

    assert config.path == EXAMPLE
    assert config.bot.data_dir == ROOT / "data"
    assert config.bot.max_parallel == 3
    assert config.agent.backend == "claude"
    assert not config.telegram.enabled
    assert not config.whatsapp.enabled
    assert config.github.token == ""
    assert config.whatsapp.from_ == "whatsapp:+14155238886"
    assert config.repos == {}


def test_the_example_shows_the_defaults(tmp_path, monkeypatch):
    """The example says every key shows its default; check it against no file."""
    monkeypatch.chdir(tmp_path)
    example = load_config(EXAMPLE)
    defaults = load_config()

    assert example.agent == defaults.agent == AgentConfig()
    assert example.verify == defaults.verify == VerifyConfig()
    assert example.telegram == defaults.telegram == TelegramConfig()
    assert example.github == defaults.github == GitHubConfig()
    assert example.bot.max_parallel == defaults.bot.max_parallel
    assert example.bot.public_url == defaults.bot.public_url
    assert example.bot.commit_author == defaults.bot.commit_author


def test_the_commented_repo_in_the_example_works_once_uncommented(tmp_path):
    text = EXAMPLE.read_text(encoding="utf-8")
    text = re.sub(
        r"^# (\[repos\.api\]|url =|github =|base =|test =)", r"\1", text, flags=re.M
    )

    config = load(tmp_path, text)

    api = config.repos["api"]
    assert api.url == "https://github.com/acme/api.git"
    assert (api.github, api.base, api.test) == ("acme/api", "main", "pytest -q")


def test_no_file_gives_the_embedded_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    config = load_config()

    assert config.path == Path("swarmbot.toml")
    assert config.bot.data_dir == tmp_path / "data"
    assert config.bot.public_url == "http://127.0.0.1:8000"
    assert config.agent == AgentConfig()
    assert not config.telegram.enabled
    assert not config.whatsapp.enabled
    assert config.repos == {}


def test_swarmbot_toml_in_the_working_directory_is_read(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "swarmbot.toml", "[bot]\nmax_parallel = 5\n")

    assert load_config().bot.max_parallel == 5


def test_swarmbot_config_names_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "swarmbot.toml", "[bot]\nmax_parallel = 5\n")
    chosen = write(tmp_path / "etc" / "bot.toml", "[bot]\nmax_parallel = 2\n")
    monkeypatch.setenv("SWARMBOT_CONFIG", str(chosen))

    config = load_config()

    assert config.bot.max_parallel == 2
    assert config.bot.data_dir == tmp_path / "etc" / "data"


def test_swarmbot_config_pointing_at_a_missing_file_is_an_error(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere" / "swarmbot.toml"
    monkeypatch.setenv("SWARMBOT_CONFIG", str(missing))

    with pytest.raises(ConfigError, match="SWARMBOT_CONFIG") as caught:
        load_config()

    assert str(missing) in str(caught.value)
    assert "swarmbot.example.toml" in str(caught.value)


def test_an_explicit_path_to_a_missing_file_is_an_error(tmp_path):
    missing = tmp_path / "typo.toml"

    with pytest.raises(ConfigError) as caught:
        load_config(missing)

    assert str(missing) in str(caught.value)
    assert "SWARMBOT_CONFIG" not in str(caught.value)


# ${VAR} expansion


def test_variables_are_expanded_in_nested_tables_and_lists(tmp_path, monkeypatch):
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:abc")
    monkeypatch.setenv("ADMIN_ID", "42")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    monkeypatch.setenv("AIDER", "/opt/aider/bin/aider")
    monkeypatch.setenv("GIT_HOST", "git.example.com")
    monkeypatch.setenv("OWNER", "acme")

    config = load(
        tmp_path,
        """
        [agent]
        backend = "command"
        command = ["${AIDER}", "--yes", "--message", "{prompt}"]
        allowed_commands = ["npm run ${SCRIPT}*", "$AIDER --help"]
        env = { ANTHROPIC_API_KEY = "${ANTHROPIC_API_KEY}", OWNER = "${OWNER}" }

        [telegram]
        token = "${TELEGRAM_BOT_TOKEN}"
        allowed_users = ["${ADMIN_ID}", 7]

        [repos.api]
        url = "https://${GIT_HOST}/${OWNER}/api.git"
        github = "${OWNER}/api"
        """,
    )

    assert config.agent.command == [
        "/opt/aider/bin/aider",
        "--yes",
        "--message",
        "{prompt}",
    ]
    assert config.agent.allowed_commands == ["npm run *", "$AIDER --help"]
    assert config.agent.env == {"ANTHROPIC_API_KEY": "sk-test", "OWNER": "acme"}
    assert config.telegram.token == "123:abc"
    assert config.telegram.enabled
    assert config.telegram.allowed_users == [42, 7]
    assert config.repos["api"].url == "https://git.example.com/acme/api.git"
    assert config.repos["api"].github == "acme/api"


def test_an_unset_variable_reads_as_empty(tmp_path):
    config = load(
        tmp_path,
        """
        [agent]
        model = "${NO_SUCH_VARIABLE_SET}"

        [whatsapp]
        account_sid = "${TWILIO_ACCOUNT_SID}"
        auth_token = "${TWILIO_AUTH_TOKEN}"
        from = "whatsapp:+14155238886"
        """,
    )

    assert config.agent.model == ""
    assert config.whatsapp.account_sid == ""
    assert not config.whatsapp.enabled


def test_numbers_can_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTS", "5")
    monkeypatch.setenv("MINUTES", "7.5")
    monkeypatch.setenv("BUDGET", "2")
    monkeypatch.setenv("ROUNDS", "0")

    config = load(
        tmp_path,
        """
        [bot]
        max_parallel = "${AGENTS}"

        [agent]
        timeout_minutes = "${MINUTES}"
        max_budget_usd = "${BUDGET}"

        [verify]
        rounds = "${ROUNDS}"
        """,
    )

    assert config.bot.max_parallel == 5
    assert isinstance(config.bot.max_parallel, int)
    assert config.agent.timeout_minutes == 7.5
    assert config.agent.max_budget_usd == 2.0
    assert config.verify.rounds == 0


def test_agent_env_values_become_strings(tmp_path):
    config = load(tmp_path, "[agent]\nenv = { WORKERS = 4, DEBUG = true }\n")

    assert config.agent.env == {"WORKERS": "4", "DEBUG": "True"}


# Paths and repos


def test_relative_paths_resolve_against_the_config_folder(tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path = write(
        tmp_path / "conf" / "swarmbot.toml",
        f"""
        [bot]
        data_dir = "state"

        [repos.api]
        url = "../origins/api.git"

        [repos.web]
        url = "https://github.com/acme/web.git"

        [repos.ssh]
        url = "git@github.com:acme/ssh.git"

        [repos.abs]
        url = "{tmp_path / "abs.git"}"
        """,
    )

    config = load_config(path)

    assert config.bot.data_dir == tmp_path / "conf" / "state"
    assert config.repos["api"].url == str(tmp_path / "origins" / "api.git")
    assert config.repos["web"].url == "https://github.com/acme/web.git"
    assert config.repos["ssh"].url == "git@github.com:acme/ssh.git"
    assert config.repos["abs"].url == str(tmp_path / "abs.git")


def test_repos_are_found_by_alias_or_owner_and_name_in_any_case(tmp_path):
    config = load(
        tmp_path,
        """
        [repos.api]
        url = "https://github.com/acme/api.git"
        github = "Acme/API"

        [repos.docs]
        url = "https://example.com/docs.git"
        """,
    )
    api, docs = config.repos["api"], config.repos["docs"]

    for name in ("api", "API", " Api ", "acme/api", "ACME/Api", "acme/api.git"):
        assert config.find_repo(name) is api, name
    assert config.find_repo("Docs") is docs
    assert config.find_repo("acme/docs") is None
    assert config.find_repo("web") is None
    assert config.find_repo("") is None
    assert config.find_repo("  ") is None


@pytest.fixture(scope="module")
def acme_api(tmp_path_factory):
    return load(
        tmp_path_factory.mktemp("casing"),
        """
        [repos.api]
        url = "https://github.com/acme/api.git"
        github = "acme/api"
        """,
    )


@given(upper=st.lists(st.booleans(), min_size=8, max_size=8))
def test_any_casing_of_owner_and_name_finds_the_repo(acme_api, upper):
    name = "".join(
        c.upper() if up else c for c, up in zip("acme/api", upper, strict=True)
    )

    assert acme_api.find_repo(name) is acme_api.repos["api"]


def test_whatsapp_numbers_and_urls_are_normalised(tmp_path):
    config = load(
        tmp_path,
        """
        [bot]
        public_url = "https://bot.example.com/"

        [github]
        api_url = "https://ghe.example.com/api/v3/"

        [whatsapp]
        allowed_numbers = ["+1 (555) 123-4567", "whatsapp:+15557654321"]
        """,
    )

    assert config.bot.public_url == "https://bot.example.com"
    assert config.github.api_url == "https://ghe.example.com/api/v3"
    assert config.whatsapp.allowed_numbers == ["+15551234567", "+15557654321"]


# Errors: each names the key and says what to do


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "[agnet]\nbackend = 'claude'\n",
            ["Unknown section [agnet]", "agent", "repos"],
            id="unknown section",
        ),
        pytest.param(
            "[agent]\nbakend = 'command'\n",
            ["Unknown key agent.bakend", "backend", "command"],
            id="unknown key",
        ),
        pytest.param(
            "[agent]\nbackend = 'command'\n",
            ["agent.command", 'backend = "command"', '["aider"'],
            id="command backend without command",
        ),
        pytest.param(
            "[agent]\nbackend = 'codex'\n",
            ["agent.backend", '"claude" or "command"'],
            id="unknown backend",
        ),
        pytest.param(
            "[bot]\nmax_parallel = 0\n",
            ["bot.max_parallel", "1 or more"],
            id="max_parallel 0",
        ),
        pytest.param(
            "[bot]\nmax_parallel = 'many'\n",
            ["bot.max_parallel", "number", "'many'"],
            id="max_parallel not a number",
        ),
        pytest.param(
            "[bot]\nmax_parallel = 2.5\n",
            ["bot.max_parallel", "whole number", "2.5"],
            id="max_parallel a fraction",
        ),
        pytest.param(
            "[agent]\nmax_turns = true\n",
            ["agent.max_turns", "number", "True"],
            id="boolean for a number",
        ),
        pytest.param(
            "[agent]\ntimeout_minutes = 0\n",
            ["agent.timeout_minutes", "positive"],
            id="timeout 0",
        ),
        pytest.param(
            "[verify]\nrounds = -1\n",
            ["verify.rounds", "0 or more"],
            id="negative rounds",
        ),
        pytest.param(
            "[bot]\npublic_url = 8000\n",
            ["bot.public_url", "string"],
            id="number for a string",
        ),
        pytest.param(
            "[repos.'my api']\nurl = 'https://example.com/api.git'\n",
            ["repos.my api", "letters, digits"],
            id="bad repo name",
        ),
        pytest.param(
            "[repos.api]\nurl = 'https://example.com/api.git'\ngithub = 'acme'\n",
            ["repos.api.github", '"owner/name"'],
            id="bad github slug",
        ),
        pytest.param(
            "[repos.api]\nurl = 'https://example.com/api.git'\n"
            "github = 'https://github.com/acme/api'\n",
            ["repos.api.github", '"owner/name"'],
            id="github url instead of slug",
        ),
        pytest.param(
            "[repos.api]\ngithub = 'acme/api'\n",
            ["repos.api.url", "required", "local path"],
            id="repo without url",
        ),
        pytest.param(
            "[repos.api]\nurl = 'https://example.com/api.git'\nbranch = 'dev'\n",
            ["Unknown key repos.api.branch", "base"],
            id="unknown repo key",
        ),
        pytest.param(
            "[repos]\napi = 'https://example.com/api.git'\n",
            ["[repos.api]", "table", "url"],
            id="repo given as a string",
        ),
        pytest.param(
            "repos = ['api']\n",
            ["[repos]", "[repos.api]"],
            id="repos given as a list",
        ),
        pytest.param(
            "[telegram]\nallowed_users = ['@ada']\n",
            ["telegram.allowed_users", "numeric", "[123456789]"],
            id="non-numeric allowed_users",
        ),
        pytest.param(
            "[telegram]\ntoken = '123:abc'\nmode = 'webhook'\n",
            ["telegram.webhook_secret", "webhook mode"],
            id="webhook without secret",
        ),
        pytest.param(
            "[telegram]\nmode = 'push'\n",
            ["telegram.mode", '"polling" or "webhook"'],
            id="unknown telegram mode",
        ),
        pytest.param(
            "[whatsapp]\naccount_sid = 'AC1'\nauth_token = 'tok'\n",
            ["whatsapp.from", "whatsapp:+"],
            id="whatsapp without sender",
        ),
        pytest.param(
            "[agent]\ncommand = 'aider --message {prompt}'\n",
            ["agent.command", "list", '["'],
            id="command given as a string",
        ),
        pytest.param(
            "[telegram]\nallowed_users = '123456789'\n",
            ["telegram.allowed_users", "list"],
            id="allowed_users given as a string",
        ),
        pytest.param(
            "[whatsapp]\nallowed_numbers = '+15551234567'\n",
            ["whatsapp.allowed_numbers", "list"],
            id="allowed_numbers given as a string",
        ),
        pytest.param(
            "[agent]\nenv = 'ANTHROPIC_API_KEY=sk'\n",
            ["agent.env", "table"],
            id="env given as a string",
        ),
        pytest.param(
            "[repos.api]\nurl = 42\n",
            ["repos.api.url", "string"],
            id="repo url not a string",
        ),
    ],
)
def test_a_bad_config_names_the_key_and_the_fix(tmp_path, text, expected):
    message = error_of(tmp_path, text)

    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_invalid_toml_names_the_file(tmp_path):
    path = write(tmp_path / "swarmbot.toml", "[bot\nmax_parallel = 3\n")

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert str(path) in str(caught.value)
    assert "not valid TOML" in str(caught.value)
    assert "line 1" in str(caught.value)


def test_a_file_that_is_not_text_names_the_file(tmp_path):
    path = tmp_path / "swarmbot.toml"
    path.write_bytes(b"\xff\xfe[\x00b\x00o\x00t\x00]\x00")

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert str(path) in str(caught.value)

"""Which tool calls an agent may make on its own, which need a human, which never.

Pure functions: nothing here runs a command or changes a file. Agents are
confined to their worktree; shell commands are parsed, never executed.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Action = Literal["allow", "deny", "ask"]

EDIT_TOOLS = {"Write": "file_path", "Edit": "file_path", "MultiEdit": "file_path"}
EDIT_TOOLS["NotebookEdit"] = "notebook_path"
READ_TOOLS = {"Read": "file_path", "NotebookRead": "notebook_path"}
SEARCH_TOOLS = {"Glob", "Grep", "LS"}
SAFE_TOOLS = {
    "Task",
    "Agent",
    "TodoWrite",
    "TaskStop",
    "TaskOutput",
    "BashOutput",
    "KillShell",
    "ListAgents",
    "ToolSearch",
    "EnterPlanMode",
    "ExitPlanMode",
    "ReportFindings",
}
FORBIDDEN_TOOLS = {
    "EnterWorktree": "you must stay in the job's worktree",
    "ExitWorktree": "you must stay in the job's worktree",
    "CronCreate": "scheduling is not available in a bot job",
    "CronDelete": "scheduling is not available in a bot job",
    "CronList": "scheduling is not available in a bot job",
    "ScheduleWakeup": "scheduling is not available in a bot job",
}

READ_ONLY_COMMANDS = {
    "ls",
    "cat",
    "head",
    "tail",
    "grep",
    "egrep",
    "fgrep",
    "rg",
    "find",
    "wc",
    "pwd",
    "echo",
    "printf",
    "diff",
    "tree",
    "stat",
    "file",
    "true",
    "basename",
    "dirname",
    "sed",
}
FIND_ACTIONS = {"-exec", "-execdir", "-ok", "-okdir", "-delete", "-fprint", "-fprint0"}
FIND_ACTIONS |= {"-fprintf", "-fls"}
PATTERN_FIRST = {"grep", "egrep", "fgrep", "rg", "sed"}
SED_PRINT = re.compile(r"^(\d+|\$)(,(\d+|\$))?p$")

LOCAL_GIT = {
    "status",
    "diff",
    "log",
    "show",
    "add",
    "commit",
    "branch",
    "restore",
    "stash",
    "rm",
    "mv",
    "reset",
    "rev-parse",
    "ls-files",
    "blame",
    "grep",
    "merge-base",
    "describe",
    "shortlog",
    "reflog",
}
FORBIDDEN_GIT = {
    "push": "pushing is done by the bot after the job, not by the agent",
    "remote": "remotes are managed by the bot",
    "config": "git configuration is managed by the bot",
    "credential": "credentials are managed by the bot",
}

SEPARATORS = {";", "&&", "||", "|", "&", "|&", "\n"}
REDIRECTS = {">", ">>", "<", ">&", "&>", "&>>", ">|", "<&"}
SUBSTITUTION = ("$(", "`", "<(", ">(")
NULL_DEVICES = {"/dev/null", "/dev/stdout", "/dev/stderr"}
# `"$(cat <<'EOF' ... EOF)"`: a literal text block, as Claude Code writes
# commit messages; the quoted delimiter means nothing inside is expanded.
LITERAL_HEREDOC = re.compile(r"\$\(cat <<-?'(\w+)'\n.*?\n\s*\1\s*\)", re.DOTALL)


@dataclass(frozen=True)
class Decision:
    """What to do with one tool call: allow, deny (reason), or ask (description)."""

    action: Action
    reason: str = ""

    @property
    def allowed(self) -> bool:
        """Whether the call may go ahead without a human."""
        return self.action == "allow"


ALLOW = Decision("allow")


def deny(reason: str) -> Decision:
    """A refusal whose reason is shown to the agent."""
    return Decision("deny", reason)


def ask(description: str) -> Decision:
    """A call a human must approve; the description is shown to them."""
    return Decision("ask", description)


@dataclass(frozen=True)
class Question:
    """One question of an AskUserQuestion call."""

    text: str
    options: list[str] = field(default_factory=list)
    multi_select: bool = False


def decide(
    tool_name: str,
    tool_input: dict[str, Any],
    worktree: Path,
    test_command: str = "",
    allowed_commands: Sequence[str] = (),
) -> Decision:
    """Decide one tool call of an agent working in `worktree`."""
    root = worktree.resolve()
    if tool_name == "Bash":
        command = str(tool_input.get("command") or "")
        return decide_command(command, root, test_command, allowed_commands)
    if tool_name in EDIT_TOOLS:
        path = str(tool_input.get(EDIT_TOOLS[tool_name]) or "")
        return _path_decision(path, root, "write")
    if tool_name in READ_TOOLS:
        path = str(tool_input.get(READ_TOOLS[tool_name]) or "")
        return _path_decision(path, root, "read")
    if tool_name in SEARCH_TOOLS:
        path = str(tool_input.get("path") or ".")
        pattern = str(tool_input.get("pattern") or "")
        if tool_name == "Glob" and (pattern.startswith(("/", "~")) or ".." in pattern):
            return deny(f"{tool_name} pattern {pattern!r} leaves the worktree {root}")
        return _path_decision(path, root, "search")
    if tool_name == "AskUserQuestion" or tool_name in SAFE_TOOLS:
        return ALLOW
    if tool_name in FORBIDDEN_TOOLS:
        return deny(f"{tool_name} is not allowed: {FORBIDDEN_TOOLS[tool_name]}")
    if tool_name == "WebFetch":
        return ask(f"Fetch {tool_input.get('url', '')}")
    if tool_name == "WebSearch":
        return ask(f"Search the web for {tool_input.get('query', '')!r}")
    return ask(f"Use tool {tool_name}")


def inside(path: str | Path, worktree: Path, cwd: Path | None = None) -> bool:
    """Whether `path` (relative to `cwd`, default the worktree) stays inside."""
    root = worktree.resolve()
    text = os.path.expanduser(str(path))
    candidate = Path(text) if os.path.isabs(text) else (cwd or root) / text
    return candidate.resolve().is_relative_to(root)


def decide_command(
    command: str,
    worktree: Path,
    test_command: str = "",
    allowed_commands: Sequence[str] = (),
) -> Decision:
    """Decide a shell command; chained commands are judged part by part."""
    root = worktree.resolve()
    command = command.strip()
    if not command:
        return deny("empty command")
    if test_command and command == test_command.strip():
        return ALLOW
    shown = command
    command = LITERAL_HEREDOC.sub("TEXT", command)
    try:
        segments = _split(command)
    except ValueError:
        return ask(f"Run: {shown}")
    decisions = []
    cwd = root
    for words, redirects in segments:
        decision, cwd = _segment(words, redirects, root, cwd, test_command)
        if (
            decision.action == "ask"
            and not _expands(words)
            and _matches(words, allowed_commands)
        ):
            decision = ALLOW
        decisions.append(decision)
    if any(marker in command for marker in SUBSTITUTION):
        decisions.append(ask(f"Run: {shown}"))
    for decision in decisions:
        if decision.action == "deny":
            return decision
    if all(decision.allowed for decision in decisions):
        return ALLOW
    return ask(f"Run: {shown}")


def questions(tool_input: dict[str, Any]) -> list[Question]:
    """The questions of an AskUserQuestion call, with their option labels."""
    found = []
    for item in tool_input.get("questions") or []:
        if not isinstance(item, dict) or not item.get("question"):
            continue
        options = [
            str(option.get("label", option))
            if isinstance(option, dict)
            else str(option)
            for option in item.get("options") or []
        ]
        found.append(
            Question(str(item["question"]), options, bool(item.get("multiSelect")))
        )
    return found


def answered(tool_input: dict[str, Any], answers: dict[str, str]) -> dict[str, Any]:
    """The AskUserQuestion input with the human's answers, as the CLI expects.

    `answers` maps question text to the answer; multi-select answers are
    comma-separated labels.
    """
    return {**tool_input, "answers": dict(answers)}


def _path_decision(path: str, root: Path, verb: str) -> Decision:
    if not path:
        return deny(f"no path given to {verb}")
    if inside(path, root):
        return ALLOW
    return deny(f"{path} is outside the worktree {root}; you may only {verb} there")


def _split(command: str) -> list[tuple[list[str], list[tuple[str, str]]]]:
    """Shell words per simple command, with their redirections."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars="();<>|&\n")
    lexer.whitespace = " \t\r"
    lexer.whitespace_split = True
    lexer.commenters = ""
    segments: list[tuple[list[str], list[tuple[str, str]]]] = []
    words: list[str] = []
    redirects: list[tuple[str, str]] = []
    tokens = list(lexer)
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token in SEPARATORS or set(token) <= {"\n", ";"}:
            segments.append((words, redirects))
            words, redirects = [], []
        elif token in REDIRECTS:
            if words and words[-1].isdigit():
                words.pop()
            target = tokens[index + 1] if index + 1 < len(tokens) else ""
            redirects.append((token, target))
            index += 1
        elif set(token) <= set("();<>|&\n"):
            raise ValueError(f"unsupported shell syntax {token!r}")
        else:
            words.append(token)
        index += 1
    segments.append((words, redirects))
    return [(w, r) for w, r in segments if w or r]


def _segment(
    words: list[str],
    redirects: list[tuple[str, str]],
    root: Path,
    cwd: Path,
    test_command: str,
) -> tuple[Decision, Path]:
    """Decide one simple command; returns the decision and the new directory."""
    for operator, target in redirects:
        if (operator in (">&", "<&") and target.isdigit()) or target in NULL_DEVICES:
            continue
        if not target or not inside(target, root, cwd):
            return deny(f"redirection to {target!r} leaves the worktree {root}"), cwd
    if not words:
        return ALLOW, cwd
    if "=" in words[0] and not words[0].startswith("="):
        return ask("sets environment variables"), cwd
    name = words[0]
    if name == "cd":
        target = words[1] if len(words) > 1 else "~"
        if target == "-":
            return ask("cd to the previous directory"), cwd
        if not inside(target, root, cwd):
            return deny(f"cd {target} leaves the worktree {root}"), cwd
        return ALLOW, _resolve(target, cwd)
    outside = _outside_argument(words, root, cwd)
    if outside:
        return deny(f"{outside} is outside the worktree {root}"), cwd
    if _expands(words):
        return ask("uses shell expansion"), cwd
    if test_command and _is_test_command(words, test_command):
        return ALLOW, cwd
    if name == "git":
        return _git(words), cwd
    if name in READ_ONLY_COMMANDS and _read_only(words):
        return ALLOW, cwd
    return ask(f"runs {name}"), cwd


def _outside_argument(words: list[str], root: Path, cwd: Path) -> str:
    """The first argument that, read as a path, leaves the worktree; or ''.

    Every argument is read as a path (so a symlink out is caught), except the
    pattern of grep-like commands and option words (`--name=value` has its
    value read).
    """
    # Limitation: a harmless absolute-looking argument (`echo /etc`) is denied
    # too; the agent is told why and can rephrase.
    skip_pattern = words[0] in PATTERN_FIRST and not any(
        word in ("-e", "-f", "--regexp", "--file") or word.startswith("--regexp=")
        for word in words
    )
    for word in words[1:]:
        value = word
        if word.startswith("-"):
            if "=" not in word:
                continue
            value = word.split("=", 1)[1]
        elif skip_pattern:
            skip_pattern = False
            continue
        if value and not inside(value, root, cwd):
            return value
    return ""


def _resolve(target: str, cwd: Path) -> Path:
    text = os.path.expanduser(target)
    return (Path(text) if os.path.isabs(text) else cwd / text).resolve()


def _is_test_command(words: list[str], test_command: str) -> bool:
    """The test command, possibly narrowed by extra arguments."""
    try:
        expected = shlex.split(test_command)
    except ValueError:
        return False
    return bool(expected) and words[: len(expected)] == expected


def _git(words: list[str]) -> Decision:
    args = words[1:]
    while args and args[0] in ("--no-pager", "-P"):
        args = args[1:]
    if not args:
        return ALLOW
    sub = args[0]
    if sub.startswith("-"):
        return ask(f"runs git with option {sub}")
    if sub in FORBIDDEN_GIT:
        return deny(f"git {sub} is not allowed: {FORBIDDEN_GIT[sub]}")
    if sub in ("checkout", "switch"):
        creates = {"-b", "-B", "-c", "-C", "--"}
        return ALLOW if len(args) > 1 and args[1] in creates else ask(f"git {sub}")
    if sub in LOCAL_GIT:
        return ALLOW
    return ask(f"runs git {sub}")


def _read_only(words: list[str]) -> bool:
    name, args = words[0], words[1:]
    if name == "find":
        return not any(arg in FIND_ACTIONS for arg in args)
    if name == "rg":
        return not any(arg.startswith("--pre") for arg in args)
    if name == "sed":
        scripts = [arg for arg in args if not arg.startswith("-")]
        return "-n" in args and bool(scripts) and bool(SED_PRINT.match(scripts[0]))
    return True


def _expands(words: Iterable[str]) -> bool:
    """Whether the shell would rewrite some word (variables, home directory)."""
    return any("$" in word or word.startswith("~") for word in words)


def _matches(words: Iterable[str], patterns: Sequence[str]) -> bool:
    text = " ".join(words)
    return any(fnmatch.fnmatchcase(text, pattern) for pattern in patterns)

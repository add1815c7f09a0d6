"""The chat grammar: turn one chat message into a typed command value.

Parsing is forgiving (case, punctuation, "please", Telegram "/cmd@Bot" forms)
and never raises; text it cannot place comes back as :class:`Unknown`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class FixIssue:
    """Fix a GitHub issue in a repo (alias or "owner/name", as typed)."""

    repo: str
    issue: int


@dataclass(frozen=True)
class RunTask:
    """Run a free-form task, without an issue, in a repo."""

    repo: str
    task: str


@dataclass(frozen=True)
class Status:
    """Show active and recent jobs, or one job when `job` is set."""

    job: int | None = None


@dataclass(frozen=True)
class Logs:
    """Show the agent's recent output for a job."""

    job: int


@dataclass(frozen=True)
class Diff:
    """Show the changes a job made so far."""

    job: int


@dataclass(frozen=True)
class Cancel:
    """Stop a running or queued job."""

    job: int


@dataclass(frozen=True)
class Retry:
    """Run a finished or failed job again."""

    job: int


@dataclass(frozen=True)
class Followup:
    """More work on a job's branch, pushed to the same pull request."""

    job: int
    text: str


@dataclass(frozen=True)
class Answer:
    """A reply to a pending question; `job` None means the only pending one."""

    text: str
    job: int | None = None


@dataclass(frozen=True)
class Repos:
    """List the repos the bot may work on."""


@dataclass(frozen=True)
class Help:
    """Show the help text."""


@dataclass(frozen=True)
class Unknown:
    """Unrecognised text; may be a bare answer when a question is pending.

    `text` is the stripped original message; `suggestion` is the closest
    command usage ("status 7" for "stauts 7"), with placeholders such as
    "<job>" or "<repo>" where the message lacked a value, or "" if none fits.
    """

    text: str
    suggestion: str = ""


Command = (
    FixIssue
    | RunTask
    | Status
    | Logs
    | Diff
    | Cancel
    | Retry
    | Followup
    | Answer
    | Repos
    | Help
    | Unknown
)

HELP = """\
Commands:
fix #42 in api
in api: add a dark mode toggle
status  (all jobs)
status 7
logs 7 · diff 7
cancel 7 · retry 7
followup 7: also update docs
answer 7 2  (or just: 2)
repos · help
A repo is an alias or owner/name."""

#: Usage lines used as suggestions; placeholders mark the missing values.
USAGE: dict[str, str] = {
    "fix": "fix #<issue> in <repo>",
    "task": "in <repo>: <task>",
    "status": "status <job>",
    "logs": "logs <job>",
    "diff": "diff <job>",
    "cancel": "cancel <job>",
    "retry": "retry <job>",
    "followup": "followup <job>: <text>",
    "answer": "answer <job> <reply>",
    "repos": "repos",
    "help": "help",
}

MAX_NUMBER = 10**9  # job and issue numbers must be in 1..MAX_NUMBER - 1
_SCAN = 256  # command prefixes are looked for in this many leading characters
_SHORT = 300  # longer messages can only be free-text commands (task, followup…)
_SUGGEST_MAX = 100  # longer renderings fall back to the generic usage line

_F = re.IGNORECASE | re.ASCII
_N = r"(?P<n>[0-9]+)"
_NO = r"(?:(?:no\.?|nr\.?|number|num)\s*)?"
_JOB = rf"(?:(?:job|task|run)\s*)?{_NO}#?\s*{_N}"
_ISSUE = rf"(?:the\s+)?(?:(?:issues?|bug|ticket)\s*)?{_NO}#?\s*{_N}"
_NAME = r"[a-z0-9_.-]+"
_REPO = rf"(?P<repo>{_NAME}(?:/{_NAME})?)"
_KIND = r"(?:repo|repository|project)"
_REPO_REF = rf"(?:the\s+)?(?:{_KIND}\s+)?{_REPO}(?:\s+{_KIND})?"
_FIX = r"(?:fix|resolve|solve|close|address|tackle|work\s+on)"
_PREP = r"(?:in|on|for|at|from)"
_DASH = "[-\u2013\u2014]+"


def _re(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, _F)


_MENTION = _re(r"@\w+[\s,:]*")
_SLASH = _re(r"/(?P<cmd>[a-z]+)(?:_(?P<n>[0-9]+))?(?:@\w+)?(?![\w@])")
_POLITE = _re(r"(?:please|pls|plz|kindly|(?:can|could|would|will)\s+you)\b[\s,]*")

_FIX_PATTERNS = (
    _re(rf"{_FIX}\s+{_ISSUE}(?:\s+{_PREP}\s+|\s*[:,@]\s*|\s+){_REPO_REF}"),
    _re(rf"{_FIX}\s+{_REPO_REF}(?:\s*#\s*|\s+(?:issues?|bug|ticket)\s*{_NO}#?\s*){_N}"),
    _re(
        rf"{_FIX}\s+<?(?:https?://)?(?:www\.)?github\.com/"
        rf"(?P<repo>{_NAME}/{_NAME})/(?:issues|pull)/{_N}(?:[/?#]\S*)?>?"
    ),
)
_FIX_BARE = _re(rf"{_FIX}\s+{_ISSUE}(?:\s+{_PREP})?")
_FIX_PROSE = _re(rf"(?P<task>{_FIX}\s+.+?)\s+(?:in|on|for)\s+{_REPO_REF}")

_STATUS = _re(
    rf"(?:status|jobs|ps|list(?:\s+jobs)?|job\s+list)"
    rf"(?:\s+(?:of|for|on))?(?:\s*{_JOB})?"
)
_JOB_ONLY = _re(rf"job\s*#?\s*{_N}")
_JOB_VERBS: tuple[tuple[type[Logs | Diff | Cancel | Retry], str], ...] = (
    (Logs, r"(?:show\s+(?:me\s+)?)?(?:the\s+)?(?:logs?|output|tail)"),
    (Diff, r"(?:show\s+(?:me\s+)?)?(?:the\s+)?(?:diff|changes)"),
    (Cancel, r"cancel|stop|abort|kill"),
    (Retry, r"retry|rerun|re-run|restart|try\s+again"),
)
_JOB_COMMANDS = tuple(
    (kind, _re(rf"(?:{verbs})(?:\s+(?:of|for|on))?\s*{_JOB}"))
    for kind, verbs in _JOB_VERBS
)
_REPOS = _re(
    r"(?:(?:list|show|me|my|all|the|your)\s+)*(?:repos?|repositories|projects)"
)
_HELP = _re(r"help(?:\s+me)?|\?|commands|usage|what\s+can\s+you\s+do")
_START = _re(r"start|menu")
_OPTION = _re(rf"(?:(?:option|choice|number|nr\.?)\s*)?#?\s*{_N}[.)!]?")

_FOLLOWUP = _re(rf"(?:follow[\s-]*up|followup)(?:\s+(?:on|to|for))?\s*{_JOB}")
_ANSWER = _re(r"(?:answer|reply)(?=[\s:,;]|\Z)[\s:,;]*")
_ANSWER_JOB = _re(rf"{_JOB}(?:\s*[:,;]\s*|\s+{_DASH}\s+|\s+)(?=\S)")
_TASK_IN = _re(rf"in\s+{_REPO_REF}(?:\s*[:,;]|\s+{_DASH}(?=\s))\s*")
_TASK_OWNER = _re(rf"(?P<repo>{_NAME}/{_NAME})\s*:\s*")
_TASK_ALIAS = _re(rf"{_REPO}\s*:\s*")
_SEPARATOR = re.compile(r"[\s:,;\u2013\u2014-]*")
_FIRST_WORD = _re(r"[a-z][a-z-]*(?![a-z0-9_])")

_TAIL_WORDS = ("please", "pls", "plz", "thanks", "thank you", "thx")
_STOP_WORDS = """
a an the in on for at from to of it this that my your repo repository project
issue issues bug ticket number job please fact short general addition
particular theory practice total summary brief case
"""
_STOP = frozenset(_STOP_WORDS.split())

#: Command words (and synonyms) for misspelling suggestions -> USAGE key.
_VOCAB: dict[str, str] = {
    **dict.fromkeys(("fix", "resolve", "solve", "close", "address"), "fix"),
    **dict.fromkeys(("tackle", "work"), "fix"),
    **dict.fromkeys(("status", "jobs", "job"), "status"),
    **dict.fromkeys(("logs", "log", "output", "tail"), "logs"),
    **dict.fromkeys(("diff", "changes"), "diff"),
    **dict.fromkeys(("cancel", "stop", "abort", "kill"), "cancel"),
    **dict.fromkeys(("retry", "rerun", "restart"), "retry"),
    **dict.fromkeys(("followup", "follow"), "followup"),
    **dict.fromkeys(("answer", "reply"), "answer"),
    **dict.fromkeys(("repos", "repo", "repositories", "projects"), "repos"),
    **dict.fromkeys(("help", "commands"), "help"),
}


def parse(text: str, *, repos: Iterable[str] = ()) -> Command:
    """Parse one chat message into a command; never raises.

    Decisions: "answer 7 2" is option 2 for job 7, "answer 2" and a bare "2"
    answer the only pending question, "answer 7 use a hash" is free text for
    job 7. A command missing its job or repo ("cancel", "fix #42") gives
    Unknown with a usage suggestion ("cancel <job>", "fix #42 in <repo>").
    "alias: task" is a task only when the alias is in `repos` (otherwise it
    is likely an ordinary answer); "owner/name: task" always is. Repo tokens
    keep their case and are not validated. Numbers outside 1..10**9-1 and
    messages over a few hundred characters that are not a task, a followup
    or an answer give Unknown.
    """
    s = text.strip()
    core, slash = _strip_lead(s)
    if not core:
        return Unknown(s)
    if not core.strip("?"):
        return Help()
    found = _free_text(core, s, repos)
    if found is None and len(core) <= _SHORT:
        found = _fixed(_tidy(core), s, slash)
    if found is not None:
        return found
    return Unknown(s, _suggest(core, repos))


def render(command: Command) -> str:
    """Return the canonical chat text for a command, which parses back to it."""
    match command:
        case FixIssue(repo, issue):
            return f"fix #{issue} in {repo}"
        case RunTask(repo, task):
            return f"in {repo}: {task}"
        case Status(None):
            return "status"
        case Status(job) | Logs(job) | Diff(job) | Cancel(job) | Retry(job):
            return f"{type(command).__name__.lower()} {job}"
        case Followup(job, text):
            return f"followup {job}: {text}"
        case Answer(text, None):
            return f"answer {text}"
        case Answer(text, job):
            return f"answer {job} {text}"
        case Repos():
            return "repos"
        case Help():
            return "help"
        case Unknown(text):
            return text
    return ""


def closest(word: str, choices: Iterable[str], cutoff: float = 0.6) -> str | None:
    """Return the choice most similar to `word` (case-insensitive), or None."""
    wanted = word.strip().lower()[:_SUGGEST_MAX]
    if not wanted:
        return None
    matcher = difflib.SequenceMatcher(autojunk=False)
    matcher.set_seq2(wanted)
    best: str | None = None
    best_score = cutoff
    for choice in choices:
        lowered = choice.lower()
        if lowered == wanted:
            return choice
        keys = [lowered[:_SUGGEST_MAX]]
        if "/" in lowered and "/" not in wanted:
            keys.append(lowered.rsplit("/", 1)[1][:_SUGGEST_MAX])
        for key in keys:
            matcher.set_seq1(key)
            if matcher.real_quick_ratio() < best_score:
                continue
            if matcher.quick_ratio() < best_score:
                continue
            score = matcher.ratio()
            if score > best_score or (best is None and score >= best_score):
                best, best_score = choice, score
    return best


def _spaces(text: str) -> str:
    """Map every Unicode space to " " so ASCII regexes see it (same length)."""
    return "".join(" " if c.isspace() else c for c in text)


def _number(digits: str) -> int | None:
    """Parse a job or issue number, or None when zero or too big."""
    digits = digits.lstrip("0")
    if not digits or len(digits) >= len(str(MAX_NUMBER)):
        return None
    return int(digits)


def _repo_ok(repo: str) -> bool:
    """Tell whether a captured token can name a repo (not "in", "the", "42")."""
    return (
        repo.isascii()
        and any(c.isalpha() for c in repo)
        and (repo.lower() not in _STOP)
    )


def _strip_lead(s: str) -> tuple[str, bool]:
    """Drop a leading @mention, Telegram slash and "please"; tell if slashed."""
    core = s
    m = _MENTION.match(_spaces(core[:_SCAN]))
    if m:
        core = core[m.end() :]
    slash = False
    m = _SLASH.match(core[:_SCAN])
    if m:
        slash = True
        number = f" {m['n']}" if m["n"] else ""
        core = m["cmd"] + number + core[m.end() :]
    for _ in range(3):
        m = _POLITE.match(_spaces(core[:_SCAN]))
        if not m:
            break
        core = core[m.end() :]
    return core.strip(), slash


def _tidy(core: str) -> str:
    """Collapse spaces and drop trailing punctuation, emoji and "please"."""
    head = " ".join(core.split())
    while True:
        end = len(head)
        while end and (head[end - 1] in " .!?,;:" or not head[end - 1].isascii()):
            end -= 1
        trimmed = head[:end]
        lowered = trimmed.lower()
        for word in _TAIL_WORDS:
            before = len(lowered) - len(word)
            if lowered.endswith(word) and (before == 0 or lowered[before - 1] in " ,"):
                trimmed = trimmed[:before]
                break
        if trimmed == head:
            return head
        head = trimmed


def _option(text: str) -> str:
    """Reduce "option 2", "#2" or "2." to "2"; leave other text alone."""
    if len(text) <= 40:
        m = _OPTION.fullmatch(_tidy(text))
        if m:
            return m["n"]
    return text


def _free_text(core: str, s: str, repos: Iterable[str]) -> Command | None:
    """Parse the commands that carry free text: followup, answer, task."""
    scan = _spaces(core[:_SCAN])
    m = _FOLLOWUP.match(scan)
    if m:
        rest = core[m.end() :]
        if not rest or rest[0].isspace() or rest[0] in ":,;-\u2013\u2014":
            job = _number(m["n"])
            sep = _SEPARATOR.match(rest[:_SCAN])
            text = rest[sep.end() if sep else 0 :].strip()
            if job is None or not text:
                shown = job if job is not None else "<job>"
                return Unknown(s, f"followup {shown}: <text>")
            return Followup(job, text)
    m = _ANSWER.match(scan)
    if m:
        return _answer(core[m.end() :], s)
    m = _TASK_IN.match(scan) or _TASK_OWNER.match(scan)
    if not m and repos:
        m = _TASK_ALIAS.match(scan)
        if m and not _known(m["repo"], repos):
            m = None
    if m and _repo_ok(m["repo"]):
        return _task(m["repo"], core[m.end() :].strip(), s)
    return None


def _answer(rest: str, s: str) -> Command:
    """Parse what follows "answer": an optional job number, then the reply."""
    if not rest.strip():
        return Unknown(s, USAGE["answer"])
    m = _ANSWER_JOB.match(_spaces(rest[:_SCAN]))
    if m:
        job = _number(m["n"])
        if job is None:
            return Unknown(s, USAGE["answer"])
        return Answer(_option(rest[m.end() :].strip()), job)
    return Answer(_option(rest.strip()), None)


def _task(repo: str, task: str, s: str) -> Command:
    """Build a task, or a fix when the task is just "fix #42"."""
    if not task:
        return Unknown(s, f"in {repo}: <task>")
    if len(task) <= _SHORT:
        m = _FIX_BARE.fullmatch(_tidy(task))
        if m:
            issue = _number(m["n"])
            if issue is None:
                return Unknown(s, f"fix #<issue> in {repo}")
            return FixIssue(repo, issue)
    return RunTask(repo, task)


def _known(repo: str, repos: Iterable[str]) -> bool:
    """Tell whether `repo` names one of `repos` (or the name part of one)."""
    wanted = repo.lower()
    return any(
        wanted in (name.lower(), name.lower().rsplit("/", 1)[-1]) for name in repos
    )


def _fixed(head: str, s: str, slash: bool) -> Command | None:
    """Parse the short fixed-form commands from a tidied message."""
    if _REPOS.fullmatch(head):
        return Repos()
    if _HELP.fullmatch(head) or (slash and _START.fullmatch(head)):
        return Help()
    if head.startswith("#"):
        return None  # "#7" alone: an issue, a job or an option? Don't guess.
    m = _OPTION.fullmatch(head)
    if m:
        return Answer(m["n"])
    m = _STATUS.fullmatch(head) or _JOB_ONLY.fullmatch(head)
    if m:
        if m["n"] is None:
            return Status()
        job = _number(m["n"])
        return Status(job) if job is not None else Unknown(s, USAGE["status"])
    for kind, pattern in _JOB_COMMANDS:
        m = pattern.fullmatch(head)
        if m:
            job = _number(m["n"])
            if job is None:
                return Unknown(s, USAGE[kind.__name__.lower()])
            return kind(job)
    return _fix(head, s)


def _fix(head: str, s: str) -> Command | None:
    """Parse "fix #42 in api" and its variants, or explain what is missing."""
    for pattern in _FIX_PATTERNS:
        m = pattern.fullmatch(head)
        if m and _repo_ok(m["repo"]):
            issue = _number(m["n"])
            if issue is None:
                return Unknown(s, f"fix #<issue> in {m['repo']}")
            return FixIssue(m["repo"], issue)
    m = _FIX_BARE.fullmatch(head)
    if m:
        issue = _number(m["n"])
        return Unknown(s, f"fix #{issue or '<issue>'} in <repo>")
    m = _FIX_PROSE.fullmatch(head)
    if m and _repo_ok(m["repo"]):
        hint = f"in {m['repo']}: {m['task']}"
        return Unknown(s, hint if len(hint) <= _SUGGEST_MAX else USAGE["task"])
    return None


def _suggest(core: str, repos: Iterable[str]) -> str:
    """Suggest the closest command usage for unrecognised text, or ""."""
    m = _FIRST_WORD.match(core[:_SCAN])
    if not m:
        return ""
    word = m[0].lower()
    if word in _VOCAB:
        return USAGE[_VOCAB[word]]
    if len(word) < 3:
        return ""
    # Typos rarely hit the first letter; requiring it avoids odd suggestions.
    alike = [known for known in _VOCAB if known[0] == word[0]]
    swapped = [known for known in alike if sorted(known) == sorted(word)]
    best = swapped[0] if swapped else closest(word, alike, cutoff=0.7)
    if best is None:
        return ""
    fixed = parse(best + core[m.end() :], repos=repos)
    if isinstance(fixed, Unknown):
        return fixed.suggestion or USAGE[_VOCAB[best]]
    rendered = render(fixed)
    return rendered if len(rendered) <= _SUGGEST_MAX else USAGE[_VOCAB[best]]

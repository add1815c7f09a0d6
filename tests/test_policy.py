"""The permission policy: what an agent may do alone, what needs a human."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.policy import answered, decide, decide_command, inside, questions

TEST = "pytest -q"
ALLOWED = ["make lint*", "npm run *"]


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    root = tmp_path / "wt"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("print('hi')\n")
    (tmp_path / "secret.txt").write_text("top secret\n")
    (root / "escape").symlink_to(tmp_path)
    return root


@pytest.mark.parametrize(
    ("tool", "tool_input", "action"),
    [
        ("Write", {"file_path": "src/new.py"}, "allow"),
        ("Write", {"file_path": "{wt}/src/new.py"}, "allow"),
        ("Edit", {"file_path": "{wt}/src/app.py"}, "allow"),
        ("MultiEdit", {"file_path": "src/app.py"}, "allow"),
        ("NotebookEdit", {"notebook_path": "nb.ipynb"}, "allow"),
        ("Write", {"file_path": "/etc/passwd"}, "deny"),
        ("Write", {"file_path": "{wt}/../secret.txt"}, "deny"),
        ("Write", {"file_path": "escape/secret.txt"}, "deny"),
        ("Edit", {"file_path": "~/.bashrc"}, "deny"),
        ("Write", {}, "deny"),
        ("Read", {"file_path": "src/app.py"}, "allow"),
        ("Read", {"file_path": "/etc/hostname"}, "deny"),
        ("Glob", {"pattern": "**/*.py"}, "allow"),
        ("Glob", {"pattern": "/etc/*"}, "deny"),
        ("Grep", {"pattern": "a..b", "path": "src"}, "allow"),
        ("Grep", {"pattern": "root", "path": "/etc"}, "deny"),
        ("LS", {"path": "{wt}/.."}, "deny"),
        ("TodoWrite", {"todos": []}, "allow"),
        ("Task", {"prompt": "look around"}, "allow"),
        ("AskUserQuestion", {"questions": []}, "allow"),
        ("EnterWorktree", {}, "deny"),
        ("CronCreate", {}, "deny"),
        ("WebFetch", {"url": "https://example.com"}, "ask"),
        ("WebSearch", {"query": "pytest fixtures"}, "ask"),
        ("mcp__github__create_issue", {}, "ask"),
    ],
)
def test_tools(
    worktree: Path, tool: str, tool_input: dict[str, str], action: str
) -> None:
    filled = {
        key: value.replace("{wt}", str(worktree)) if isinstance(value, str) else value
        for key, value in tool_input.items()
    }
    decision = decide(tool, filled, worktree, TEST, ALLOWED)
    assert decision.action == action, decision.reason


@pytest.mark.parametrize(
    ("command", "action"),
    [
        # the repo's test command, also narrowed to some tests
        ("pytest -q", "allow"),
        ("pytest -q tests/test_app.py -k fast", "allow"),
        ("pytest -q 2>&1 | tail -20", "allow"),
        # read-only commands inside the worktree
        ("ls -la", "allow"),
        ("cat src/app.py", "allow"),
        ("head -n 5 src/app.py && wc -l src/app.py", "allow"),
        ("grep -rn '/api/v1' src", "allow"),
        ("rg -n 'def main' .", "allow"),
        ("find . -name '*.py'", "allow"),
        ("sed -n '10,20p' src/app.py", "allow"),
        ("echo hi > notes.txt", "allow"),
        ("cd src && ls ..", "allow"),
        ("pwd; ls src | head", "allow"),
        ("diff src/app.py src/app.py 2>/dev/null", "allow"),
        # local git
        ("git status", "allow"),
        ("git --no-pager log --oneline -5", "allow"),
        ("git diff HEAD~1", "allow"),
        ("git add -A && git commit -m 'Fix the bug'", "allow"),
        ("git checkout -b fix-42", "allow"),
        ("git restore src/app.py", "allow"),
        ("git stash", "allow"),
        (
            "git commit -m \"$(cat <<'EOF'\nFix it\n\nDetails (with parens)\nEOF\n)\"",
            "allow",
        ),
        # configured globs
        ("make lint-fix", "allow"),
        ("npm run build", "allow"),
        # never
        ("git push origin HEAD", "deny"),
        ("git status && git push", "deny"),
        ("git remote add evil https://example.com/x.git", "deny"),
        ("git config user.email x@example.com", "deny"),
        ("cat /etc/passwd", "deny"),
        ("ls ..", "deny"),
        ("cd / && ls", "deny"),
        ("cd", "deny"),
        ("cd src && cat ../../secret.txt", "deny"),
        ("cat escape/secret.txt", "deny"),
        ("echo x > /tmp/out.txt", "deny"),
        ("ls > ../listing.txt", "deny"),
        ("grep -r root --include=x /etc", "deny"),
        ("npm run build --prefix=/opt/other", "deny"),
        # a human decides
        ("curl https://example.com", "ask"),
        ("rm -rf build", "ask"),
        ("ls | xargs rm", "ask"),
        ("pytest -q; curl https://example.com", "ask"),
        ("find . -name '*.pyc' -delete", "ask"),
        ("find . -exec cat {} ;", "ask"),
        ("sed -i 's/a/b/' src/app.py", "ask"),
        ("sed -n 'w out.txt' src/app.py", "ask"),
        ("rg --pre ./run.sh x", "ask"),
        ("echo $(whoami)", "ask"),
        ("echo `whoami`", "ask"),
        ("cat $HOME/.ssh/id_rsa", "ask"),
        ("FOO=1 pytest -q", "ask"),
        ("npm run build -- --out=$HOME", "ask"),
        ("cd src && cd -", "ask"),
        ("git checkout main", "ask"),
        ("git fetch origin", "ask"),
        ("git -c core.pager=evil log", "ask"),
        ("python -c 'print(1)'", "ask"),
        ("cat <<EOF > x.txt\nhello\nEOF", "ask"),
        ("echo 'unbalanced", "ask"),
    ],
)
def test_commands(worktree: Path, command: str, action: str) -> None:
    decision = decide("Bash", {"command": command}, worktree, TEST, ALLOWED)
    assert decision.action == action, decision.reason


def test_denials_say_why(worktree: Path) -> None:
    decision = decide_command("git push", worktree)
    assert "push" in decision.reason
    decision = decide("Write", {"file_path": "/etc/motd"}, worktree)
    assert "/etc/motd" in decision.reason
    assert "outside the worktree" in decision.reason


def test_asking_shows_the_whole_command(worktree: Path) -> None:
    decision = decide_command("ls && curl https://example.com", worktree)
    assert decision.action == "ask"
    assert decision.reason == "Run: ls && curl https://example.com"


def test_inside_resolves_dots_and_symlinks(worktree: Path) -> None:
    assert inside("src/../src/app.py", worktree)
    assert inside(worktree, worktree)
    assert not inside("src/../../secret.txt", worktree)
    assert not inside("escape", worktree)
    assert inside("..", worktree, cwd=worktree / "src")


def test_ask_user_question_round_trip() -> None:
    tool_input = {
        "questions": [
            {
                "question": "Keep the old parser?",
                "header": "Parser",
                "options": [
                    {"label": "Keep it", "description": "Smaller change"},
                    {"label": "Rewrite it", "description": "Cleaner"},
                ],
                "multiSelect": False,
            },
            {"question": "Which files?", "options": [], "multiSelect": True},
        ]
    }
    found = questions(tool_input)
    assert [q.text for q in found] == ["Keep the old parser?", "Which files?"]
    assert found[0].options == ["Keep it", "Rewrite it"]
    assert found[1].multi_select

    updated = answered(tool_input, {"Keep the old parser?": "Rewrite it"})
    assert updated["answers"] == {"Keep the old parser?": "Rewrite it"}
    assert updated["questions"] == tool_input["questions"]
    assert "answers" not in tool_input

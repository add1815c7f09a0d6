"""A tiny command agent for tests: asks which fix, then fixes calc.py.

Usage: fixer.py MODE PROMPT [QUESTION OPTION...]. MODE `ask` asks the human
first through `swarmbot ask`; `choose` asks QUESTION with the given OPTIONs,
then fixes and ends its output with `Chose: ANSWER`; `fix` fixes at once; `noop`
changes nothing; `twice` needs the test output to get it right; `break` never
fixes it; `sleep` hangs; `crash` exits with an error; `slowfix` fixes after a
pause.
"""

import subprocess
import sys
import time
from pathlib import Path

FIXED = """\
def divide(a, b):
    if b == 0:
        raise ZeroDivisionError("b must not be 0")
    return a / b
"""

mode, prompt, *asked = sys.argv[1:]
print(f"prompt: {prompt.splitlines()[0]}", flush=True)
swarmbot = str(Path(sys.executable).parent / "swarmbot")


def ask(question: str, *options: str) -> str:
    """Ask the human through `swarmbot ask` and return the answer."""
    flags = [part for option in options for part in ("--option", option)]
    return subprocess.run(
        [swarmbot, "ask", question, *flags],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


if mode == "ask":
    answer = ask("Which fix?", "Raise an error", "Return 0")
    print(f"human said: {answer}", flush=True)
if mode == "choose":
    answer = ask(*asked)
    Path("calc.py").write_text(FIXED)
    print(f"Chose: {answer}", flush=True)
if mode == "sleep":
    time.sleep(600)
if mode == "crash":
    print("agent exploded", flush=True)
    sys.exit(3)
if mode in ("ask", "fix"):
    Path("calc.py").write_text(FIXED)
    print("Fixed divide() to divide.", flush=True)
if mode == "twice":
    # The first attempt is wrong; the fix comes once the tests' output is sent back.
    wrong = "def divide(a, b):\n    return a - b\n"
    Path("calc.py").write_text(FIXED if "The tests fail" in prompt else wrong)
if mode == "break":
    Path("calc.py").write_text("def divide(a, b):\n    return a + b\n")
if mode == "slowfix":
    time.sleep(1.5)
    Path("calc.py").write_text(FIXED)

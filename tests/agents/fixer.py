"""A tiny command agent for tests: asks which fix, then fixes calc.py.

Usage: fixer.py MODE PROMPT. MODE `ask` asks the human first through
`swarmbot ask`; `fix` fixes at once; `noop` changes nothing; `twice` needs the
test output to get it right; `break` never fixes it; `sleep` hangs; `crash`
exits with an error.
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

mode, prompt = sys.argv[1], sys.argv[2]
print(f"prompt: {prompt.splitlines()[0]}", flush=True)
swarmbot = str(Path(sys.executable).parent / "swarmbot")

if mode == "ask":
    answer = subprocess.run(
        [
            swarmbot,
            "ask",
            "Which fix?",
            "--option",
            "Raise an error",
            "--option",
            "Return 0",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"human said: {answer}", flush=True)
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

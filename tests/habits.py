"""ruff and mypy, started as subprocesses as soon as pytest knows it will run the
habits tests (tests/conftest.py), so that they check the code while the Ray tests wait
on their actors; tests/test_habits.py reads their verdicts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINTED = ["fedray", "tests", "experiments", "benchmarks", "hydra_plugins"]
COMMANDS = {
    "ruff": ["ruff", "check", "--no-fix", "--output-format", "concise", *LINTED],
    # files, strictness and cache (.mypy_cache) come from pyproject.toml's [tool.mypy]
    "mypy": ["mypy", "--config-file", "pyproject.toml"],
}
_running: dict[str, subprocess.Popen[str]] = {}


def start() -> None:
    for name, args in COMMANDS.items():
        if name not in _running:
            _running[name] = subprocess.Popen(
                [sys.executable, "-m", *args], cwd=ROOT, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True)


def verdict(name: str) -> tuple[int, str]:
    """The exit code and output of one check (started now if it was not yet)."""
    start()
    output, _ = _running[name].communicate(timeout=600)
    return _running[name].returncode, output

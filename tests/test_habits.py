"""The code's habits, held by the suite: ruff's rule set and mypy's strictness, both as
configured in pyproject.toml. Not in the fast set: mypy takes ~25 s without its cache."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINTED = ["fedray", "tests", "experiments", "benchmarks", "hydra_plugins"]

pytestmark = pytest.mark.habits


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, check=False)


def test_ruff_finds_nothing() -> None:
    done = _run("ruff", "check", "--no-fix", "--output-format", "concise", *LINTED)
    assert done.returncode == 0, f"ruff check:\n{done.stdout}{done.stderr}"


def test_mypy_finds_nothing() -> None:
    # files, strictness and cache (.mypy_cache) come from pyproject.toml's [tool.mypy]
    done = _run("mypy", "--config-file", "pyproject.toml")
    assert done.returncode == 0, f"mypy:\n{done.stdout}{done.stderr}"

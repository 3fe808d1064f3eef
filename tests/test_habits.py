"""The code's habits, held by the suite: ruff's rule set and mypy's strictness, both as
configured in pyproject.toml. Not in the fast set: mypy takes ~20 s without its cache,
so both start in the background when the session begins (tests/habits.py)."""

import pytest

from tests import habits

pytestmark = pytest.mark.habits


def test_ruff_finds_nothing() -> None:
    code, output = habits.verdict("ruff")
    assert code == 0, f"ruff check:\n{output}"


def test_mypy_finds_nothing() -> None:
    code, output = habits.verdict("mypy")
    assert code == 0, f"mypy:\n{output}"

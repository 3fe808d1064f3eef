"""The tidy metrics table: one row per (round, client, split, metric)."""

from __future__ import annotations

import pandas as pd

from fedray.evaluation import EvalStats

COLUMNS = ("round", "client", "split", "metric", "value")
GLOBAL = "global"


class MetricsLog:
    def __init__(self) -> None:
        self._rows: list[tuple[int, str, str, str, float]] = []

    def add(self, round_: int, client: str, split: str, metric: str,
            value: float | None) -> None:
        if value is not None:
            self._rows.append((round_, client, split, metric, float(value)))

    def add_eval(self, round_: int, client: str, stats: EvalStats) -> None:
        self.add(round_, client, "test", "accuracy", stats.accuracy)
        self.add(round_, client, "test", "loss", stats.loss)
        self.add(round_, client, "test", "auc", stats.auc)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self._rows, columns=list(COLUMNS))

    def rows(self) -> list[tuple[int, str, str, str, float]]:
        """The rows so far, as plain tuples (a checkpoint keeps them)."""
        return list(self._rows)

    @classmethod
    def from_rows(cls, rows: list[tuple[int, str, str, str, float]]) -> MetricsLog:
        log = cls()
        log._rows = [tuple(row) for row in rows]  # type: ignore[misc]
        return log

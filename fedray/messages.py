"""What a hospital sends, and to whom: the update (to the aggregator) and the report
(to the driver). Light on purpose: the decryptor reads updates without torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Update:
    """What a hospital sends the aggregator: the mechanism's output and nothing else.

    The payload was pre-scaled by the hospital's round weight, a function of public
    quantities only (training-set sizes, or the fixed 1/(qN) of central and
    distributed DP) that the aggregator gets from the orchestrator, not from the
    hospital. Losses, ε, timings and counts are the researcher's diagnostics: they
    travel in a :class:`HospitalReport` to the driver, never on the aggregator's path."""

    hospital: int
    payload: Any
    round_: int = 0  # the round it was made for (public): a replay in a later round is refused


@dataclass(frozen=True)
class HospitalReport:
    """Simulator diagnostics from one hospital's round: hospital -> driver only."""

    hospital: int
    train_loss: float | None  # None when it did not train (not sampled, exhausted)
    seconds: dict[str, float] = field(default_factory=dict)
    epsilon: float | None = None  # this hospital's ε spent so far (local, DP-SGD)
    exhausted: bool = False  # budget spent: the hospital sent nothing
    sampled: bool | None = None  # distributed: whether its own coin put its data in
    values_clipped: int = 0  # quantised packing: values outside ±range
    late: bool = False  # trained, but past the round's (simulated) timeout: update dropped

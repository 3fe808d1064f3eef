"""How a round's participants are weighted: pure rules, no Ray, no torch.

FedAvg weighs each hospital by its share of the round's training records; central and
distributed DP give every participant the same fixed 1/(qN), so that the weights (and
the sum's sensitivity) do not depend on who was sampled. The privacy plan says which
rule a run uses (``PrivacyPlan.weighting``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def aggregation_weights(participants: np.ndarray, sizes: list[int]) -> dict[int, float]:
    """FedAvg weights: training-set size over the round's total."""
    total = float(sum(sizes[i] for i in participants))
    return {int(i): sizes[i] / total for i in participants}


def largest_weights(sizes: list[int], sample_count: int) -> list[float]:
    """Each hospital's largest FedAvg weight over all fixed-size samples: when the
    others sampled with it are the smallest ones."""
    order = sorted(sizes)
    largest = []
    for n in sizes:
        others = list(order)
        others.remove(n)
        largest.append(n / (n + sum(others[:sample_count - 1])))
    return largest


class SizeWeights:
    """FedAvg's weights (``sizes`` may end with the pooled trainer's, the total)."""

    def weights(self, participants: np.ndarray, sizes: list[int]) -> dict[int, float]:
        return aggregation_weights(participants, sizes)

    def largest(self, sizes: list[int], sample_count: int) -> list[float]:
        return largest_weights(sizes, sample_count)


@dataclass(frozen=True)
class FixedWeights:
    """Every participant weighs ``weight`` (1/(qN)), whoever else was sampled."""

    weight: float

    def weights(self, participants: np.ndarray, sizes: list[int]) -> dict[int, float]:
        return {int(i): self.weight for i in participants}

    def largest(self, sizes: list[int], sample_count: int) -> list[float]:
        return [self.weight] * len(sizes)


Weighting = SizeWeights | FixedWeights

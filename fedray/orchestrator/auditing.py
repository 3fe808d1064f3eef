"""audit.*: the attacks of fedray/audit/ once the run is over, beside the ε of the
party they target (the target hospital's own ledger, or the run's)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import ray

from fedray.audit.client_canary import CanaryClients
from fedray.audit.gradient_canary import PlantedCanaries
from fedray.config import SimulationConfig
from fedray.data import FederationPlan
from fedray.outputs.record import RunRecord
from fedray.privacy.steps import NoRunLedger, RunLedger


def audit_run(config: SimulationConfig, *, federation: FederationPlan, initial: np.ndarray,
              record: RunRecord, summary: dict[str, Any], final_vector: np.ndarray,
              aggregator: Any, run_ledger: RunLedger | NoRunLedger,
              canaries: CanaryClients | None = None, per_upload: bool = False,
              global_models: list[np.ndarray] | None = None,
              gradient_canaries: PlantedCanaries | None = None) -> dict[str, Any]:
    """Under central and distributed DP a canary changes one hospital's data, a
    replacement: the ε that covers it is the run's at σ/2 (twice the sensitivity),
    reported beside the add/remove one."""
    from fedray.audit.run import ClientCanaryView, GradientCanaryView, run_audit

    start = time.perf_counter()
    # a hospital's own ledger when it has one (local, DP-SGD), else the run's
    epsilon = record.epsilon.get(config.audit.target, summary.get("epsilon"))
    view = ray.get(aggregator.inversion_view.remote()) if config.audit.inversion else None
    covering = None
    if isinstance(run_ledger, RunLedger) and epsilon is not None:
        covering = run_ledger.ledger.with_double_sensitivity().epsilon
    # audit.client_canary: scored by the aggregator, where the adversary sits
    scores = (ray.get(aggregator.client_canary_scores.remote()) if canaries is not None
              else None)
    # audit.gradient_canary: the aggregator's scores too, of the canaries the workers drew
    gradient = GradientCanaryView()
    if gradient_canaries is not None:
        gradient = GradientCanaryView(gradient_canaries,
                                      ray.get(aggregator.gradient_canary_scores.remote()))
    audit = run_audit(config, federation, initial, final_vector,
                      inversion_view=view, epsilon=epsilon, delta=summary.get("delta"),
                      epsilon_covering=covering,
                      client_canaries=ClientCanaryView(canaries, scores, per_upload,
                                                       summary.get("epsilon")),
                      global_models=global_models, gradient_canaries=gradient,
                      single_update=(ray.get(aggregator.single_update_view.remote())
                                     if config.audit.membership else None))
    audit["seconds"] = time.perf_counter() - start
    return audit

"""The audit of one run, from each attacker's vantage point (docs/privacy.md,
"Auditing"): the aggregator inverts what it received of the target hospital's first
update (fedray/runtime/actors.py: AggregatorWorker.inversion_view), and a model user
attacks the released global model (membership, canaries). The auditor alone holds the
truth the attacks are scored against: it rebuilds the hospitals' records here, in the
driver, once the run is over."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from fedray.audit.canary import (
    audit_guesses,
    epsilon_ceiling,
    epsilon_lower_bound,
    make_canaries,
    verdict,
)
from fedray.audit.client_canary import CanaryClients, client_canary_audit
from fedray.audit.gradient_canary import PlantedCanaries, canary_count, plant_gradient_canaries
from fedray.audit.inversion import score_reconstruction
from fedray.audit.membership import every_round_membership, membership_attacks
from fedray.data import HospitalData, build_hospitals
from fedray.models import build_model, load_flat, loss_fn


def canaries_for(config: Any, x_train: np.ndarray, num_classes: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return make_canaries(x_train, num_classes=num_classes, count=config.audit.canaries,
                         seed=config.seed)


def with_canaries(config: Any, index: int, data: HospitalData, num_classes: int
                  ) -> HospitalData:
    """audit.canary: the target hospital trains on its records plus the included
    canaries (fedray/audit/canary.py). Planned sizes, weights, an epoch's steps and
    DP-SGD's sample rate and batch denominator stay those of its own records (the
    hospital gets ``planned_train``), so the mechanism is the one the accountant priced."""
    if not (config.audit.canary and index == config.audit.target):
        return data
    features, labels, included = canaries_for(config, data.x_train, num_classes)
    return dataclasses.replace(
        data, x_train=np.concatenate([data.x_train, features[included]]),
        y_train=np.concatenate([data.y_train, labels[included].astype(data.y_train.dtype)]))


def gradient_canaries_for(config: Any, *, num_parameters: int, clip: float
                          ) -> PlantedCanaries | None:
    """audit.gradient_canary: the Dirac canaries the target hospital's DP-SGD carries
    (fedray/audit/gradient_canary.py); the workers and the auditor draw the same ones."""
    audit = config.audit
    if not audit.gradient_canary:
        return None
    return plant_gradient_canaries(
        hospital=audit.target, count=canary_count(audit.gradient_canaries, num_parameters),
        num_parameters=num_parameters, seed=config.seed, clip=clip)


@dataclasses.dataclass(frozen=True)
class ClientCanaryView:
    """audit.client_canary: the canary clients, the aggregator's scores of them,
    whether the mechanism's ε is about each upload (local DP), and the ε of a client
    (the run's, or the largest hospital's)."""

    canaries: CanaryClients | None = None
    scores: dict[str, Any] | None = None
    per_upload: bool = False
    epsilon: float | None = None


@dataclasses.dataclass(frozen=True)
class GradientCanaryView:
    """audit.gradient_canary: the planted canaries and the aggregator's scores of them."""

    canaries: PlantedCanaries | None = None
    scores: dict[str, Any] | None = None


TARGET_UPLOAD_VIEW = "the target hospital's own upload"


@dataclasses.dataclass(frozen=True)
class AuditScene:
    """What the attacks read once the run is over: the run, the rebuilt hospitals, the
    initial and final global models, and each attacker's own inputs."""

    config: Any
    federation: Any
    hospitals: list[HospitalData]
    initial: np.ndarray
    final: np.ndarray
    losses: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
    inversion_view: dict[str, Any] | None
    epsilon: float | None
    delta: float | None
    epsilon_covering: float | None
    client_canaries: ClientCanaryView = ClientCanaryView()
    global_models: tuple[np.ndarray, ...] = ()  # every round's, as model users saw them
    gradient_canaries: GradientCanaryView = GradientCanaryView()
    # the target's latest upload as the aggregator read it (fedray/audit/tap.py UploadTap)
    single_update: dict[str, Any] | None = None


def _membership(scene: AuditScene) -> dict[str, Any]:
    hospitals = scene.hospitals
    x = np.concatenate([h.x_train for h in hospitals] + [h.x_test for h in hospitals])
    y = np.concatenate([h.y_train for h in hospitals] + [h.y_test for h in hospitals])
    members = np.zeros(len(x), dtype=bool)
    members[: sum(len(h.x_train) for h in hospitals)] = True
    initial = scene.losses(scene.initial, x, y)
    result = membership_attacks(members, scene.losses(scene.final, x, y), initial)
    if scene.global_models:  # a model user who saw every round, not only the last
        result["every_round"] = every_round_membership(
            members, initial, [scene.losses(m, x, y) for m in scene.global_models])
    if scene.single_update is not None:
        result["single_update"] = _single_update_membership(scene, scene.single_update)
    return result


def _single_update_membership(scene: AuditScene, view: dict[str, Any]) -> dict[str, Any]:
    """The aggregator's view of one update: the target's own model of its latest round,
    rebuilt from an upload read in the clear, against the target's records (its
    training records are the members, its held-out ones the rest). A ciphertext gives
    nothing to score."""
    scored: dict[str, Any] = {"view": view["view"], "round": view.get("round")}
    if view.get("local_model") is None:
        return scored
    target = scene.hospitals[scene.config.audit.target]
    x = np.concatenate([target.x_train, target.x_test])
    y = np.concatenate([target.y_train, target.y_test])
    members = np.arange(len(x)) < len(target.x_train)
    scored.update(membership_attacks(members, scene.losses(view["local_model"], x, y),
                                     scene.losses(scene.initial, x, y)))
    return scored


def _canary(scene: AuditScene) -> dict[str, Any]:
    audit, epsilon = scene.config.audit, scene.epsilon
    target = scene.hospitals[audit.target]
    features, labels, included = canaries_for(scene.config, target.x_train,
                                              scene.federation.num_classes)
    scores = scene.losses(scene.initial, features, labels) - scene.losses(scene.final, features,
                                                                          labels)
    guesses = audit_guesses(scores, included, len(features) // 4)
    audit_delta = scene.delta if scene.delta is not None else 1e-5
    lower = epsilon_lower_bound(canaries=len(features), delta=audit_delta,
                                confidence=audit.confidence, **guesses)
    ceiling = epsilon_ceiling(canaries=len(features), guesses=guesses["guesses"],
                              delta=audit_delta, confidence=audit.confidence)
    covering = epsilon if scene.epsilon_covering is None else scene.epsilon_covering
    return {
        "canaries": len(features), "included": int(included.sum()), **guesses,
        "confidence": audit.confidence, "delta": audit_delta,
        "epsilon_lower_bound": lower,
        # the largest ε these canaries could ever show (every guess right)
        "epsilon_ceiling": ceiling,
        "epsilon_accountant": epsilon,
        "epsilon_covering": covering,
        "verdict": verdict(lower_bound=lower, ceiling=ceiling, claimed=covering),
    }


def _inversion(scene: AuditScene) -> dict[str, Any]:
    target = scene.config.audit.target
    view = scene.inversion_view or {"view": "nothing received"}
    scored: dict[str, Any] = {"view": view["view"]}
    if view.get("not_applicable"):
        scored["not_applicable"] = view["not_applicable"]
    # scored against what the target trained on (its included canaries too)
    records = with_canaries(scene.config, target, scene.hospitals[target],
                            scene.federation.num_classes).x_train
    if view.get("candidates") is not None:
        scored.update(score_reconstruction(view["candidates"], records))
        if view.get("dlg_candidates") is not None:
            scored["dlg"] = score_reconstruction(view["dlg_candidates"], records)
    if view.get("released_candidates") is not None:
        # the first released change of the global model (the decrypted sum under CKKS),
        # scored against every hospital's records: the sum mixes all of them
        everyone = np.concatenate([
            with_canaries(scene.config, i, h, scene.federation.num_classes).x_train
            for i, h in enumerate(scene.hospitals)])
        scored["released_sum"] = score_reconstruction(view["released_candidates"], everyone)
    return scored


def _client_canary(scene: AuditScene) -> dict[str, Any]:
    view = scene.client_canaries
    if view.canaries is None or view.scores is None:
        raise RuntimeError("audit.client_canary ran without canary clients")
    return client_canary_audit(view.canaries.included(), view.scores, claimed=view.epsilon,
                               delta=scene.delta, confidence=scene.config.audit.confidence,
                               per_upload=view.per_upload)


def _gradient_canary(scene: AuditScene) -> dict[str, Any]:
    """DP-SGD's gradient canaries in the target hospital, scored by the aggregator on each
    released change of the global model and, where it reads it, on the target's own
    upload (the view DP-SGD's ε is about, so it decides)."""
    config, view = scene.config, scene.gradient_canaries
    if view.canaries is None or view.scores is None:
        raise RuntimeError("audit.gradient_canary ran without gradient canaries")
    result = client_canary_audit(view.canaries.included, view.scores, claimed=scene.epsilon,
                                 delta=scene.delta, confidence=config.audit.confidence,
                                 per_upload=True, upload_view=TARGET_UPLOAD_VIEW)
    return {**result, "estimator": "Gaussian fit of in/out scores; one-run bound (Steinke "
                                   "et al. 2023) beside it"}


# audit.<name>: true runs ATTACKS[name]; the names are fedray.config.AUDIT_ATTACKS
ATTACKS: dict[str, Callable[[AuditScene], dict[str, Any]]] = {
    "membership": _membership,
    "canary": _canary,
    "inversion": _inversion,
    "client_canary": _client_canary,
    "gradient_canary": _gradient_canary,
}


def run_audit(config: Any, federation: Any, initial: np.ndarray, final: np.ndarray, *,
              inversion_view: dict[str, Any] | None, epsilon: float | None,
              delta: float | None, epsilon_covering: float | None = None,
              client_canaries: ClientCanaryView | None = None,
              global_models: list[np.ndarray] | None = None,
              gradient_canaries: GradientCanaryView | None = None,
              single_update: dict[str, Any] | None = None) -> dict[str, Any]:
    """``epsilon``: the accountant's ε of the party the canaries sit in;
    ``epsilon_covering``: the ε that covers one canary record under the mode's relation
    (docs/privacy.md, "Auditing"; ``epsilon`` when None)."""
    audit = config.audit
    hospitals = build_hospitals(config.dataset, list(federation.hospitals), seed=config.seed)
    model = build_model(config.model, num_features=federation.num_features,
                        num_classes=federation.num_classes)

    def losses(vector: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        load_flat(model, vector)
        model.eval()
        with torch.no_grad():
            return loss_fn(model(torch.as_tensor(x)), torch.as_tensor(y),
                           reduction="none").numpy().astype(np.float64)

    scene = AuditScene(config, federation, hospitals, initial, final, losses, inversion_view,
                       epsilon, delta, epsilon_covering,
                       client_canaries or ClientCanaryView(), tuple(global_models or ()),
                       gradient_canaries or GradientCanaryView(), single_update)
    result: dict[str, Any] = {"target_hospital": hospitals[audit.target].name}
    for name, attack in ATTACKS.items():
        if getattr(audit, name):
            result[name] = attack(scene)
    return result

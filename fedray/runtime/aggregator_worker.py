"""The aggregator worker: a Ray actor that validates and sums the hospitals' updates
and applies the strategy's server rule; it holds no data and, under encryption, no key."""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any

import numpy as np
import ray

from fedray.audit.client_canary import CanaryClients, CanaryScores, NoCanaryScores
from fedray.audit.gradient_canary import GradientCanaryScores
from fedray.audit.run import gradient_canaries_for
from fedray.audit.tap import make_tap, make_upload_tap
from fedray.config import SimulationConfig
from fedray.crypto import make_codec
from fedray.crypto.ckks import round_to_grid
from fedray.crypto.release import decryption_floor
from fedray.models import build_model, flatten, num_trainable
from fedray.pipeline import (
    AggregateResult,
    Rejection,
    RoundBroadcast,
    Update,
    aggregate,
    upload_layout,
)
from fedray.privacy import PrivacyPlan
from fedray.strategies import build_strategy


class AggregatorWorker:
    """Receives the hospitals' update batches and aggregates them; holds no data. It
    holds the strategy's server state (control variates, optimiser moments). Like a
    hospital worker, it is reused between runs: ``configure`` replaces all it holds."""

    def configure(
        self, config: SimulationConfig, privacy: PrivacyPlan, num_hospitals: int,
        public_context: tuple[bytes, str] | None = None, decryptors: Any = None, *,
        num_features: int = 13, num_classes: int = 2, canaries: CanaryClients | None = None,
    ) -> None:
        """With encryption the aggregator gets the public context only: it can check and
        add ciphertexts, and asks the decryptor (a hospital's role) for the sum; under
        threshold CKKS it asks every key holder and combines their partial decryptions."""
        self.codec: Any = make_codec(public_context, config.encryption, num_hospitals)
        self.decryptors = list(decryptors or [])
        self.rounding_bits = config.encryption.decrypt_rounding_bits
        if public_context is not None and self.codec.can_decrypt:
            # a trust boundary, so never an assert (-O drops those)
            raise PermissionError("the aggregator was given a secret key; refusing to run")
        strategy = build_strategy(config.strategy)
        model = build_model(config.model, num_features=num_features, num_classes=num_classes)
        self.layout = upload_layout(strategy, model, num_hospitals)
        # audit.inversion's seat: what an attacker here keeps of what arrived
        self.tap = make_tap(inversion=config.audit.inversion, target=config.audit.target,
                            model=model, batch_size=config.batch_size,
                            dlg_iterations=config.audit.dlg_iterations, seed=config.seed)
        self.upload_tap = make_upload_tap(membership=config.audit.membership,
                                          target=config.audit.target)
        # audit.client_canary's adversary: scores the canaries on what it sees each round
        self.canary_scores: CanaryScores | NoCanaryScores = (
            CanaryScores(canaries) if canaries is not None else NoCanaryScores())
        # audit.gradient_canary's: the same seat, scoring the target hospital's canaries
        planted = gradient_canaries_for(config, num_parameters=num_trainable(model),
                                        clip=privacy.clip)
        self.gradient_scores: GradientCanaryScores | NoCanaryScores = (
            GradientCanaryScores(planted) if planted is not None else NoCanaryScores())
        self.server_state = strategy.init_server_state(flatten(model), num_trainable(model))
        # under encryption the decryptor's floor (never one hospital), else min_clients
        self.privacy = privacy.server_privacy(
            encrypted=public_context is not None, min_decrypted=decryption_floor(
                config.min_clients), seed=config.seed)

    def ready(self) -> bool:
        return True

    def aggregate(self, batches: list[ray.ObjectRef], broadcast: RoundBroadcast,
                  weights: dict[int, float], round_: int | None = None,
                  *closed: None) -> tuple[RoundBroadcast, AggregateResult]:
        """``batches`` are the refs of hospital-actor results (a list inside the argument
        stays unresolved), so the updates travel actor to aggregator, not via the driver.
        ``weights`` are the round's weights from the orchestrator. ``closed``: the
        driver's calls that closed the round at the decryptors (references, resolved
        before this runs, so the decryptors know what arrived before they are asked).

        Returns the next broadcast and the report separately (call with
        ``num_returns=2``): the broadcast goes on to the next round's training by
        reference, the report (without model or state) to the driver."""
        updates: list[Update] = []
        failed: list[Rejection] = []
        start = time.perf_counter()
        for ref in batches:
            try:
                updates.extend(ray.get(ref))
            except ray.exceptions.RayError as err:  # a crashed actor or hospital
                failed.append(Rejection(-1, f"update batch failed: {type(err).__name__}: {err}"))
        received = time.perf_counter() - start
        self.tap.observe(updates, broadcast.global_vector)
        number = 0 if round_ is None else round_
        self.upload_tap.observe(updates, broadcast.global_vector, weights, number)
        self.canary_scores.observe_uploads(number, updates)
        self.gradient_scores.observe_uploads(number, updates)
        decode = functools.partial(self._decrypt, round_) if self.decryptors else None
        result = aggregate(updates, broadcast=broadcast, server_state=self.server_state,
                           weights=weights, layout=self.layout, codec=self.codec,
                           decode=decode, server=self.privacy, round_=round_)
        assert result.server_state is not None and result.broadcast is not None
        if result.released:
            self.tap.observe_release(broadcast.global_vector, result.broadcast.global_vector)
            change = (np.asarray(result.broadcast.global_vector, dtype=np.float64)
                      - broadcast.global_vector)
            self.canary_scores.observe_release(number, change)
            self.gradient_scores.observe_release(number, change)
        self.server_state = result.server_state
        report = dataclasses.replace(
            result, broadcast=None, server_state=None,
            rejected=result.rejected + tuple(failed),
            seconds={**result.seconds, "receive": received},
        )
        return result.broadcast, report

    def _decrypt(self, round_: int | None, total: Any, summed: tuple[int, ...]) -> np.ndarray:
        """The decryptors check the sum against what arrived and release it: one
        decryptor its rounded value, k key holders their partial decryptions, which
        only all together give the sum (rounded here like a single decryptor's)."""
        claimed = self.codec.seal(total)
        released = ray.get([d.decrypt.remote(round_, list(summed), claimed)
                            for d in self.decryptors])
        if len(released) == 1:
            return released[0]
        return round_to_grid(self.codec.combine(claimed, released), self.rounding_bits)

    def inversion_view(self) -> dict[str, Any]:
        """audit.inversion, run where the attacker sits (fedray/audit/tap.py)."""
        return self.tap.view()

    def single_update_view(self) -> dict[str, Any]:
        """audit.membership: the target's latest upload as the aggregator could read it."""
        return self.upload_tap.view()

    def client_canary_scores(self) -> dict[str, Any] | None:
        """audit.client_canary: the adversary's scores of every canary client."""
        return self.canary_scores.scores()

    def gradient_canary_scores(self) -> dict[str, Any] | None:
        """audit.gradient_canary: the adversary's scores of the target's canaries."""
        return self.gradient_scores.scores()

    def state_dict(self) -> dict[str, Any]:
        return {"strategy": {k: np.array(v) for k, v in self.server_state.items()},
                "noise": self.privacy.noise.state_dict(),
                "canary_scores": self.canary_scores.state_dict(),
                "gradient_canary_scores": self.gradient_scores.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.server_state = {k: np.array(v) for k, v in state["strategy"].items()}
        self.privacy.noise.load_state_dict(state["noise"])
        self.canary_scores.load_state_dict(state.get("canary_scores"))
        self.gradient_scores.load_state_dict(state.get("gradient_canary_scores"))

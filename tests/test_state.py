"""Explicit state: saving hospital and server state mid-run and continuing from the
saved state gives the next round bit for bit (CPU), RNG streams included."""

import copy

import numpy as np
import pytest

from fedray.config import ModelConfig, PrivacyConfig, SimulationConfig, StrategyConfig
from fedray.crypto import PlainCodec
from fedray.data.base import HospitalData
from fedray.hospital import Hospital, RoundSetup
from fedray.models import build_model, initial_parameters
from fedray.pipeline import RoundBroadcast, aggregate, client_pipeline, upload_layout
from fedray.privacy import RUN, PartyPlan, PrivacyLedger, PrivacyPlan
from fedray.runtime.actors import AggregatorWorker
from fedray.strategies import build_strategy
from fedray.training import LocalTraining

FEATURES = 4
MODEL = ModelConfig(name="mlp", hidden=5, batchnorm=True)


def _data(index):
    rng = np.random.default_rng(index)
    x = rng.normal(size=(24, FEATURES)).astype(np.float32) + index
    y = (x[:, 0] > index).astype(np.int64)
    return HospitalData(f"h{index}", x[:18], y[:18], x[18:], y[18:])


def _trainable(model):
    return sum(p.numel() for p in model.parameters())


def _hospitals(strategy, model):
    initial = initial_parameters(MODEL, num_features=FEATURES, num_classes=2, seed=0)
    return [
        Hospital(index=i, data=_data(i), seed=3,
                 pipeline=client_pipeline("local", clip=1.0, noise_std=0.2),
                 ledger=PrivacyLedger(noise_multiplier=0.2, sample_rate=1.0, delta=1e-5,
                                      accountant="rdp"),
                 party=PartyPlan(0.2, 1.0, 1),
                 strategy_state=strategy.init_client_state(initial, _trainable(model)))
        for i in range(3)
    ]


def _round(hospitals, setup, broadcast, server_state):
    updates = [h.train(setup, broadcast, weight=1 / 3)[0] for h in hospitals]
    result = aggregate(updates, broadcast=broadcast, server_state=server_state,
                       weights={0: 1 / 3, 1: 1 / 3, 2: 1 / 3}, layout=setup.layout,
                       codec=PlainCodec())
    return result.broadcast, result.server_state


@pytest.mark.parametrize("name", ["scaffold", "fedadam", "fedbn"])
def test_saving_and_loading_mid_run_continues_bit_for_bit(name):
    strategy = build_strategy(StrategyConfig(name=name, server_lr=0.5))
    model = build_model(MODEL, num_features=FEATURES, num_classes=2)
    setup = RoundSetup(model=model, strategy=strategy, layout=upload_layout(strategy, model, 3),
                       settings=LocalTraining(steps=4, batch_size=4, lr=0.1),
                       local_positions=strategy.local_positions(model))
    initial = initial_parameters(MODEL, num_features=FEATURES, num_classes=2, seed=0)
    server_state = strategy.init_server_state(initial, _trainable(model))
    broadcast = RoundBroadcast(initial, strategy.broadcast(server_state))
    hospitals = _hospitals(strategy, model)
    broadcast, server_state = _round(hospitals, setup, broadcast, server_state)
    saved_hospitals = [copy.deepcopy(h.state_dict()) for h in hospitals]
    saved_server = copy.deepcopy(server_state)
    saved_broadcast = copy.deepcopy(broadcast)
    reference, _ = _round(hospitals, setup, broadcast, server_state)

    resumed = _hospitals(strategy, model)  # fresh objects: round-0 state
    for hospital, state in zip(resumed, saved_hospitals):
        hospital.load_state_dict(state)
    again, _ = _round(resumed, setup, saved_broadcast, saved_server)
    assert np.array_equal(again.global_vector, reference.global_vector)
    assert [h.ledger.steps for h in resumed] == [2, 2, 2]
    fresh, _ = _round(_hospitals(strategy, model), setup, saved_broadcast, saved_server)
    assert not np.array_equal(fresh.global_vector, reference.global_vector)  # state mattered


def test_aggregator_state_round_trip_restores_moments_and_noise_stream():
    config = SimulationConfig(privacy=PrivacyConfig(name="central", noise_multiplier=1.0),
                              strategy=StrategyConfig(name="fedadam"),
                              model=ModelConfig(name="logreg"))
    plan = PrivacyPlan(mode="central", clip=1.0, delta=1e-5, accountant="rdp", budget=None,
                       parties={RUN: PartyPlan(1.0, 1.0, 1)}, uniform_weight=0.5)
    first = AggregatorWorker(config, plan, 2, num_features=FEATURES)
    first.server_noise(np.zeros(5))  # advance the noise stream
    first.server_state = {"m": np.arange(5.0), "v": np.ones(5)}
    saved = copy.deepcopy(first.state_dict())
    expected = first.server_noise(np.zeros(5))
    second = AggregatorWorker(config, plan, 2, num_features=FEATURES)
    second.load_state_dict(saved)
    assert np.array_equal(second.server_noise(np.zeros(5)), expected)
    assert np.array_equal(second.server_state["m"], np.arange(5.0))

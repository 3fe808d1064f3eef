"""Explicit state: saving hospital and server state mid-run and continuing from the
saved state gives the next round bit for bit (CPU), RNG streams included."""

import copy
import pickle

import numpy as np
import pytest

from fedray.checkpoint import loads_plain
from fedray.config import ModelConfig, PrivacyConfig, SimulationConfig, StrategyConfig
from fedray.crypto import PlainCodec
from fedray.data.base import HospitalData
from fedray.hospital import Hospital, RoundSetup
from fedray.models import build_model, initial_parameters
from fedray.pipeline import ClientPipeline, RoundBroadcast, aggregate, upload_layout
from fedray.privacy import RUN, PartyPlan, PrivacyLedger, PrivacyPlan
from fedray.privacy.steps import ClientPrivacy, ClipToNorm, GaussianNoise, HospitalLedger
from fedray.runtime.aggregator_worker import AggregatorWorker
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
    steps = (ClipToNorm(1.0), GaussianNoise(0.2))
    return [
        Hospital(index=i, data=_data(i), seed=3, pipeline=ClientPipeline(steps=steps),
                 privacy=ClientPrivacy(steps=steps, ledger=HospitalLedger(
                     PrivacyLedger(noise_multiplier=0.2, sample_rate=1.0, delta=1e-5,
                                   accountant="rdp"), steps_per_round=1)),
                 strategy_state=strategy.init_client_state(initial, _trainable(model)))
        for i in range(3)
    ]


def _round(hospitals, setup, broadcast, server_state):
    updates = [h.train(setup, broadcast, weight=1 / 3)[0] for h in hospitals]
    result = aggregate(updates, broadcast=broadcast, server_state=server_state,
                       weights={0: 1 / 3, 1: 1 / 3, 2: 1 / 3}, layout=setup.layout,
                       codec=PlainCodec())
    return result.broadcast, result.server_state


@pytest.mark.parametrize("name, optimizer", [("scaffold", "sgd"), ("fedadam", "adam"),
                                             ("fedbn", "adam")])
def test_saving_and_loading_mid_run_continues_bit_for_bit(name, optimizer):
    strategy = build_strategy(StrategyConfig(name=name, server_lr=0.5))
    model = build_model(MODEL, num_features=FEATURES, num_classes=2)
    setup = RoundSetup(model=model, strategy=strategy, layout=upload_layout(strategy, model, 3),
                       settings=LocalTraining(steps=4, batch_size=4, lr=0.1,
                                              optimizer=optimizer),
                       local_positions=strategy.local_positions(model))
    initial = initial_parameters(MODEL, num_features=FEATURES, num_classes=2, seed=0)
    server_state = strategy.init_server_state(initial, _trainable(model))
    broadcast = RoundBroadcast(initial, strategy.broadcast(server_state))
    hospitals = _hospitals(strategy, model)
    broadcast, server_state = _round(hospitals, setup, broadcast, server_state)
    # what a checkpoint keeps: plain data, read back by the plain-data unpickler
    saved_hospitals = [loads_plain(pickle.dumps(h.state_dict())) for h in hospitals]
    saved_server, saved_broadcast = copy.deepcopy(server_state), copy.deepcopy(broadcast)
    reference, _ = _round(hospitals, setup, broadcast, server_state)

    def resume(*, server=True, strategy_state=True):
        resumed = _hospitals(strategy, model)  # fresh objects: round-0 state
        for hospital, state in zip(resumed, saved_hospitals):
            state = copy.deepcopy(state)
            if not strategy_state:  # everything but the strategy's and Adam's state
                state["strategy"], state["optimizer"] = hospital.state_dict()["strategy"], {}
            hospital.load_state_dict(state)
        fresh_server = strategy.init_server_state(initial, _trainable(model))
        result, _ = _round(resumed, setup, saved_broadcast,
                           copy.deepcopy(saved_server) if server else fresh_server)
        # the next broadcast: the global model and the strategy's vectors (SCAFFOLD's c)
        return resumed, np.concatenate([result.global_vector, *result.extras.values()])

    expected = np.concatenate([reference.global_vector, *reference.extras.values()])
    resumed, again = resume()
    assert np.array_equal(again, expected)
    assert [h.privacy.ledger.ledger.steps for h in resumed] == [2, 2, 2]
    # each part of the state matters: leave one out and the next round differs
    if name != "fedbn":  # FedBN's server state is empty
        assert not np.array_equal(resume(server=False)[1], expected)
    assert not np.array_equal(resume(strategy_state=False)[1], expected)


def test_aggregator_state_round_trip_restores_moments_and_noise_stream():
    config = SimulationConfig(privacy=PrivacyConfig(name="central", noise_multiplier=1.0),
                              strategy=StrategyConfig(name="fedadam"),
                              model=ModelConfig(name="logreg"))
    plan = PrivacyPlan(mode="central", clip=1.0, delta=1e-5, accountant="rdp", budget=None,
                       parties={RUN: PartyPlan(1.0, 1.0, 1)}, uniform_weight=0.5)
    first = _aggregator(config, plan, 2)
    first.privacy.noise(np.zeros(5))  # advance the noise stream
    first.server_state = {"m": np.arange(5.0), "v": np.ones(5)}
    saved = loads_plain(pickle.dumps(first.state_dict()))
    expected = first.privacy.noise(np.zeros(5))
    second = _aggregator(config, plan, 2)
    second.load_state_dict(saved)
    assert np.array_equal(second.privacy.noise(np.zeros(5)), expected)
    assert np.array_equal(second.server_state["m"], np.arange(5.0))


def _aggregator(config, plan, num_hospitals):
    worker = AggregatorWorker()
    worker.configure(config, plan, num_hospitals, num_features=FEATURES)
    return worker

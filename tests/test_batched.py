"""Hospitals trained together (fedray/batched.py) against the per-hospital reference
loop (fedray/training.py: train_local), without Ray: same seeds, same batch order,
uneven hospital sizes, the same per-hospital models."""

import numpy as np
import pytest
import torch

from fedray.batched import batched_unsupported, train_batched
from fedray.config import ModelConfig
from fedray.models import build_model, flatten, load_flat, num_trainable
from fedray.strategies import ClientRound, FedAvg, build_strategy
from fedray.training import LocalTraining, train_local

SIZES = (5, 17, 40)  # uneven: short last batches, different step counts
SETTINGS = LocalTraining(epochs=2, batch_size=4, lr=0.1)


def _data(features=13, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(n, features, generator=g), torch.randint(0, 2, (n,), generator=g))
            for n in SIZES]


def _strategy(name):
    from fedray.config import StrategyConfig

    return build_strategy(StrategyConfig(name=name, mu=0.5))


def _rounds(strategy, model, seed=0):
    """Each hospital's round: SCAFFOLD's c and its own cᵢ (random, so the correction
    differs per hospital), empty for the others."""
    if strategy.name != "scaffold":
        return [({}, {}) for _ in SIZES]
    rng, size = np.random.default_rng(seed), num_trainable(model)
    c = rng.normal(scale=0.5, size=size)
    return [({"control": c}, {"control": rng.normal(scale=0.5, size=size)}) for _ in SIZES]


def _reference(model, data, start, strategy, seeds, rounds):
    rows, losses = [], []
    for (x, y), seed, (broadcast, state) in zip(data, seeds, rounds):
        load_flat(model, start)
        params = [p.detach().clone() for p in model.parameters()]
        loss = train_local(model, x, y, settings=SETTINGS,
                           generator=torch.Generator().manual_seed(seed), strategy=strategy,
                           round_=ClientRound(params, broadcast, state))
        rows.append(flatten(model)[:num_trainable(model)])
        losses.append(loss)
    return np.stack(rows), np.array(losses)



@pytest.mark.parametrize("model_name", ["logreg", "mlp"])
@pytest.mark.parametrize("strategy_name", ["fedavg", "fedprox", "scaffold", "fedadam",
                                           "fedyogi", "fedadagrad", "fedbn", "local"])
def test_batched_training_gives_each_hospital_its_own_model(model_name, strategy_name):
    torch.manual_seed(3)
    model = build_model(ModelConfig(name=model_name), num_features=13, num_classes=2)
    start = flatten(model)
    strategy, data, seeds = _strategy(strategy_name), _data(), (11, 12, 13)
    rounds = _rounds(strategy, model)
    expected, expected_loss = _reference(model, data, start, strategy, seeds, rounds)
    starts = np.tile(start[:num_trainable(model)], (len(SIZES), 1))
    trained, losses, steps = train_batched(
        model, data, starts, settings=SETTINGS, strategy=strategy,
        generators=[torch.Generator().manual_seed(s) for s in seeds],
        rounds=[ClientRound([], b, s) for b, s in rounds])
    assert steps == [SETTINGS.num_steps(n) for n in SIZES] == [4, 10, 20]
    largest = np.abs(trained - expected).max()
    print(f"{model_name} {strategy_name}: largest difference {largest:.2e}")
    assert largest <= 1e-5
    np.testing.assert_allclose(losses, expected_loss, atol=1e-5)
    assert np.abs(trained - starts).max() > 1e-2  # they did train


def test_scaffolds_correction_is_each_hospitals_own():
    """The positive control for the SCAFFOLD rows above: swapping two hospitals' cᵢ
    moves their batched models away from the loop's."""
    model = build_model(ModelConfig(name="logreg"), num_features=13, num_classes=2)
    start, strategy, data, seeds = flatten(model), _strategy("scaffold"), _data(), (1, 2, 3)
    rounds = _rounds(strategy, model)
    expected, _ = _reference(model, data, start, strategy, seeds, rounds)
    swapped = [rounds[1], rounds[0], rounds[2]]
    trained, _, _ = train_batched(
        model, data, np.tile(start[:num_trainable(model)], (3, 1)), settings=SETTINGS,
        strategy=strategy, generators=[torch.Generator().manual_seed(s) for s in seeds],
        rounds=[ClientRound([], b, s) for b, s in swapped])
    assert np.abs(trained[:2] - expected[:2]).max() > 1e-2
    assert np.abs(trained[2] - expected[2]).max() <= 1e-5


def test_each_hospital_starts_from_its_own_row_and_generators_advance_as_the_loop_does():
    model = build_model(ModelConfig(name="mlp", hidden=8), num_features=13, num_classes=2)
    data, seeds = _data(seed=1), (5, 6, 7)
    rng = np.random.default_rng(0)
    starts = rng.normal(scale=0.1, size=(len(SIZES), num_trainable(model))).astype(np.float32)
    looped, batched = [], [torch.Generator().manual_seed(s) for s in seeds]
    expected = []
    for (x, y), seed, row in zip(data, seeds, starts):
        load_flat(model, row)
        generator = torch.Generator().manual_seed(seed)
        train_local(model, x, y, settings=SETTINGS, generator=generator, strategy=FedAvg())
        expected.append(flatten(model))
        looped.append(generator)
    trained, _, _ = train_batched(model, data, starts, settings=SETTINGS, strategy=FedAvg(),
                                  generators=batched)
    assert np.abs(trained - np.stack(expected)).max() <= 1e-5
    for a, b in zip(looped, batched):  # the next round's batches are the loop's too
        assert torch.equal(torch.randperm(40, generator=a), torch.randperm(40, generator=b))


class _Unstacked(FedAvg):
    """A strategy of a user's own, with no stacked form of its local step."""

    name, trains_stacked = "mine", False


def test_what_cannot_run_batched_says_why():
    mlp = build_model(ModelConfig(name="mlp"), num_features=13, num_classes=2)
    norm = build_model(ModelConfig(name="mlp", batchnorm=True), num_features=13, num_classes=2)
    adam = LocalTraining(optimizer="adam")
    assert batched_unsupported(mlp, SETTINGS, FedAvg()) is None
    assert "sgd only" in batched_unsupported(mlp, adam, FedAvg())
    assert "BatchNorm" in batched_unsupported(norm, SETTINGS, FedAvg())
    assert "no stacked form" in batched_unsupported(mlp, SETTINGS, _Unstacked())
    with pytest.raises(ValueError, match="cannot train batched"):
        train_batched(mlp, _data(), np.zeros((3, num_trainable(mlp))), settings=adam,
                      strategy=FedAvg(), generators=[torch.Generator()] * 3)


def test_auto_batches_busy_workers_and_says_why_it_does_not():
    from fedray.batched import AUTO_MIN_HOSPITALS, batched_choice
    from fedray.config import RayConfig, SimulationConfig, TrainingConfig

    mlp = build_model(ModelConfig(name="mlp"), num_features=13, num_classes=2)
    auto = SimulationConfig()
    assert batched_choice(auto, mlp, clips_each_record=False, hosted=AUTO_MIN_HOSPITALS) == \
        (True, None)
    batched, why = batched_choice(auto, mlp, clips_each_record=False, hosted=4)
    assert not batched and "4 hospitals a worker" in why
    insist = SimulationConfig(training=TrainingConfig(batched="true"))
    assert batched_choice(insist, mlp, clips_each_record=False, hosted=4) == (True, None)
    assert "DP-SGD" in batched_choice(insist, mlp, clips_each_record=True)[1]
    gpu = SimulationConfig(ray=RayConfig(num_gpus_per_actor=0.5))
    assert "GPU" in batched_choice(gpu, mlp, clips_each_record=False)[1]
    off = SimulationConfig(training=TrainingConfig(batched=False))  # YAML's boolean
    assert batched_choice(off, mlp, clips_each_record=False) == (False, "training.batched=false")

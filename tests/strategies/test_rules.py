"""Each strategy's server rule and client hook on tiny arrays, against the papers'
formulas written out by hand."""

import numpy as np
import pytest
import torch

from fedray.config import ModelConfig, StrategyConfig
from fedray.models import build_model, flat_positions
from fedray.strategies import (
    ClientRound,
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedBN,
    FedProx,
    FedYogi,
    Scaffold,
    build_strategy,
)
from fedray.strategies.fedopt import second_moment
from fedray.strategies.fedprox import proximal_gradient
from fedray.strategies.scaffold import control_variate_update


def test_fedavg_adds_the_scaled_mean_update():
    new, state = FedAvg(server_lr=0.5).server_update(np.ones(3, np.float32),
                                                      {"model": np.array([2.0, 0, -2])}, {})
    assert np.allclose(new, [2, 1, 0]) and state == {}


def test_fedprox_gradient_pulls_towards_the_global_model():
    w = [torch.tensor([1.0, 2.0]), torch.tensor([[3.0]])]
    g = [torch.tensor([0.0, 2.0]), torch.tensor([[1.0]])]
    grads = proximal_gradient(w, g, mu=0.1)
    assert torch.allclose(grads[0], torch.tensor([0.1, 0.0]))
    assert torch.allclose(grads[1], torch.tensor([[0.2]]))
    round_ = ClientRound(global_params=g, broadcast={}, state={})
    assert torch.allclose(FedProx(mu=0.1).gradient_terms(w, round_)[1], torch.tensor([[0.2]]))


def test_fedprox_gradient_is_the_autograd_gradient_of_its_term():
    w = torch.tensor([0.3, -1.2], requires_grad=True)
    g = torch.tensor([1.0, 1.0])
    (0.5 * 0.7 * torch.sum((w - g) ** 2)).backward()
    assert torch.allclose(proximal_gradient([w], [g], 0.7)[0], w.grad)


def test_scaffold_option_two_control_variates():
    c_local, c_global = np.array([0.1, -0.2]), np.array([0.3, 0.0])
    param_delta = np.array([-0.05, 0.02])  # y − x after K = 5 steps at η = 0.1
    c_new = control_variate_update(c_local, c_global, param_delta, steps=5, lr=0.1)
    assert np.allclose(c_new, c_local - c_global + (-param_delta) / (5 * 0.1))
    strategy = Scaffold(server_lr=1.0)
    state = {"control": c_local.copy()}
    round_ = ClientRound(global_params=[], broadcast={"control": c_global}, state=state)
    uploads = strategy.client_uploads(np.array([-0.05, 0.02, 9.0]), round_, steps=5, lr=0.1,
                                      num_trainable=2)
    assert np.allclose(uploads["control"], c_new - c_local)  # Δcᵢ
    assert np.allclose(state["control"], c_new)  # cᵢ updated in the hospital's state
    assert uploads["model"].shape == (3,)  # the whole model vector, buffers included


def test_scaffold_corrects_each_gradient_by_c_minus_ci():
    params = [torch.zeros(2), torch.zeros(1, 1)]
    round_ = ClientRound(global_params=[], broadcast={"control": np.array([1.0, 2.0, 3.0])},
                         state={"control": np.array([0.5, 0.5, 0.5])})
    terms = Scaffold().gradient_terms(params, round_)
    assert torch.allclose(terms[0], torch.tensor([0.5, 1.5]))
    assert torch.allclose(terms[1], torch.tensor([[2.5]]))


def test_scaffold_server_moves_c_by_the_control_upload():
    strategy = Scaffold(server_lr=2.0)
    state = strategy.init_server_state(np.zeros(3, np.float32), 2)
    new, state = strategy.server_update(np.zeros(3, np.float32),
                                        {"model": np.array([0.1, 0.2, 0.3]),
                                         "control": np.array([0.5, -0.5])}, state)
    assert np.allclose(new, [0.2, 0.4, 0.6])
    assert np.allclose(state["control"], [0.5, -0.5])
    assert np.allclose(strategy.broadcast(state)["control"], [0.5, -0.5])


@pytest.mark.parametrize("cls, rule", [(FedAdam, "adam"), (FedYogi, "yogi"),
                                       (FedAdagrad, "adagrad")])
def test_fedopt_moments_over_two_rounds(cls, rule):
    b1, b2, tau, lr = 0.9, 0.99, 1e-3, 0.1
    strategy = cls(server_lr=lr, beta1=b1, beta2=b2, tau=tau)
    x = np.zeros(2, np.float32)
    state = strategy.init_server_state(x, 2)
    m, v = np.zeros(2), np.zeros(2)
    expected = x.astype(np.float64)
    for delta in (np.array([0.2, -0.1]), np.array([0.1, 0.3])):
        x, state = strategy.server_update(x, {"model": delta}, state)
        m = b1 * m + (1 - b1) * delta
        if rule == "adam":
            v = b2 * v + (1 - b2) * delta ** 2
        elif rule == "yogi":
            v = v - (1 - b2) * delta ** 2 * np.sign(v - delta ** 2)
        else:
            v = v + delta ** 2
        expected = expected + lr * m / (np.sqrt(v) + tau)
        assert np.allclose(state["m"], m) and np.allclose(state["v"], v)
        assert np.allclose(x, expected, atol=1e-6)


def test_yogi_second_moment_grows_more_slowly_than_adagrad():
    v, delta = np.array([0.01]), np.array([1.0])
    assert second_moment("yogi", v, delta, 0.99)[0] == pytest.approx(0.01 + 0.01)
    assert second_moment("adagrad", v, delta, 0.99)[0] == pytest.approx(1.01)


def test_fedbn_keeps_every_batchnorm_position_and_nothing_else():
    model = build_model(ModelConfig(name="mlp", hidden=4, batchnorm=True), num_features=3,
                        num_classes=2)
    mask = FedBN().local_positions(model)
    # BatchNorm1d(4): weight, bias (parameters) and running mean, running variance (buffers)
    assert mask.sum() == 4 * 4
    bn = flat_positions(model, lambda m: isinstance(m, torch.nn.BatchNorm1d))
    assert np.array_equal(mask, bn)
    assert FedAvg().local_positions(model) is None


@pytest.mark.parametrize("name", ["fedavg", "fedprox", "scaffold", "fedadam", "fedyogi",
                                  "fedadagrad", "fedbn"])
def test_registry_builds_every_strategy_from_its_config(name):
    strategy = build_strategy(StrategyConfig(name=name, server_lr=0.5))
    assert strategy.name == name


def test_scaffold_control_weights_choose_the_papers_or_flambys_average():
    assert Scaffold().uploads[1].average == "over_all"  # c += Σ Δcᵢ / N
    assert Scaffold(control_weights="size").uploads[1].average == "mean"  # size-weighted


def test_fedopt_moves_batchnorm_statistics_by_the_plain_average():
    strategy = FedAdam(server_lr=0.1, beta1=0.9, beta2=0.99, tau=1e-3)
    state = strategy.init_server_state(np.zeros(3, np.float32), num_trainable=2)
    new, state = strategy.server_update(np.zeros(3, np.float32),
                                        {"model": np.array([0.2, -0.1, 0.05])}, state)
    assert state["m"].shape == (2,)
    assert new[2] == pytest.approx(0.05)  # the running statistic: averaged, not adapted
    # the parameter: an adaptive step, η·(1−β1)Δ / (√((1−β2)Δ²) + τ) ≈ η·sign(Δ)
    assert new[0] == pytest.approx(0.1 * 0.02 / (0.02 + 1e-3), rel=1e-5)


def test_upload_layout_weights_and_averages_each_part():
    from fedray.pipeline import UploadLayout

    layout = UploadLayout(Scaffold(), (3, 2), num_hospitals=4)
    weights = layout.coordinate_weights(0.25)
    assert weights.tolist() == [0.25, 0.25, 0.25, 0.25, 0.25]  # 1/N = 0.25 too, here
    assert UploadLayout(Scaffold(), (1, 1), 10).coordinate_weights(0.5).tolist() == [0.5, 0.1]
    means = layout.means(np.array([1.0, 2.0, 3.0, 4.0, 8.0]), denominator=0.5)
    assert np.allclose(means["model"], [2, 4, 6])  # averaged: divided by arrived weights
    assert np.allclose(means["control"], [4, 8])  # over all N: already weighted 1/N


def test_kept_positions_never_move_on_the_server():
    from fedray.pipeline import UploadLayout

    layout = UploadLayout(FedBN(), (3,), 2, kept=np.array([False, True, False]))
    assert np.allclose(layout.means(np.array([1.0, 5.0, 1.0]), 1.0)["model"], [1, 0, 1])


STRATEGY_NAMES = ["fedavg", "fedprox", "scaffold", "fedadam", "fedyogi", "fedadagrad", "fedbn",
                  "local", "pooled"]
PRIVACY_NAMES = ["none", "local", "central", "distributed", "dpsgd"]
REFUSED = {  # (strategy, privacy) -> the key the one-line error names
    **{("scaffold", p): "strategy.name" for p in ("local", "central", "distributed")},
    **{(s, p): "strategy.name" for s in ("local", "pooled") for p in PRIVACY_NAMES[1:]},
}


# central x ckks and distributed without ckks are privacy's own refusals (test_plan.py)
PAIRS = [(s, p, e) for s in STRATEGY_NAMES for p in PRIVACY_NAMES for e in (False, True)
         if not (p == "central" and e) and not (p == "distributed" and not e)]


@pytest.mark.parametrize("strategy, privacy, encrypted", PAIRS)
def test_every_strategy_privacy_encryption_pair_runs_or_is_refused_in_one_line(
        strategy, privacy, encrypted):
    from fedray.config import ConfigError, config_from_dict
    values = {"strategy": {"name": strategy},
              "privacy": {"name": privacy, "epsilon": 4.0} if privacy != "none" else {},
              "encryption": {"name": "ckks"} if encrypted else {}}
    if strategy == "fedbn":
        values["model"] = {"name": "mlp", "batchnorm": True}
    key = REFUSED.get((strategy, privacy))
    if strategy in ("local", "pooled") and encrypted:
        key = "strategy.name"
    if strategy == "fedbn" and privacy == "dpsgd":
        key = "model.batchnorm"  # FedBN needs BatchNorm; DP-SGD cannot clip through it
    if key is None:
        assert config_from_dict(values).strategy.name == strategy
    else:
        with pytest.raises(ConfigError) as info:
            config_from_dict(values)
        assert info.value.key == key and "\n" not in str(info.value)

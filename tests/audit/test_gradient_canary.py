"""Dirac gradient canaries (fedray/audit/gradient_canary.py) in real Opacus DP-SGD
(fedray/privacy/dpsgd.py), without Ray: the step moves a joining canary's coordinate by
exactly −lr·C/B, out-canaries never join, a run without canaries is the run it was, and
the scores separate in from out when the noise is moderate and not when it is huge."""

import math
import warnings

import numpy as np
import pytest
import torch
from opacus.accountants import RDPAccountant
from torch import nn

from fedray.audit.gradient_canary import (
    MAGNITUDE_OVER_CLIP,
    GradientCanaries,
    GradientCanaryScores,
    append_dirac_gradients,
    canaries_joining,
    canary_count,
    make_gradient_canaries,
    plant_gradient_canaries,
    score_rounds,
)
from fedray.models import flatten, loss_fn, num_trainable
from fedray.privacy.dpsgd import DPSGDTrainer, poisson_batches
from fedray.strategies import ClientRound, FedAvg

CLIP, LR = 1.0, 0.1
# Opacus clips a row of norm M to C·M/(M + 1e-6) (its guard against a zero norm)
CLIPPED = CLIP * MAGNITUDE_OVER_CLIP * CLIP / (MAGNITUDE_OVER_CLIP * CLIP + 1e-6)


def _small_model(seed: int = 0, features: int = 4, hidden: int = 8) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, 2))


def _records(n: int, features: int = 4, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, features, generator=g), torch.randint(0, 2, (n,), generator=g)


def _generators(seeds: tuple[int, int, int]) -> dict[str, torch.Generator]:
    sampling, noise, canary = (torch.Generator().manual_seed(s) for s in seeds)
    return {"sampling_generator": sampling, "noise_generator": noise,
            "canary_generator": canary}


def _train(trainer: DPSGDTrainer, x, y, *, sigma: float, q: float, steps: int,
           seeds: tuple[int, int, int] = (10, 11, 12), canaries=None, generators=None,
           accountant=None) -> float:
    gens = generators or _generators(seeds)
    if canaries is None:
        gens = {k: v for k, v in gens.items() if k != "canary_generator"}
    accountant = RDPAccountant() if accountant is None else accountant  # empty ones are falsy
    return trainer.train(x, y, noise_multiplier=sigma, sample_rate=q, steps=steps,
                         accountant=accountant, strategy=FedAvg(),
                         round_=ClientRound([], {}, {}), gradient_canaries=canaries, **gens)


def _reference_train(trainer: DPSGDTrainer, x, y, *, noise_multiplier, sample_rate, steps,
                     sampling_generator, noise_generator, accountant, strategy, round_):
    """DPSGDTrainer.train as it was before the gradient canaries (a verbatim copy)."""
    from opacus.optimizers import DPOptimizer

    trainer.model.train()
    params = list(trainer.model.parameters())
    optimizer = DPOptimizer(
        torch.optim.SGD(params, lr=trainer.lr),
        noise_multiplier=noise_multiplier, max_grad_norm=trainer.clip,
        expected_batch_size=max(1, round(sample_rate * len(y))),
        generator=noise_generator, secure_mode=False,
    )
    optimizer.attach_step_hook(accountant.get_optimizer_hook_fn(sample_rate=sample_rate))
    losses = []
    for batch in poisson_batches(len(y), sample_rate=sample_rate, steps=steps,
                                 generator=sampling_generator):
        batch = batch.to(x.device)
        optimizer.zero_grad(set_to_none=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loss = loss_fn(trainer.model(x[batch]), y[batch])
            loss.backward()
            if not optimizer.pre_step():
                continue
        extra = strategy.gradient_terms(params, round_)
        if extra is not None:
            for p, term in zip(params, extra):
                p.grad = p.grad + term
        optimizer.original_optimizer.step()
        if len(batch):
            losses.append(float(loss.detach()))
    return sum(losses) / max(len(losses), 1)


def _canary_seed(canaries: GradientCanaries, q: float, wanted: list[int]) -> int:
    """A canary-stream seed under which exactly ``wanted`` join the first step."""
    for seed in range(10_000):
        joining = canaries_joining(canaries, sample_rate=q,
                                   generator=torch.Generator().manual_seed(seed))
        if joining.tolist() == wanted:
            return seed
    raise AssertionError("no such seed")


def _one_step(q: float, n: int, canaries, seeds) -> tuple[np.ndarray, np.ndarray, list]:
    """Start and end of one noiseless step, and the accountant's history."""
    model = _small_model()
    x, y = _records(n)
    before = flatten(model).astype(np.float64)
    accountant = RDPAccountant()
    _train(DPSGDTrainer(model, clip=CLIP, batch_size=4, lr=LR), x, y, sigma=0.0, q=q,
           steps=1, seeds=seeds, canaries=canaries, accountant=accountant)
    return before, flatten(model).astype(np.float64), accountant.history


THREE = GradientCanaries(coordinates=np.array([3, 17, 40]),
                         included=np.array([True, False, True]),
                         magnitude=MAGNITUDE_OVER_CLIP * CLIP)


def test_a_joining_canary_moves_its_coordinate_by_exactly_lr_c_over_the_batch():
    q, n = 0.5, 8
    batch_size = round(q * n)
    seeds = (10, 11, _canary_seed(THREE, q, [0]))
    _, without, _ = _one_step(q, n, None, seeds)
    _, with_, _ = _one_step(q, n, THREE, seeds)
    change = with_ - without
    assert change[3] == pytest.approx(-LR * CLIPPED / batch_size, abs=1e-6)
    assert np.abs(np.delete(change, 3)).max() < 1e-6  # the other canaries and the records


def test_an_empty_data_batch_still_steps_with_its_canary():
    q, n = 0.05, 8  # expected batch max(1, round(0.4)) = 1
    sampling = next(s for s in range(1000) if len(next(iter(poisson_batches(
        n, sample_rate=q, steps=1, generator=torch.Generator().manual_seed(s))))) == 0)
    seeds = (sampling, 11, _canary_seed(THREE, q, [2]))
    before, without, history_without = _one_step(q, n, None, seeds)
    _, with_, history_with = _one_step(q, n, THREE, seeds)
    assert np.array_equal(before, without)  # σ = 0, no record: the step moves nothing
    change = with_ - before
    assert change[40] == pytest.approx(-LR * CLIPPED / 1, abs=1e-6)
    assert np.abs(np.delete(change, 40)).max() == 0.0
    assert history_with == history_without == [(0.0, q, 1)]  # one step, accounted


def test_a_per_sample_gradient_left_unset_gets_the_canary_rows_alone():
    """Opacus versions that leave ``grad_sample`` None after an empty batch."""
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    model = GradSampleModule(_small_model())
    optimizer = DPOptimizer(torch.optim.SGD(model.parameters(), lr=LR), noise_multiplier=0.0,
                            max_grad_norm=CLIP, expected_batch_size=2)
    optimizer.zero_grad(set_to_none=True)
    assert all(p.grad_sample is None for p in model.parameters())
    append_dirac_gradients(model, THREE, np.array([0, 2]))
    assert optimizer.pre_step()
    grad = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).numpy()
    expected = np.zeros_like(grad)
    expected[[3, 40]] = CLIPPED / 2
    np.testing.assert_allclose(grad, expected, atol=1e-7)


def test_accumulated_per_sample_gradients_keep_their_batch_count():
    from opacus import GradSampleModule

    model = GradSampleModule(_small_model())
    for p in model.parameters():
        p.grad_sample = [torch.zeros(2, *p.shape), torch.zeros(3, *p.shape)]
    append_dirac_gradients(model, THREE, np.array([0]))
    for p in model.parameters():
        assert [len(g) for g in p.grad_sample] == [2, 4]


def test_out_canaries_never_join_and_in_canaries_join_at_the_sample_rate():
    canaries = make_gradient_canaries(count=50, num_parameters=58, seed=5, clip=CLIP)
    generator = torch.Generator().manual_seed(0)
    counts = np.zeros(50)
    for _ in range(400):
        counts[canaries_joining(canaries, sample_rate=0.3, generator=generator)] += 1
    assert counts[~canaries.included].sum() == 0
    rate = counts[canaries.included].mean() / 400
    assert rate == pytest.approx(0.3, abs=0.03)


def test_without_canaries_the_run_is_the_run_it_was():
    x, y = _records(16)
    results = []
    for train in ("reference", "none", "all out"):
        model = _small_model()
        trainer = DPSGDTrainer(model, clip=CLIP, batch_size=4, lr=LR)
        accountant = RDPAccountant()
        if train == "reference":
            gens = _generators((10, 11, 12))
            loss = _reference_train(trainer, x, y, noise_multiplier=1.3, sample_rate=0.25,
                                    steps=20, sampling_generator=gens["sampling_generator"],
                                    noise_generator=gens["noise_generator"],
                                    accountant=accountant, strategy=FedAvg(),
                                    round_=ClientRound([], {}, {}))
        else:
            out = GradientCanaries(coordinates=THREE.coordinates,
                                   included=np.zeros(3, dtype=bool), magnitude=THREE.magnitude)
            loss = _train(trainer, x, y, sigma=1.3, q=0.25, steps=20, accountant=accountant,
                          canaries=None if train == "none" else out)
        results.append((flatten(model), loss, accountant.history))
    reference = results[0]
    for vector, loss, history in results[1:]:
        assert np.array_equal(vector, reference[0])  # bit for bit
        assert loss == reference[1] and history == reference[2]


def test_canaries_need_their_own_stream():
    model = _small_model()
    x, y = _records(8)
    with pytest.raises(ValueError, match="canary_generator"):
        DPSGDTrainer(model, clip=CLIP, batch_size=4, lr=LR).train(
            x, y, noise_multiplier=1.0, sample_rate=0.5, steps=1,
            sampling_generator=torch.Generator(), noise_generator=torch.Generator(),
            accountant=RDPAccountant(), strategy=FedAvg(), round_=ClientRound([], {}, {}),
            gradient_canaries=THREE)


def _audit(sigma: float, *, rounds: int = 10, steps: int = 10, n: int = 16, q: float = 0.25
           ) -> tuple[np.ndarray, GradientCanaries]:
    """200 canaries in a 306-parameter model, scored from the model after every round."""
    model = _small_model(features=16, hidden=16)
    x, y = _records(n, features=16)
    canaries = make_gradient_canaries(count=200, num_parameters=num_trainable(model), seed=3,
                                      clip=CLIP)
    trainer = DPSGDTrainer(model, clip=CLIP, batch_size=round(q * n), lr=LR)
    generators = _generators((10, 11, 12))
    models = [flatten(model)]
    for _ in range(rounds):
        _train(trainer, x, y, sigma=sigma, q=q, steps=steps, canaries=canaries,
               generators=generators)
        models.append(flatten(model))
    return score_rounds([canaries] * rounds, models), canaries


def _t_statistic(scores: np.ndarray, included: np.ndarray) -> tuple[float, float]:
    inside, outside = scores[included], scores[~included]
    error = math.sqrt(inside.var(ddof=1) / len(inside) + outside.var(ddof=1) / len(outside))
    gap = float(inside.mean() - outside.mean())
    return gap, error


def test_scores_separate_in_from_out_under_moderate_noise():
    scores, canaries = _audit(sigma=1.0)
    gap, error = _t_statistic(scores, canaries.included)
    assert gap > 5 * error
    # the gap is what the mechanism puts there: steps·q·lr·C/B
    assert gap == pytest.approx(100 * 0.25 * LR * CLIPPED / 4, abs=4 * error)


def test_scores_do_not_separate_under_huge_noise():
    scores, canaries = _audit(sigma=200.0)
    gap, error = _t_statistic(scores, canaries.included)
    assert abs(gap) < 3 * error


def test_scores_are_movement_against_the_gradient():
    canaries = GradientCanaries(coordinates=np.array([0, 2]), included=np.array([True, False]),
                                magnitude=10.0)
    models = [np.array([1.0, 0.0, 1.0]), np.array([0.5, 9.0, 1.5]),
              np.array([0.25, 0.0, 1.0])]
    np.testing.assert_allclose(score_rounds([canaries] * 2, models), [0.75, 0.0])
    moved = GradientCanaries(coordinates=np.array([1, 0]), included=canaries.included,
                             magnitude=10.0)  # round 2's coordinates, drawn afresh
    np.testing.assert_allclose(score_rounds([canaries, moved], models), [0.5 + 9.0, -0.5 + 0.25])
    with pytest.raises(ValueError, match="2 rounds need 3 global models"):
        score_rounds([canaries] * 2, models[:2])


def test_canaries_are_deterministic_distinct_and_about_half_in():
    a = make_gradient_canaries(count=200, num_parameters=306, seed=7, clip=0.5)
    b = make_gradient_canaries(count=200, num_parameters=306, seed=7, clip=0.5)
    assert np.array_equal(a.coordinates, b.coordinates)
    assert np.array_equal(a.included, b.included)
    assert len(set(a.coordinates.tolist())) == 200 and a.coordinates.max() < 306
    assert 70 < a.included.sum() < 130 and a.magnitude == 5.0
    other = make_gradient_canaries(count=200, num_parameters=306, seed=8, clip=0.5)
    assert not np.array_equal(a.coordinates, other.coordinates)


def test_more_canaries_than_parameters_is_refused():
    with pytest.raises(ValueError, match=r"count=59.*num_parameters=58"):
        make_gradient_canaries(count=59, num_parameters=58, seed=0, clip=CLIP)


def test_a_coordinate_beyond_the_model_is_refused():
    from opacus import GradSampleModule

    far = GradientCanaries(coordinates=np.array([58]), included=np.array([True]),
                           magnitude=10.0)
    with pytest.raises(ValueError, match="58"):
        append_dirac_gradients(GradSampleModule(_small_model()), far, np.array([0]))


def test_planted_canaries_move_every_round_and_keep_their_coins():
    planted = plant_gradient_canaries(hospital=2, count=40, num_parameters=58, seed=4, clip=0.5)
    first, again, second = planted.of_round(1), planted.of_round(1), planted.of_round(2)
    assert np.array_equal(first.coordinates, again.coordinates)  # a resumed run's draw
    assert not np.array_equal(first.coordinates, second.coordinates)
    assert len(set(second.coordinates.tolist())) == 40 and second.coordinates.max() < 58
    assert np.array_equal(first.included, second.included) and first.magnitude == 5.0
    joins = [canaries_joining(first, sample_rate=0.5, generator=planted.generator(r))
             for r in (1, 1, 2)]
    assert np.array_equal(joins[0], joins[1]) and not np.array_equal(joins[0], joins[2])


def test_the_default_count_fills_the_model_up_to_a_thousand_in_fours():
    assert canary_count(None, 514) == 512 and canary_count(None, 5000) == 1000
    assert canary_count(None, 14) == 12 and canary_count(200, 5000) == 200


def test_the_aggregators_scores_read_the_targets_clear_upload_and_each_release():
    from fedray.messages import Update

    planted = plant_gradient_canaries(hospital=1, count=8, num_parameters=20, seed=0, clip=1.0)
    scores = GradientCanaryScores(planted)
    change = np.arange(20, dtype=np.float64)
    coordinates = planted.of_round(3).coordinates
    scores.observe_uploads(3, [Update(hospital=0, payload=np.ones(20), round_=3),
                               Update(hospital=1, payload=change, round_=3),
                               Update(hospital=1, payload=b"ciphertext", round_=3)])
    scores.observe_release(3, 2 * change)
    seen = scores.scores()
    np.testing.assert_array_equal(seen["uploads"], -coordinates)
    np.testing.assert_array_equal(seen["released"], -2 * coordinates)
    assert seen["uploads_seen"] == 1 and seen["rounds"] == 1
    resumed = GradientCanaryScores(planted)
    resumed.load_state_dict(scores.state_dict())
    assert resumed.scores()["rounds"] == 1
    np.testing.assert_array_equal(resumed.scores()["uploads"], seen["uploads"])
    blind = GradientCanaryScores(planted)
    blind.observe_uploads(3, [Update(hospital=1, payload=b"ciphertext", round_=3)])
    assert blind.scores()["uploads"] is None  # nothing read in the clear

import pytest

from fedray.config import (
    ConfigError,
    EncryptionConfig,
    ModelConfig,
    PrivacyConfig,
    SimulationConfig,
    config_from_dict,
)
from fedray.models import build_model
from fedray.privacy import (
    RUN,
    Adjacency,
    calibrate_noise_multiplier,
    epsilon_spent,
    make_privacy_plan,
)

SIZES = [199, 172, 30, 85]  # heart-disease train sizes


def _plan(privacy, model=ModelConfig(name="logreg"), **top):
    config = SimulationConfig(privacy=privacy, model=model, num_rounds=15, **top)
    return make_privacy_plan(
        config, train_sizes=SIZES, model=build_model(model, num_features=13, num_classes=2)
    )


@pytest.mark.parametrize("epsilon", [1.0, 4.0, 8.0])
def test_local_dp_calibrates_one_sigma_for_every_hospital(epsilon):
    plan = _plan(PrivacyConfig(name="local", epsilon=epsilon))
    sigmas = {p.noise_multiplier for p in plan.parties.values()}
    assert len(sigmas) == 1 and set(plan.parties) == {0, 1, 2, 3}
    sigma = sigmas.pop()
    # q = 1 (no amplification: the aggregator sees who took part), one step a round
    assert all(p.sample_rate == 1.0 and p.steps_per_round == 1 for p in plan.parties.values())
    # replace-one: a hospital's clipped update moves by up to 2C, so Opacus's
    # add/remove accountant is asked about σ/2, and σ is twice add/remove's
    assert plan.adjacency is Adjacency.REPLACE_ONE
    assert epsilon - 0.05 < epsilon_spent(((sigma / 2, 1.0, 15),), delta=1e-5,
                                          accountant="rdp") <= epsilon
    add_remove_sigma = calibrate_noise_multiplier(epsilon=epsilon, delta=1e-5, sample_rate=1.0,
                                                  steps=15, accountant="rdp")
    assert sigma == pytest.approx(2 * add_remove_sigma)
    assert plan.ledger(0).adjacency is Adjacency.REPLACE_ONE


def test_smaller_epsilon_means_more_noise():
    sigmas = [_plan(PrivacyConfig(name="local", epsilon=e)).party(0).noise_multiplier
              for e in (1.0, 4.0, 8.0)]
    assert sigmas[0] > sigmas[1] > sigmas[2]


def test_central_dp_is_one_run_level_party_with_the_sampling_rate():
    plan = _plan(PrivacyConfig(name="central", epsilon=2.0), fraction_per_round=0.5)
    assert set(plan.parties) == {RUN}
    assert plan.party(RUN).sample_rate == 0.5
    assert plan.uniform_weight == pytest.approx(1 / (0.5 * 4))


def test_dpsgd_accounts_each_hospital_over_all_its_steps():
    plan = _plan(PrivacyConfig(name="dpsgd", epsilon=4.0), batch_size=10, local_steps=5)
    switzerland = plan.party(2)
    assert switzerland.sample_rate == pytest.approx(10 / 30)
    assert switzerland.steps_per_round == 5
    spent = epsilon_spent(((switzerland.noise_multiplier, 10 / 30, 75),), delta=1e-5,
                          accountant="rdp")
    assert spent <= 4.0
    # smaller hospitals sample a larger share per batch, so they need more noise
    assert switzerland.noise_multiplier > plan.party(0).noise_multiplier


def test_given_noise_multiplier_is_used_as_is():
    plan = _plan(PrivacyConfig(name="local", noise_multiplier=1.3))
    assert plan.party(0).noise_multiplier == 1.3 and plan.budget is None


@pytest.mark.parametrize(
    "values, key",
    [
        ({"name": "local", "epsilon": 0}, "privacy.epsilon"),
        ({"name": "local", "epsilon": -1}, "privacy.epsilon"),
        ({"name": "local", "epsilon": 1, "delta": 0}, "privacy.delta"),
        ({"name": "local", "epsilon": 1, "delta": 1.5}, "privacy.delta"),
        ({"name": "central", "epsilon": 1, "clip": 0}, "privacy.clip"),
        ({"name": "dpsgd"}, "privacy.epsilon"),
        ({"name": "gaussian", "epsilon": 1}, "privacy.name"),
        ({"name": "local", "epsilon": 1, "accountant": "gdp"}, "privacy.accountant"),
    ],
)
def test_bad_privacy_values_are_one_line_errors(values, key):
    with pytest.raises(ConfigError) as info:
        config_from_dict({"privacy": values})
    assert info.value.key == key and "\n" not in str(info.value)


def test_dpsgd_delta_must_be_below_one_over_the_smallest_hospital():
    with pytest.raises(ConfigError, match=r"privacy.delta=0.05: must be < 1/\(records of the "
                                          r"smallest hospital\) = 1/30"):
        _plan(PrivacyConfig(name="dpsgd", epsilon=1.0, delta=0.05))


def test_dpsgd_refuses_batchnorm_before_planning():
    # Opacus's validator still checks the built model in the planner; the config refuses
    # the one incompatible layer fedray's models have before any import of torch.
    with pytest.raises(ConfigError, match="BatchNorm mixes the records of a batch") as info:
        _plan(PrivacyConfig(name="dpsgd", epsilon=1.0),
              model=ModelConfig(name="mlp", batchnorm=True))
    assert info.value.key == "model.batchnorm"


def test_distributed_dp_needs_encryption():
    with pytest.raises(ConfigError, match="needs encryption=ckks") as info:
        config_from_dict({"privacy": {"name": "distributed", "epsilon": 1.0}})
    assert info.value.key == "privacy.name"


def test_central_dp_under_encryption_is_refused():
    with pytest.raises(ConfigError, match="cannot run with encryption=ckks"):
        config_from_dict({"privacy": {"name": "central", "epsilon": 1.0},
                          "encryption": {"name": "ckks"}})


def test_distributed_noise_shares_sum_to_the_central_noise():
    plan = _plan(PrivacyConfig(name="distributed", epsilon=2.0),
                 encryption=EncryptionConfig(name="ckks"), min_clients=3)
    central = _plan(PrivacyConfig(name="central", epsilon=2.0))
    sigma = plan.party(RUN).noise_multiplier
    # zero-out costs what add/remove does; the integers' Skellam noise about as much
    # (Opacus's calibration of central's σ stops ~0.3% above its least σ)
    assert sigma == pytest.approx(central.party(RUN).noise_multiplier, rel=0.01)
    assert plan.adjacency is Adjacency.ZERO_OUT and central.adjacency is Adjacency.ADD_REMOVE
    skellam = plan.skellam
    assert plan.client_noise_std(0) == 0.0  # no Gaussian: the shares are integers
    share = plan.client_privacy(0).discretize.share_variance
    assert 3 * share == pytest.approx(skellam.variance)  # any 3 shares: the full noise
    # the noise, back in the update's units, is σ times the weighted clip
    weighted_clip = plan.uniform_weight * plan.clip
    assert skellam.variance ** 0.5 / skellam.scale == pytest.approx(sigma * weighted_clip)
    assert plan.min_shares == 3


@pytest.mark.parametrize("colluders", [1, 2])
def test_colluders_leave_the_rest_of_a_sum_fully_noised(colluders):
    plan = _plan(PrivacyConfig(name="distributed", epsilon=2.0, colluders=colluders),
                 encryption=EncryptionConfig(name="ckks"), min_clients=4)
    share = plan.client_privacy(0).discretize.share_variance
    # the colluders subtract their own shares; the other m - t still carry the variance
    assert (4 - colluders) * share == pytest.approx(plan.skellam.variance)


@pytest.mark.parametrize("values, key, message", [
    ({"privacy": {"name": "distributed", "epsilon": 1.0, "colluders": 3},
      "encryption": {"name": "ckks"}, "min_clients": 3}, "privacy.colluders", "< min_clients=3"),
    ({"privacy": {"name": "local", "epsilon": 1.0, "colluders": 1}}, "privacy.colluders",
     "only privacy=distributed"),
    ({"privacy": {"name": "distributed", "epsilon": 1.0, "colluders": -1},
      "encryption": {"name": "ckks"}}, "privacy.colluders", "integer >= 0"),
    ({"privacy": {"name": "central", "epsilon": 1.0}, "min_clients": 2}, "min_clients",
     "would reveal the hidden sample"),
])
def test_collusion_and_release_rules_are_refused_in_one_line(values, key, message):
    with pytest.raises(ConfigError, match=message) as info:
        config_from_dict(values)
    assert info.value.key == key and "\n" not in str(info.value)


@pytest.mark.parametrize("mode", ["local", "central"])
def test_client_level_delta_must_be_below_one_over_the_hospitals(mode):
    with pytest.raises(ConfigError, match=r"must be < 1/\(number of hospitals\) = 1/4") as info:
        _plan(PrivacyConfig(name=mode, epsilon=1.0, delta=0.3))
    assert info.value.key == "privacy.delta"

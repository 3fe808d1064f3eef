"""A hospital's two outputs, read as the aggregator would read them: the update holds
the mechanism's output and nothing else; the noise and coins come from where the
config says (a seeded stream, or the OS)."""

import pickle

import numpy as np
import pytest
import torch

from fedray.config import ModelConfig, PrivacyConfig, SimulationConfig
from fedray.crypto import PackedCKKSCodec
from fedray.crypto.ckks import PRESETS, new_key_set
from fedray.crypto.packing import Layout
from fedray.data.base import HospitalData
from fedray.hospital import Hospital, RoundSetup
from fedray.local_trainers import DPSGDTraining
from fedray.models import build_model, flatten, initial_parameters
from fedray.pipeline import ClientPipeline, RoundBroadcast, upload_layout
from fedray.privacy import RUN, PartyPlan, PrivacyLedger, PrivacyPlan, make_randomness
from fedray.privacy.dpsgd import DPSGDTrainer
from fedray.privacy.steps import ClientPrivacy, ClipToNorm, GaussianNoise, HospitalLedger, OwnCoin
from fedray.runtime.aggregator_worker import AggregatorWorker
from fedray.strategies import ClientRound, FedAvg
from fedray.strategies.base import OWN_VALUES
from fedray.training import LocalTraining, train_local

FEATURES = 5
SETTINGS = LocalTraining(steps=3, batch_size=8, lr=0.1)


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(40, FEATURES)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    return HospitalData("clinic", x[:30], y[:30], x[30:], y[30:])


def _model():
    return build_model(ModelConfig(), num_features=FEATURES, num_classes=2)


def _global():
    return initial_parameters(ModelConfig(), num_features=FEATURES, num_classes=2, seed=0)


def _steps(noise_std):
    return (ClipToNorm(1.0),) + ((GaussianNoise(noise_std),) if noise_std > 0 else ())


def _hospital(*, noise_std=0.5, codec=None, self_sample_rate=None, **kwargs):
    steps = _steps(noise_std)
    privacy = ClientPrivacy(steps=steps, **(
        {} if self_sample_rate is None else {"participation": OwnCoin(self_sample_rate)}))
    pipeline = ClientPipeline(steps=steps, **({} if codec is None else {"codec": codec}))
    return Hospital(index=3, data=_data(), seed=7, pipeline=pipeline, privacy=privacy,
                    **kwargs)


def _setup(model=None, dpsgd=None, strategy=None):
    model = model or _model()
    strategy = strategy or FedAvg()
    trainer = {} if dpsgd is None else {"trainer": DPSGDTraining(dpsgd)}
    return RoundSetup(model=model, strategy=strategy, settings=SETTINGS,
                      layout=upload_layout(strategy, model, 4),
                      local_positions=strategy.local_positions(model), **trainer)


def _train(hospital, model=None, dpsgd=None):
    return hospital.train(_setup(model, dpsgd), RoundBroadcast(_global()), weight=0.25)


def _plaintext_scalars(obj, seen=None):
    """Every number or string an observer can read from ``obj`` without a key."""
    seen = set() if seen is None else seen
    if isinstance(obj, (bool, int, float, str)):
        return [obj]
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    if isinstance(obj, (bytes, np.ndarray)):
        return []  # ciphertext bytes, or the plaintext codec's payload (checked apart)
    if isinstance(obj, (tuple, list)):
        return [v for item in obj for v in _plaintext_scalars(item, seen)]
    if isinstance(obj, dict):
        return [v for item in obj.values() for v in _plaintext_scalars(item, seen)]
    return _plaintext_scalars(vars(obj), seen)


def test_the_update_carries_no_diagnostics_only_the_sender_and_payload():
    update, report = _train(_hospital())
    assert report.train_loss is not None and report.seconds["train"] > 0
    wire = pickle.dumps(update)  # what the aggregator receives
    assert pickle.dumps(report.train_loss)[-9:-1] not in wire  # the loss's 8 float bytes
    # the sender, and the round it was made for (public; a replay is refused by it)
    assert sorted(map(str, _plaintext_scalars(pickle.loads(wire)))) == ["0", "3"]


def test_packed_ciphertexts_carry_no_clipped_count():
    keys = new_key_set(PRESETS["n4096"])
    layout = Layout(bits=15, value_range=0.01, max_summands=4)  # tiny: most values clip
    codec = PackedCKKSCodec(keys.secret_context, keys.fingerprint, layout=layout)
    update, report = _train(_hospital(codec=codec))
    assert report.values_clipped > 0  # the hospital knows, in its report to the driver
    scalars = _plaintext_scalars(pickle.loads(pickle.dumps(update)))
    size = _global().size  # 6 values packed two to a slot: 3 slots
    # hospital, round; packed: values, summands; ciphertexts: fingerprint, slots
    assert sorted(map(str, scalars)) == sorted(
        ["3", "0", str(size), "1", keys.fingerprint, str(-(-size // 2))])


def test_seeded_noise_repeats_and_secure_noise_does_not():
    seeded = [_train(_hospital())[0].payload for _ in range(2)]
    assert np.array_equal(*seeded)  # same seed: the noise can be regenerated
    secure = [_train(_hospital(secure_rng=True))[0].payload for _ in range(2)]
    assert not np.allclose(*secure)
    assert not np.allclose(secure[0], seeded[0])


def test_a_self_sampling_hospital_sends_a_noise_share_either_way():
    out, report = _train(_hospital(self_sample_rate=0.0))
    assert not report.sampled and report.train_loss is None  # it did not train
    assert np.count_nonzero(out.payload) == out.payload.size  # zero update + its share
    assert np.std(out.payload) == pytest.approx(0.25 * 0.5, rel=0.5)
    _inside, report = _train(_hospital(self_sample_rate=1.0))
    assert report.sampled and report.train_loss is not None


def _dpsgd_hospital(secure):
    ledger = PrivacyLedger(noise_multiplier=1.0, sample_rate=0.25, delta=1e-5,
                           accountant="rdp")
    privacy = ClientPrivacy(ledger=HospitalLedger(ledger, steps_per_round=3))
    return Hospital(index=0, data=_data(), seed=7, pipeline=ClientPipeline(),
                    privacy=privacy, secure_rng=secure)


@pytest.mark.parametrize("secure", [False, True])
def test_dpsgd_noise_is_seeded_or_from_the_os(secure):
    payloads = []
    for _ in range(2):
        model = _model()
        trainer = DPSGDTrainer(model, clip=1.0, batch_size=8, lr=0.1)
        update, report = _train(_dpsgd_hospital(secure), model=model, dpsgd=trainer)
        assert report.epsilon > 0
        payloads.append(update.payload)
    assert np.array_equal(*payloads) != secure


@pytest.mark.parametrize("secure", [False, True])
def test_central_server_noise_is_seeded_or_from_the_os(secure):
    plan = PrivacyPlan(mode="central", clip=1.0, delta=1e-5, accountant="rdp", budget=None,
                       parties={RUN: PartyPlan(1.0, 0.5, 1)}, uniform_weight=0.5,
                       secure_rng=secure)
    config = SimulationConfig(privacy=PrivacyConfig(name="central", noise_multiplier=1.0))
    noises = [_aggregator(config, plan, 4).privacy.noise(np.zeros(6))
              for _ in range(2)]
    assert np.array_equal(*noises) != secure
    assert np.count_nonzero(noises[0]) == 6


def _coins(secure):
    hospital = _hospital(self_sample_rate=0.5, secure_rng=secure)
    return [_train(hospital)[1].sampled for _ in range(30)]


def test_the_self_sampling_coin_is_seeded_or_from_the_os():
    assert _coins(False) == _coins(False)  # reproducible: the seed regenerates it
    assert 0 < sum(_coins(False)) < 30
    assert _coins(True) != _coins(True)  # equal by chance with probability 2^-30


def test_an_unsampled_hospital_does_the_same_work_and_keeps_its_state():
    sampled = _hospital(self_sample_rate=1.0)
    skipped = _hospital(self_sample_rate=0.0)
    _, report_in = _train(sampled)
    _, report_out = _train(skipped)
    assert report_in.sampled and not report_out.sampled
    # It runs the same SGD steps, so its answer's timing does not reveal its coin: its
    # data-order stream moved exactly as a sampled hospital's. (Compared by the work
    # done, not by wall time, which a loaded machine makes flaky.)
    assert torch.equal(skipped.data_order.get_state(), sampled.data_order.get_state())
    fresh = _hospital(self_sample_rate=0.0)
    assert not torch.equal(fresh.data_order.get_state(), skipped.data_order.get_state())


def test_noise_std_is_what_the_plan_says():
    size = 200_000
    pipeline = ClientPipeline(steps=_steps(2.5))
    payload, _, _ = pipeline(np.zeros(size), weight=0.4, randomness=make_randomness(
        secure=False, seed=np.random.SeedSequence(1)))
    assert np.std(payload) == pytest.approx(0.4 * 2.5, rel=0.01)
    secure, _, _ = pipeline(np.zeros(size), weight=0.4,
                            randomness=make_randomness(secure=True, seed=None))
    assert np.std(secure) == pytest.approx(0.4 * 2.5, rel=0.01)  # 4 draws, halved: same std


def test_central_server_noise_std_is_sigma_c_over_qn():
    plan = PrivacyPlan(mode="central", clip=2.0, delta=1e-5, accountant="rdp", budget=None,
                       parties={RUN: PartyPlan(1.5, 0.5, 1)}, uniform_weight=1 / (0.5 * 4))
    config = SimulationConfig(privacy=PrivacyConfig(name="central", noise_multiplier=1.5))
    noise = _aggregator(config, plan, 4).privacy.noise(np.zeros(200_000))
    assert np.std(noise) == pytest.approx(1.5 * 2.0 / (0.5 * 4), rel=0.01)


def test_fedbn_keeps_batchnorm_home_uploads_none_of_it_and_tests_with_it():
    from fedray.strategies import FedBN

    config = ModelConfig(name="mlp", hidden=4, batchnorm=True)
    model = build_model(config, num_features=FEATURES, num_classes=2)
    strategy = FedBN()
    setup = RoundSetup(model=model, strategy=strategy, settings=SETTINGS,
                       layout=upload_layout(strategy, model, 4),
                       local_positions=strategy.local_positions(model))
    mask = setup.local_positions
    start = initial_parameters(config, num_features=FEATURES, num_classes=2, seed=0)
    hospital = _hospital(noise_std=0.0)
    hospital.strategy_state[OWN_VALUES] = start[mask].copy()  # as its worker seeds it
    update, _ = hospital.train(setup, RoundBroadcast(start), weight=1.0)
    assert np.all(update.payload[mask] == 0) and np.any(update.payload[~mask] != 0)
    kept = hospital.own_model
    assert not np.allclose(kept, start[mask])  # its BatchNorm trained (and its statistics)
    # evaluating a global model whose BatchNorm positions hold garbage: the hospital's own
    # BatchNorm is used, so the result is the same as with the trained values in place
    garbage = start.copy()
    garbage[mask] = 99.0
    clean = start.copy()
    clean[mask] = kept
    own, reference = hospital.evaluate(model, garbage, mask), hospital.evaluate(model, clean)
    assert (own.correct, own.loss_sum) == (reference.correct, reference.loss_sum)


def test_dpsgd_averages_over_the_hospital_when_its_sample_rate_is_capped_at_one():
    # 5 records, batch 16: q = 1, so the mean gradient divides by 5, not 16. With a huge
    # clip and negligible noise a DP-SGD step is then a plain full-batch SGD step.
    data = _data()
    x, y = torch.as_tensor(data.x_train[:5]), torch.as_tensor(data.y_train[:5])
    plain, private = _model(), _model()
    private.load_state_dict(plain.state_dict())
    train_local(plain, x, y, settings=LocalTraining(steps=1, batch_size=16, lr=0.5),
                generator=torch.Generator().manual_seed(0), strategy=FedAvg())
    from opacus.accountants import RDPAccountant

    DPSGDTrainer(private, clip=1e6, batch_size=16, lr=0.5).train(
        x, y, noise_multiplier=1e-12, sample_rate=1.0, steps=1,
        sampling_generator=torch.Generator().manual_seed(0),
        noise_generator=torch.Generator().manual_seed(1), accountant=RDPAccountant(),
        strategy=FedAvg(), round_=ClientRound([], {}, {}))
    assert np.allclose(flatten(plain), flatten(private), atol=1e-6)


def _aggregator(config, plan, num_hospitals):
    worker = AggregatorWorker()
    worker.configure(config, plan, num_hospitals, num_features=FEATURES)
    return worker

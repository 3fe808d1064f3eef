"""Cross-round differencing (docs/encryption.md, "What secure aggregation does not
hide"): a hospital that drops out of one round (or a broadcast nudged by one ulp, so
that two rounds pass the decryptor's "never the same model twice" check) makes the
difference of two released sums approximately its update. Secure aggregation cannot
stop this; distributed DP is what protects it: the same attack then recovers noise at
the accountant's σ."""

import dataclasses

import numpy as np
import pytest

from fedray.config import EncryptionConfig, ModelConfig, PrivacyConfig, SimulationConfig
from fedray.crypto import CKKSCodec
from fedray.crypto.ckks import PRESETS, new_key_set
from fedray.crypto.lanes import IntegerLanes, IntegerLanesCodec
from fedray.crypto.release import VerifiedDecryption, hospital_key, model_digest, register_update
from fedray.models import build_model
from fedray.pipeline import ClientPipeline, Update
from fedray.privacy import make_privacy_plan, make_randomness
from fedray.privacy.skellam import plan_skellam
from fedray.privacy.steps import SkellamRestore

SIZE, HOSPITALS, MASTER = 2000, 3, b"m" * 32


def _full_batch_update(model: np.ndarray, hospital: int) -> np.ndarray:
    """One full-batch gradient step of least squares on the hospital's fixed data:
    deterministic, so a model one ulp away gives (almost) the same update."""
    rng = np.random.default_rng(hospital)
    x = rng.normal(size=(40, SIZE)) / np.sqrt(SIZE)
    y = rng.normal(size=40)
    return -0.5 * x.T @ (x @ model - y) / 40


def _released_sums(pipelines, seed, *, weight=1.0, lanes=None):
    keys = new_key_set(PRESETS["n4096"])
    if lanes is None:
        hospital = CKKSCodec(keys.secret_context, keys.fingerprint)
        aggregator = CKKSCodec(keys.public_context, keys.fingerprint)
    else:  # distributed DP's integers
        hospital = IntegerLanesCodec(keys.secret_context, keys.fingerprint, lanes)
        aggregator = IntegerLanesCodec(keys.public_context, keys.fingerprint, lanes)
    decryptor = VerifiedDecryption(codec=hospital, master_key=MASTER, min_shares=2,
                                   rounding_bits=20)
    model = np.random.default_rng(seed).normal(size=SIZE)
    nudged = np.nextafter(model, np.inf)  # a "new" model the check cannot tell apart
    sums = []
    for round_, (broadcast, present) in enumerate([(model, [0, 1, 2]), (nudged, [1, 2])], 1):
        updates = []
        for h in present:
            stream = make_randomness(secure=False,
                                     seed=np.random.SeedSequence([seed, round_, h]))
            payload, _, _ = pipelines[h](_full_batch_update(broadcast, h), weight=weight,
                                        randomness=stream)
            updates.append(Update(h, hospital.encode(payload), round_))
        digest = model_digest(broadcast, {})
        decryptor.register([register_update(u, hospital_key(MASTER, u.hospital), digest)
                            for u in updates])
        decryptor.close_round(round_, updates)  # hospital 0 dropped out of round 2
        total = None
        for u in updates:
            total = aggregator.add(total, u.payload)
        sums.append(decryptor.decrypt(round_, present, aggregator.seal(total)))
    return sums, _full_batch_update(model, 0)


def test_without_dp_the_difference_of_two_sums_is_the_dropped_hospitals_update():
    sums, target = _released_sums([ClientPipeline()] * HOSPITALS, seed=0)
    recovered = (sums[0] - sums[1])[:SIZE]
    assert np.linalg.norm(recovered - target) / np.linalg.norm(target) < 1e-4


def test_under_distributed_dp_the_difference_is_noise_at_the_accountants_sigma():
    config = SimulationConfig(privacy=PrivacyConfig(name="distributed", epsilon=4.0,
                                                    delta=1e-3),
                              encryption=EncryptionConfig(name="ckks"), min_clients=2)
    model = build_model(ModelConfig(), num_features=13, num_classes=2)
    plan = make_privacy_plan(config, train_sizes=[50] * HOSPITALS, model=model)
    # the plan is the model's; the attack's updates are SIZE long: the same mechanism
    # (σ, bits, shares) over SIZE coordinates
    skellam = plan_skellam(bits=plan.skellam.bits, summands=HOSPITALS, min_shares=2,
                           colluders=0, clip=plan.uniform_weight * plan.clip, size=SIZE,
                           noise_multiplier=plan.party(-1).noise_multiplier, seed=0)
    shares = [dataclasses.replace(plan.client_privacy(h).discretize, plan=skellam,
                                  share_variance=skellam.share_variance)
              for h in range(HOSPITALS)]
    share = shares[0].share_variance
    assert share == pytest.approx(skellam.variance / 2)  # any 2 shares: the full noise
    pipelines = [ClientPipeline(steps=plan.client_privacy(h).steps, discretize=shares[h])
                 for h in range(HOSPITALS)]
    lanes = IntegerLanes(skellam.bits, HOSPITALS)
    sums, target = _released_sums(pipelines, seed=1, weight=plan.uniform_weight, lanes=lanes)
    restore = SkellamRestore(skellam)
    recovered = restore(sums[0], SIZE, 3) - restore(sums[1], SIZE, 2)
    weighted = plan.uniform_weight * target / max(1.0, np.linalg.norm(target))  # clipped
    error = recovered - weighted
    # five integer noise shares (three in round 1, two in round 2), back in update units
    noise_std = np.sqrt(5 * share) / skellam.scale
    assert np.std(error) == pytest.approx(noise_std, rel=0.1)
    cosine = recovered @ weighted / (np.linalg.norm(recovered) * np.linalg.norm(weighted))
    assert abs(cosine) < 0.2  # what is left of the update is buried in the noise

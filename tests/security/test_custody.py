"""Who holds the CKKS secret, on a real local Ray: the hospital workers and the
decryptor; never the driver, never the aggregator. And a malicious aggregator that
runs its own code in its actor gets no single update decrypted."""

import dataclasses

import numpy as np
import pytest
import ray
import tenseal as ts
from ray._private.worker import global_worker

from fedray import ModelConfig
from fedray.config import EncryptionConfig
from fedray.crypto.ckks import PRESETS, new_key_set
from fedray.crypto.sealing import SealingKey
from fedray.orchestrator import prepare
from fedray.pipeline import RoundBroadcast
from fedray.runtime.keys import hospital_purpose
from fedray.runtime.workers import Hosting, assign_hospitals, make_actors
from tests.conftest import synthetic_config


@pytest.fixture(scope="module")
def federation(ray_local):  # the tests that use it are marked integration below
    config = synthetic_config(
        num_records=400, model=ModelConfig(name="logreg"),
        num_clients=4, min_clients=3, num_rounds=1,
        encryption=EncryptionConfig(name="ckks", preset="n4096"))
    prepared = prepare(config)
    assignment = assign_hospitals(prepared.federation.train_sizes, 2)
    actors = make_actors(prepared.config, prepared.federation, Hosting(assignment),
                         prepared.privacy)
    return (prepared, assignment, actors.workers, actors.aggregator, actors.reconfigure,
            actors.key_side)


def _holds_secret_key(value) -> bool:
    """Whether ``value`` holds, anywhere inside, a serialised TenSEAL context with a
    secret key."""
    if isinstance(value, (bytes, bytearray)):
        try:
            return ts.context_from(bytes(value)).has_secret_key()
        except Exception:  # not a context
            return False
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = [getattr(value, f.name) for f in dataclasses.fields(value)]
    if isinstance(value, dict):
        value = list(value.keys()) + list(value.values())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_holds_secret_key(v) for v in value)
    return False


def _driver_objects() -> list:
    """Every object the driver holds a reference to, read."""
    values = []
    for object_id in global_worker.core_worker.get_all_reference_counts():
        ref = ray.ObjectRef(bytes.fromhex(object_id.decode()))
        try:
            values.append(ray.get(ref, timeout=10))
        except Exception:  # an actor's creation, a failed task: nothing to read
            continue
    return values


@pytest.mark.integration
def test_the_driver_holds_nothing_to_decrypt_with(federation):
    prepared, assignment, workers, aggregator, reconfigure, key_side = federation
    # a worker configured again (as after Ray restarted it) gets its keys back from the
    # authority, and an honest round is decrypted
    ray.get(reconfigure[0]())
    broadcast = ray.put(RoundBroadcast(prepared.initial, {}))
    weights = dict.fromkeys(range(4), 0.25)
    trained = [w.train.options(num_returns=3).remote(broadcast, {i: weights[i] for i in idx},
                                                    frozenset(), 1)
               for w, idx in zip(workers, assignment)]
    ray.get([t[1] for t in trained])
    closed = key_side.close_round(1, [t[0] for t in trained])  # the driver's word
    _, report = aggregator.aggregate.options(num_returns=2).remote(
        [t[0] for t in trained], broadcast, weights, 1, closed)
    assert ray.get(report).released
    objects = _driver_objects()  # the run's handles, updates, reports and states are alive
    assert len(objects) >= 1 + 3 * len(workers)
    assert not any(_holds_secret_key(v) for v in objects)
    # ...while the keys exist: the workers encrypted (and the check itself can see one)
    secret = new_key_set(PRESETS["n4096"]).secret_context
    assert _holds_secret_key({"nested": [secret]})
    # the authority provisions the run's own workers only, as it first did
    _, authority, token, worker, _ = reconfigure[0].args
    with pytest.raises(ray.exceptions.RayTaskError, match="provisions the run's own"):
        ray.get(authority.provision.remote(token, [(worker, [0, 1, 2, 3])]))
    # and takes no order from anyone without the controller's token
    with pytest.raises(ray.exceptions.RayTaskError, match="controller only"):
        ray.get(authority.provision.remote(b"\0" * 32, [(worker, [0, 1])]))


@pytest.mark.integration
def test_a_malicious_aggregator_gets_no_single_update_decrypted(federation):
    prepared, assignment, workers, aggregator, _, key_side = federation
    broadcast = ray.put(RoundBroadcast(prepared.initial, {}))
    weights = dict.fromkeys(range(4), 0.25)
    batches = [w.train.options(num_returns=3).remote(
                   broadcast, {i: weights[i] for i in idx}, frozenset(), 2)[0]
               for w, idx in zip(workers, assignment)]
    ray.wait(batches, num_returns=len(batches))
    closed = key_side.close_round(2, batches)  # the driver: all four arrived
    ray.get(closed)

    def setup_attacks(self):  # inside the aggregator: steer the decryptor's setup
        outcomes = []
        for call in (lambda: self.decryptors[0].install_run.remote(b"\0" * 64),
                     lambda: self.decryptors[0].close_round.remote(b"\0" * 32, 2, [])):
            try:
                ray.get(call())
                outcomes.append("accepted")
            except ray.exceptions.RayTaskError as err:
                outcomes.append(str(err))
        return outcomes

    refused = ray.get(aggregator.__ray_call__.remote(setup_attacks))
    assert "sealed box" in refused[0] or "did not seal" in refused[0]
    assert "controller only" in refused[1]

    def attack(self, batches):  # runs inside the aggregator's process, with its state
        single = ray.get(batches[0])[0]
        assert self.codec.validate(single.payload, single.payload.size) is None
        total = self.codec.add(None, single.payload)
        try:
            return ray.get(self.decryptors[0].decrypt.remote(2, [single.hospital],
                                                         self.codec.seal(total)))
        except ray.exceptions.RayTaskError as err:
            return str(err)

    outcome = ray.get(aggregator.__ray_call__.remote(attack, batches))
    assert isinstance(outcome, str) and "left out" in outcome
    # the decryptor is closed for the run: the honest round is refused too, loudly
    _, report = aggregator.aggregate.options(num_returns=2).remote(batches, broadcast,
                                                                   weights, 2, closed)
    with pytest.raises(ray.exceptions.RayTaskError, match="stopped decrypting"):
        ray.get(report)


@pytest.mark.integration
def test_nobody_swaps_a_workers_keys_and_a_worker_without_keys_sends_nothing(federation):
    prepared, assignment, workers, aggregator, _, _ = federation
    mine = new_key_set(PRESETS["n4096"])  # keys the driver would know
    planted = SealingKey().seal(ray.get(workers[0].sealing_key.remote()),
                                mine.secret_context, purpose=hospital_purpose(1))
    with pytest.raises(ray.exceptions.RayTaskError, match="installed already"):
        ray.get(workers[0].install_keys.remote(planted, None))
    # the aggregator refuses to run with a secret key
    with pytest.raises(ray.exceptions.RayTaskError, match="refusing to run"):
        ray.get(aggregator.configure.remote(prepared.config, prepared.privacy, 4,
                                            (mine.secret_context, mine.fingerprint), None))
    # configured but not provisioned: encoding refuses rather than send in the clear
    plan = prepared.federation
    ray.get(workers[0].configure.remote(
        prepared.config, [plan.hospitals[i] for i in assignment[0]],
        num_features=plan.num_features, num_classes=plan.num_classes,
        privacy=prepared.privacy, num_hospitals=4, keys_from=(1, SealingKey().public)))
    # keys sealed by anyone but the run's authority are refused
    planted = SealingKey().seal(ray.get(workers[0].sealing_key.remote()),
                                mine.secret_context, purpose=hospital_purpose(1))
    with pytest.raises(ray.exceptions.RayTaskError, match="did not seal"):
        ray.get(workers[0].install_keys.remote(planted, None))
    broadcast = ray.put(RoundBroadcast(np.asarray(prepared.initial), {}))
    with pytest.raises(ray.exceptions.RayTaskError, match="has not provisioned"):
        ray.get(workers[0].train.remote(broadcast, {assignment[0][0]: 0.25}, frozenset(), 1))


@pytest.mark.integration
def test_each_run_gets_fresh_keys_from_the_warm_authority(federation):
    from fedray.runtime.keys import encryption_settings
    from fedray.runtime.pool import POOL

    authority, decryptors, token = POOL.key_roles()
    settings = {"encryption": encryption_settings(EncryptionConfig(name="ckks",
                                                                   preset="n4096")),
                "num_hospitals": 4, "min_shares": 2, "decryptors": decryptors}
    first = ray.get(authority.start_run.remote(token, PRESETS["n4096"], **settings))
    second = ray.get(authority.start_run.remote(token, PRESETS["n4096"], **settings))
    assert (second.run, second.authority) == (first.run + 1, first.authority)
    assert first.fingerprint != second.fingerprint  # new key sets
    assert not _holds_secret_key(first) and not _holds_secret_key(second)

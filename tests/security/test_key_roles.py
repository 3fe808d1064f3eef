"""The key roles take orders from the run's controller and the key authority only
(the classes themselves, no Ray): what the aggregator's handle to the decryptor can
call changes nothing but a round's decryption, which fedray/crypto/release.py checks."""

import dataclasses

import pytest

from fedray.config import EncryptionConfig
from fedray.crypto.ckks import PRESETS, new_key_set
from fedray.crypto.sealing import SealingError, SealingKey
from fedray.runtime.keys import (
    Decryptor,
    KeyAuthority,
    encryption_settings,
    new_controller_token,
    open_hospital_keys,
    seal_decryptor_run,
    seal_hospital_keys,
    token_digest,
)

SETTINGS = {"encryption": encryption_settings(EncryptionConfig(name="ckks", preset="n4096")),
            "num_hospitals": 4, "min_shares": 3}


@pytest.fixture(scope="module")
def keys():
    return new_key_set(PRESETS["n4096"])


def _roles():
    token = new_controller_token()
    authority_key = SealingKey()  # stands in for the authority's own sealing key
    return token, authority_key, Decryptor(token_digest(token), authority_key.public)


def test_only_the_controller_starts_a_run_of_the_authority():
    token = new_controller_token()
    authority = KeyAuthority(token_digest(token))
    for stranger in (b"\0" * 32, new_controller_token(), "not even bytes"):
        with pytest.raises(PermissionError, match="controller only"):
            authority.start_run(stranger, PRESETS["n4096"], **SETTINGS, decryptors=[])
        with pytest.raises(PermissionError, match="controller only"):
            authority.provision(stranger, [])
    # (its runs with the controller's token: test_custody.py, on a real Ray)


def test_the_decryptor_takes_its_run_from_the_authoritys_box_only(keys):
    _, authority, decryptor = _roles()
    attacker = SealingKey()  # the aggregator's own key: a box it made for min_shares=1
    planted = seal_decryptor_run(attacker, decryptor.sealing_key(), run=1, keys=keys,
                                 master=b"m" * 32, settings={**SETTINGS, "min_shares": 1})
    with pytest.raises(SealingError):
        decryptor.install_run(planted)
    genuine = seal_decryptor_run(authority, decryptor.sealing_key(), run=1, keys=keys,
                                 master=b"m" * 32, settings=SETTINGS)
    decryptor.install_run(genuine)
    assert decryptor._ready().min_shares == 3
    with pytest.raises(PermissionError, match="came after run 1"):  # replayed
        decryptor.install_run(genuine)
    older = seal_decryptor_run(authority, decryptor.sealing_key(), run=1, keys=keys,
                               master=b"m" * 32, settings={**SETTINGS, "min_shares": 1})
    with pytest.raises(PermissionError, match="came after run 1"):
        decryptor.install_run(older)
    assert decryptor._ready().min_shares == 3


def test_only_the_controller_closes_a_round(keys):
    _, authority, decryptor = _roles()
    decryptor.install_run(seal_decryptor_run(authority, decryptor.sealing_key(), run=1,
                                             keys=keys, master=b"m" * 32, settings=SETTINGS))
    with pytest.raises(PermissionError, match="controller only"):
        decryptor.close_round(b"\0" * 32, 1, [])
    assert decryptor._ready()._closed == {}


def test_a_worker_opens_its_own_runs_box_for_its_own_hospitals_only(keys):
    authority, worker = SealingKey(), SealingKey()
    box = seal_hospital_keys(authority, worker.public, run=3, context=keys.secret_context,
                             fingerprint=keys.fingerprint, master=b"m" * 32,
                             hospitals=[0, 2])
    opened = open_hospital_keys(worker, authority.public, box, run=3, hospitals={0, 2},
                                decryptors=None)
    assert opened.fingerprint == keys.fingerprint and set(opened.registration_keys) == {0, 2}
    with pytest.raises(SealingError):  # a box of run 3 replayed into run 4
        open_hospital_keys(worker, authority.public, box, run=4, hospitals={0, 2},
                           decryptors=None)
    with pytest.raises(PermissionError, match="other hospitals"):
        open_hospital_keys(worker, authority.public, box, run=3, hospitals={0, 1},
                           decryptors=None)
    forged = seal_hospital_keys(SealingKey(), worker.public, run=3,
                                context=keys.secret_context, fingerprint=keys.fingerprint,
                                master=b"m" * 32, hospitals=[0, 2])
    with pytest.raises(SealingError):  # keys the aggregator chose: refused
        open_hospital_keys(worker, authority.public, forged, run=3, hospitals={0, 2},
                           decryptors=None)


def test_the_encryption_settings_travel_as_plain_data():
    config = EncryptionConfig(name="ckks", preset="n4096", decrypt_rounding_bits=18)
    assert EncryptionConfig(**encryption_settings(config)) == config
    assert dataclasses.asdict(config) == encryption_settings(config)


def test_no_decrypted_sum_covers_fewer_than_two_hospitals():
    from fedray.config import SimulationConfig
    from fedray.crypto.release import decryption_floor
    from fedray.models import build_model
    from fedray.privacy import make_privacy_plan
    from fedray.runtime.aggregator_worker import AggregatorWorker

    assert [decryption_floor(m) for m in (1, 2, 5)] == [2, 2, 5]
    keys = new_key_set(PRESETS["n4096"])
    config = SimulationConfig(encryption=EncryptionConfig(name="ckks", preset="n4096"))
    assert config.min_clients == 1  # the default, raised under encryption
    plan = make_privacy_plan(config, train_sizes=[10] * 4,
                             model=build_model(config.model, num_features=13, num_classes=2))
    aggregator = AggregatorWorker()
    aggregator.configure(config, plan, 4, (keys.public_context, keys.fingerprint))
    assert aggregator.privacy.min_accepted == 2
    plaintext = AggregatorWorker()
    plaintext.configure(config.__class__(), plan, 4)
    assert plaintext.privacy.min_accepted == 1  # (no encryption: min_clients as given)

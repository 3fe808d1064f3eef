"""A malicious aggregator against the decryptor, with real TenSEAL ciphertexts.

The aggregator holds the key-free context (it can load, add, subtract and multiply
ciphertexts by constants, and make ciphertexts of values it chooses in no key) and a
line to the decryptor. The driver closes each round at the decryptor with what arrived
(here: ``close``, with whatever the attack needs to have arrived, so that each attack
meets the check it is about). Every attempt to get more than one round's sum of at
least min_shares registered contributions, covering every one that arrived, must be
refused, and after one refusal the decryptor decrypts nothing more. Each test would
fail if the protection it names were missing: without registration, each crafted
request here would decrypt.
"""

import numpy as np
import pytest

from fedray.crypto import CKKSCodec, EncryptedVector
from fedray.crypto.ckks import PRESETS, new_key_set, round_to_grid
from fedray.crypto.release import (
    DecryptionRefused,
    Registration,
    VerifiedDecryption,
    hospital_key,
    payload_digest,
    register_update,
)
from fedray.pipeline import Update

MASTER = b"k" * 32
MODELS = {r: bytes([r]) * 32 for r in range(1, 5)}  # the broadcast digest of each round
MIN_SHARES = 3
VALUES = [np.linspace(-1, 1, 8) * (h + 1) for h in range(4)]  # hospital h's update


@pytest.fixture(scope="module")
def key_set():
    keys = new_key_set(PRESETS["n4096"])
    return (CKKSCodec(keys.secret_context, keys.fingerprint),
            CKKSCodec(keys.public_context, keys.fingerprint), keys)


class Federation:
    """Four hospitals that sent and registered their round-``round_`` updates."""

    def __init__(self, key_set, round_=1):
        self.hospital, self.aggregator, self.keys = key_set
        self.decryptor = VerifiedDecryption(codec=self.hospital, master_key=MASTER,
                                            min_shares=MIN_SHARES, rounding_bits=20)
        self.round_ = round_
        self.updates = self.send(round_)

    def send(self, round_, model=None):
        updates = [Update(h, self.hospital.encode(v), round_) for h, v in enumerate(VALUES)]
        self.decryptor.register([register_update(u, hospital_key(MASTER, u.hospital),
                                                 model or MODELS[round_]) for u in updates])
        return updates

    def sum_of(self, updates):
        total = None
        for u in updates:
            total = self.aggregator.add(total, u.payload)
        return self.aggregator.seal(total)

    def close(self, round_, arrived):
        """The driver's word on what arrived (once per round, as the driver says it)."""
        decryptor = self.decryptor
        if (type(round_) is int and round_ > decryptor.last_round
                and round_ not in decryptor._closed and isinstance(arrived, list)):
            decryptor.close_round(round_, arrived)

    def honest(self, hospitals=(0, 1, 2), round_=None):
        chosen = [self.updates[h] for h in hospitals]
        round_ = round_ or self.round_
        self.close(round_, chosen)
        return self.decryptor.decrypt(round_, list(hospitals), self.sum_of(chosen))

    def loaded(self, payload):
        return self.aggregator._load(payload)  # what the aggregator can compute with


def _refused(federation, round_, updates, claimed, match=""):
    """The aggregator asks for the sum of ``updates`` (which arrived) as ``claimed``."""
    federation.close(round_, updates)
    contributors = [u.hospital for u in updates] if isinstance(updates, list) else updates
    with pytest.raises(DecryptionRefused, match=match):
        federation.decryptor.decrypt(round_, contributors, claimed)
    # and it stays closed
    with pytest.raises(DecryptionRefused, match="stopped decrypting when it refused round"):
        federation.honest()


def test_the_honest_sum_is_all_that_is_released_and_only_rounded(key_set):
    federation = Federation(key_set)
    released = federation.honest((0, 1, 3))
    expected = VALUES[0] + VALUES[1] + VALUES[3]
    np.testing.assert_array_equal(released, round_to_grid(released, 20))
    assert np.max(np.abs(released - expected)) < 2.0 ** -20


def test_a_single_update_is_refused(key_set):
    federation = Federation(key_set)
    single = federation.updates[0]
    _refused(federation, 1, [single], single.payload, match="fewer than the 3")


def test_a_single_update_passed_off_as_a_sum_is_refused(key_set):
    federation = Federation(key_set)
    named = federation.updates[:3]
    _refused(federation, 1, named, federation.updates[0].payload, match="not the sum")


def test_fewer_than_min_shares_is_refused_even_if_honestly_summed(key_set):
    federation = Federation(key_set)
    two = federation.updates[:2]
    _refused(federation, 1, two, federation.sum_of(two), match="2 contributions")


def test_a_difference_of_sums_is_refused(key_set):
    federation = Federation(key_set)
    bigger, smaller = federation.updates[:4], federation.updates[1:4]
    difference = [a - b for a, b in zip(federation.loaded(federation.sum_of(bigger)),
                                        federation.loaded(federation.sum_of(smaller)))]
    claimed = EncryptedVector(federation.hospital.fingerprint, 8,
                              tuple(p.serialize() for p in difference))
    _refused(federation, 1, bigger, claimed, match="not the sum")


def test_a_second_sum_in_the_same_round_is_refused(key_set):
    # the difference of two honest sums would give hospital 0's update away
    federation = Federation(key_set)
    federation.honest((0, 1, 2, 3))
    _refused(federation, 1, federation.updates[1:4], federation.sum_of(federation.updates[1:4]),
             match="not after the last decrypted round")


def test_a_replayed_round_is_refused(key_set):
    federation = Federation(key_set)
    federation.honest()
    old = federation.updates
    federation.updates = federation.send(2)
    # round 1's updates presented again as round 2's: round 2 registered other ciphertexts
    stale = [Update(u.hospital, u.payload, 2) for u in old[:3]]
    _refused(federation, 2, stale, federation.sum_of(stale),
             match=r"not registered or not arrived: \[0, 1, 2\]")


def test_a_ciphertext_added_to_itself_k_times_is_refused(key_set):
    # (no key needed) doubling k times multiplies the CKKS error by 2^k: a decryption
    # of it would leak key bits that rounding no longer hides
    federation = Federation(key_set)
    parts = federation.loaded(federation.updates[0].payload)
    for _ in range(10):
        parts = [p + p for p in parts]
    amplified = EncryptedVector(federation.hospital.fingerprint, 8,
                                tuple(p.serialize() for p in parts))
    _refused(federation, 1, federation.updates[:3], amplified, match="not the sum")


def test_counting_one_hospital_several_times_is_refused(key_set):
    federation = Federation(key_set)
    thrice = [federation.updates[0]] * 3
    _refused(federation, 1, thrice, federation.sum_of(thrice), match="counted twice")


def test_a_foreign_key_sets_ciphertext_is_refused(key_set):
    # a ciphertext made under a key the aggregator knows (or crafted, c1 chosen) in a
    # decryption would be a key-recovery oracle: decrypting (c0, c1) reveals c0 + c1·s
    federation = Federation(key_set)
    other = new_key_set(PRESETS["n4096"])
    foreign = CKKSCodec(other.secret_context, federation.hospital.fingerprint).encode(VALUES[0])
    forged = [Update(0, foreign, 1), *federation.updates[1:3]]
    _refused(federation, 1, forged, federation.sum_of(forged),
             match=r"not registered or not arrived: \[0\]")


def test_the_aggregator_cannot_register_for_a_hospital(key_set):
    federation = Federation(key_set, round_=1)
    update = Update(0, federation.updates[1].payload, 2)  # hospital 1's ciphertext as 0's
    forged = register_update(update, b"a key the aggregator made up" + b"\0" * 4, MODELS[2])
    with pytest.raises(DecryptionRefused, match="not signed with that hospital's key"):
        federation.decryptor.register([forged])
    replay = Registration(0, 2, payload_digest(update.payload), MODELS[2], b"\0" * 32)
    with pytest.raises(DecryptionRefused, match="not signed"):
        federation.decryptor.register([replay])
    # round 1's genuine registrations cannot be moved to round 2 either: the round is signed
    genuine = register_update(federation.updates[0], hospital_key(MASTER, 0), MODELS[1])
    with pytest.raises(DecryptionRefused, match="not signed"):
        federation.decryptor.register([Registration(0, 2, genuine.digest, MODELS[1],
                                                    genuine.tag)])


def test_a_hospital_registers_once_per_round(key_set):
    federation = Federation(key_set)
    again = register_update(federation.updates[0], hospital_key(MASTER, 0), MODELS[1])
    with pytest.raises(DecryptionRefused, match="second update"):
        federation.decryptor.register([again])


def test_a_model_broadcast_twice_cannot_release_two_sums(key_set):
    # a malicious broadcast: the same model in rounds 1 and 2, so that the sums of
    # {0, 1, 2, 3} and {1, 2, 3} would difference out to hospital 0's update
    federation = Federation(key_set)
    federation.honest((0, 1, 2, 3))
    federation.updates = federation.send(2, model=MODELS[1])
    _refused(federation, 2, federation.updates[1:4], federation.sum_of(federation.updates[1:4]),
             match="broadcast in an earlier decrypted round")


def test_contributions_trained_from_different_models_are_refused(key_set):
    # model inconsistency (Pasquini et al., 2022): one hospital was sent another model
    federation = Federation(key_set)
    updates = [Update(h, federation.hospital.encode(v), 2) for h, v in enumerate(VALUES)]
    federation.decryptor.register([
        register_update(u, hospital_key(MASTER, u.hospital),
                        MODELS[3] if u.hospital == 3 else MODELS[2]) for u in updates])
    named = updates[1:4]
    _refused(federation, 2, named, federation.sum_of(named), match="different models")


def test_objects_that_only_look_right_are_refused(key_set):
    federation = Federation(key_set)

    class Liar(EncryptedVector):  # its own digest would claim anything
        pass

    named = federation.updates[:3]
    honest_sum = federation.sum_of(named)
    fake = Liar(honest_sum.key_fingerprint, honest_sum.size, honest_sum.ciphertexts)
    _refused(federation, 1, named, fake, match="not the sum")
    federation = Federation(key_set)

    class Round(int):  # compares as whatever helps
        def __le__(self, other):
            return False

    _refused(federation, Round(1), named, honest_sum, match="not after the last")
    federation = Federation(key_set)
    federation.close(1, named)
    _refused(federation, 1, None, honest_sum, match="a list of hospital indices")


def test_a_late_registration_is_ignored_not_an_error(key_set):
    # a batch that missed its round's wall-clock timeout registers after the decryption
    federation = Federation(key_set)
    federation.honest()
    late = Update(3, federation.hospital.encode(VALUES[3]), 1)
    assert federation.decryptor.register(
        [register_update(late, hospital_key(MASTER, 3), MODELS[1])]) == [3]


def test_the_aggregator_cannot_leave_out_a_hospital_that_arrived(key_set):
    # dropping hospital 0 from one round's sum and not another's would difference out
    # its update: the driver, not the aggregator, says who arrived
    federation = Federation(key_set)
    federation.close(1, federation.updates)  # all four arrived
    kept = federation.updates[1:4]
    with pytest.raises(DecryptionRefused, match=r"left out: \[0\]"):
        federation.decryptor.decrypt(1, [1, 2, 3], federation.sum_of(kept))


def test_nothing_is_decrypted_before_the_driver_closes_the_round(key_set):
    federation = Federation(key_set)
    named = federation.updates[:3]
    with pytest.raises(DecryptionRefused, match="not closed by the driver"):
        federation.decryptor.decrypt(1, [0, 1, 2], federation.sum_of(named))


def test_an_invalid_arrival_is_left_out_by_both_sides(key_set):
    # a hospital whose update fails its registration is not among the round's
    # contributions: the honest sum of the others is released
    federation = Federation(key_set)
    other = new_key_set(PRESETS["n4096"])
    foreign = Update(3, CKKSCodec(other.secret_context, other.fingerprint).encode(VALUES[3]), 1)
    federation.close(1, [*federation.updates[:3], foreign])
    released = federation.decryptor.decrypt(1, [0, 1, 2], federation.sum_of(federation.updates[:3]))
    assert np.max(np.abs(released - (VALUES[0] + VALUES[1] + VALUES[2]))) < 2.0 ** -20

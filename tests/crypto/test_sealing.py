"""Sealed boxes: only the recipient opens one, only the sender's key makes one it
accepts, and a box is bound to its purpose."""

import pytest

from fedray.crypto.sealing import SealingError, SealingKey


def test_the_recipient_opens_what_the_sender_sealed():
    authority, worker = SealingKey(), SealingKey()
    box = authority.seal(worker.public, b"secret context", purpose="run 1 worker")
    assert b"secret context" not in box
    assert worker.open(authority.public, box, purpose="run 1 worker") == b"secret context"


def test_nobody_else_opens_it_and_nobody_else_makes_one_it_accepts():
    authority, worker, attacker = SealingKey(), SealingKey(), SealingKey()
    box = authority.seal(worker.public, b"secret", purpose="p")
    with pytest.raises(SealingError):  # another recipient
        attacker.open(authority.public, box, purpose="p")
    planted = attacker.seal(worker.public, b"the attacker's own key", purpose="p")
    with pytest.raises(SealingError):  # the worker accepts boxes of the authority only
        worker.open(authority.public, planted, purpose="p")
    assert worker.open(attacker.public, planted, purpose="p")  # (the box itself is fine)


def test_a_box_is_bound_to_its_purpose_and_its_bytes():
    authority, worker = SealingKey(), SealingKey()
    box = authority.seal(worker.public, b"keys of run 3", purpose="run 3")
    with pytest.raises(SealingError):
        worker.open(authority.public, box, purpose="run 4")  # replayed into another run
    tampered = box[:-1] + bytes([box[-1] ^ 1])
    with pytest.raises(SealingError):
        worker.open(authority.public, tampered, purpose="run 3")
    with pytest.raises(SealingError):
        worker.open(authority.public, b"short", purpose="run 3")

"""The aggregator's membership seat (fedray/audit/tap.py UploadTap), without Ray: it
rebuilds the target's own model from its latest clear upload and public weight, and
keeps nothing it could read from a ciphertext."""

import numpy as np

from fedray.audit.tap import NoUploadTap, UploadTap
from fedray.messages import Update


def test_the_target_model_is_the_start_plus_its_unweighted_upload():
    tap = UploadTap(target=1)
    start = np.array([1.0, 2.0, 3.0])
    for round_, change in ((1, 0.5), (2, 1.0)):  # the latest round is kept
        tap.observe([Update(hospital=0, payload=np.full(3, 9.0), round_=round_),
                     Update(hospital=1, payload=np.full(3, 0.25 * change), round_=round_)],
                    start, {0: 0.75, 1: 0.25}, round_)
    view = tap.view()
    assert view["view"] == "plaintext" and view["round"] == 2
    np.testing.assert_allclose(view["local_model"], start + 1.0)


def test_extra_upload_parts_beyond_the_model_are_ignored():
    tap = UploadTap(target=0)  # e.g. SCAFFOLD's control variate after the model change
    tap.observe([Update(hospital=0, payload=np.array([0.5, 0.5, 7.0]), round_=1)],
                np.zeros(2), {0: 0.5}, 1)
    np.testing.assert_allclose(tap.view()["local_model"], [1.0, 1.0])


def test_a_ciphertext_or_an_absent_target_gives_no_model():
    tap = UploadTap(target=0)
    assert tap.view() == NoUploadTap().view()  # the target never arrived
    tap.observe([Update(hospital=0, payload=b"ciphertext", round_=4)], np.zeros(2), {0: 1.0}, 4)
    assert tap.view() == {"view": "ciphertext", "local_model": None, "round": 4}

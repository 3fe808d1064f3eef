"""Checkpoints hold plain data only, and an older format is refused in one line."""

import pickle

import numpy as np
import pytest

from fedray.checkpoint import FORMAT, NotPlainData, load_for_resume, loads_plain, write_checkpoint
from fedray.config import ConfigError, SimulationConfig, config_to_dict


def test_plain_data_round_trips_exactly(tmp_path):
    state = {"format": FORMAT, "round": 3, "config": config_to_dict(SimulationConfig()),
             "arrays": [np.arange(5.0), np.zeros((2, 3), np.float32), np.uint8(7)],
             "nested": {1: (2, "x", None, True), "set": {1, 2}}}
    write_checkpoint(tmp_path, 3, state)
    again = load_for_resume(str(tmp_path))
    assert again["round"] == 3 and again["config"] == state["config"]
    assert all(np.array_equal(a, b) for a, b in zip(again["arrays"], state["arrays"]))
    assert again["nested"] == state["nested"]


def test_a_live_object_is_not_plain_data():
    with pytest.raises(NotPlainData, match=r"fedray\.config\.SimulationConfig"):
        loads_plain(pickle.dumps({"config": SimulationConfig()}))


def test_a_checkpoint_of_the_old_format_is_refused_in_one_line(tmp_path):
    # format 1 pickled the config and the run's record and ledger as live objects
    write_checkpoint(tmp_path, 2, {"round": 2, "config": SimulationConfig()})
    with pytest.raises(ConfigError) as err:
        load_for_resume(str(tmp_path))
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"resume={str(tmp_path)!r}")
    assert "live objects" in message and "run it again from the start" in message


def test_a_plain_checkpoint_without_the_current_format_is_refused(tmp_path):
    write_checkpoint(tmp_path, 2, {"round": 2, "config": {}})
    with pytest.raises(ConfigError, match="has format 1; this fedray reads format 2"):
        load_for_resume(str(tmp_path))

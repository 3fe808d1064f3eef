"""Checkpoint and resume: a run resumed from its checkpoint after round k ends with the
model (model_sha256), ε and metrics of the uninterrupted run, for stateful strategies,
privacy and encryption; one run is killed with SIGKILL and resumed through the CLI."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from fedray import ConfigError, ModelConfig, PartitionConfig, SimulationConfig, simulate
from fedray.config import AvailabilityConfig, EncryptionConfig, PrivacyConfig, StrategyConfig
from tests.conftest import synthetic_config

pytestmark = pytest.mark.integration

VARIANTS = {
    "scaffold": dict(strategy=StrategyConfig(name="scaffold")),
    "fedadam+local-dp": dict(strategy=StrategyConfig(name="fedadam"),
                             privacy=PrivacyConfig(name="local", epsilon=8.0)),
    # Packed CKKS decrypts integers exactly; unpacked CKKS rounds each sum to 2^-20, and its
    # fresh noise can cross a grid line, so two runs (resumed or not) agree to ~1e-6 only.
    "fedavg+dropouts+stragglers": dict(
        availability=AvailabilityConfig(online=0.7, speed_spread=0.5, seconds_per_step=1.0),
        round_timeout_s=4.0),
    "fedavg+local-dp+ckks": dict(privacy=PrivacyConfig(name="local", epsilon=8.0),
                                 encryption=EncryptionConfig(name="ckks", packing="quantized")),
}


def _without_timings(metrics):
    return metrics[metrics["metric"] != "seconds"].reset_index(drop=True)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_resumed_run_ends_where_the_uninterrupted_one_does(ray_local, tmp_path, variant):
    config = synthetic_config(
        partition=PartitionConfig(name="dirichlet", alpha=0.5),
        model=ModelConfig(name="mlp", hidden=8), num_clients=5, num_rounds=6, lr=0.1,
        checkpoint_every=2, output_dir=str(tmp_path), **VARIANTS[variant])
    whole = simulate(config)
    checkpoints = tmp_path / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == [
        "round_000002.pkl", "round_000004.pkl", "round_000006.pkl"]
    for later in ("round_000004.pkl", "round_000006.pkl"):  # as if killed in round 3
        (checkpoints / later).unlink()
    resumed = simulate(dataclasses.replace(config, resume=str(tmp_path)))
    assert resumed.summary["resumed_from_round"] == 2
    assert resumed.summary["model_sha256"] == whole.summary["model_sha256"]
    assert resumed.summary["epsilon"] == whole.summary["epsilon"]  # ledgers went on
    assert _without_timings(resumed.metrics).equals(_without_timings(whole.metrics))


def test_resume_from_a_directory_that_is_not_a_run_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="is not a run directory with a complete"):
        simulate(SimulationConfig(resume=str(tmp_path)))


def test_a_run_killed_with_sigkill_resumes_through_the_cli(ray_local, tmp_path):
    from fedray.cli import compose

    overrides = ["num_rounds=12", "local_steps=20", "checkpoint_every=1", "progress=false"]
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "fedray", *overrides,
                             f"hydra.run.dir={run_dir}"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (run_dir / "checkpoints" / "round_000002.pkl").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "summary.json").exists()  # killed mid-run: no result yet
    again = subprocess.run([sys.executable, "-m", "fedray", f"resume={run_dir}",
                            "progress=false", f"hydra.run.dir={tmp_path / 'resume'}"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    resumed = json.loads((run_dir / "summary.json").read_text())
    assert resumed["resumed_from_round"] >= 2 and resumed["rounds_completed"] == 12
    uninterrupted = simulate(dataclasses.replace(compose(overrides),
                                                 output_dir=str(tmp_path / "u")))
    assert resumed["model_sha256"] == uninterrupted.summary["model_sha256"]

"""The console entry point as a user runs it: a subprocess with its own fresh Ray."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fedray.outputs.collect import collect

pytestmark = pytest.mark.integration


def _fedray(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "fedray", *args], cwd=cwd, capture_output=True, text=True,
        timeout=300,
    )


def test_cli_run_prints_results_and_writes_outputs(tmp_path):
    out = tmp_path / "run"
    proc = _fedray("num_rounds=2", "progress=false", f"hydra.run.dir={out}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Cleveland" in proc.stdout and "pooled test" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["num_rounds"] == 2
    assert (out / "metrics.csv").exists() and (out / "accuracy.png").exists()


@pytest.mark.parametrize(
    "override, expected",
    [
        ("partition.alpha=-1", "partition.alpha=-1.0: must be a finite number > 0"),
        ("num_rounds=0", "num_rounds=0: must be an integer >= 1"),
        ("num_clients=1000", "num_clients=1000"),
    ],
)
def test_bad_values_fail_in_one_line_before_ray(tmp_path, override, expected):
    extra = ["dataset=synthetic", "partition=iid"] if "num_clients" in override else []
    proc = _fedray(override, *extra, f"hydra.run.dir={tmp_path / 'bad'}", cwd=tmp_path)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("fedray: error:")]
    assert len(errors) == 1 and expected in errors[0], proc.stderr
    assert "Ray" not in proc.stderr  # refused before Ray started


def test_multirun_leaves_one_directory_per_run(tmp_path):
    sweep = tmp_path / "sweep"
    proc = _fedray(
        "-m", "num_rounds=1,2", "seed=0,1", "dataset=synthetic", "partition=iid",
        "num_clients=3", "dataset.num_records=300", "progress=false",
        f"hydra.sweep.dir={sweep}", cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    runs = sorted(p.parent for p in Path(sweep).glob("*/summary.json"))
    assert len(runs) == 4
    seen = {(json.loads((r / "summary.json").read_text())["config"]["num_rounds"],
             json.loads((r / "summary.json").read_text())["config"]["seed"]) for r in runs}
    assert seen == {(1, 0), (1, 1), (2, 0), (2, 1)}
    table = collect(sweep)
    assert len(table) == 4
    assert list(table.columns[:2]) == ["num_rounds", "seed"]  # the swept keys lead
    assert table["accuracy"].between(0, 1).all()


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["privacy=local", "privacy.epsilon=0"], "privacy.epsilon=0"),
        (["privacy=dpsgd", "privacy.delta=0.05"], "privacy.delta=0.05: must be < 1/(records"),
        (["privacy=central", "privacy.clip=-1"], "privacy.clip=-1"),
        (["privacy=dpsgd", "model=mlp", "model.batchnorm=true"], "not compatible with privacy"),
        (["privacy=distributed", "privacy.epsilon=1"], "needs encryption=ckks"),
        (["privacy=central", "encryption=ckks"], "cannot run with encryption=ckks"),
        (["encryption=ckks", "encryption.preset=custom", "encryption.poly_modulus_degree=4096",
          "encryption.coeff_mod_bit_sizes=[60,60]", "encryption.scale_bits=40"],
         "exceed the 109 bits allowed at N=4096 for 128-bit security"),
    ],
)
def test_bad_privacy_input_fails_in_one_line_before_ray(tmp_path, overrides, expected):
    proc = _fedray(*overrides, f"hydra.run.dir={tmp_path / 'bad'}", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("fedray: error:")]
    assert len(errors) == 1 and expected in errors[0], proc.stderr

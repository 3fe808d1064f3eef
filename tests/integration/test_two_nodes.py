"""A real two-node Ray cluster on this machine (cluster/two_nodes.py: `ray start --head`
and `ray start --address`, one CPU each): a small sweep joins it with ray.address and
its hospital workers run on both nodes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "cluster"))
from two_nodes import auth_env, two_node_cluster  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


def test_a_sweep_on_two_nodes_places_hospitals_on_both(tmp_path):
    sweep = tmp_path / "sweep"
    with two_node_cluster(cpus_per_node=1) as address:
        proc = subprocess.run(
            [sys.executable, "-m", "fedray", "-m", f"ray.address={address}", "seed=0,1",
             "dataset=synthetic", "partition=iid", "num_clients=4", "num_rounds=2",
             "dataset.num_records=400", "progress=false", f"hydra.sweep.dir={sweep}"],
            cwd=tmp_path, env=auth_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summaries = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/summary.json"))]
    assert len(summaries) == 2
    for summary in summaries:
        hosted = summary["nodes"]
        # both nodes host hospitals (two distinct Ray node ids, the same in both runs)
        assert len(hosted) == 2 and set(hosted) == set(summaries[0]["nodes"])
        assert all(len(node) == 56 and int(node, 16) >= 0 for node in hosted)
        assert sorted(h for names in hosted.values() for h in names) == sorted(
            summary["per_client_accuracy"])
    assert [s["warm_workers"] for s in summaries] == [False, True]
    print("hospitals per node:", {node[:12]: names for node, names
                                  in summaries[0]["nodes"].items()})

"""A sweep's table and plots, from run directories written by hand (no Ray)."""

import json

import pandas as pd

from fedray.config import SimulationConfig, config_to_dict
from fedray.outputs.collect import gather
from fedray.sweep import record_failure


def _summary(clients, epsilon, alpha, accuracy):
    config = config_to_dict(SimulationConfig())
    config["num_clients"] = clients
    config["partition"].update(name="dirichlet", alpha=alpha)
    if epsilon is not None:
        config["privacy"].update(name="local", epsilon=epsilon)
    return {"config": config, "clients": [{"name": f"h{i}"} for i in range(clients)],
            "accuracy": accuracy, "worst_client_accuracy": accuracy / 2, "epsilon": epsilon,
            "warm_workers": True}


def test_gather_writes_rows_for_failures_and_plots_only_what_varies(tmp_path):
    job = 0
    for clients in (4, 8):
        for epsilon in (1.0, None):
            run = tmp_path / f"{job}_run"
            run.mkdir()
            (run / "summary.json").write_text(json.dumps(
                _summary(clients, epsilon, 0.1, 0.5 + clients / 100)))
            job += 1
    failing = config_to_dict(SimulationConfig())
    failing["num_clients"] = 1000
    record_failure(str(tmp_path / f"{job}_run"), failing, ValueError("num_clients=1000: too many"))
    table, files = gather(tmp_path)
    assert len(table) == 5
    assert table["status"].tolist() == ["ok"] * 4 + ["failed"]
    assert table["error"].iloc[-1] == "ValueError: num_clients=1000: too many"
    assert table["epsilon"].tolist()[:4] == [1.0, "none", 1.0, "none"]
    assert table["heterogeneity"].iloc[0] == "α=0.1"
    columns = list(table.columns)
    swept = columns[:columns.index("hospitals")]  # swept keys lead, then the labels
    assert {"num_clients", "privacy.name", "privacy.epsilon"} <= set(swept)
    assert "seed" not in swept
    assert {f.name for f in files} == {"runs.csv", "runs.parquet", "accuracy_vs_epsilon.png",
                                       "accuracy_vs_hospitals.png",
                                       "worst_hospital_accuracy.png"}
    assert len(pd.read_parquet(tmp_path / "runs.parquet")) == 5


def test_a_sweep_over_one_axis_draws_only_its_plot(tmp_path):
    for job, epsilon in enumerate((1.0, 8.0)):
        run = tmp_path / f"{job}_run"
        run.mkdir()
        (run / "summary.json").write_text(json.dumps(_summary(4, epsilon, 0.5, 0.6)))
    _, files = gather(tmp_path)
    assert [f.name for f in files if f.suffix == ".png"] == ["accuracy_vs_epsilon.png"]

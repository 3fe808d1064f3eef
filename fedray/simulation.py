"""``simulate``: one run, from a validated config to its outputs.

This module stays light (no torch): start-up overlaps its two longest parts. Ray
starts in the calling thread while a planner thread imports torch and plans the run
(hospitals, privacy, the round-0 model), and the hospital workers Ray starts import
torch meanwhile. A plan the data cannot give stops Ray again with its one-line error
(the config's own checks run before any of this). At the end the outputs are written
while Ray shuts down.
"""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fedray.config import ConfigError, SimulationConfig
from fedray.runtime.pool import POOL, WorkerShape, actor_count
from fedray.runtime.session import check_address, ray_session


@dataclass(frozen=True)
class Result:
    summary: dict[str, Any]
    metrics: Any  # pandas.DataFrame: round, client, split, metric, value
    global_vector: np.ndarray
    output_dir: Path | None

    @property
    def accuracy(self) -> float:
        return self.summary["accuracy"]

    @property
    def mean_client_accuracy(self) -> float:
        return self.summary["mean_client_accuracy"]


def simulate(config: SimulationConfig) -> Result:
    """Runs one federated simulation and, if ``config.output_dir`` is set, writes
    metrics.csv, summary.json and accuracy.png there."""
    wall_start, started_at = time.perf_counter(), time.time()
    resume = None
    if config.resume is not None:
        from fedray.checkpoint import load_for_resume
        from fedray.config import config_from_dict

        resume = load_for_resume(config.resume)
        # The run as it was configured; where it runs (ray.*) and its progress bar may
        # change, and it goes on writing into its own directory.
        # (The CLI refuses other settings beside resume=; a library caller's are unused.)
        config = dataclasses.replace(config_from_dict(resume["config"]), ray=config.ray,
                                     progress=config.progress, resume=config.resume,
                                     output_dir=config.resume)
    if config.checkpoint_every and config.output_dir is None:  # (the CLI always sets it)
        raise ConfigError("checkpoint_every", config.checkpoint_every, "needs output_dir: "
                          "checkpoints go to <output_dir>/checkpoints")
    check_address(config.ray)  # an address nothing answers at fails before any work
    if config.dataset.name == "heart_disease":  # so does a missing data file
        from fedray.data.heart_disease import check_available

        check_available()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fedray-planner") as planner:
        prepared = planner.submit(_prepare, config)
        with ray_session(config.ray) as cluster:
            if prepared.done():
                prepared.result()  # a plan that failed already: its error, no workers
            # An estimate (natural partitions choose their own count); the run takes
            # these workers if it needs no more of them.
            POOL.prestart(WorkerShape(config.ray.num_cpus_per_actor,
                                      config.ray.num_gpus_per_actor),
                          actor_count(config, cluster, config.num_clients))
            planned = prepared.result()
            from fedray.orchestrator import run_rounds  # the planner has imported it

            try:
                finished = run_rounds(planned, cluster, wall_start, resume)
            except BaseException:
                # Work the failed run sent may still be queued on the workers: the next
                # run starts with fresh ones rather than behind it.
                POOL.discard()
                raise
            # Unix times: runs of a sweep side by side overlap in them.
            finished.summary.update(started_at=started_at, finished_at=time.time())
            out = Path(config.output_dir) if config.output_dir else None
            written = planner.submit(_write, out, finished) if out is not None else None
        if written is not None:
            written.result()
    return Result(summary=finished.summary, metrics=finished.metrics,
                  global_vector=finished.global_vector, output_dir=out)


def _prepare(config: SimulationConfig) -> Any:
    from fedray.orchestrator import prepare  # imports torch: off the calling thread

    return prepare(config)


def _write(out: Path, finished: Any) -> None:
    from fedray.outputs import write_run

    write_run(out, metrics=finished.metrics, summary=finished.summary)

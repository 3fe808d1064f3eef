"""``hydra/launcher=fedray_ray``: a multirun's runs side by side on Ray.

Hydra's basic launcher runs a sweep's runs one after another in one process (they
share Ray and warm workers; fedray's default). On a cluster that leaves most nodes
idle: a run of a few hospitals needs a fraction of it. This launcher joins the
cluster once and runs up to ``max_parallel`` runs at a time: ``max_parallel`` runner
actors each drive runs one after another and keep their warm workers for the next
run. Each run reserves its hospital workers in one placement group
(fedray/runtime/pool.py), so concurrent runs never hold part of what they need and
wait on each other.

    fedray -m hydra/launcher=fedray_ray ray.address=auto +experiment=sweep_grid \
        [hydra.launcher.max_parallel=8]

``max_parallel`` (default: one run per alive node) bounds the runs in flight, and a
run whose ``ray.num_actors`` is unset gets an equal share of the cluster's worker
slots. Why our own launcher and not hydra-ray-launcher 1.2.2 (docs/design.md): that
one starts or joins a cluster but runs the jobs of a sweep one after another, and
pins Ray versions of its own; what fedray needs is small: Hydra's run_job inside a Ray actor.
"""


import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)


@dataclass
class FedrayRayLauncherConf:
    _target_: str = "hydra_plugins.fedray_launcher.fedray_launcher.FedrayRayLauncher"
    max_parallel: int | None = None  # runs in flight; None: one per alive Ray node


ConfigStore.instance().store(group="hydra/launcher", name="fedray_ray",
                             node=FedrayRayLauncherConf, provider="fedray")


class FedrayRayLauncher(Launcher):
    def __init__(self, max_parallel: int | None = None) -> None:
        super().__init__()
        self.max_parallel = max_parallel
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
               ) -> Sequence[JobReturn]:
        import ray

        assert self.config is not None and self.hydra_context is not None
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        _join(self.config)
        parallel = self.max_parallel or max(1, sum(n["Alive"] for n in ray.nodes()))
        share = _actors_per_run(self.config, parallel)
        log.info(f"Launching {len(job_overrides)} jobs on Ray, up to {parallel} at a time"
                 f" ({share} hospital workers each unless ray.num_actors is set)")
        # One long-lived runner per slot: a runner drives its runs one after another and
        # keeps their workers (and their placement group) warm in its own process, so the
        # reservations in flight never exceed max_parallel runs' shares.
        runner_class = ray.remote(num_cpus=0)(SweepRunner)  # a run's driver holds no CPU
        runners = [runner_class.remote() for _ in range(min(parallel, len(job_overrides)))]
        free = list(runners)
        pending: dict[Any, tuple[int, Any]] = {}
        results: dict[int, JobReturn] = {}
        configs: dict[int, DictConfig] = {}
        try:
            for offset, overrides in enumerate(job_overrides):
                idx = initial_job_idx + offset
                if not free:
                    free.append(_settle(ray, pending, results, configs))
                log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
                config = self.hydra_context.config_loader.load_sweep_config(
                    self.config, list(overrides))
                with open_dict(config):
                    config.hydra.job.id = idx
                    config.hydra.job.num = idx
                    if config.ray.num_actors is None:
                        config.ray.num_actors = share
                configs[idx] = config
                runner = free.pop()
                pending[runner.run.remote(self.hydra_context, self.task_function, config)] = (
                    idx, runner)
            while pending:
                _settle(ray, pending, results, configs)
        finally:
            # Placement groups live as long as the sweep's driver: release them first.
            with contextlib.suppress(ray.exceptions.RayError):
                ray.get([r.release.remote() for r in runners], timeout=60)
            for runner in runners:
                ray.kill(runner)
        return [results[initial_job_idx + i] for i in range(len(job_overrides))]


class SweepRunner:
    """A Ray actor that drives runs of a sweep, one at a time, in its own process."""

    def run(self, hydra_context: HydraContext, task_function: TaskFunction,
            config: DictConfig) -> JobReturn:
        return _run_job(hydra_context, task_function, config)

    def release(self) -> None:
        from fedray.runtime.pool import POOL

        POOL.discard()


def _settle(ray: Any, pending: dict[Any, tuple[int, Any]], results: dict[int, JobReturn],
            configs: dict[int, DictConfig]) -> Any:
    """Waits for one run in flight to end, keeps its JobReturn; returns its runner."""
    [done], _ = ray.wait(list(pending), num_returns=1)
    idx, runner = pending.pop(done)
    try:
        results[idx] = ray.get(done)
    except ray.exceptions.RayError as err:  # the runner itself died: a row, not a gap
        results[idx] = _failed(configs[idx], err)
    return runner


def _run_job(hydra_context: HydraContext, task_function: TaskFunction,
             config: DictConfig) -> JobReturn:
    """In the runner's process: what Hydra's basic launcher does for one run."""
    from hydra.core.utils import run_job

    setup_globals()
    return run_job(hydra_context=hydra_context, task_function=task_function, config=config,
                   job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")


def _join(config: DictConfig) -> None:
    import ray

    from fedray.config import RayConfig
    from fedray.runtime.session import start_or_join

    if not ray.is_initialized():
        start_or_join(RayConfig(**OmegaConf.to_container(config.ray, resolve=True)))


def _actors_per_run(config: DictConfig, parallel: int) -> int:
    import ray

    slots = int(ray.cluster_resources().get("CPU", 1) // float(config.ray.num_cpus_per_actor))
    return max(1, slots // parallel)


def _failed(config: DictConfig, err: Exception) -> JobReturn:
    from fedray.sweep import record_failure

    run_dir = Path(str(config.hydra.sweep.dir)) / str(config.hydra.sweep.subdir)
    values = OmegaConf.to_container(config, resolve=False)
    values.pop("hydra", None)  # type: ignore[union-attr]
    record_failure(str(run_dir), values, err)  # type: ignore[arg-type]
    ret = JobReturn()
    ret.status, ret.return_value = JobStatus.COMPLETED, float("nan")
    ret.overrides = []
    return ret


__all__: list[str] = ["FedrayRayLauncher", "FedrayRayLauncherConf", "SweepRunner"]

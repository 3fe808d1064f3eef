"""GPU placement check, for a machine with a CUDA GPU (not run in CI).

Two hospital actors share one GPU through fractional `ray.num_gpus_per_actor=0.5`;
each must train on CUDA, and the final model must match a CPU run of the same seed
up to float rounding.

    python benchmarks/gpu_check.py
"""

from __future__ import annotations

import logging
import time

import numpy as np
import ray
import torch

from fedray import (
    DatasetConfig,
    ModelConfig,
    PartitionConfig,
    RayConfig,
    SimulationConfig,
    simulate,
)


def config(gpus_per_actor: float) -> SimulationConfig:
    return SimulationConfig(
        dataset=DatasetConfig(name="synthetic", num_records=4000),
        partition=PartitionConfig(name="dirichlet", alpha=0.5),
        model=ModelConfig(name="mlp", hidden=64), num_clients=20, num_rounds=5,
        lr=0.05, progress=False,
        ray=RayConfig(num_actors=2, num_cpus_per_actor=1, num_gpus_per_actor=gpus_per_actor),
    )


def main() -> None:
    print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}, "
          f"device: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-'}")
    ray.init(address="local", num_cpus=4, include_dashboard=False,
             logging_level=logging.WARNING)
    print(f"Ray resources: {ray.cluster_resources()}")
    results = {}
    for gpus in (0.5, 0.0):
        start = time.perf_counter()
        result = simulate(config(gpus))
        results[gpus] = result
        print(f"num_gpus_per_actor={gpus}: devices={result.summary['devices']} "
              f"accuracy={result.accuracy:.4f} wall={time.perf_counter() - start:.1f}s")
    ray.shutdown()
    gpu, cpu = results[0.5], results[0.0]
    assert gpu.summary["devices"] == ["cuda", "cuda"], gpu.summary["devices"]
    assert cpu.summary["devices"] == ["cpu", "cpu"], cpu.summary["devices"]
    gap = float(np.max(np.abs(gpu.global_vector - cpu.global_vector)))
    print(f"max |w_gpu - w_cpu| = {gap:.2e}")
    assert gap < 1e-3, gap
    print("GPU CHECK PASSED")


if __name__ == "__main__":
    main()

import logging
import os
from typing import Any

import pytest
from hypothesis import settings

from fedray.config import DatasetConfig, PartitionConfig, SimulationConfig

# CI replays the same examples every run (derandomised): a case hypothesis finds
# locally becomes an @example and a fix, never a failure that comes and goes.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def synthetic_config(*, num_records: int | None = None, **overrides: Any) -> SimulationConfig:
    """A small synthetic federation: ``num_records`` (600) synthetic records split iid,
    no progress bar, everything else ``SimulationConfig``'s defaults. Any field overrides
    by keyword, a section as its dataclass: ``synthetic_config(num_records=800,
    num_clients=3, privacy=PrivacyConfig(name="local", epsilon=4.0))``."""
    if num_records is not None and "dataset" in overrides:
        raise TypeError("give num_records or dataset, not both")
    base: dict[str, Any] = dict(
        dataset=DatasetConfig(name="synthetic",
                              num_records=600 if num_records is None else num_records),
        partition=PartitionConfig(name="iid"), progress=False)
    return SimulationConfig(**{**base, **overrides})


@pytest.fixture(scope="session")
def ray_local():
    """One real local Ray instance for the whole test session."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False,
             logging_level=logging.WARNING)
    yield ray
    ray.shutdown()


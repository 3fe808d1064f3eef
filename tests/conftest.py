import logging
import os

import pytest
from hypothesis import settings

# CI replays the same examples every run (derandomised): a case hypothesis finds
# locally becomes an @example and a fix, never a failure that comes and goes.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def ray_local():
    """One real local Ray instance for the whole test session."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False,
             logging_level=logging.WARNING)
    yield ray
    ray.shutdown()

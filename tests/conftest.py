import logging

import pytest


@pytest.fixture(scope="session")
def ray_local():
    """One real local Ray instance for the whole test session."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False,
             logging_level=logging.WARNING)
    yield ray
    ray.shutdown()

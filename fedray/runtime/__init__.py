"""Everything that imports Ray lives here."""

from fedray.runtime.actors import (
    AggregatorWorker, HospitalWorker, actor_count, assign_hospitals, make_actors,
)
from fedray.runtime.session import ray_session

__all__ = [
    "AggregatorWorker", "HospitalWorker", "actor_count", "assign_hospitals", "make_actors",
    "ray_session",
]

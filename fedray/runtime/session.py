"""Starting, joining and leaving Ray.

``ray.init()`` with no address joins whatever cluster another program left running
on this machine; fedray's ``ray.address: null`` means a fresh private instance, so it
passes ``address="local"``.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Iterator

import ray

from fedray.config import RayConfig

log = logging.getLogger(__name__)


@contextmanager
def ray_session(config: RayConfig) -> Iterator[dict[str, float]]:
    """Yields the cluster's resources; shuts Ray down afterwards unless the caller had
    already initialised it (then the caller owns its lifetime)."""
    owned = not ray.is_initialized()
    if owned:
        # Actors size torch's threads themselves; stop Ray's worker env forcing 1.
        os.environ.setdefault("RAY_DEDUP_LOGS", "1")
        kwargs = dict(
            include_dashboard=False, logging_level=logging.WARNING, log_to_driver=True,
            configure_logging=True,
        )
        if config.address is None:
            ray.init(address="local", num_cpus=config.num_cpus, **kwargs)
        else:
            ray.init(address=config.address, **kwargs)
    try:
        yield ray.cluster_resources()
    finally:
        if owned:
            ray.shutdown()

"""Starting, joining and leaving Ray.

``ray.init()`` with no address joins whatever cluster another program left running
on this machine; fedray's ``ray.address: null`` means a fresh private instance, so it
passes ``address="local"``. A multirun keeps the Ray it started for its next run
(:func:`keep_ray_between_runs`); Ray's own exit hook stops it with the process.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ray

from fedray.config import ConfigError, RayConfig, first_line
from fedray.runtime.pool import POOL

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
_keep_ray = False
_kept: RayConfig | None = None  # what the Ray a multirun keeps was started with


def keep_ray_between_runs() -> None:
    """Runs after this one reuse this process's Ray and its warm workers."""
    global _keep_ray
    _keep_ray = True


def start_or_join(config: RayConfig) -> None:
    """Starts a fresh local Ray (``address`` null) or joins the cluster at ``address``;
    an address nothing answers at is a one-line ConfigError within seconds."""
    # Actors size torch's threads themselves; stop Ray's worker env forcing 1.
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    kwargs: dict[str, Any] = dict(
        include_dashboard=False, logging_level=logging.WARNING, log_to_driver=True,
        configure_logging=True,
    )
    if config.address is None:
        ray.init(address="local", num_cpus=config.num_cpus, **kwargs)
        return
    check_address(config)
    try:
        ray.init(address=config.address, **kwargs)
    except ConnectionError as err:
        raise ConfigError("ray.address", config.address,
                          f"no Ray cluster to join ({first_line(err)}); start one with "
                          "`ray start --head`, or use null for a local Ray") from None


@contextmanager
def ray_session(config: RayConfig) -> Iterator[dict[str, float]]:
    """Yields the cluster's resources; shuts Ray down afterwards unless the caller had
    already initialised it (then the caller owns its lifetime: a test session, a sweep
    task, a script) or a multirun keeps it for its next run."""
    global _kept
    if ray.is_initialized() and _kept is not None and _where(_kept) != _where(config):
        # A multirun that sweeps ray.address or ray.num_cpus: this run needs another Ray.
        POOL.discard()
        ray.shutdown()
        _kept = None
    owned = not ray.is_initialized()
    if owned:
        start_or_join(config)
        if _keep_ray:
            _kept = config
    try:
        yield ray.cluster_resources()
    finally:
        if owned and not _keep_ray:
            POOL.discard()
            ray.shutdown()


def _where(config: RayConfig) -> tuple[str | None, int | None]:
    return config.address, config.num_cpus


def check_address(config: RayConfig) -> None:
    """A host:port that nothing answers fails here in seconds, not after Ray's minutes
    of retries."""
    if config.address is None or ray.is_initialized():
        return
    address = config.address
    host_port = _host_port(address)
    if host_port is None:
        return  # "auto" or ray://: Ray resolves those and fails fast itself
    try:
        socket.create_connection(host_port, timeout=CONNECT_TIMEOUT_S).close()
    except OSError as err:
        raise ConfigError("ray.address", address,
                          f"nothing answers at {host_port[0]}:{host_port[1]} ({err}); give "
                          "the head node's GCS address (ray start --head prints it), 'auto' "
                          "or null for a local Ray") from None


def _host_port(address: str) -> tuple[str, int] | None:
    if address == "auto" or "://" in address:
        return None
    host, _, port = address.rpartition(":")  # RayConfig checked the host:port form
    return host, int(port)

"""A real two-node Ray cluster on one machine, for trying (and testing) fedray on a
cluster without one: a head node (`ray start --head`) and a worker node (`ray start
--address …`), each with its own CPUs and a custom resource naming it, both on the
loopback address.

    .venv/bin/python cluster/two_nodes.py [--cpus-per-node 1] [--port 6390]

prints the address to give fedray (`ray.address=127.0.0.1:PORT`) and keeps the cluster
up until Ctrl-C. Ray 2.60 clusters started by `ray start` authenticate with a token
(~/.ray/auth_token, made here if missing); a driver joins with RAY_AUTH_MODE=token
in its environment, which this script prints too.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

LOOPBACK = "127.0.0.1"
NODE_RESOURCES = ("fedray_head_node", "fedray_worker_node")


def _ray() -> str:
    beside = Path(sys.executable).with_name("ray")
    return str(beside) if beside.exists() else (shutil.which("ray") or "ray")


def auth_env() -> dict[str, str]:
    """The environment a process needs to start or join the cluster."""
    return {**os.environ, "RAY_AUTH_MODE": "token"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _node(args: list[str], log: Path) -> subprocess.Popen:
    # --block keeps `ray start` in the foreground: ending it (SIGTERM) stops that node's
    # processes and no other Ray on the machine (`ray stop` would stop them all).
    return subprocess.Popen([_ray(), "start", "--block", "--disable-usage-stats", *args],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, env=auth_env(),
                            start_new_session=True)


def _wait_for_nodes(address: str, count: int, timeout: float) -> None:
    probe = ("import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
             "print(sum(n['Alive'] for n in ray.nodes()))")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            out = subprocess.run([sys.executable, "-c", probe, address], env=auth_env(),
                                 capture_output=True, text=True, timeout=30).stdout
        except subprocess.TimeoutExpired:
            out = ""
        if out.strip().splitlines()[-1:] == [str(count)]:
            return
        time.sleep(1)
    raise TimeoutError(f"the two-node cluster at {address} did not come up in {timeout:.0f} s")


@contextmanager
def two_node_cluster(cpus_per_node: int = 1, port: int | None = None,
                     timeout: float = 90) -> Iterator[str]:
    """Starts the cluster, yields its address, stops both nodes afterwards."""
    port = port or _free_port()
    address = f"{LOOPBACK}:{port}"
    logs = Path(tempfile.mkdtemp(prefix="fedray-two-nodes-"))
    subprocess.run([_ray(), "get-auth-token", "--generate"], env=auth_env(),
                   capture_output=True, timeout=60)  # a no-op when the token exists
    nodes = [_node(["--head", f"--node-ip-address={LOOPBACK}", f"--port={port}",
                    f"--num-cpus={cpus_per_node}", "--include-dashboard=false",
                    f'--resources={{"{NODE_RESOURCES[0]}": 1}}'], logs / "head.log")]
    try:
        _wait_for_nodes(address, 1, timeout)
        nodes.append(_node([f"--address={address}", f"--node-ip-address={LOOPBACK}",
                            f"--num-cpus={cpus_per_node}",
                            f'--resources={{"{NODE_RESOURCES[1]}": 1}}'], logs / "worker.log"))
        _wait_for_nodes(address, 2, timeout)
        yield address
    finally:
        # Each node's processes share its session's process group: end them together.
        for node in reversed(nodes):
            _signal_group(node, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for node in nodes:
            try:
                node.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(node, signal.SIGKILL)


def _signal_group(node: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(node.pid, signum)
    except ProcessLookupError:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpus-per-node", type=int, default=1)
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args()
    with two_node_cluster(args.cpus_per_node, args.port) as address:
        print(f"two-node Ray cluster up at {address}; try:\n"
              f"  RAY_AUTH_MODE=token .venv/bin/fedray ray.address={address} "
              "dataset=synthetic partition=iid num_clients=8\n(Ctrl-C stops both nodes)",
              flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()

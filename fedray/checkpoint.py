"""Checkpoints: a run's whole state after round k, written atomically, read back exactly.

A checkpoint holds what the next round needs and nothing it can recompute: the config,
the broadcast (global vector and strategy extras), the aggregator's state (server
moments, control variate, central-DP noise stream), every hospital's state (its
generators, ledger, strategy state, optimiser state), the driver's sampling stream,
the run's own ledger and the record of rounds so far. Pickle, because the states hold
torch generator states and numpy arrays; a checkpoint is fedray's own file, never a
result (results are metrics.csv and summary.json).
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Optional

from fedray.config import ConfigError

FOLDER = "checkpoints"


def write_checkpoint(run_dir: Path, round_: int, state: dict[str, Any]) -> Path:
    """Writes ``checkpoints/round_<k>.pkl`` so that a reader sees the whole file or none
    (a temporary file in the same folder, flushed to disk, then renamed over)."""
    folder = Path(run_dir) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"round_{round_:06d}.pkl"
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".writing-")
    try:
        with os.fdopen(handle, "wb") as out:
            pickle.dump(state, out, protocol=pickle.HIGHEST_PROTOCOL)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def latest_checkpoint(run_dir: Path) -> Optional[dict[str, Any]]:
    """The state of the last complete checkpoint in ``run_dir``, or None when it has none
    (a file that does not read back whole, e.g. cut by a full disk, is skipped)."""
    folder = Path(run_dir) / FOLDER
    for path in sorted(folder.glob("round_*.pkl"), reverse=True):
        try:
            with path.open("rb") as handle:
                return pickle.load(handle)
        except (EOFError, pickle.UnpicklingError):
            continue
    return None


def load_for_resume(run_dir: str) -> dict[str, Any]:
    state = latest_checkpoint(Path(run_dir)) if Path(run_dir).is_dir() else None
    if state is None:
        raise ConfigError("resume", run_dir, f"is not a run directory with a complete "
                          f"{FOLDER}/round_*.pkl (a run with checkpoint_every=k writes them)")
    return state

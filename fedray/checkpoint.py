"""Checkpoints: a run's whole state after round k, written atomically, read back exactly.

What a checkpoint holds is fedray/orchestrator/snapshot.py's: plain data only (dicts,
lists, strings, numbers, numpy arrays). It is pickled, and read back by an unpickler
that builds nothing else, so a checkpoint never carries a live object (nor runs code
when read); one written before the orchestrator's split (format 1, live objects) is
refused in one line. A checkpoint is fedray's own file, never a result (results are
metrics.csv and summary.json).
"""

from __future__ import annotations

import io
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

from fedray.config import ConfigError

FOLDER = "checkpoints"
FORMAT = 2  # the snapshot format this fedray writes and reads

# What a plain-data checkpoint may build besides builtins' containers and numbers:
# numpy's arrays, dtypes and scalars.
_ALLOWED = {
    ("builtins", "complex"), ("builtins", "frozenset"), ("builtins", "set"),
    ("builtins", "slice"), ("numpy", "dtype"), ("numpy", "ndarray"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
}


class NotPlainData(pickle.UnpicklingError):
    """The checkpoint holds an object that is not plain data (an older format)."""


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED or (module == "numpy" and name.endswith("DType")) \
                or module == "numpy.dtypes":
            return super().find_class(module, name)
        raise NotPlainData(f"{module}.{name}")


def loads_plain(data: bytes) -> Any:
    """Unpickles plain data only; anything else raises :class:`NotPlainData`."""
    return _PlainUnpickler(io.BytesIO(data)).load()


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


def latest_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    """The state of the last complete checkpoint in ``run_dir``, or None when it has none
    (a file that does not read back whole, e.g. cut by a full disk, is skipped). Raises
    :class:`NotPlainData` for a checkpoint that holds live objects."""
    folder = Path(run_dir) / FOLDER
    for path in sorted(folder.glob("round_*.pkl"), reverse=True):
        try:
            state = loads_plain(path.read_bytes())
        except NotPlainData:
            raise
        except (EOFError, pickle.UnpicklingError):
            continue
        return state
    return None


def load_for_resume(run_dir: str) -> dict[str, Any]:
    try:
        state = latest_checkpoint(Path(run_dir)) if Path(run_dir).is_dir() else None
    except NotPlainData as err:
        raise ConfigError("resume", run_dir, f"its checkpoint holds live objects ({err}), the "
                          "format fedray wrote before version 2; run it again from the "
                          "start") from None
    if state is None:
        raise ConfigError("resume", run_dir, f"is not a run directory with a complete "
                          f"{FOLDER}/round_*.pkl (a run with checkpoint_every=k writes them)")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format", 1) if isinstance(state, dict) else "unknown"
        raise ConfigError("resume", run_dir, f"its checkpoint has format {found}; this "
                          f"fedray reads format {FORMAT}; run it again from the start")
    return state

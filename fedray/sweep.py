"""What a multirun adds to its runs: a record of each failed run, and one table with
its plots when the sweep ends (a Hydra callback, named in conf/config.yaml)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from fedray.config import first_line
from fedray.outputs import ERROR_FILE


def record_failure(run_dir: str, values: dict[str, Any], err: BaseException) -> Path:
    """error.json in the run's directory: the config as composed and the one-line error,
    so the sweep's table has a row for the run instead of a gap."""
    directory = Path(run_dir)
    directory.mkdir(parents=True, exist_ok=True)
    message = first_line(err, default="")
    path = directory / ERROR_FILE
    path.write_text(json.dumps({"type": type(err).__name__, "message": message,
                                "config": values}, indent=2, default=str) + "\n")
    return path


class GatherSweep(Callback):
    """At the end of a multirun: runs.csv, runs.parquet and the sweep plots in the
    sweep directory; exits non-zero when any run failed (after all of them ran)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from fedray.outputs.collect import gather

        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            table, files = gather(sweep_dir)
        except FileNotFoundError:
            return  # no run got as far as its directory
        failed = int((table["status"] == "failed").sum())
        print(f"fedray: sweep of {len(table)} runs gathered: "
              + ", ".join(str(f) for f in files), flush=True)
        if failed:
            print(f"fedray: error: {failed} of {len(table)} runs failed; their errors are "
                  f"in {files[0]}", file=sys.stderr, flush=True)
            sys.exit(1)

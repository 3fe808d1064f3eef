"""The side virtualenvs the comparison benchmarks run other frameworks in, each made on
first use beside .venv: Flower pins its own Ray, and pfl pins packaging and dp-accounting
below fedray's lock, so neither can share fedray's environment.

torch is pinned to constraints.txt's version: on these machines pip's configured
find-links hold the matching CPU build, which pip prefers (2.13.0+cpu sorts above
2.13.0), so no side venv pulls the multi-GB CUDA build.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TORCH_PIN = "torch==2.13.0"  # constraints.txt's torch


@dataclass(frozen=True)
class SideVenv:
    """A virtualenv at ``path`` holding exactly ``pins`` (and what they pull in)."""

    path: Path
    pins: tuple[str, ...]

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def _stamp(self) -> Path:
        return self.path / ".pins"


FLOWER = SideVenv(ROOT / ".venv-flower", ("flwr[simulation]==1.42.0", TORCH_PIN))
PFL = SideVenv(ROOT / ".venv-pfl", ("pfl[pytorch]==0.6.0", TORCH_PIN))


def ensure(venv: SideVenv) -> Path:
    """The venv's python, making the venv first if it is missing or holds other pins;
    raises CalledProcessError when pip cannot install them (no network, say)."""
    wanted = " ".join(venv.pins)
    # The stamp is written last, so an install cut short is redone next time.
    if venv.python.exists() and venv._stamp.exists() and venv._stamp.read_text() == wanted:
        return venv.python
    print(f"making {venv.path.name} ({wanted}; a few minutes, once)", flush=True)
    if not venv.python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv.path)], check=True)
    subprocess.run([str(venv.python), "-m", "pip", "install", "-q",
                    "--disable-pip-version-check", *venv.pins], check=True)
    venv._stamp.write_text(wanted)
    return venv.python


def try_ensure(venv: SideVenv) -> Path | None:
    """Like ``ensure``, but a venv that cannot be made is a one-line message and None."""
    try:
        return ensure(venv)
    except (subprocess.CalledProcessError, OSError) as error:
        print(f"skipping {venv.path.name}: could not install {' '.join(venv.pins)} "
              f"({error})", flush=True)
        return None

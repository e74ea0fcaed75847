"""NAB series in one place: a NAB-format CSV with its labelled windows, and the pinned
machine-temperature series (local copy or pinned download).

Numenta Anomaly Benchmark (numenta/NAB, MIT license, Copyright 2014-2024 Numenta Inc.),
series realKnownCause/machine_temperature_system_failure.csv: 22,695 five-minute readings of
an industrial machine's internal temperature, 4 labelled anomaly windows.

Where the data comes from, first match wins:
1. `data_dir` given to `load_machine_temperature`, or the env var `NAB_DATA_DIR`: a folder
   holding `machine_temperature_system_failure.csv` and the windows json, either
   `machine_temperature_system_failure.windows.json` or NAB's `combined_windows.json`;
2. otherwise the two files are downloaded once from numenta/NAB at the pinned commit into
   the cache folder (`NAB_CACHE_DIR`, default `~/.cache/anomalias/nab`).
The CSV's sha256 is checked against the pinned upstream file in both cases.

Any other NAB-format CSV is read with the windows json NAB keeps beside its data (a key per
file, `<category>/<file>.csv`, as in `labels/combined_windows.json` or the corpus's
`windows.json`), the entry chosen by the CSV's file name.

Rows are indexed by position, never by timestamp: one hour (2014-01-07 02:00-02:55)
appears twice in the machine-temperature CSV.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import math
import os
import statistics
import urllib.request
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from shared.timestamps import iso_to_ms

from .scoring import check_windows, windows_to_rows

UPSTREAM_REPO = "numenta/NAB"
UPSTREAM_COMMIT = "ea702d75cc2258d9d7dd35ca8e5e2539d71f3140"
SERIES = "realKnownCause/machine_temperature_system_failure.csv"
CSV_NAME = "machine_temperature_system_failure.csv"
WINDOWS_NAMES = ("machine_temperature_system_failure.windows.json", "combined_windows.json")
CSV_SHA256 = "92bf5b87fc7f9bba8ca0b7ec63ccaac8cb4a1371a258e8c29a10ae9c018d82a4"
_RAW = f"https://raw.githubusercontent.com/{UPSTREAM_REPO}/{UPSTREAM_COMMIT}"
CSV_URL = f"{_RAW}/data/{SERIES}"
WINDOWS_URL = f"{_RAW}/labels/combined_windows.json"
N_ROWS = 22695


class NabDataError(RuntimeError):
    """The NAB data is missing, unreadable or not the pinned file."""


@dataclass(frozen=True)
class NabSeries:
    name: str                          # its key in the windows json, <category>/<file>.csv
    timestamps: list[str]              # as in the file (may repeat)
    values: np.ndarray                 # float64, one per row, in file order
    windows: list[tuple[int, int]]     # labelled windows as inclusive row-index pairs
    window_timestamps: list[tuple[str, str]]
    csv_path: Path
    sha256: str

    def __len__(self) -> int:
        return len(self.values)

    @cached_property
    def step_ms(self) -> int:
        """The median spacing of the file's increasing timestamps (for captions)."""
        times = [iso_to_ms(t) for t in self.timestamps]
        steps = [b - a for a, b in itertools.pairwise(times) if b > a]
        return int(statistics.median(steps)) if steps else 0

    def stream_timestamps(self) -> list[int]:
        """The file's own timestamps (ms), each at least 1 ms after the one before: a sensor
        never holds two readings at one timestamp and detectar judges readings in order, so
        a repeated or earlier timestamp moves just past the one before it."""
        out: list[int] = []
        for text in self.timestamps:
            moment = iso_to_ms(text)
            out.append(moment if not out or moment > out[-1] else out[-1] + 1)
        return out


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_csv(path: str | Path) -> tuple[list[str], np.ndarray]:
    """A NAB-format CSV (`timestamp,value`) -> (timestamps, values float64), file order."""
    path = Path(path)
    timestamps: list[str] = []
    values: list[float] = []
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None or [h.strip() for h in header[:2]] != ["timestamp", "value"]:
                raise NabDataError(f"{path}: expected the header 'timestamp,value', got {header!r}")
            for line, row in enumerate(reader, start=2):
                if not row:
                    continue
                try:
                    iso_to_ms(row[0])
                    value = float(row[1])
                except (ValueError, IndexError) as exc:
                    raise NabDataError(f"{path}:{line}: not 'timestamp,value': {row!r}") from exc
                if not math.isfinite(value):  # float() takes nan/inf; no detector can judge them
                    raise NabDataError(f"{path}:{line}: value {row[1]!r} is not a finite number")
                values.append(value)
                timestamps.append(row[0])
    except OSError as exc:
        raise NabDataError(f"{path}: cannot read it: {exc}") from exc
    return timestamps, np.asarray(values, dtype=np.float64)


def windows_beside(csv_path: str | Path) -> Path | None:
    """The windows json NAB-style data keeps beside a CSV: `<name>.windows.json`, else
    `windows.json` or `combined_windows.json` (a key per file); None when there is none."""
    csv_path = Path(csv_path)
    for name in (f"{csv_path.stem}.windows.json", "windows.json", "combined_windows.json"):
        for folder in (csv_path.parent, csv_path.parent.parent):
            if (folder / name).is_file():
                return folder / name
    return None


def _series_key(data: dict, path: Path, csv_path: Path, series: str | None) -> str:
    """Which entry belongs to the CSV: `series`, else the entry whose file name is the CSV's,
    else the only entry."""
    if series is not None:
        if series not in data:
            raise NabDataError(f"{path}: no windows for {series!r}")
        return series
    named = [key for key in data if Path(key).name == csv_path.name]
    if len(named) == 1:
        return named[0]
    if len(data) == 1:
        return next(iter(data))
    raise NabDataError(f"{path}: no entry named like {csv_path.name} among several series; "
                       "name one with --series")


def read_windows_file(path: str | Path) -> dict:
    """A NAB windows json: an object of `<category>/<file>.csv` -> [[start, end], ...]."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NabDataError(f"{path}: cannot read it as JSON: {exc}") from exc
    if not isinstance(data, dict) or not data:
        raise NabDataError(f"{path}: expected an object of series -> windows")
    return data


def load_windows(path: str | Path, csv_path: str | Path,
                 series: str | None = None) -> tuple[str, list[tuple[str, str]]]:
    """The series' key and its labelled windows in a NAB windows json (see `_series_key`)."""
    path = Path(path)
    data = read_windows_file(path)
    series = _series_key(data, path, Path(csv_path), series)
    windows = data[series]
    if not isinstance(windows, list) or not all(
            isinstance(w, list) and len(w) == 2 and all(isinstance(t, str) for t in w)
            for w in windows):
        raise NabDataError(f"{path}: windows of {series!r} must be [start, end] timestamp pairs")
    return series, [(start, end) for start, end in windows]


def load_series(csv_path: str | Path, windows_path: str | Path, series: str | None = None,
                expected_sha256: str | None = None) -> NabSeries:
    """Load a NAB-format CSV and its windows (the entry `series`, else the one named like
    the CSV); optionally check the CSV's sha256."""
    csv_path = Path(csv_path)
    digest = sha256_of(csv_path) if csv_path.exists() else ""
    if expected_sha256 is not None and digest != expected_sha256:
        raise NabDataError(
            f"{csv_path}: sha256 {digest or '(missing file)'} is not the pinned upstream file's "
            f"{expected_sha256} ({UPSTREAM_REPO}@{UPSTREAM_COMMIT}); delete it and download again, "
            f"or point NAB_DATA_DIR at a good copy")
    timestamps, values = load_csv(csv_path)
    series, window_ts = load_windows(windows_path, csv_path, series)
    try:  # checked here, so a bad window fails before any reading is streamed
        rows = check_windows(len(values), windows_to_rows(timestamps, window_ts))
    except ValueError as exc:
        raise NabDataError(f"{windows_path}: windows of {series!r}: {exc}") from exc
    return NabSeries(series, timestamps, values, rows, window_ts, csv_path, digest)


def cache_dir() -> Path:
    return Path(os.environ.get("NAB_CACHE_DIR") or Path.home() / ".cache" / "anomalias" / "nab")


def download(target: Path | None = None, timeout: float = 60.0) -> Path:
    """Fetch the CSV and combined_windows.json at the pinned commit into `target` (the cache
    folder by default), verify the CSV's sha256 and return the folder. Kept files are reused."""
    target = Path(target) if target is not None else cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    for url, name in ((CSV_URL, CSV_NAME), (WINDOWS_URL, WINDOWS_NAMES[1])):
        path = target / name
        if path.exists():
            continue
        partial = path.with_suffix(path.suffix + ".part")
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
                out.write(response.read())
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise NabDataError(f"cannot download {url}: {exc}; without internet set NAB_DATA_DIR "
                               f"to a folder holding {CSV_NAME} and its windows json") from exc
        partial.replace(path)
    digest = sha256_of(target / CSV_NAME)
    if digest != CSV_SHA256:
        raise NabDataError(f"{target / CSV_NAME}: downloaded file has sha256 {digest}, expected "
                           f"{CSV_SHA256}; delete it and try again")
    return target


def data_dir() -> Path:
    """The folder to read: NAB_DATA_DIR if set, else the download cache (fetched if needed)."""
    local = os.environ.get("NAB_DATA_DIR")
    if local:
        return Path(local)
    return download()


def load_machine_temperature(folder: str | Path | None = None,
                             setting: str = "NAB_DATA_DIR") -> NabSeries:
    """The pinned machine-temperature series with its 4 windows as row-index pairs.
    `setting` is where the user names `folder` (an env var, a CLI option), for the hint."""
    folder = Path(folder) if folder is not None else data_dir()
    csv_path = folder / CSV_NAME
    if not csv_path.exists():
        raise NabDataError(f"{folder}: no {CSV_NAME} (set {setting} to the folder holding it)")
    for name in WINDOWS_NAMES:
        if (folder / name).exists():
            return load_series(csv_path, folder / name, SERIES, expected_sha256=CSV_SHA256)
    raise NabDataError(f"{folder}: no windows json (one of {list(WINDOWS_NAMES)})")

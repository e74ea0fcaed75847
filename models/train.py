"""Train and export the detection model: `python -m models.train [--version N] [--overwrite]`.

What it does (reproducible: fixed seeds, TensorFlow op determinism, CPU):
1. loads the NAB machine-temperature series (models/evaluation/nab.py: NAB_DATA_DIR or the pinned
   download) and keeps ONLY its probationary rows (the first 750): nothing after them, and
   no label, is read by training or calibration;
2. builds the windows of WINDOW previous readings -> next reading from those rows, each window
   standardised by its own mean/std (shared/standardise.py `window_standardize`), so the model is
   blind to a sensor's temperature range and noise level;
3. trains GRU(16) -> Dense(1) to predict the next reading in the window's own units (MSE,
   Adam); the last 15% of the probationary windows (chronological) only stop training early;
4. exports with Keras `model.export()` to models/modelo/<version>/ with model.json (the
   description the runtime reads: scaling, decision rule and its calibration, layers with
   their checkpoint keys, verified by reading the checkpoint back) and writes
   models/models_config/models.config for TF Serving (the files: models/export.py).

The decision rule is `record_events` (shared/rules.py): gross departures from the first
judgement, records of the month's range and of surprise against the sensor's time-of-day
profile after a day, one alert per event; its parameters are durations, one configuration for
every sensor chosen on NAB's corpus (see DECISION and CALIBRATION below), and its statistics
are learned online per sensor.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shared import standardise

from .evaluation import nab
from .export import (
    checkpoint_keys,
    export_saved_model,
    layer_description,
    signature_output,
    write_models_config,
)
from .locations import MODELS_DIR

if TYPE_CHECKING:
    import keras

MODEL_NAME = "modelo"

SEED = 0
WINDOW = 10                 # the runtime's default window: 50 minutes of 5-minute readings
INPUT_ORDER = "oldest_first"  # natural order for a recurrent layer
UNITS = 16                  # smallest size suggested for the embedded engine's budget
TRAIN_ROWS = 750            # NAB probationary period: min(floor(0.15 N), 750) = 750 rows
VALIDATION_FRACTION = 0.15  # last windows of the probationary rows: early stopping only
EPOCHS = 300
PATIENCE = 20
BATCH_SIZE = 32
LEARNING_RATE = 3e-3

SCALING = {"kind": "window_standardize", "std_floor": 1e-3, "std_floor_rel": 1e-3}

# The decision rule (shared/rules.py `record_events`): one configuration for every sensor, each
# time scale a duration, chosen on NAB's 52-file corpus as a whole (models/README.md).
DECISION = {
    "rule": "record_events",
    "threshold": 1.0,             # what flags a learned test: 1 x the margin and the ratios
    "learning_s": 86_400,         # the range and pattern tests learn the sensor for a day
    "error_memory_s": 86_400,     # time constants of the typical errors: a day, and for the
    "error_memory_long_s": 604_800,  # pattern test also a week (the smaller counts)
    "profile_bin_s": 3_600,       # the time-of-day profile's bins: an hour
    "profile_memory_days": 2,     # a bin's mean remembers about two days of that bin
    "fast_s": 3_600,              # the fast surprise average: an hour
    "slow_s": 21_600,             # the slow one: six hours
    "fast_days": 7,               # the fast average's record: the last week
    "slow_days": 14,              # the slow one's: the last two weeks
    "fast_ratio": 1.2,            # flags at 1.2 x its record
    "slow_ratio": 1.0,            # flags at its record
    "range_days": 30,             # the range record: the last month of readings
    "range_margin": 0.01,         # beyond it by 1% of its span
    "gross": 10.0,                # a gross departure: 10 scales beyond the month and the model
    "z_clip": 10.0,               # one reading moves a surprise average by at most this
    "holdoff_s": 43_200,          # an event pages once in 12 hours ...
    "escalation": 4.0,            # ... unless it goes 4 times as far
    "level_floor": 0.001,         # scale floor relative to the level, as the model's scaling
    "min_readings": 6,            # a stuck run is at least this many readings
    "stuck_factor": 4,            # stuck: one value 4 times longer than the sensor ever held one
    "gap_factor": 10,             # a silence: 10 times the sensor's usual cadence
    "record_z": 3,                # a range record pages only 3 typical deviations from normal
}
CALIBRATION = (
    "Per sensor, online and causal; nothing is fitted on labels or on readings not yet seen. "
    "Record events (shared/record_events.py): a gross departure (beyond the sensor's normal "
    "range and away from the model's prediction, both by 10 scales) flags from the first "
    "judgement; after a day of learning, a record of the month's range, leaving out a day whose "
    "extreme stands out from all the others (beyond it by 1% of its span and 3 typical "
    "deviations from the sensor's time-of-day profile), a record of surprise (an hour's or "
    "six hours' average of the reading's departure from the sensor's time-of-day profile, in "
    "typical errors, beating its own record of the last week by 20% or of the last two weeks) "
    "and a stuck sensor (one value held 4 times longer than the sensor ever held one, at least "
    "6 readings) flag too. An event pages once per kind (high, low, pattern, stuck) in 12 hours "
    "unless its departure grows fourfold. "
    "Every time scale is a duration from the readings' timestamps; the configuration was "
    "chosen on NAB's 52-file corpus as a whole, the same for every file (models/README.md)."
)

def configure_determinism(seed: int) -> None:
    os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


@dataclass(frozen=True)
class TrainingWindows:
    """Every window of the first `rows` readings and the reading after it, scaled."""

    inputs: np.ndarray    # (n, window, 1) float32, laid out per INPUT_ORDER
    targets: np.ndarray   # (n, 1) float32
    offset: np.ndarray    # (n,) per window: degrees = offset + scale * scaled
    scale: np.ndarray
    previous: np.ndarray  # (n,) the reading just before each target (persistence forecast)


def training_windows(values: np.ndarray, window: int, rows: int) -> TrainingWindows:
    values = np.asarray(values[:rows], dtype=np.float64)
    newest_first = np.stack([values[i - window:i][::-1] for i in range(window, rows)])
    scaled, offset, scale = standardise.scale_windows(newest_first, SCALING)
    targets = (values[window:rows] - offset) / scale
    ordered = scaled[:, ::-1] if INPUT_ORDER == "oldest_first" else scaled
    return TrainingWindows(ordered[..., None].astype(np.float32),
                           targets[:, None].astype(np.float32), offset, scale, newest_first[:, 0])


def build_model(window: int, units: int):
    import keras

    inputs = keras.Input((window, 1), name="window")
    hidden = keras.layers.GRU(units, name="gru")(inputs)
    outputs = keras.layers.Dense(1, name="next_reading")(hidden)
    return keras.Model(inputs, outputs, name="next_reading_gru")


def train(windows: TrainingWindows, seed: int = SEED):
    import keras

    configure_determinism(seed)
    model = build_model(WINDOW, UNITS)
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss="mse")
    history = model.fit(
        windows.inputs, windows.targets, epochs=EPOCHS, batch_size=BATCH_SIZE,
        validation_split=VALIDATION_FRACTION, shuffle=True, verbose=0,
        callbacks=[keras.callbacks.EarlyStopping(patience=PATIENCE, restore_best_weights=True)])
    return model, history.history


def degree_metrics(model, values: np.ndarray, windows: TrainingWindows) -> dict[str, float]:
    """RMSE in degrees on the training and validation parts of the probationary rows."""
    predicted = windows.offset + windows.scale * model.predict(windows.inputs, verbose=0)[:, 0]
    actual = np.asarray(values[WINDOW:TRAIN_ROWS], dtype=np.float64)
    split = len(actual) - int(len(actual) * VALIDATION_FRACTION)
    persistence = windows.previous

    def rmse(a, b):
        return float(np.sqrt(np.mean((a - b) ** 2)))

    return {
        "rmse_degrees_train": rmse(predicted[:split], actual[:split]),
        "rmse_degrees_validation": rmse(predicted[split:], actual[split:]),
        "rmse_degrees_persistence_train": rmse(persistence[:split], actual[:split]),
        "rmse_degrees_persistence_validation": rmse(persistence[split:], actual[split:]),
        "residual_std_degrees_probationary": float(np.std(actual - predicted)),
    }


def confirm_overwrite(version_dir: Path, overwrite: bool) -> bool:
    if not version_dir.exists() or overwrite:
        return True
    if not sys.stdin.isatty():
        print(f"{version_dir} exists; pass --overwrite to replace it", file=sys.stderr)
        return False
    answer = input(f"{version_dir} exists. Overwrite? [y/N] ").strip().lower()
    return answer in ("y", "yes")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m models.train", description=__doc__.split("\n")[0])
    parser.add_argument("--version", type=int, default=1, help="model version folder (default 1)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing version")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder with the NAB csv and windows json (default: NAB_DATA_DIR "
                             "or the pinned download)")
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR,
                        help="folder to export into: <dir>/modelo/<version>/ and "
                             "<dir>/models_config/models.config (default models/)")
    args = parser.parse_args(argv)
    if args.version < 1:
        parser.error("--version must be a positive integer")
    return args


def fit_metrics(history: dict[str, list[float]], seconds: float) -> dict[str, float]:
    """The scaled losses at the epoch early stopping kept, and how long training took."""
    best = int(np.argmin(history["val_loss"]))
    return {"loss_train_scaled": float(history["loss"][best]),
            "loss_validation_scaled": float(history["val_loss"][best]),
            "epochs_run": len(history["loss"]), "best_epoch": best + 1,
            "training_seconds": round(seconds, 2)}


def describe(model: keras.Model, version_dir: Path, series: nab.NabSeries, windows: TrainingWindows,
             seed: int, metrics: dict[str, float]) -> dict[str, Any]:
    """model.json for the exported `version_dir`: what the runtime reads, and how it was made."""
    import keras
    import tensorflow as tf

    keys = checkpoint_keys(model, version_dir)
    output = signature_output(version_dir, WINDOW)
    n_validation = int(len(windows.inputs) * VALIDATION_FRACTION)
    return {
        "format": 1,
        "window": WINDOW,
        "input_order": INPUT_ORDER,
        "output": output,
        "prediction_index": [0],
        "scaling": SCALING,
        "decision": {**DECISION, "calibration": CALIBRATION},
        "layers": layer_description(model, keys),
        "training": {
            "task": "predict the next reading from the WINDOW previous ones, window-standardised",
            "data": {"series": nab.SERIES, "source": f"{nab.UPSTREAM_REPO}@{nab.UPSTREAM_COMMIT}",
                     "sha256": series.sha256, "rows_total": len(series.values),
                     "rows_used": [0, TRAIN_ROWS - 1],
                     "samples": len(windows.inputs), "samples_validation": n_validation,
                     "labels_used": False},
            "hyperparameters": {"units": UNITS, "epochs_max": EPOCHS, "patience": PATIENCE,
                                "batch_size": BATCH_SIZE, "learning_rate": LEARNING_RATE,
                                "loss": "mse", "optimizer": "adam",
                                "validation_fraction": VALIDATION_FRACTION},
            "seeds": {"keras.utils.set_random_seed": seed, "op_determinism": True},
            "versions": {"python": platform.python_version(), "tensorflow": tf.__version__,
                         "keras": keras.__version__, "numpy": np.__version__},
            "trained_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "metrics": metrics,
        },
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    version_dir = args.models_dir / MODEL_NAME / str(args.version)
    if not confirm_overwrite(version_dir, args.overwrite):
        return 1
    try:
        series = nab.load_machine_temperature(
            args.data_dir, setting="NAB_DATA_DIR" if args.data_dir is None else "--data-dir")
    except nab.NabDataError as exc:
        print(f"train: {exc}", file=sys.stderr)
        return 2

    started = time.perf_counter()
    windows = training_windows(series.values, WINDOW, TRAIN_ROWS)
    model, history = train(windows, args.seed)
    seconds = time.perf_counter() - started
    metrics = {**degree_metrics(model, series.values, windows), **fit_metrics(history, seconds)}

    export_saved_model(model, version_dir)
    description = describe(model, version_dir, series, windows, args.seed, metrics)
    (version_dir / "model.json").write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
    config = write_models_config(args.models_dir, MODEL_NAME)
    print(f"exported {version_dir} ({seconds:.1f} s of training; "
          f"rmse {metrics['rmse_degrees_validation']:.3f} deg on the validation rows, "
          f"persistence {metrics['rmse_degrees_persistence_validation']:.3f}); wrote {config}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

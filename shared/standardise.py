"""Window standardisation: raw window -> model input, and the model's prediction -> degrees
again (pure functions).

The description's `scaling` object says how (docs/architecture.md):

- `{"kind": "none"}`: raw degrees in, degrees out (the replaced autoencoder).
- `{"kind": "window_standardize", "std_floor": a, "std_floor_rel": r}`: each window is
  scaled by its own statistics, so one model serves every sensor whatever its temperature
  range and noise, with no per-sensor state:
      offset = mean(window), scale = max(std(window), a, r * |offset|)   (population std)
      input  = (window - offset) / scale
      degrees = offset + scale * output
  The floors keep a flat window (std 0) from dividing by zero: `a` in degrees, `r` relative
  to the window's level.

Windows given to these functions are newest first (how the store returns them); the model
input is laid out per the description's `input_order`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

KINDS = ("none", "window_standardize")


def _floors(scaling: Mapping[str, Any]) -> tuple[float, float]:
    floor = float(scaling.get("std_floor", 1e-3))
    floor_rel = float(scaling.get("std_floor_rel", 1e-3))
    if not (floor > 0 and floor_rel >= 0):
        raise ValueError("window_standardize needs std_floor > 0 and std_floor_rel >= 0")
    return floor, floor_rel


def scale_windows(windows: np.ndarray,
                  scaling: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scale a batch of windows (n, window), any order along the window axis.

    Returns (scaled (n, window) float64, offset (n,), scale (n,)) with
    raw = offset + scale * scaled. Used by training and by `model_input` alike.
    """
    windows = np.asarray(windows, dtype=np.float64)
    if windows.ndim != 2 or windows.shape[1] < 1:
        raise ValueError(f"windows must have shape (n, window), got {windows.shape}")
    kind = scaling.get("kind")
    n = windows.shape[0]
    if kind == "none":
        return windows.copy(), np.zeros(n), np.ones(n)
    if kind == "window_standardize":
        floor, floor_rel = _floors(scaling)
        offset = windows.mean(axis=1)
        scale = np.maximum(np.maximum(windows.std(axis=1), floor), floor_rel * np.abs(offset))
        return (windows - offset[:, None]) / scale[:, None], offset, scale
    raise ValueError(f"unknown scaling kind {kind!r}; known: {list(KINDS)}")


def scale_window(window: np.ndarray,
                 scaling: Mapping[str, Any]) -> tuple[np.ndarray, Callable[[float], float]]:
    """One raw window (newest first) -> (scaled window, newest first, float64; to_degrees)."""
    window = np.asarray(window, dtype=np.float64)
    if window.ndim != 1 or not len(window):
        raise ValueError(f"a window must be one-dimensional, got shape {window.shape}")
    if scaling.get("kind") == "window_standardize":  # every detectar call: numpy's own
        # reductions, the very sums mean() and std() make (same bits), without their wrappers
        floor, floor_rel = _floors(scaling)
        o = float(np.add.reduce(window)) / len(window)
        deviations = window - o
        std = math.sqrt(float(np.add.reduce(deviations * deviations)) / len(window))
        s = max(std, floor, floor_rel * abs(o))
        scaled = (window - o) / s
    else:
        batch, offset, scale = scale_windows(window[None, :], scaling)
        scaled, o, s = batch[0], float(offset[0]), float(scale[0])

    def to_degrees(output: float) -> float:
        return o + s * float(output)

    return scaled, to_degrees


def layout(scaled_newest_first: np.ndarray, input_order: str) -> np.ndarray:
    """A scaled window (newest first) -> model input (1, window, 1) float32 in `input_order`."""
    if input_order == "newest_first":
        ordered = scaled_newest_first
    elif input_order == "oldest_first":
        ordered = scaled_newest_first[::-1]
    else:
        raise ValueError(f"unknown input_order {input_order!r}")
    return np.ascontiguousarray(ordered, dtype=np.float32).reshape(1, -1, 1)


def model_input(description: Any, raw: np.ndarray) -> tuple[np.ndarray, Callable[[float], float]]:
    """The description's window of raw readings (newest first) -> (instances, to_degrees).

    `description` needs `window`, `input_order` and `scaling` (a ModelDescription).
    `instances` has shape (1, window, 1) float32; `to_degrees` maps the model's predicted
    value (at the description's prediction_index) back to degrees.
    """
    raw = np.asarray(raw, dtype=np.float64)
    if raw.shape != (description.window,):
        raise ValueError(f"expected {description.window} readings, got shape {raw.shape}")
    if not np.all(np.isfinite(raw)):
        raise ValueError("the window holds a non-finite reading")
    scaled, to_degrees = scale_window(raw, description.scaling)
    return layout(scaled, description.input_order), to_degrees

"""Decision rules: (value, prediction, window, per-sensor state) -> verdict and new state.

Pure functions. The rule and its parameters come from the model description's `decision`
object (docs/architecture.md); the per-sensor state is a flat dict of floats (the runtime
keeps it in the Redis hash `<sensor>/detector`), given in and returned updated, never
mutated in place.

Rules
-----
`abs_error` (the replaced system's): anomaly when |value - predicted| > threshold (degrees).
    Stateless. `threshold_override` replaces `decision.threshold`.
    error and threshold are in degrees.

`residual_z` (ours): the prediction residual e = value - predicted is standardised by the
    sensor's own running residual statistics and judged by a Gaussian tail probability.
    Parameters (decision object):
      threshold       critical |z|, = the two-sided N(0,1) quantile of `tail_probability`
      tail_probability (documentation of where `threshold` comes from)
      memory          readings of memory of the running mean/variance (EWMA with weight
                      max(1/count, 1/memory): the exact running mean/variance of all
                      residuals until `memory` readings, then exponentially forgetting)
      min_count       residuals the running statistics must hold before the sensor may alarm
      holdoff         readings after an alarm during which no new alarm is raised
    Per reading: z = (e - err_mean) / sqrt(err_var) with the statistics of the residuals
    *before* this one (causal); anomaly when those statistics hold >= min_count residuals,
    no hold-off is running and |z| > threshold; then the statistics absorb e.
    error = |z| and threshold = the critical z, both in residual standard deviations.
    `threshold_override` replaces the critical z (in standard deviations, not degrees).
    State keys (all floats): count (residuals absorbed), err_mean, err_var, holdoff (readings
    of hold-off left).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

RESIDUAL_Z_STATE_KEYS = ("count", "err_mean", "err_var", "holdoff")


@dataclass(frozen=True)
class Decision:
    anomaly: bool
    error: float
    threshold: float
    state: dict[str, float] = field(default_factory=dict)


def critical_z(tail_probability: float) -> float:
    """The two-sided N(0,1) critical value: P(|Z| > z) = tail_probability."""
    if not 0.0 < tail_probability < 1.0:
        raise ValueError(f"tail_probability must be in (0, 1), got {tail_probability!r}")
    return NormalDist().inv_cdf(1.0 - tail_probability / 2.0)


def decide(decision: Mapping[str, Any], value: float, predicted: float, window: np.ndarray,
           state: Mapping[str, float], threshold_override: float | None = None) -> Decision:
    """Apply the description's rule to one reading; see the module docstring."""
    rule = decision.get("rule")
    try:
        apply = RULES[rule]
    except KeyError:
        raise ValueError(f"unknown decision rule {rule!r}; known: {sorted(RULES)}") from None
    value, predicted = float(value), float(predicted)
    if not (math.isfinite(value) and math.isfinite(predicted)):
        raise ValueError("value and prediction must be finite numbers")
    return apply(decision, value, predicted, window, state, threshold_override)


def abs_error(decision: Mapping[str, Any], value: float, predicted: float, window: np.ndarray,
              state: Mapping[str, float], threshold_override: float | None) -> Decision:
    threshold = float(decision["threshold"] if threshold_override is None else threshold_override)
    error = abs(value - predicted)
    return Decision(error > threshold, error, threshold, dict(state))


def residual_z(decision: Mapping[str, Any], value: float, predicted: float, window: np.ndarray,
               state: Mapping[str, float], threshold_override: float | None) -> Decision:
    if threshold_override is not None:
        threshold = float(threshold_override)
    elif "threshold" in decision:
        threshold = float(decision["threshold"])
    else:
        threshold = critical_z(float(decision["tail_probability"]))
    memory = float(decision["memory"])
    min_count = float(decision["min_count"])
    holdoff_length = float(decision["holdoff"])
    if memory < 1 or min_count < 0 or holdoff_length < 0:
        raise ValueError("residual_z needs memory >= 1, min_count >= 0 and holdoff >= 0")

    seen = _float(state, "count", 0.0)
    count = seen + 1.0
    mean = _float(state, "err_mean", 0.0)
    var = _float(state, "err_var", 0.0)
    holdoff = _float(state, "holdoff", 0.0)

    residual = value - predicted
    z = (residual - mean) / math.sqrt(var) if var > 0.0 else 0.0
    anomaly = seen >= min_count and holdoff <= 0.0 and abs(z) > threshold

    weight = max(1.0 / count, 1.0 / memory)
    delta = residual - mean
    mean += weight * delta
    var = (1.0 - weight) * (var + weight * delta * delta)
    holdoff = holdoff_length if anomaly else max(0.0, holdoff - 1.0)
    new_state = {"count": count, "err_mean": mean, "err_var": var, "holdoff": holdoff}
    return Decision(anomaly, abs(z), threshold, new_state)


def _float(state: Mapping[str, float], key: str, default: float) -> float:
    value = float(state.get(key, default))
    if not math.isfinite(value):
        raise ValueError(f"detector state {key!r} is not a finite number: {value!r}")
    return value


RULES: dict[str, Callable[..., Decision]] = {"abs_error": abs_error, "residual_z": residual_z}

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

`anomaly_likelihood` (ours, round 2): the anomaly likelihood of Ahmad et al.
    2017 (Neurocomputing 262, "Unsupervised real-time anomaly detection for streaming data")
    over our model's surprise. Per reading:
      1. raw score s = |z|, z the residual standardised exactly as in `residual_z` (running
         residual mean/variance of the sensor's previous residuals, then e is absorbed);
      2. short-term mean m = the mean of the last `short_window` raw scores (this one included;
         fewer while the sensor has fewer);
      3. likelihood statistic zl = (m - avg_mean) / sqrt(avg_var), with the running mean and
         variance of the sensor's *previous* short-term means (Numenta's reference code fits
         its normal to the averaged scores), weight max(1/count, 1/memory) as above; then they
         absorb m.
    Anomaly when avg_count >= min_count, no hold-off is running and zl > threshold, the
    one-sided N(0,1) quantile of `tail_probability` (likelihood 1 - Q(zl) >= 1 - tail).
    It flags a sustained change in how predictable the sensor is rather than one surprise.
    Parameters: threshold (or tail_probability), memory, short_window, min_count, holdoff.
    error = zl and threshold = the critical value, in standard deviations of the averaged
    score; `threshold_override` replaces the critical value.
    State keys (all floats): count, err_mean, err_var (the residual statistics), avg_count,
    avg_mean, avg_var (those of the short-term means), held (scores in the short window),
    score_0 .. score_{short_window-1} (the last raw scores, newest first), holdoff.

`record_level` (ours, round 3; shipped with test "either" since round 5): an extreme-level
    test against the sensor's own range of readings. Per reading x with the
    model's prediction p of it:
      range   lo, hi = the lowest and highest reading of the last `blocks` completed blocks of
              `block` readings, plus the current, partly filled block (block 288 = a day,
              blocks 30 = a month: the sensor's range over the last 30 to 31 days);
      tested  `test` "reading" (round 3): x; "prediction" (round 4): p, so the model's output
              decides; "both": x and p beyond the range on the same side (the smaller of the
              two excesses counts); "either" (shipped): x or p beyond it (the larger counts);
      error   = max(lo - t, t - hi) for the tested value t (for "both" and "either", per side
              the smaller or the larger of the reading's and the prediction's excess): how far
              beyond the range, in degrees (negative inside it);
      verdict anomaly when the statistics hold >= min_count readings, no hold-off is running,
              error > threshold (a margin in degrees, 0: a record low or a record high) and
              the side broken is armed. A side disarms when it alarms and re-arms once a
              reading is back at or across the running mean level of the readings (memory
              `memory`, weight max(1/count, 1/memory) as above): one excursion, one alarm.
              The range, level and re-arming always use readings, whatever `test`.
    Under exchangeable readings the chance that x is a record among n previous ones is 1/(n+1)
    per side (a rank test: no distribution assumed, the same for every sensor's range).
    Parameters: threshold (margin, degrees), memory, block, blocks, min_count, holdoff, sides
    ("both", "low" or "high"; default "both"), test ("reading", "prediction", "both" or
    "either"; default "reading", the round 3 rule). `threshold_override` replaces the margin.
    State keys (all floats): count, level_mean, block_n, block_lo, block_hi (the current
    block), days (completed blocks held), lo_0 .. lo_{blocks-1}, hi_0 .. (newest first),
    armed_low, armed_high (1.0 or 0.0), holdoff.
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
    note: str | None = None  # why a reading was not flagged when an operator may expect it


def _why_quiet(count: float, min_count: float, holdoff: float, beyond: bool) -> str | None:
    """The warm-up and the hold-off, in words: why a rule with running statistics stayed
    silent (None when neither applies)."""
    if count < min_count:
        return (f"learning: the sensor has {int(count)} of the {int(min_count)} judged readings "
                "it needs before it may alarm")
    if beyond and holdoff > 0:
        return (f"beyond the threshold, but within the hold-off after the last alarm "
                f"({int(holdoff)} readings left)")
    return None


def critical_z(tail_probability: float) -> float:
    """The two-sided N(0,1) critical value: P(|Z| > z) = tail_probability."""
    if not 0.0 < tail_probability < 1.0:
        raise ValueError(f"tail_probability must be in (0, 1), got {tail_probability!r}")
    return NormalDist().inv_cdf(1.0 - tail_probability / 2.0)


def critical_z_one_sided(tail_probability: float) -> float:
    """The one-sided N(0,1) critical value: P(Z > z) = tail_probability."""
    if not 0.0 < tail_probability < 1.0:
        raise ValueError(f"tail_probability must be in (0, 1), got {tail_probability!r}")
    return NormalDist().inv_cdf(1.0 - tail_probability)


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


def _threshold(decision: Mapping[str, Any], threshold_override: float | None,
               critical: Callable[[float], float]) -> float:
    if threshold_override is not None:
        return float(threshold_override)
    if "threshold" in decision:
        return float(decision["threshold"])
    return critical(float(decision["tail_probability"]))


def _common(decision: Mapping[str, Any], rule: str) -> tuple[float, float, float]:
    memory = float(decision["memory"])
    min_count = float(decision["min_count"])
    holdoff_length = float(decision["holdoff"])
    if memory < 1 or min_count < 0 or holdoff_length < 0:
        raise ValueError(f"{rule} needs memory >= 1, min_count >= 0 and holdoff >= 0")
    return memory, min_count, holdoff_length


def _running(count: float, mean: float, var: float, x: float,
             memory: float) -> tuple[float, float, float]:
    """Absorb x into running statistics holding `count` values: the exact mean/variance
    until `memory` values, then an exponential forgetting of weight 1/memory."""
    count += 1.0
    weight = max(1.0 / count, 1.0 / memory)
    delta = x - mean
    mean += weight * delta
    var = (1.0 - weight) * (var + weight * delta * delta)
    return count, mean, var


def _standardise(x: float, mean: float, var: float) -> float:
    return (x - mean) / math.sqrt(var) if var > 0.0 else 0.0


def residual_z(decision: Mapping[str, Any], value: float, predicted: float, window: np.ndarray,
               state: Mapping[str, float], threshold_override: float | None) -> Decision:
    threshold = _threshold(decision, threshold_override, critical_z)
    memory, min_count, holdoff_length = _common(decision, "residual_z")

    seen = _float(state, "count", 0.0)
    mean = _float(state, "err_mean", 0.0)
    var = _float(state, "err_var", 0.0)
    holdoff = _float(state, "holdoff", 0.0)

    residual = value - predicted
    z = _standardise(residual, mean, var)
    anomaly = seen >= min_count and holdoff <= 0.0 and abs(z) > threshold
    holdoff_left = holdoff

    count, mean, var = _running(seen, mean, var, residual, memory)
    holdoff = holdoff_length if anomaly else max(0.0, holdoff - 1.0)
    new_state = {"count": count, "err_mean": mean, "err_var": var, "holdoff": holdoff}
    return Decision(anomaly, abs(z), threshold, new_state,
                    _why_quiet(seen, min_count, holdoff_left, abs(z) > threshold))


def likelihood_state_keys(short_window: int) -> tuple[str, ...]:
    return ("count", "err_mean", "err_var", "avg_count", "avg_mean", "avg_var", "held",
            *(f"score_{k}" for k in range(short_window)), "holdoff")


def anomaly_likelihood(decision: Mapping[str, Any], value: float, predicted: float,
                       window: np.ndarray, state: Mapping[str, float],
                       threshold_override: float | None) -> Decision:
    threshold = _threshold(decision, threshold_override, critical_z_one_sided)
    memory, min_count, holdoff_length = _common(decision, "anomaly_likelihood")
    short_window = _whole(decision, "short_window", "anomaly_likelihood")

    count = _float(state, "count", 0.0)
    err_mean = _float(state, "err_mean", 0.0)
    err_var = _float(state, "err_var", 0.0)
    avg_seen = _float(state, "avg_count", 0.0)
    avg_mean = _float(state, "avg_mean", 0.0)
    avg_var = _float(state, "avg_var", 0.0)
    held = min(_float(state, "held", 0.0), float(short_window))
    scores = [_float(state, f"score_{k}", 0.0) for k in range(short_window)]
    holdoff = _float(state, "holdoff", 0.0)

    residual = value - predicted
    raw = abs(_standardise(residual, err_mean, err_var))
    count, err_mean, err_var = _running(count, err_mean, err_var, residual, memory)

    scores = [raw] + scores[:-1]
    held = min(held + 1.0, float(short_window))
    average = sum(scores[: int(held)]) / held
    zl = _standardise(average, avg_mean, avg_var)
    anomaly = avg_seen >= min_count and holdoff <= 0.0 and zl > threshold
    note = _why_quiet(avg_seen, min_count, holdoff, zl > threshold)
    avg_count, avg_mean, avg_var = _running(avg_seen, avg_mean, avg_var, average, memory)

    holdoff = holdoff_length if anomaly else max(0.0, holdoff - 1.0)
    new_state = {"count": count, "err_mean": err_mean, "err_var": err_var,
                 "avg_count": avg_count, "avg_mean": avg_mean, "avg_var": avg_var,
                 "held": held, **{f"score_{k}": s for k, s in enumerate(scores)},
                 "holdoff": holdoff}
    return Decision(anomaly, zl, threshold, new_state, note)


RECORD_SIDES = ("both", "low", "high")
RECORD_TESTS = ("reading", "prediction", "both", "either")


def record_state_keys(blocks: int) -> tuple[str, ...]:
    return ("count", "level_mean", "block_n", "block_lo", "block_hi", "days",
            *(f"lo_{k}" for k in range(blocks)), *(f"hi_{k}" for k in range(blocks)),
            "armed_low", "armed_high", "holdoff")


def _one_of(decision: Mapping[str, Any], key: str, choices: tuple[str, ...], rule: str) -> str:
    """A choice parameter; its default is the first of `choices`."""
    value = decision.get(key, choices[0])
    if value not in choices:
        raise ValueError(f"{rule} {key} must be one of {choices}, got {value!r}")
    return value


def _whole(decision: Mapping[str, Any], key: str, rule: str) -> int:
    value = decision[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{rule} needs a whole {key} >= 1, got {value!r}")
    return value


def record_level(decision: Mapping[str, Any], value: float, predicted: float, window: np.ndarray,
                 state: Mapping[str, float], threshold_override: float | None) -> Decision:
    threshold = float(decision.get("threshold", 0.0) if threshold_override is None
                      else threshold_override)
    memory, min_count, holdoff_length = _common(decision, "record_level")
    block = _whole(decision, "block", "record_level")
    blocks = _whole(decision, "blocks", "record_level")
    sides = _one_of(decision, "sides", RECORD_SIDES, "record_level")
    test = _one_of(decision, "test", RECORD_TESTS, "record_level")

    count = _float(state, "count", 0.0)
    level = _float(state, "level_mean", 0.0)
    block_n = _float(state, "block_n", 0.0)
    block_lo = _float(state, "block_lo", 0.0)
    block_hi = _float(state, "block_hi", 0.0)
    days = int(min(max(_float(state, "days", 0.0), 0.0), float(blocks)))
    los = [_float(state, f"lo_{k}", 0.0) for k in range(blocks)]
    his = [_float(state, f"hi_{k}", 0.0) for k in range(blocks)]
    armed_low = _float(state, "armed_low", 1.0) > 0.0
    armed_high = _float(state, "armed_high", 1.0) > 0.0
    holdoff = _float(state, "holdoff", 0.0)

    if count > 0.0:  # back at or across the running level: that side may alarm again
        armed_low = armed_low or value >= level
        armed_high = armed_high or value <= level
    seen_lo = los[:days] + ([block_lo] if block_n > 0.0 else [])
    seen_hi = his[:days] + ([block_hi] if block_n > 0.0 else [])
    if seen_lo:
        below, above = min(seen_lo) - value, value - max(seen_hi)
        error = max(below, above)
    else:
        below = above = error = -math.inf
    if seen_lo and test != "reading":  # the model's prediction against the same range
        below_p, above_p = min(seen_lo) - predicted, predicted - max(seen_hi)
        if test == "prediction":
            below, above = below_p, above_p
        elif test == "both":  # the reading and the prediction beyond the range, same side
            below, above = min(below, below_p), min(above, above_p)
        else:  # "either": the reading or the model's estimate of it beyond the range
            below, above = max(below, below_p), max(above, above_p)
        error = max(below, above)
    beyond_low = sides in ("both", "low") and below > threshold
    beyond_high = sides in ("both", "high") and above > threshold
    low, high = armed_low and beyond_low, armed_high and beyond_high
    anomaly = count >= min_count and holdoff <= 0.0 and (low or high)
    note = _why_quiet(count, min_count, holdoff, beyond_low or beyond_high)
    if note is None and not anomaly and (beyond_low or beyond_high):
        side = "low" if beyond_low else "high"
        note = (f"beyond the range, but part of the excursion already flagged: the {side} side "
                f"alarms again once a reading is back at the sensor's mean level ({level:.2f})")
    if anomaly:
        armed_low, armed_high = armed_low and not low, armed_high and not high

    count, level, _ = _running(count, level, 0.0, value, memory)
    block_lo = min(block_lo, value) if block_n > 0.0 else value
    block_hi = max(block_hi, value) if block_n > 0.0 else value
    block_n += 1.0
    if block_n >= block:
        los, his = [block_lo] + los[:-1], [block_hi] + his[:-1]
        days = min(days + 1, blocks)
        block_n, block_lo, block_hi = 0.0, 0.0, 0.0
    holdoff = holdoff_length if anomaly else max(0.0, holdoff - 1.0)
    new_state = {"count": count, "level_mean": level, "block_n": block_n, "block_lo": block_lo,
                 "block_hi": block_hi, "days": float(days),
                 **{f"lo_{k}": x for k, x in enumerate(los)},
                 **{f"hi_{k}": x for k, x in enumerate(his)},
                 "armed_low": 1.0 if armed_low else 0.0, "armed_high": 1.0 if armed_high else 0.0,
                 "holdoff": holdoff}
    return Decision(anomaly, error if math.isfinite(error) else 0.0, threshold, new_state, note)


def _float(state: Mapping[str, float], key: str, default: float) -> float:
    value = float(state.get(key, default))
    if not math.isfinite(value):
        raise ValueError(f"detector state {key!r} is not a finite number: {value!r}")
    return value


RULES: dict[str, Callable[..., Decision]] = {"abs_error": abs_error, "residual_z": residual_z,
                                             "anomaly_likelihood": anomaly_likelihood,
                                             "record_level": record_level}

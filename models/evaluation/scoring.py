"""The NAB score of one series, as a pure function of row indices, under any of NAB's three
profiles (standard: true-positive weight 1, false-positive 0.11, false-negative 1;
reward_low_FP_rate: false-positive 0.22; reward_low_FN_rate: false-negative 2).

Definition (numenta/NAB), for N rows and windows [left, right] (inclusive row indices):
- rows before min(floor(0.15 N), 750) are probationary: detections there are ignored;
- S(x) = 2 / (1 + e^(5x)) - 1;
- in a window of width w = right - left + 1 only the earliest detection i counts, worth
  tp * S(-(right - i + 1) / w) / S(-1) (about tp at the left edge, about 0 at the right
  edge); a window without a detection costs -fn;
- a detection outside every window adds fp * S(|i - r| / (w_prev - 1)), with r and w_prev
  the right edge and width of the closest window before it (about 0 just after it, -fp
  far after), or fp * -1 if no window came before it.
Normalised over files with W windows in all: 100 * (raw - null) / (perfect - null), null =
-fn * W (no detection), perfect = tp * W: NAB's own normalisation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shared.timestamps import iso_to_ms


@dataclass(frozen=True)
class Profile:
    name: str
    tp: float
    fp: float
    fn: float

    def normalised(self, raw_total: float, windows: int) -> float:
        null, perfect = -self.fn * windows, self.tp * windows
        return 100.0 * (raw_total - null) / (perfect - null)


STANDARD = Profile("standard", 1.0, 0.11, 1.0)
PROFILES = (STANDARD, Profile("reward_low_FP_rate", 1.0, 0.22, 1.0),
            Profile("reward_low_FN_rate", 1.0, 0.11, 2.0))


@dataclass(frozen=True)
class NabResult:
    score: float
    windows_detected: int
    first_detections: list[int | None]    # per window, the earliest detection row or None
    window_scores: list[float]            # per window: its true-positive value or -1
    false_positives: list[int]            # rows of detections outside every window
    false_positive_costs: list[float]     # their (negative) contributions

    @property
    def n_false_positives(self) -> int:
        return len(self.false_positives)


def sigmoid(x: float) -> float:
    """NAB's scaled sigmoid S(x) = 2 / (1 + e^(5x)) - 1."""
    if 5.0 * x > 700.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def probationary_length(n_rows: int) -> int:
    return min(math.floor(0.15 * n_rows), 750)


def check_windows(n_rows: int, windows: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The windows as int pairs; ValueError unless they lie inside the rows, sorted and apart."""
    windows = [(int(left), int(right)) for left, right in windows]
    for k, (left, right) in enumerate(windows):
        if not 0 <= left <= right < n_rows:
            raise ValueError(f"window {k} {(left, right)} is not inside 0..{n_rows - 1}")
        if k and left <= windows[k - 1][1]:
            raise ValueError("windows must be sorted and must not overlap")
    return windows


def score(n_rows: int, detections: Iterable[int], windows: Sequence[tuple[int, int]],
          profile: Profile = STANDARD) -> NabResult:
    """The raw NAB score of `detections` (row indices) on a series of `n_rows` rows."""
    windows = check_windows(n_rows, windows)
    start = probationary_length(n_rows)
    first: list[int | None] = [None] * len(windows)
    fps: list[int] = []
    fp_costs: list[float] = []
    for i in sorted({int(d) for d in detections}):
        if not 0 <= i < n_rows:
            raise ValueError(f"detection row {i} is not inside 0..{n_rows - 1}")
        if i < start:
            continue
        inside = next((k for k, (left, right) in enumerate(windows) if left <= i <= right), None)
        if inside is not None:
            if first[inside] is None:
                first[inside] = i
            continue
        before = [(left, right) for left, right in windows if right < i]
        if before:
            left, right = before[-1]
            width = right - left + 1
            cost = profile.fp * sigmoid(abs(i - right) / max(width - 1, 1))
        else:
            cost = -profile.fp
        fps.append(i)
        fp_costs.append(cost)
    window_scores = []
    for (left, right), hit in zip(windows, first, strict=True):
        if hit is None:
            window_scores.append(-profile.fn)
        else:
            width = right - left + 1
            window_scores.append(profile.tp * sigmoid(-(right - hit + 1) / width) / sigmoid(-1.0))
    return NabResult(sum(window_scores) + sum(fp_costs), sum(f is not None for f in first),
                     first, window_scores, fps, fp_costs)


def windows_to_rows(timestamps: Sequence[str], windows: Iterable[tuple[str, str]]) -> list[tuple[int, int]]:
    """Window (start, end) timestamps -> inclusive row-index pairs over `timestamps`.

    left = the first row at or after start, right = the last row at or before end, by
    position in the file (timestamps may repeat, so rows are never looked up by timestamp).
    """
    times = [iso_to_ms(t) for t in timestamps]
    rows = []
    for start, end in windows:
        t0, t1 = iso_to_ms(start), iso_to_ms(end)
        left = next((i for i, t in enumerate(times) if t >= t0), None)
        right = next((i for i in range(len(times) - 1, -1, -1) if times[i] <= t1), None)
        if left is None or right is None or left > right:
            raise ValueError(f"window {start} .. {end} holds no row")
        rows.append((left, right))
    return rows

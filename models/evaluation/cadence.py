"""A NAB series as a slower sensor would send it, and what its alerts cost per sensor-week.

`resample(series, seconds)`: each interval of `seconds` (aligned to the epoch) becomes one
reading, the mean of the file's readings in it, stamped at the interval's start; intervals
without a reading are skipped (a gap stays a gap). NAB's windows are times, so they stay
the same times, snapped to the new rows: a window starts at the row of the interval that
holds its start and ends at the last row at or before its end.

`quiet_weeks(series)`: how long the rows scored as false alerts cover, in weeks: every row
after the probationary period outside every window, each worth the time to the next row
(capped at a day, so a gap in the data is not counted as watched time).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np

from shared.timestamps import iso_to_ms

from .nab import NabSeries
from .scoring import check_windows, probationary_length

WEEK_MS = 7 * 86_400_000
LONGEST_WATCHED_STEP_MS = 86_400_000


def _text(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def resample(series: NabSeries, seconds: int) -> NabSeries:
    """`series` averaged per interval of `seconds` (see the module's docstring)."""
    step = seconds * 1000
    times = np.asarray([iso_to_ms(t) for t in series.timestamps], dtype=np.int64)
    buckets = times // step
    starts, index = np.unique(buckets, return_inverse=True)
    sums = np.bincount(index, weights=series.values)
    counts = np.bincount(index)
    new_times = [int(b) * step for b in starts]
    rows = []
    for start, end in series.window_timestamps:
        begin, finish = iso_to_ms(start) // step * step, iso_to_ms(end)
        left = next(i for i, t in enumerate(new_times) if t >= begin)
        right = max(i for i, t in enumerate(new_times) if t <= finish)
        rows.append((left, right))
    return replace(series, timestamps=[_text(t) for t in new_times], values=sums / counts,
                   windows=check_windows(len(new_times), rows))


def quiet_weeks(series: NabSeries) -> float:
    """The weeks of rows whose alerts count as false ones (see the module's docstring)."""
    times = np.asarray(series.stream_timestamps(), dtype=np.int64)
    steps = np.minimum(np.diff(times, append=times[-1]), LONGEST_WATCHED_STEP_MS)
    watched = np.ones(len(times), dtype=bool)
    watched[:probationary_length(len(times))] = False
    for left, right in series.windows:
        watched[left:right + 1] = False
    return float(steps[watched].sum()) / WEEK_MS

"""The generalisation report's parts (models/evaluation): NAB's profiles, a corpus file at a
slower cadence, leave-one-category-out."""

import numpy as np
import pytest

from models.evaluation.cadence import quiet_weeks, resample
from models.evaluation.corpus import FileScore, leave_one_category_out
from models.evaluation.nab import NabSeries
from models.evaluation.report import ModelReport
from models.evaluation.scoring import PROFILES, score

N, WINDOW = 10_000, (1000, 1099)


def test_the_profiles_weigh_false_alerts_and_misses_as_nab_does():
    standard, low_fp, low_fn = PROFILES
    detections = [1000, 5000]  # a window found at its left edge, a false alert far after it
    assert score(N, detections, [WINDOW], standard).score == pytest.approx(1.0 - 0.11, abs=1e-3)
    assert score(N, detections, [WINDOW], low_fp).score == pytest.approx(1.0 - 0.22, abs=1e-3)
    assert score(N, [], [WINDOW], low_fn).score == -2.0
    assert low_fn.normalised(-2.0, 1) == 0.0 and low_fn.normalised(1.0, 1) == 100.0
    assert standard.normalised(0.0, 1) == 50.0  # NAB's 100 (raw + W) / (2 W)


def series(minutes, windows):
    times = [f"2026-01-01 {h:02d}:{m:02d}:00" for h in range(24) for m in range(0, 60, minutes)]
    values = np.arange(len(times), dtype=float)
    return NabSeries("cat/file.csv", times, values, [], windows, None, "")


def test_a_series_averaged_per_hour_keeps_its_windows_as_times():
    hourly = resample(series(5, [("2026-01-01 10:07:00", "2026-01-01 12:30:00")]), 3600)
    assert len(hourly) == 24 and hourly.timestamps[10] == "2026-01-01 10:00:00"
    assert hourly.values[0] == pytest.approx(np.mean(np.arange(12)))  # the hour's 12 readings
    assert hourly.windows == [(10, 12)]  # the hour holding its start to the last at its end


def test_quiet_weeks_leave_out_the_probation_and_the_windows():
    hourly = resample(series(5, []), 3600)
    # 24 rows an hour apart: 3 probationary, the last one counts no time after it
    assert quiet_weeks(hourly) == pytest.approx(20 / (7 * 24))


def file_score(key, raw, windows=1):
    report = ModelReport(key, "", "", None, 0, windows, [], [], [], [], raw, [], 0, 0, None, 0.0, "")
    return FileScore(key, report, ((0, 0),) * windows)


def test_leave_one_category_out_scores_each_category_with_the_choice_made_on_the_others():
    a = [file_score("x/1.csv", 1.0), file_score("y/1.csv", -1.0), file_score("z/1.csv", 0.0)]
    b = [file_score("x/1.csv", -1.0), file_score("y/1.csv", 1.0), file_score("z/1.csv", 1.0)]
    result = leave_one_category_out({"a": a, "b": b})
    # x held out: b is better on y and z, so x is scored with b (raw -1: normalised 0)
    assert result["categories"]["x"]["candidate"] == "b"
    assert result["categories"]["x"]["normalised"] == 0.0
    assert leave_one_category_out({"a": a})["normalised"] == pytest.approx(100 * (0 + 3) / 6)

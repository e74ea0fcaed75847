"""The NAB scorer against hand-computed cases (models/evaluation/scoring.py)."""

import math

import pytest

from models.evaluation.scoring import probationary_length, score, sigmoid, windows_to_rows

N = 10_000                 # probationary rows: min(floor(1500), 750) = 750
WINDOW = (1000, 1099)      # width 100
S1 = 2 / (1 + math.exp(-5)) - 1   # S(-1) = 0.98661...


def test_sigmoid_and_probation():
    assert sigmoid(0.0) == 0.0
    assert sigmoid(-1.0) == pytest.approx(S1)
    assert sigmoid(1.0) == pytest.approx(-S1)
    assert probationary_length(22_695) == 750
    assert probationary_length(1_000) == 150


def test_detection_at_left_edge_is_worth_one():
    result = score(N, [1000], [WINDOW])
    assert result.score == pytest.approx(1.0)
    assert result.windows_detected == 1
    assert result.first_detections == [1000]
    assert result.false_positives == []


def test_detection_at_right_edge_is_worth_about_zero():
    expected = (2 / (1 + math.exp(-5 * 0.01)) - 1) / S1    # S(-1/100) / S(-1) = 0.0253
    result = score(N, [1099], [WINDOW])
    assert result.score == pytest.approx(expected)
    assert 0 < result.score < 0.03


def test_middle_of_window():
    expected = (2 / (1 + math.exp(-2.5)) - 1) / S1          # i = 1050: S(-0.5) / S(-1)
    assert score(N, [1050], [WINDOW]).score == pytest.approx(expected)


def test_false_positive_before_any_window_costs_0_11():
    result = score(N, [800, 1000], [WINDOW])
    assert result.score == pytest.approx(1.0 - 0.11)
    assert result.false_positives == [800]
    assert result.false_positive_costs == [pytest.approx(-0.11)]


def test_false_positive_right_after_a_window_costs_about_zero():
    result = score(N, [1000, 1100], [WINDOW])
    expected_cost = 0.11 * (2 / (1 + math.exp(5 * 1 / 99)) - 1)     # |i - r| = 1, w - 1 = 99
    assert result.false_positive_costs == [pytest.approx(expected_cost)]
    assert -0.003 < expected_cost < 0
    assert result.score == pytest.approx(1.0 + expected_cost)


def test_false_positive_far_after_a_window_costs_almost_0_11():
    result = score(N, [1000, 5000], [WINDOW])
    assert result.false_positive_costs[0] == pytest.approx(-0.11, abs=1e-6)


def test_false_positive_uses_the_closest_window_before_it():
    windows = [(1000, 1099), (3000, 3199)]
    result = score(N, [3200], windows)      # one row after the second window (width 200)
    assert result.false_positive_costs == [pytest.approx(0.11 * sigmoid(1 / 199))]
    assert result.score == pytest.approx(-2 + 0.11 * sigmoid(1 / 199))


def test_missed_windows_cost_one_each():
    windows = [(1000, 1099), (3000, 3099), (6000, 6099)]
    assert score(N, [], windows).score == pytest.approx(-3.0)
    result = score(N, [3000], windows)
    assert result.score == pytest.approx(-1.0)
    assert result.window_scores == [-1.0, pytest.approx(1.0), -1.0]
    assert result.first_detections == [None, 3000, None]


def test_only_the_earliest_detection_in_a_window_counts():
    result = score(N, [1099, 1050, 1000, 1000], [WINDOW])
    assert result.score == pytest.approx(1.0)
    assert result.first_detections == [1000]
    assert result.n_false_positives == 0


def test_probationary_rows_are_ignored():
    windows = [(100, 199), (1000, 1099)]
    result = score(N, [0, 150, 749, 1000], windows)
    assert result.false_positives == []
    assert result.first_detections == [None, 1000]
    assert result.score == pytest.approx(-1.0 + 1.0)
    assert score(N, [750], []).score == pytest.approx(-0.11)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match=f"detection row {N} is not inside"):
        score(N, [N], [WINDOW])
    with pytest.raises(ValueError, match=r"window 0 .* is not inside"):
        score(N, [], [(1100, 1000)])
    with pytest.raises(ValueError, match="must be sorted and must not overlap"):
        score(N, [], [(1000, 1200), (1100, 1300)])


def test_windows_to_rows_by_position_with_a_repeated_hour():
    timestamps = ["2014-01-07 01:55:00", "2014-01-07 02:00:00", "2014-01-07 02:05:00",
                  "2014-01-07 02:00:00", "2014-01-07 02:05:00", "2014-01-07 02:10:00"]
    rows = windows_to_rows(timestamps, [("2014-01-07 02:00:00.000000", "2014-01-07 02:05:00.000000")])
    assert rows == [(1, 4)]
    assert windows_to_rows(timestamps, [("2014-01-07 01:57:00", "2014-01-07 02:10:00")]) == [(1, 5)]
    with pytest.raises(ValueError, match="holds no row"):
        windows_to_rows(timestamps, [("2015-01-01 00:00:00", "2015-01-02 00:00:00")])

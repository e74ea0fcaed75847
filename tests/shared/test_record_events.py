"""record_events (shared/record_events.py): events after events, a stuck sensor, a silence,
a level shift, and what normal is in every verdict. Each of these failed on the rule before
issue 17 (checked by running them against it)."""

import numpy as np
import pytest

from models.train import DECISION as SHIPPED
from shared import rules
from tests.shared.test_rules import DAY, HOUR, MINUTE, START, at, noise, stream

RULE = rules.build(SHIPPED)


def plant(step_min, days, seed=0):
    """An oven around 80 degrees: a daily cycle of +-4, noise correlated over readings, a
    slow wander (0.1 degree a day); one reading every `step_min` minutes."""
    rng = np.random.default_rng(seed)
    times = START + np.arange(int(days * 1440 / step_min)) * step_min * MINUTE
    shocks = rng.normal(0.0, 0.3, len(times))
    correlated = np.zeros(len(times))
    for i in range(1, len(times)):
        correlated[i] = 0.7 * correlated[i - 1] + shocks[i]
    wander = np.cumsum(rng.normal(0.0, 0.1 * np.sqrt(step_min / 1440), len(times)))
    daily = 4 * np.sin(2 * np.pi * (times % DAY) / DAY)
    return times, np.round(80 + daily + correlated + wander, 3)


def alerts(times, decisions, after_hours=0):
    return [(round((times[i + 10] - START) / HOUR, 1), d.kind)
            for i, d in enumerate(decisions) if d.alert and times[i + 10] - START >= after_hours * HOUR]


@pytest.mark.parametrize("step_min", [1, 5, 60])
def test_a_second_spike_the_next_morning_pages_again(step_min):
    """The first spike is no part of the sensor's normal: the next day's smaller one is a
    new event (the rule before took the first into the month's range and stayed silent)."""
    times, values = plant(step_min, 10)
    first, second = at(times, 8 * 24 + 14), at(times, 9 * 24 + 7)
    values[first] += 25.0
    values[second] += 20.0
    decisions = stream(values, times)
    for row in (first, second):
        assert decisions[row - 10].alert and decisions[row - 10].kind == "high"


def test_a_gross_reading_after_a_spike_is_judged_against_the_sensor_not_the_spike():
    """200 readings around 80, then 250, 80.7 and 500: 500 is TRUE (the rule before judged
    it against a window whose spread the 250 had inflated, and said FALSE)."""
    values = [*(80 + noise(200, seed=4) * 0.3), 250.0, 80.7, 500.0]
    times = START + np.arange(len(values)) * 5 * MINUTE
    spike, after, gross = stream(values, times)[-3:]
    assert spike.anomaly and spike.alert and spike.kind == "high"
    assert not after.anomaly
    assert gross.anomaly and gross.kind == "high"


@pytest.mark.parametrize("step_min", [1, 5, 60])
def test_a_stuck_sensor_pages_once_with_kind_stuck(step_min):
    times, values = plant(step_min, 10)
    start, end = at(times, 8 * 24 + 9), at(times, 8 * 24 + 15)
    values[start:end] = values[start - 1]
    decisions = stream(values, times)
    paged = [hours for hours, kind in alerts(times, decisions) if kind == "stuck"]
    assert len(paged) == 1 and 8 * 24 + 9 <= paged[0] <= 8 * 24 + 15
    stuck = [d for d in decisions if d.kind == "stuck"]
    assert "repeated" in stuck[0].explanation and "never held one value" in stuck[0].explanation
    closed = [d.resolved for d in decisions[end - 10:end - 8]]
    assert "stuck" in closed


def test_a_reading_after_a_long_silence_says_so():
    times, values = plant(5, 4)
    times = times.copy()
    times[600:] += 12 * HOUR
    decisions = stream(values, times)
    after = decisions[600 - 10]
    assert after.note and "silence of 12.1 h" in after.note and "every 5 min" in after.note
    assert decisions[601 - 10].note is None


@pytest.mark.parametrize("step_min", [5, 60])
def test_a_level_shift_pages_then_is_the_new_normal(step_min):
    times, values = plant(step_min, 14)
    shift = at(times, 8 * 24 + 12)
    values[shift:] += 8.0
    decisions = stream(values, times)
    paged = alerts(times, decisions, after_hours=8 * 24)
    # it pages at once; the next day's high may page again (the shift's first day is left
    # out of the range while it stands out, and the profile still expects the old level: a
    # limit the model card states); from then on it is the new normal
    assert paged[0] == (8 * 24 + 12, "high")
    assert all(hours <= 8 * 24 + 36 for hours, _ in paged)
    last_day = decisions[at(times, 13 * 24) - 10:]
    assert not any(d.anomaly for d in last_day)


def test_every_judged_verdict_says_what_normal_is():
    times, values = plant(5, 4)
    drop = at(times, 60)
    values[drop:drop + 6] -= 15.0
    decisions = stream(values, times)
    for d in decisions:
        assert d.lower is not None and d.upper is not None and d.lower <= d.upper
        assert d.expected is not None and 0 <= d.severity <= 100 and d.explanation
        assert (d.severity >= 50) == d.anomaly
    calm = decisions[at(times, 50) - 10]
    assert calm.lower <= values[at(times, 50)] <= calm.upper and calm.kind is None
    assert "the usual" in calm.explanation and "normal range" in calm.explanation
    low = decisions[drop - 10]
    assert low.alert and low.kind == "low" and values[drop] < low.lower
    assert "below the usual" in low.explanation and "times this sensor's typical deviation" in low.explanation
    back = decisions[drop + 6 - 10]
    assert back.resolved == "low" and "low" not in back.kinds


def test_the_replaced_rule_says_what_normal_is_too():
    d = rules.build({"rule": "abs_error", "threshold": 9.0}).judge(
        rules.Observed(80.0, 70.0, 0, ()), {})
    assert (d.expected, d.lower, d.upper, d.kind, d.alert) == (70.0, 61.0, 79.0, "high", True)
    assert d.severity == 56 and "10.0 above the model's prediction 70.0" in d.explanation


def test_the_state_stays_small():
    times, values = plant(5, 40)
    state = stream(values, times)[-1].state
    stored = "\n".join(f"{key}\n{value!r}" for key, value in state.items())
    assert len(stored.encode()) <= 8 * 1024

"""Decision rules (shared/rules.py): abs_error (the replaced system's) and record_events,
their parameters checked when the rule is built."""

import math
import re

import numpy as np
import pytest

from models.train import DECISION as SHIPPED
from shared import rules
from shared.rules import Observed
from shared.serving.description import REFERENCE_DESCRIPTION, description_from_dict

ABS = {"rule": "abs_error", "threshold": 9.233296204297654}
RULE = rules.build(SHIPPED)


def judge(decision, value, predicted, state, threshold_override=None):
    observed = rules.Observed(value, predicted, timestamp=0)
    return rules.build(decision, threshold_override).judge(observed, state)


def noise(n, seed=0):
    return np.random.default_rng(seed).normal(0.0, 1.0, n)


def test_abs_error_is_the_replaced_rule():
    d = judge(ABS, value=80.0, predicted=70.0, state={"x": 1.0})
    assert (d.anomaly, d.error, d.threshold) == (True, 10.0, ABS["threshold"])
    assert d.state == {"x": 1.0}
    d = judge(ABS, value=70.0, predicted=79.0, state={})
    assert not d.anomaly and d.error == 9.0
    d = judge(ABS, value=70.0, predicted=79.0, state={}, threshold_override=8.5)
    assert d.anomaly and d.threshold == 8.5
    frozen = rules.Decision(False, False, 0.0, 1.0)
    with pytest.raises(AttributeError):
        frozen.anomaly = True


def test_unknown_rule_and_non_finite_state_are_refused():
    with pytest.raises(ValueError, match=re.escape("decision.rule: unknown rule 'nope'")):
        rules.build({"rule": "nope"})
    with pytest.raises(ValueError, match="'gvar' is not a finite number"):
        RULE.judge(Observed(1.0, 1.0, 0, (1.0,) * 10), {"n": 3.0, "gvar": math.inf})


@pytest.mark.parametrize("change, named", [
    ({"holdoff_s": None}, "decision.holdoff_s"), ({"holdoff_s": "day"}, "decision.holdoff_s"),
    ({"learning_s": -1}, "decision.learning_s"), ({"fast_s": 0}, "decision.fast_s"),
    ({"profile_bin_s": 7}, "decision.profile_bin_s"), ({"fast_days": 2.5}, "decision.fast_days"),
    ({"range_days": 0}, "decision.range_days"), ({"escalation": 0.5}, "decision.escalation"),
    ({"threshold": 0.0}, "decision.threshold"), ({"threshold": math.inf}, "decision.threshold")])
def test_a_rule_that_cannot_work_does_not_build_and_the_error_names_the_parameter(change, named):
    decision = {key: value for key, value in {**SHIPPED, **change}.items() if value is not None}
    with pytest.raises(ValueError, match=named):
        rules.build(decision)
    # ... nor does a model description naming it: the model fails to load, not per reading
    with pytest.raises(ValueError, match=named):
        description_from_dict({**REFERENCE_DESCRIPTION, "decision": decision})


def test_threshold_must_leave_something_to_flag():
    with pytest.raises(ValueError, match="THRESHOLD: record_events needs a number > 0"):
        rules.build(SHIPPED, threshold_override=0.0)


def test_abs_error_needs_its_threshold():
    with pytest.raises(ValueError, match=re.escape("decision.threshold")):
        rules.build({"rule": "abs_error"})
    assert rules.build({"rule": "abs_error"}, threshold_override=3.0).threshold == 3.0




# record_events, the shipped rule, with the last reading as the model's prediction: what the
# rule does with any prediction (the model's own part is tested end to end).
MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
START = 1_700_000_006_000


def stream(values, times, rule=RULE, state=None):
    """Each reading after the first ten, judged against the ten before it."""
    state, out = dict(state or {}), []
    for i in range(10, len(values)):
        window = tuple(float(v) for v in values[i - 10:i][::-1])
        decision = rule.judge(Observed(float(values[i]), window[0], int(times[i]), window), state)
        state = decision.state
        out.append(decision)
    return out


def oven(step_min, days, seed=0):
    """A daily cycle of 80 +- 10 degrees with noise, one reading every `step_min` minutes."""
    times = START + np.arange(int(days * 1440 / step_min)) * step_min * MINUTE
    values = 80 + 10 * np.sin(2 * np.pi * (times % DAY) / DAY) + noise(len(times), seed) * 0.5
    return times, values


def flat(step_min, days, sd=2.0, seed=0):
    """A sensor at 80 degrees with noise of `sd`, one reading every `step_min` minutes."""
    times = START + np.arange(int(days * 1440 / step_min)) * step_min * MINUTE
    return times, 80 + noise(len(times), seed) * sd


def at(times, hours):
    """The row of the first reading at or after `hours` from the start."""
    return int(np.searchsorted(times, START + hours * HOUR))


def alerts_at(times, decisions):
    return [round((times[i + 10] - START) / HOUR, 1) for i, d in enumerate(decisions) if d.alert]


def test_cold_start_a_gross_departure_is_true_from_the_first_judgement():
    values = list(80 + noise(10, seed=1) * 0.3)
    times = START + np.arange(11) * 5 * MINUTE
    first = stream([*values, 250.0], times)[0]
    assert first.anomaly and first.alert and first.kinds == ("high",)
    assert first.learning and "only gross departures flag" in first.learning[0]
    assert stream([*values, 40.0], times)[0].kinds == ("low",)
    calm = stream([*values, 80.4], times)[0]
    assert not calm.anomaly and not calm.alert and calm.note is None


@pytest.mark.parametrize("step_min", [1, 5, 30])
def test_time_scales_are_durations_whatever_the_cadence(step_min):
    """A spike, a drop 10 h later, a spike the next day: each a new event (the drop is the
    other side, the next day is past the 12-hour hold-off), at one reading a minute, every
    5 minutes or every half hour alike; a second spike 2 h after the first pages no one."""
    times, values = oven(step_min, 6)
    span = max(1, 20 // step_min)
    for hours, change, length in ((72, 40.0, span), (74, 40.0, span),
                                  (82, -40.0, max(1, 60 // step_min)), (98, 45.0, span)):
        values[at(times, hours):at(times, hours) + length] += change
    decisions = stream(values, times)
    hours = alerts_at(times, decisions)
    assert [h for h in hours if h >= 72] == pytest.approx([72, 82, 98], abs=0.6)
    repeat = decisions[at(times, 74) - 10]
    assert repeat.anomaly and not repeat.alert and "part of the event alerted at" in repeat.note


@pytest.mark.parametrize("step_min", [1, 30])
def test_learning_is_a_day_whatever_the_cadence(step_min):
    """A record that is not gross waits for a day of learning, not for a count of readings."""
    times, values = flat(step_min, 3)
    for hours, value in ((12, 90.0), (36, 95.0)):  # beyond the range, not 10 scales beyond it
        values[at(times, hours)] = value
    decisions = stream(values, times)
    early, late = decisions[at(times, 12) - 10], decisions[at(times, 36) - 10]
    assert not early.anomaly and early.learning
    assert late.anomaly and late.alert and late.kinds == ("high",)


def test_one_alarm_does_not_hide_the_next_event_and_its_readings_stay_true():
    times, values = oven(5, 5)
    start = at(times, 60)
    values[start], values[start + 1] = 112.5, 115.0   # a record, then a little further
    values[start + 2] = 400.0                        # much further: a new page
    decisions = stream(values, times)
    first, second, third = (decisions[start - 10 + k] for k in range(3))
    assert first.anomaly and first.alert
    assert second.anomaly and not second.alert       # TRUE, part of the event already paged
    assert "high: part of the event alerted at" in second.note and "4 times as far" in second.note
    assert third.anomaly and third.alert             # 4 times the departure: pages again


def test_a_gap_irregular_steps_and_repeated_timestamps_are_judged():
    times, values = oven(5, 4)
    times = times.copy()
    times[600:] += 10 * DAY                                    # ten days without readings
    times[700:] += np.cumsum(np.random.default_rng(2).integers(0, 20, len(times) - 700)) * MINUTE
    times[800] = times[799]                                    # a repeated timestamp
    decisions = stream(values, times)
    assert all(math.isfinite(v) for d in decisions for v in d.state.values())
    before, repeated = decisions[799 - 10].state, decisions[800 - 10].state
    for key in ("m_fast", "m_slow", "gvar", "tvar"):          # no time passed: nothing decays
        assert repeated[key] == before[key]
    assert repeated["n"] == before["n"] + 1


def test_record_events_is_scale_free_and_never_mutates_its_input():
    times, values = oven(5, 4, seed=3)
    values[at(times, 50)] += 30.0
    small = [(d.anomaly, d.alert) for d in stream(values, times)]
    large = [(d.anomaly, d.alert) for d in stream(values * 40.0 + 300.0, times)]
    assert small == large and any(alert for _, alert in small)
    state = stream(values, times)[-1].state
    frozen = dict(state)
    decision = RULE.judge(Observed(80.0, 80.0, int(times[-1]) + 5 * MINUTE, (80.0,) * 10), state)
    assert state == frozen and all(type(v) is float for v in decision.state.values())
    assert len(decision.state) < 200   # a few KB as a Redis hash


def test_threshold_scales_what_flags_a_learned_test():
    times, values = flat(5, 3)
    values[at(times, 40)] = 95.0
    row = at(times, 40) - 10
    assert stream(values, times)[row].anomaly
    strict = rules.build(SHIPPED, threshold_override=100.0)  # a whole span beyond the range
    assert not stream(values, times, strict)[row].anomaly
    assert stream(values, times, strict)[row].threshold == 100.0

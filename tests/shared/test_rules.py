"""Decision rules (shared/rules.py): abs_error (the replaced system's) and record_level,
their parameters checked when the rule is built."""

import math

import numpy as np
import pytest

from shared import rules
from shared.serving.description import description_from_dict, REFERENCE_DESCRIPTION

ABS = {"rule": "abs_error", "threshold": 9.233296204297654}


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
    with pytest.raises(ValueError, match="decision.rule: unknown rule 'nope'"):
        rules.build({"rule": "nope"})
    with pytest.raises(ValueError, match="'level_mean' is not a finite number"):
        judge(RL, 1.0, 1.0, {"count": 3.0, "level_mean": math.inf})


@pytest.mark.parametrize("change, named", [
    ({"memory": None}, "decision.memory"), ({"memory": 0}, "decision.memory"),
    ({"min_count": -1}, "decision.min_count"), ({"holdoff": "day"}, "decision.holdoff"),
    ({"block": 0}, "decision.block"), ({"blocks": 2.5}, "decision.blocks"),
    ({"sides": "up"}, "decision.sides"), ({"test": "model"}, "decision.test"),
    ({"threshold": -1.0}, "decision.threshold"), ({"threshold": math.inf}, "decision.threshold")])
def test_a_rule_that_cannot_work_does_not_build_and_the_error_names_the_parameter(change, named):
    decision = {key: value for key, value in {**RL, **change}.items() if value is not None}
    with pytest.raises(ValueError, match=named):
        rules.build(decision)
    # ... nor does a model description naming it: the model fails to load, not per reading
    with pytest.raises(ValueError, match=named):
        description_from_dict({**REFERENCE_DESCRIPTION, "decision": decision})


def test_abs_error_needs_its_threshold():
    with pytest.raises(ValueError, match="decision.threshold"):
        rules.build({"rule": "abs_error"})
    assert rules.build({"rule": "abs_error"}, threshold_override=3.0).threshold == 3.0


RL = {"rule": "record_level", "threshold": 0.0, "sides": "both", "memory": 8640, "block": 10,
      "blocks": 3, "min_count": 20, "holdoff": 5}


def levels(decision, values, state=None, override=None):
    """record_level judges the readings themselves: feed values, the prediction is ignored."""
    state = dict(state or {})
    out = []
    for x in values:
        d = judge(decision, value=x, predicted=0.0, state=state, threshold_override=override)
        state = d.state
        out.append(d)
    return out


def test_record_level_state_is_floats_and_input_is_not_mutated():
    state = levels(RL, 50.0 + noise(25))[-1].state
    before = dict(state)
    d = judge(RL, value=50.0, predicted=123.0, state=state)
    assert state == before
    assert set(d.state) == set(rules.build(RL).state_keys())
    assert all(type(v) is float and math.isfinite(v) for v in d.state.values())
    assert d.state["count"] == 26.0 and d.state["days"] == 2.0 and d.state["block_n"] == 6.0


def test_record_level_range_is_the_last_blocks_plus_the_current_one_by_hand():
    values = list(50.0 + noise(47, seed=2))
    d = levels(RL, values)[-1]
    blocks = [values[10:20], values[20:30], values[30:40], values[40:47]]  # first day forgotten
    lo, hi = min(map(min, blocks)), max(map(max, blocks))
    x = 80.0
    nxt = judge(RL, value=x, predicted=50.0, state=d.state)
    assert nxt.error == pytest.approx(x - hi) and nxt.anomaly
    low = judge(RL, value=lo - 0.5, predicted=lo - 0.5, state=d.state)
    assert low.error == pytest.approx(0.5) and low.anomaly
    inside = judge(RL, value=(lo + hi) / 2, predicted=0.0, state=d.state)
    assert not inside.anomaly and inside.error < 0 and inside.threshold == 0.0


def test_record_level_one_excursion_one_alarm_and_rearms_at_the_level():
    base = list(50.0 + noise(40, seed=1))
    # a slow ramp down far below the range: alarms once, not again while it stays low
    ramp = [45.0 - k for k in range(15)]
    flags = [d.anomaly for d in levels(RL, base + ramp)][40:]
    assert sum(flags) == 1 and flags.index(True) < 5
    # still low: a new record but no new alarm; back at the running level, then a new
    # record low: a second alarm
    low = [d.anomaly for d in levels(RL, base + ramp + [20.0])]
    assert sum(low[40:]) == 1
    again = [d.anomaly for d in levels(RL, base + ramp + [50.0] * 3 + [20.0])]
    assert sum(again[40:]) == 2 and again[-1]


def test_record_level_min_count_holdoff_sides_and_override():
    base = list(50.0 + noise(40, seed=4))
    early = levels({**RL, "min_count": 1000}, base + [0.0])
    assert not early[-1].anomaly
    lows = [d.anomaly for d in levels(RL, base + [0.0, 50.0, 100.0])]
    assert lows[40] and not lows[42]                       # the high is held off (5 readings)
    assert levels({**RL, "holdoff": 0}, base + [0.0, 50.0, 100.0])[42].anomaly
    assert not levels({**RL, "sides": "high"}, base + [0.0])[-1].anomaly
    assert not levels({**RL, "sides": "low"}, base + [100.0])[-1].anomaly
    assert not levels(RL, base + [min(base) - 1.0], override=2.0)[-1].anomaly
    assert levels(RL, base + [min(base) - 3.0], override=2.0)[-1].threshold == 2.0


def test_record_level_is_scale_free():
    series = list(noise(60, seed=7)) + [-6.0, 0.0, 0.0, 7.0] + list(noise(30, seed=8))
    small = [d.anomaly for d in levels({**RL, "holdoff": 0}, series)]
    large = [d.anomaly for d in levels({**RL, "holdoff": 0}, [40.0 * x + 300.0 for x in series])]
    assert small == large and any(small)


def test_record_level_false_alarm_rate_is_that_of_a_record():
    """Independent readings: a record of n previous ones has probability 1/(n+1) per side;
    with the re-arming, far fewer alarms than readings beyond the range."""
    decision = {**RL, "block": 100, "blocks": 10, "min_count": 1100, "holdoff": 0}
    decisions = levels(decision, noise(20_000, seed=9))[1100:]
    beyond = np.mean([d.error > 0 for d in decisions])
    assert 1 / 1100 < beyond < 4 / 1000                    # about 2/(n+1), n 1000..1100
    assert np.mean([d.anomaly for d in decisions]) <= beyond


RP = {**RL, "test": "prediction"}
RB = {**RL, "test": "both"}
RE = {**RL, "test": "either"}


def settled_range(seed):
    """A record_level state after 40 noisy readings around 50 (3 blocks, no hold-off) and
    its range (lo, hi)."""
    state = {**levels(RL, list(50.0 + noise(40, seed=seed)))[-1].state, "holdoff": 0.0}
    lo = min(state[f"lo_{k}"] for k in range(3))
    hi = max(state[f"hi_{k}"] for k in range(3))
    return state, lo, hi


def test_record_level_either_alarms_on_the_reading_or_the_models_forecast():
    state, lo, hi = settled_range(seed=13)
    mid = (lo + hi) / 2

    def verdict(value, predicted):
        return judge(RE, value=value, predicted=predicted, state=state)

    assert verdict(lo - 5.0, mid).anomaly                     # the reading alone
    assert verdict(mid, hi + 2.0).anomaly                     # the model's forecast alone
    assert verdict(lo - 1.0, lo - 4.0).error == pytest.approx(4.0)  # the farther one counts
    assert not verdict(mid, mid).anomaly


def test_record_level_prediction_test_lets_the_model_decide():
    """Same state, same reading: only the model's prediction changes the verdict."""
    state, lo, hi = settled_range(seed=11)
    inside, below, above = (lo + hi) / 2, lo - 2.0, hi + 3.0
    for value in (inside, below, above):
        flag = judge(RP, value=value, predicted=below, state=state)
        assert flag.anomaly and flag.error == pytest.approx(2.0)
        calm = judge(RP, value=value, predicted=inside, state=state)
        assert not calm.anomaly and calm.error < 0
    high = judge(RP, value=inside, predicted=above, state=state)
    assert high.anomaly and high.error == pytest.approx(3.0)
    # the round 3 rule (default test "reading") ignores the prediction
    for predicted in (inside, below, above):
        assert not judge(RL, value=inside, predicted=predicted,
                                state=state).anomaly
    # the range and the level are kept over the readings whatever is tested
    kept = [k for k in state if k not in ("armed_low", "armed_high", "holdoff")]
    by_prediction = judge(RP, value=inside, predicted=below, state=state)
    by_reading = judge(RL, value=inside, predicted=below, state=state)
    assert {k: by_prediction.state[k] for k in kept} == {k: by_reading.state[k] for k in kept}


def test_record_level_both_needs_reading_and_prediction_beyond_on_the_same_side():
    state, lo, hi = settled_range(seed=12)
    mid = (lo + hi) / 2

    def verdict(value, predicted):
        return judge(RB, value=value, predicted=predicted, state=state)

    assert not verdict(lo - 5.0, mid).anomaly                 # a lone reading: no alarm
    assert not verdict(mid, lo - 5.0).anomaly                 # the model alone: no alarm
    assert not verdict(lo - 5.0, hi + 5.0).anomaly            # opposite sides: no alarm
    both = verdict(lo - 5.0, lo - 1.0)
    assert both.anomaly and both.error == pytest.approx(1.0)  # the smaller excess
    assert verdict(hi + 1.0, hi + 4.0).error == pytest.approx(1.0)


def test_record_level_prediction_one_excursion_one_alarm_rearms_on_readings():
    state = {**levels(RL, list(50.0 + noise(40, seed=13)))[-1].state, "holdoff": 0.0}
    level = state["level_mean"]
    flags = []
    for value in (level - 3.0, level - 3.0, level + 3.0, level - 3.0):
        d = judge({**RP, "holdoff": 0}, value=value, predicted=10.0,
                         state=state)
        state, flags = d.state, flags + [d.anomaly]
    # the model keeps predicting a record low: one alarm, then none while the readings stay
    # below the running level; a reading back above it re-arms the low side
    assert flags == [True, False, True, False]


def test_record_level_says_when_the_warm_up_or_the_hold_off_kept_it_quiet():
    young = judge(RL, value=50.0, predicted=50.0, state={})
    assert not young.anomaly and young.note.startswith("learning: the sensor has 0 of the 20")
    calm = levels(RL, list(50.0 + noise(40, seed=5)))[-1]
    assert calm.note is None
    held = judge(RL, value=50.0, predicted=50.0, state={**calm.state, "holdoff": 7.0})
    assert held.note is None  # nothing beyond the threshold: nothing to explain
    spike = judge(RL, value=500.0, predicted=50.0, state={**calm.state, "holdoff": 7.0})
    assert not spike.anomaly and "hold-off after the last alarm (7 readings left)" in spike.note

"""Decision rules (shared/rules.py): abs_error (the replaced system's), residual_z,
anomaly_likelihood and record_level."""

import math

import numpy as np
import pytest

from shared import rules

WINDOW = np.zeros(10)
ABS = {"rule": "abs_error", "threshold": 9.233296204297654}
RZ = {"rule": "residual_z", "threshold": rules.critical_z(1e-5), "tail_probability": 1e-5,
      "memory": 8640, "min_count": 20, "holdoff": 5}


def run(decision, residuals, state=None, override=None):
    state = dict(state or {})
    out = []
    for r in residuals:
        d = rules.decide(decision, value=50.0 + r, predicted=50.0, window=WINDOW, state=state,
                         threshold_override=override)
        state = d.state
        out.append(d)
    return out


def noise(n, seed=0):
    return np.random.default_rng(seed).normal(0.0, 1.0, n)


@pytest.mark.parametrize("critical, tail, z, abs_tol", [
    (rules.critical_z, 1e-5, 4.4172, 1e-4), (rules.critical_z, 0.05, 1.95996, 1e-5),
    (rules.critical_z_one_sided, 1e-5, 4.2649, 1e-4),
    (rules.critical_z_one_sided, 0.05, 1.64485, 1e-5)])
def test_critical_z_two_and_one_sided(critical, tail, z, abs_tol):
    assert critical(tail) == pytest.approx(z, abs=abs_tol)


@pytest.mark.parametrize("critical", [rules.critical_z, rules.critical_z_one_sided])
@pytest.mark.parametrize("tail", [0.0, 1.0, -0.1])
def test_critical_z_refuses_a_tail_outside_0_1(critical, tail):
    with pytest.raises(ValueError):
        critical(tail)


def test_abs_error_is_the_replaced_rule():
    d = rules.decide(ABS, value=80.0, predicted=70.0, window=WINDOW, state={"x": 1.0})
    assert (d.anomaly, d.error, d.threshold) == (True, 10.0, ABS["threshold"])
    assert d.state == {"x": 1.0}
    d = rules.decide(ABS, value=70.0, predicted=79.0, window=WINDOW, state={})
    assert not d.anomaly and d.error == 9.0
    d = rules.decide(ABS, value=70.0, predicted=79.0, window=WINDOW, state={}, threshold_override=8.5)
    assert d.anomaly and d.threshold == 8.5
    frozen = rules.Decision(False, 0.0, 1.0)
    with pytest.raises(AttributeError):
        frozen.anomaly = True


def test_unknown_rule_and_non_finite_input_are_refused():
    with pytest.raises(ValueError, match="unknown decision rule"):
        rules.decide({"rule": "nope"}, 1.0, 1.0, WINDOW, {})
    with pytest.raises(ValueError):
        rules.decide(ABS, math.nan, 1.0, WINDOW, {})
    with pytest.raises(ValueError):
        rules.decide(RZ, 1.0, 1.0, WINDOW, {"count": 3.0, "err_mean": math.inf, "err_var": 1.0})


def test_residual_z_state_is_floats_and_input_is_not_mutated():
    state = {"count": 30.0, "err_mean": 0.1, "err_var": 2.0, "holdoff": 0.0}
    before = dict(state)
    d = rules.decide(RZ, value=51.0, predicted=50.0, window=WINDOW, state=state)
    assert state == before
    assert set(d.state) == set(rules.RESIDUAL_Z_STATE_KEYS)
    assert all(type(v) is float for v in d.state.values())
    assert d.state["count"] == 31.0
    assert d.error == pytest.approx(abs(1.0 - 0.1) / math.sqrt(2.0))
    assert d.threshold == RZ["threshold"]


def test_residual_z_statistics_are_the_running_mean_and_variance():
    residuals = noise(200) * 3.0 + 1.0
    state = run(RZ, residuals)[-1].state
    assert state["count"] == 200.0
    assert state["err_mean"] == pytest.approx(residuals.mean())
    assert state["err_var"] == pytest.approx(residuals.var())


def test_residual_z_forgets_with_the_memory_once_full():
    decision = {**RZ, "memory": 50}
    state = run(decision, noise(50))[-1].state
    after = run(decision, [10.0], state)[-1].state
    delta = 10.0 - state["err_mean"]
    assert after["err_mean"] == pytest.approx(state["err_mean"] + delta / 50)
    assert after["err_var"] == pytest.approx((1 - 1 / 50) * (state["err_var"] + delta * delta / 50))


def test_residual_z_is_scale_free():
    small = [d.anomaly for d in run(RZ, list(noise(100)) + [8.0])]
    large = [d.anomaly for d in run(RZ, list(noise(100) * 40.0) + [320.0])]
    assert small == large and small[-1]


def test_no_alarm_before_min_count():
    decisions = run(RZ, list(noise(19)) + [100.0])
    assert not any(d.anomaly for d in decisions)       # 19 residuals seen < min_count 20
    decisions = run(RZ, list(noise(20)) + [100.0])
    assert decisions[-1].anomaly


def test_alarm_then_holdoff_then_alarm_again():
    decisions = run(RZ, list(noise(100)) + [40.0] + [40.0] * 5 + [300.0])
    flags = [d.anomaly for d in decisions[100:]]
    assert flags == [True, False, False, False, False, False, True]
    assert decisions[100].state["holdoff"] == 5.0
    assert decisions[101].state["holdoff"] == 4.0
    assert decisions[101].error > RZ["threshold"]       # surprising, but held off


def test_threshold_override_is_a_critical_z():
    base = run(RZ, noise(100))[-1].state
    d = run(RZ, [3.5], base)[-1]
    assert not d.anomaly and d.threshold == RZ["threshold"]
    d = run(RZ, [3.5], base, override=3.0)[-1]
    assert d.anomaly and d.threshold == 3.0


def test_threshold_defaults_to_the_tail_probability():
    decision = {k: v for k, v in RZ.items() if k != "threshold"}
    d = run(decision, [0.0])[-1]
    assert d.threshold == pytest.approx(rules.critical_z(1e-5))


def test_gaussian_false_alarm_rate_matches_the_tail_probability():
    decision = {**RZ, "threshold": rules.critical_z(1e-2), "holdoff": 0, "min_count": 100}
    flags = [d.anomaly for d in run(decision, noise(20_000, seed=3))][100:]
    assert 0.006 < np.mean(flags) < 0.014


AL = {"rule": "anomaly_likelihood", "threshold": rules.critical_z_one_sided(1e-5),
      "tail_probability": 1e-5, "memory": 8640, "short_window": 10, "min_count": 200,
      "holdoff": 50}


def test_likelihood_state_is_floats_and_input_is_not_mutated():
    state = run(AL, noise(30))[-1].state
    before = dict(state)
    d = rules.decide(AL, value=51.0, predicted=50.0, window=WINDOW, state=state)
    assert state == before
    assert set(d.state) == set(rules.likelihood_state_keys(10))
    assert all(type(v) is float for v in d.state.values())
    assert d.state["count"] == 31.0 and d.state["avg_count"] == 31.0 and d.state["held"] == 10.0
    assert d.state["score_1"] == state["score_0"]          # newest first, shifted by one


def test_likelihood_statistic_by_hand():
    """Residual z as residual_z computes it; raw score |z|; mean of the last 10; then
    standardised by the running mean/variance of the previous means."""
    residuals = noise(60, seed=5) * 2.0 + 0.5
    decisions = run(AL, residuals)
    zs, means = [], []
    for i, r in enumerate(residuals):
        past = residuals[:i]
        zs.append(abs((r - past.mean()) / past.std()) if i > 1 else 0.0)
        window = zs[-10:]
        means.append(sum(window) / len(window))
    for i in (20, 45, 59):
        previous = np.asarray(means[:i])
        expected = (means[i] - previous.mean()) / previous.std()
        assert decisions[i].error == pytest.approx(expected, rel=1e-9)
    assert decisions[-1].state["avg_mean"] == pytest.approx(np.mean(means))
    assert decisions[-1].state["avg_var"] == pytest.approx(np.var(means))


def test_likelihood_flags_a_sustained_change_not_one_surprise():
    base = list(noise(1000, seed=1))
    one_spike = run(AL, base + [6.0] + list(noise(20, seed=2)))
    assert not any(d.anomaly for d in one_spike)            # one 6-sigma residual: not enough
    noisier = run(AL, base + list(noise(30, seed=2) * 6.0))
    flags = [d.anomaly for d in noisier[1000:]]
    assert any(flags) and flags.index(True) < 15            # predictability changed


def test_likelihood_is_scale_free_and_respects_min_count_and_holdoff():
    series = list(noise(400, seed=4)) + list(noise(100, seed=6) * 8.0)
    small = [d.anomaly for d in run(AL, series)]
    large = [d.anomaly for d in run(AL, [40.0 * r + 3.0 for r in series])]
    assert small == large
    first = small.index(True)
    assert first >= 400 and not any(small[first + 1:first + 51])   # held off for 50
    early = [d.anomaly for d in run({**AL, "min_count": 10_000}, series)]
    assert not any(early)


def test_likelihood_threshold_override_and_default():
    base = run(AL, noise(300))[-1].state
    d = rules.decide({k: v for k, v in AL.items() if k != "threshold"}, 50.0, 50.0, WINDOW, base)
    assert d.threshold == pytest.approx(rules.critical_z_one_sided(1e-5))
    d = rules.decide(AL, 50.0, 50.0, WINDOW, base, threshold_override=-100.0)
    assert d.anomaly and d.threshold == -100.0
    with pytest.raises(ValueError, match="short_window"):
        rules.decide({**AL, "short_window": 0}, 50.0, 50.0, WINDOW, base)


RL = {"rule": "record_level", "threshold": 0.0, "sides": "both", "memory": 8640, "block": 10,
      "blocks": 3, "min_count": 20, "holdoff": 5}


def levels(decision, values, state=None, override=None):
    """record_level judges the readings themselves: feed values, the prediction is ignored."""
    state = dict(state or {})
    out = []
    for x in values:
        d = rules.decide(decision, value=x, predicted=0.0, window=WINDOW, state=state,
                         threshold_override=override)
        state = d.state
        out.append(d)
    return out


def test_record_level_state_is_floats_and_input_is_not_mutated():
    state = levels(RL, 50.0 + noise(25))[-1].state
    before = dict(state)
    d = rules.decide(RL, value=50.0, predicted=123.0, window=WINDOW, state=state)
    assert state == before
    assert set(d.state) == set(rules.record_state_keys(3))
    assert all(type(v) is float and math.isfinite(v) for v in d.state.values())
    assert d.state["count"] == 26.0 and d.state["days"] == 2.0 and d.state["block_n"] == 6.0


def test_record_level_range_is_the_last_blocks_plus_the_current_one_by_hand():
    values = list(50.0 + noise(47, seed=2))
    d = levels(RL, values)[-1]
    blocks = [values[10:20], values[20:30], values[30:40], values[40:47]]  # first day forgotten
    lo, hi = min(map(min, blocks)), max(map(max, blocks))
    x = 80.0
    nxt = rules.decide(RL, value=x, predicted=50.0, window=WINDOW, state=d.state)
    assert nxt.error == pytest.approx(x - hi) and nxt.anomaly
    low = rules.decide(RL, value=lo - 0.5, predicted=lo - 0.5, window=WINDOW, state=d.state)
    assert low.error == pytest.approx(0.5) and low.anomaly
    inside = rules.decide(RL, value=(lo + hi) / 2, predicted=0.0, window=WINDOW, state=d.state)
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
    with pytest.raises(ValueError, match="sides"):
        levels({**RL, "sides": "up"}, [1.0])
    with pytest.raises(ValueError, match="block"):
        levels({**RL, "block": 0}, [1.0])


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
        return rules.decide(RE, value=value, predicted=predicted, window=WINDOW, state=state)

    assert verdict(lo - 5.0, mid).anomaly                     # the reading alone
    assert verdict(mid, hi + 2.0).anomaly                     # the model's forecast alone
    assert verdict(lo - 1.0, lo - 4.0).error == pytest.approx(4.0)  # the farther one counts
    assert not verdict(mid, mid).anomaly


def test_record_level_prediction_test_lets_the_model_decide():
    """Same state, same reading: only the model's prediction changes the verdict."""
    state, lo, hi = settled_range(seed=11)
    inside, below, above = (lo + hi) / 2, lo - 2.0, hi + 3.0
    for value in (inside, below, above):
        flag = rules.decide(RP, value=value, predicted=below, window=WINDOW, state=state)
        assert flag.anomaly and flag.error == pytest.approx(2.0)
        calm = rules.decide(RP, value=value, predicted=inside, window=WINDOW, state=state)
        assert not calm.anomaly and calm.error < 0
    high = rules.decide(RP, value=inside, predicted=above, window=WINDOW, state=state)
    assert high.anomaly and high.error == pytest.approx(3.0)
    # the round 3 rule (default test "reading") ignores the prediction
    for predicted in (inside, below, above):
        assert not rules.decide(RL, value=inside, predicted=predicted, window=WINDOW,
                                state=state).anomaly
    # the range and the level are kept over the readings whatever is tested
    kept = [k for k in state if k not in ("armed_low", "armed_high", "holdoff")]
    by_prediction = rules.decide(RP, value=inside, predicted=below, window=WINDOW, state=state)
    by_reading = rules.decide(RL, value=inside, predicted=below, window=WINDOW, state=state)
    assert {k: by_prediction.state[k] for k in kept} == {k: by_reading.state[k] for k in kept}


def test_record_level_both_needs_reading_and_prediction_beyond_on_the_same_side():
    state, lo, hi = settled_range(seed=12)
    mid = (lo + hi) / 2

    def verdict(value, predicted):
        return rules.decide(RB, value=value, predicted=predicted, window=WINDOW, state=state)

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
        d = rules.decide({**RP, "holdoff": 0}, value=value, predicted=10.0, window=WINDOW,
                         state=state)
        state, flags = d.state, flags + [d.anomaly]
    # the model keeps predicting a record low: one alarm, then none while the readings stay
    # below the running level; a reading back above it re-arms the low side
    assert flags == [True, False, True, False]


def test_record_level_test_must_be_known():
    with pytest.raises(ValueError, match="test"):
        levels({**RL, "test": "model"}, [1.0])


@pytest.mark.parametrize("decision", [RZ, AL], ids=["residual_z", "anomaly_likelihood"])
def test_running_rules_say_when_the_warm_up_or_the_hold_off_kept_them_quiet(decision):
    young = rules.decide(decision, value=50.0, predicted=50.0, window=WINDOW, state={})
    assert not young.anomaly and young.note.startswith("learning: the sensor has 0 of the")
    calm = run(decision, noise(400, seed=5))[-1]
    assert calm.note is None
    held = rules.decide(decision, value=50.0, predicted=50.0, window=WINDOW,
                        state={**calm.state, "holdoff": 7.0})
    assert held.note is None  # nothing beyond the threshold: nothing to explain
    spike = rules.decide(decision, value=500.0, predicted=50.0, window=WINDOW,
                         state={**calm.state, "holdoff": 7.0})
    assert not spike.anomaly and "hold-off after the last alarm (7 readings left)" in spike.note

"""The sensor simulator: what it generates, how it scores, and a short run on the local stack."""

from __future__ import annotations

import itertools
import json
import time

import numpy as np
import pytest

from infra.simulator.__main__ import main
from infra.simulator.report import render_text, score
from infra.simulator.scenario import (
    CADENCE_S,
    KINDS,
    Anomaly,
    Plan,
    SensorSeries,
    generate,
    inject,
    replay,
    sensor_names,
    stamp,
)
from shared.store.keys import anomalies_key

PLAN = Plan(warmup=100, tolerance=12, holdoff=50, gap=10)


def test_generated_readings_are_realistic_and_reproducible():
    first = generate(["a", "b"], list(KINDS.values()), PLAN, seed=3)
    again = generate(["a", "b"], list(KINDS.values()), PLAN, seed=3)
    assert [s.values for s in first] == [s.values for s in again]
    values = np.array(first[0].values[:PLAN.warmup])
    assert 50 < values.mean() < 100 and 0.3 < np.diff(values).std() < 2  # smooth, noisy, plausible
    assert len(first[0].values) == PLAN.length(list(KINDS.values())) + PLAN.gap


def test_anomalies_come_after_the_warm_up_and_a_hold_off_apart():
    kinds = [KINDS["spike"], KINDS["drop"], KINDS["stuck"], KINDS["drift"]]
    series = generate(["a", "b"], kinds, PLAN, seed=1)
    starts = [a.start for a in series[0].anomalies]
    assert [a.kind for a in series[0].anomalies] == ["spike", "drop", "stuck", "drift"]
    assert [a.kind for a in series[1].anomalies] == ["drop", "stuck", "drift", "spike"]  # rotated
    assert starts[0] == PLAN.warmup
    for previous, anomaly in itertools.pairwise(series[0].anomalies):
        assert anomaly.start - (previous.end + PLAN.tolerance) >= PLAN.holdoff


def test_each_kind_changes_the_readings_as_described():
    base = np.linspace(70, 71, 400)
    spike = base.copy()
    assert inject(spike, KINDS["spike"], 100) == (100, 12.0)
    assert np.flatnonzero(spike != base).tolist() == [100] and spike[100] - base[100] == 12.0
    drop = base.copy()
    inject(drop, KINDS["drop"], 100)
    assert np.allclose((drop - base)[100:112], -10) and np.allclose(drop[112:], base[112:])
    stuck = base.copy()
    end, _ = inject(stuck, KINDS["stuck"], 100)
    assert set(stuck[100:end + 1]) == {base[99]} and stuck[end + 1] == base[end + 1]
    drift = base.copy()
    end, _ = inject(drift, KINDS["drift"], 100)
    offset = drift - base
    assert offset[99] == 0 and np.isclose(offset.max(), 8.0) and np.isclose(offset[end], 0)
    assert np.abs(np.diff(offset)).max() < 0.1  # slow both ways


def test_timestamps_are_explicit_on_the_cadence_and_end_now():
    series = generate(["a"], [KINDS["spike"]], PLAN, seed=0)
    now = int(time.time() * 1000)
    stamp(series, end_ms=now)
    stamps = series[0].timestamps
    assert stamps[-1] == now and set(np.diff(stamps)) == {CADENCE_S * 1000}
    assert series[0].anomalies[0].start_timestamp == stamps[PLAN.warmup]


def test_sensor_names_are_valid_ids():
    assert sensor_names("sim", "261125", 2) == ["sim-261125-1", "sim-261125-2"]
    with pytest.raises(ValueError, match="'bad name-1-1' is not valid"):
        sensor_names("bad name", "1", 1)


def test_scoring_counts_caught_delays_and_false_alarms():
    s = SensorSeries("a", [70.0] * 200, [Anomaly("a", "drop", 50, 59, -10),
                                         Anomaly("a", "spike", 120, 120, 12)],
                     timestamps=[i * 300_000 for i in range(200)])
    marks = [False] * 200
    marks[53] = marks[54] = True  # caught 3 readings late
    marks[90] = True  # a false alarm
    marks[140] = True  # just past spike's end + tolerance (132): a false alarm, spike missed
    marks[:10] = [None] * 10  # not judged
    result = score([s], {"a": marks}, tolerance=12)
    drop, spike = result["anomalies"]
    assert (drop["caught"], drop["delay_readings"], drop["delay_seconds"]) == (True, 3, 900)
    assert spike["caught"] is False and "delay_readings" not in spike
    assert [f["index"] for f in result["false_alarms"]] == [90, 140]
    summary = result["summary"]
    assert (summary["known"], summary["caught"], summary["recall"]) == (2, 1, 0.5)
    assert summary["judged_readings"] == 190 and summary["false_alarms"] == 2
    assert summary["by_kind"]["drop"] == {"known": 1, "caught": 1, "median_delay_readings": 3}


def test_replay_takes_the_labelled_windows_beside_the_csv(tmp_path):
    rows = [f"2014-01-01 {h:02d}:{m:02d}:00,{70 + (m % 7) / 10}" for h in range(24)
            for m in range(0, 60, 5)]
    csv_path = tmp_path / "machine.csv"
    csv_path.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    (tmp_path / "machine.windows.json").write_text(json.dumps({"realKnownCause/machine.csv": [
        ["2014-01-01 12:00:00.000000", "2014-01-01 13:00:00.000000"],
        ["2014-01-01 23:00:00.000000", "2014-01-01 23:55:00.000000"]]}))
    series, windows_file = replay(csv_path, ["x"], [KINDS["spike"]], PLAN, limit=250)
    assert windows_file.endswith("machine.windows.json") and len(series[0].values) == 250
    kinds = [(a.kind, a.start, a.end, a.source) for a in series[0].anomalies]
    assert kinds == [("spike", 100, 100, "injected"), ("nab-window", 144, 156, "labelled")]
    assert series[0].values[100] == pytest.approx(70 + (100 * 5 % 60 % 7) / 10 + 12)


def test_a_short_generated_run_against_the_local_stack(stack, redis_client, tmp_path):
    path = tmp_path / "report.json"
    assert main(["--gateway", stack.base, "--sensors", "1", "--kinds", "spike,drop", "--seed", "7",
                 "--sensor-prefix", "t", "--report", str(path), "--no-progress"]) == 0
    report = json.loads(path.read_text())
    run, sent, summary = report["run"], report["sent"], report["summary"]
    warmup = run["rule"]["min_count"] + run["rule"]["window"] + 30
    assert run["warmup_readings"] == warmup and run["verdicts_from"] == "detectar's answers"
    assert sent["accepted"] == sent["readings"] == run["readings_per_sensor"] and sent["refused"] == 0
    spike, drop = report["anomalies"]
    assert (spike["kind"], spike["start"], drop["kind"]) == ("spike", warmup, "drop")
    assert drop["start"] - spike["end"] >= run["rule"]["holdoff"] + run["tolerance_readings"]
    assert spike["caught"] is True and spike["delay_readings"] <= run["tolerance_readings"]
    assert isinstance(drop["caught"], bool) and summary["known"] == 2
    sensor = run["sensors"][0]
    assert redis_client.ts().info(sensor).total_samples == sent["readings"]
    marks = redis_client.ts().range(anomalies_key(sensor), "-", "+")
    assert len(marks) == summary["flagged_readings"]
    assert summary["false_alarms"] == len(report["false_alarms"])


def text_report(series: SensorSeries, result: dict) -> str:
    """render_text of a scored run, with the run details it prints."""
    return render_text({"run": {"sensors": [series.sensor], "via": "detectar", "target": "t"},
                        "sent": {"readings": 200, "elapsed_s": 1.0, "readings_per_s": 200.0,
                                 "accepted": 200, "refused": 0},
                        "judged": True, **result})


def test_a_miss_inside_the_hold_off_of_an_earlier_alarm_is_marked():
    s = SensorSeries("a", [70.0] * 200, [Anomaly("a", "drop", 60, 69, -10),
                                         Anomaly("a", "spike", 150, 150, 12)],
                     timestamps=[i * 300_000 for i in range(200)])
    marks = [False] * 200
    marks[40] = True  # a false alarm: the rule holds off until 40 + 50
    result = score([s], {"a": marks}, tolerance=12, holdoff=50)
    drop, spike = result["anomalies"]
    assert drop["caught"] is False and drop["held_off_by_alarm_at"] == 40
    assert spike["caught"] is False and "held_off_by_alarm_at" not in spike  # starts after it
    text = text_report(s, result)
    assert "missed: inside the hold-off of the alarm at 40" in text
    assert "false alarms at readings a: 40" in text


def test_the_text_lists_the_first_false_alarms():
    s = SensorSeries("a", [70.0] * 200, [], timestamps=[i * 300_000 for i in range(200)])
    marks = [i % 5 == 0 for i in range(200)]  # 40 false alarms
    text = text_report(s, score([s], {"a": marks}, tolerance=12))
    listed = f"false alarms at readings a: {', '.join(str(i) for i in range(0, 100, 5))}; 20 more"
    assert listed in text


def test_flags_read_back_without_verdicts_count_no_judged_readings():
    s = SensorSeries("a", [70.0] * 200, [], timestamps=[i * 300_000 for i in range(200)])
    marks = [False] * 200  # listar: False is "not flagged", judged or not
    marks[90] = True
    result = score([s], {"a": marks}, tolerance=12, verdicts_seen=False)
    summary = result["summary"]
    assert summary["judged_readings"] is None and summary["false_alarms_per_simulated_day"] is None
    assert summary["false_alarms"] == summary["flagged_readings"] == 1
    assert "false alarms: 1; verdicts not seen (async/MQTT)" in text_report(s, result)

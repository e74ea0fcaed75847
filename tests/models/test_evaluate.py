"""`python -m models.evaluate`: readings streamed through detectar, scored, plotted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models import evaluate
from models.scoring import score

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "modelo"
pytestmark = pytest.mark.skipif(not any(MODEL.glob("*/saved_model.pb")),
                                reason="no exported model in models/modelo/")

ROWS = 1200
WINDOW_ROWS = (1000, 1099)   # the labelled window; the anomaly starts at its left edge
SERIES = "synthetic/one_window.csv"


def synthetic_values(rows: int = ROWS, seed: int = 7) -> np.ndarray:
    """A daily cycle with noise, and at WINDOW_ROWS[0] a sudden 25-degree step up."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    values = 70.0 + 4.0 * np.sin(2 * np.pi * t / 288) + rng.normal(0.0, 0.5, rows)
    values[WINDOW_ROWS[0]:WINDOW_ROWS[0] + 40] += 25.0
    return values


def write_nab_csv(folder: Path, values: np.ndarray) -> tuple[Path, Path]:
    """A NAB-format CSV (5-minute readings from 2020-01-01) and its windows json."""
    start = np.datetime64("2020-01-01T00:00:00")
    stamps = [str(start + np.timedelta64(5 * i, "m")).replace("T", " ") for i in range(len(values))]
    csv_path = folder / "one_window.csv"
    csv_path.write_text("timestamp,value\n" + "".join(
        f"{s},{v:.6f}\n" for s, v in zip(stamps, values)))
    windows_path = folder / "windows.json"
    left, right = (stamps[i] + ".000000" for i in WINDOW_ROWS)
    windows_path.write_text(json.dumps({SERIES: [[left, right]]}))
    return csv_path, windows_path


def timestamps(rows: int) -> list[int]:
    return [1_577_836_800_000 + 300_000 * row for row in range(rows)]


def test_evaluation_is_causal(redis_server):
    """Changing readings after row k never changes a verdict up to row k."""
    k, rows = 880, 940
    base = synthetic_values(rows, seed=3)
    other = base.copy()
    other[k + 1:] += np.linspace(5.0, 60.0, rows - k - 1)   # a different future
    first = evaluate.run_in_process(MODEL, base, timestamps(rows), redis_server.port)
    second = evaluate.run_in_process(MODEL, other, timestamps(rows), redis_server.port)
    for field in ("anomaly", "predicted", "error", "threshold"):
        assert getattr(first, field)[: k + 1] == getattr(second, field)[: k + 1], field
    assert first.predicted[k + 2:] != second.predicted[k + 2:]   # the future did change
    assert first.anomaly[:10] == [None] * 10 and None not in first.anomaly[10:]


def test_each_run_uses_a_fresh_sensor():
    assert evaluate.new_sensor("ours") != evaluate.new_sensor("ours")
    assert evaluate.new_sensor("a/b c").startswith("eval-a-b-c-")


def test_unique_timestamps_from_row_positions(tmp_path):
    csv_path = tmp_path / "repeat.csv"
    csv_path.write_text("timestamp,value\n2014-01-07 02:00:00,1\n2014-01-07 02:05:00,2\n"
                        "2014-01-07 02:00:00,3\n2014-01-07 02:05:00,4\n")
    windows = tmp_path / "w.json"
    windows.write_text(json.dumps({"x/repeat.csv": [["2014-01-07 02:05:00", "2014-01-07 02:05:00"]]}))
    series = evaluate.load_series(csv_path, windows)
    assert series.name == "x/repeat.csv" and series.step_ms == 300_000
    stamps = series.stream_timestamps()
    assert stamps == sorted(set(stamps)) and stamps[1] - stamps[0] == 300_000
    assert series.windows == [(1, 3)]


def test_windows_json_with_several_series_needs_a_name(tmp_path):
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"a/one.csv": [], "b/two.csv": []}))
    assert evaluate.series_key(path, Path("two.csv"), None) == "b/two.csv"
    assert evaluate.series_key(path, Path("x.csv"), "a/one.csv") == "a/one.csv"
    with pytest.raises(evaluate.EvaluationError, match="--series"):
        evaluate.series_key(path, Path("x.csv"), None)


def test_cli_reports_one_obvious_window_and_writes_png_and_json(tmp_path, capsys):
    csv_path, windows_path = write_nab_csv(tmp_path, synthetic_values())
    out = tmp_path / "out"
    code = evaluate.main(["--csv", str(csv_path), "--windows", str(windows_path), "--out",
                          str(out), "--model", str(MODEL), "--no-compare-reference",
                          "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "windows detected" in printed and "NAB raw score" in printed
    assert (out / "evaluation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    document = json.loads((out / "evaluation.json").read_text())
    assert document["series"]["name"] == SERIES and document["series"]["rows"] == ROWS
    assert document["series"]["windows"] == [list(WINDOW_ROWS)]
    (report,) = document["models"]
    assert report["windows_detected"] == 1 and report["windows_total"] == 1
    first = report["first_detections"][0]
    assert WINDOW_ROWS[0] <= first <= WINDOW_ROWS[0] + 5       # caught at the step
    assert report["n_false_positives"] <= 1
    assert report["readings"] == ROWS and report["readings_judged"] == ROWS - 10
    expected = score(ROWS, report["detections"], [WINDOW_ROWS])
    assert report["score"] == pytest.approx(expected.score, abs=1e-6)
    assert report["false_positives"] == expected.false_positives
    assert report["score"] > 0.8
    assert f"{report['score']:+.2f}" in printed


def test_http_and_in_process_give_the_same_verdicts(stack, tmp_path):
    """--url streams through the running gateway; its verdicts equal the in-process ones."""
    values = synthetic_values(900, seed=11)
    stamps = timestamps(len(values))
    with evaluate.over_http(stack.base) as detectar:
        over_http = evaluate.stream(detectar, values, stamps, evaluate.new_sensor("http"),
                                    progress=False)
    in_process = evaluate.run_in_process(MODEL, values, stamps, stack_redis_port(stack))
    assert over_http.anomaly == in_process.anomaly
    assert over_http.predicted == in_process.predicted      # JSON floats round-trip exactly
    assert over_http.error == in_process.error


def stack_redis_port(stack) -> int:
    return int(stack.env["REDIS_PORT"])


def test_bad_inputs_fail_clearly(tmp_path, capsys):
    code = evaluate.main(["--csv", str(tmp_path / "missing.csv"), "--windows",
                          str(tmp_path / "missing.json"), "--no-compare-reference",
                          "--out", str(tmp_path)])
    assert code == 2 and "evaluate:" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate.parse_args(["--csv", "only.csv"])


def test_compare_reference_side_by_side(tmp_path, capsys):
    from tests.conftest import reference_model_dir

    reference = reference_model_dir()
    csv_path, windows_path = write_nab_csv(tmp_path, synthetic_values())
    code = evaluate.main(["--csv", str(csv_path), "--windows", str(windows_path), "--out",
                          str(tmp_path), "--reference", str(reference), "--compare-reference",
                          "--no-progress", "--no-plot"])
    assert code == 0
    document = json.loads((tmp_path / "evaluation.json").read_text())
    assert [m["label"] for m in document["models"]] == ["ours", "replaced"]
    assert document["models"][1]["rule"] == "abs_error"
    assert "replaced" in capsys.readouterr().out

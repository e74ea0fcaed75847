"""`python -m infra.evaluate`: readings streamed through detectar, scored, plotted."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from infra.evaluate import __main__ as cli
from infra.evaluate import detectar
from infra.local import stack_state
from models.evaluation import nab, report
from models.evaluation.scoring import score
from models.locations import DEFAULT_MODEL as MODEL
from shared.config import REPO_ROOT as REPO

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
        f"{s},{v:.6f}\n" for s, v in zip(stamps, values, strict=True)))
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
    first = detectar.run_in_process(MODEL, base, timestamps(rows), redis_server.env())
    second = detectar.run_in_process(MODEL, other, timestamps(rows), redis_server.env())
    for field in ("anomaly", "alert", "predicted", "error", "threshold"):
        assert getattr(first, field)[: k + 1] == getattr(second, field)[: k + 1], field
    assert first.predicted[k + 2:] != second.predicted[k + 2:]   # the future did change
    assert first.anomaly[:10] == [None] * 10 and None not in first.anomaly[10:]


def test_each_run_uses_a_fresh_sensor():
    assert detectar.new_sensor("ours") != detectar.new_sensor("ours")
    assert detectar.new_sensor("a/b c").startswith("eval-a-b-c-")


def test_the_files_own_timestamps_with_a_repeat_moved_just_past(tmp_path):
    csv_path = tmp_path / "repeat.csv"
    csv_path.write_text("timestamp,value\n2014-01-07 02:00:00,1\n2014-01-07 02:05:00,2\n"
                        "2014-01-07 02:00:00,3\n2014-01-07 02:05:00,4\n")
    windows = tmp_path / "w.json"
    windows.write_text(json.dumps({"x/repeat.csv": [["2014-01-07 02:05:00", "2014-01-07 02:05:00"]]}))
    series = cli.load_series(csv_path, windows, None)
    assert series.name == "x/repeat.csv" and series.step_ms == 300_000
    stamps = series.stream_timestamps()
    assert stamps == sorted(set(stamps)) and stamps[1] - stamps[0] == 300_000
    assert stamps[2:] == [stamps[1] + 1, stamps[1] + 2]  # the repeated rows, just past it
    assert series.windows == [(1, 3)]


def test_windows_json_with_several_series_needs_a_name(tmp_path):
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"a/one.csv": [], "b/two.csv": []}))
    assert nab.load_windows(path, Path("two.csv"))[0] == "b/two.csv"
    assert nab.load_windows(path, Path("x.csv"), "a/one.csv")[0] == "a/one.csv"
    with pytest.raises(nab.NabDataError, match="--series"):
        nab.load_windows(path, Path("x.csv"))


def test_cli_reports_one_obvious_window_and_writes_png_and_json(tmp_path, capsys):
    csv_path, windows_path = write_nab_csv(tmp_path, synthetic_values())
    out = tmp_path / "out"
    code = cli.main(["--csv", str(csv_path), "--windows", str(windows_path), "--out",
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
    assert report["n_false_positives"] <= 2   # records of a young range, on its second day
    assert report["readings"] == ROWS and report["readings_judged"] == ROWS - 10
    expected = score(ROWS, report["detections"], [WINDOW_ROWS])
    assert report["score"] == pytest.approx(expected.score, abs=1e-6)
    assert report["false_positives"] == expected.false_positives
    assert report["score"] > 0.75   # the window caught early, two far false alarms at -0.11
    assert f"{report['score']:+.2f}" in printed


def test_http_and_in_process_give_the_same_verdicts(stack, tmp_path):
    """--url streams through the running gateway; its verdicts equal the in-process ones."""
    values = synthetic_values(900, seed=11)
    stamps = timestamps(len(values))
    with detectar.over_http(stack.base) as call:
        over_http = detectar.stream(call, values, stamps, detectar.new_sensor("http"),
                                    progress=False)
    in_process = detectar.run_in_process(MODEL, values, stamps, stack_redis_env(stack))
    assert over_http.anomaly == in_process.anomaly
    assert over_http.predicted == in_process.predicted      # JSON floats round-trip exactly
    assert over_http.error == in_process.error


def stack_redis_env(stack) -> dict[str, str]:
    return {name: stack.env[name] for name in ("REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD_FILE")}


def test_url_alone_streams_through_the_recorded_make_up(stack, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(stack_state, "STATE_FILE", stack.state_file)
    csv_path, windows_path = write_nab_csv(tmp_path, synthetic_values())
    code = cli.main(["--url", "--csv", str(csv_path), "--windows", str(windows_path), "--out",
                     str(tmp_path / "out"), "--no-compare-reference", "--no-progress",
                     "--no-plot"])
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"gateway {stack.base}: the running `make up`")
    assert f"HTTP: {stack.base}" in (tmp_path / "out" / "evaluation.json").read_text()


def test_bad_inputs_fail_clearly(tmp_path, capsys):
    code = cli.main(["--csv", str(tmp_path / "missing.csv"), "--windows",
                          str(tmp_path / "missing.json"), "--no-compare-reference",
                          "--out", str(tmp_path)])
    assert code == 2 and "evaluate:" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.parse_args(["--csv", "only.csv"])


def test_compare_reference_side_by_side(tmp_path, capsys):
    from tests.conftest import reference_model_dir

    reference = reference_model_dir()
    csv_path, windows_path = write_nab_csv(tmp_path, synthetic_values())
    code = cli.main(["--csv", str(csv_path), "--windows", str(windows_path), "--out",
                          str(tmp_path), "--reference", str(reference), "--compare-reference",
                          "--no-progress", "--no-plot"])
    assert code == 0
    document = json.loads((tmp_path / "evaluation.json").read_text())
    assert [m["label"] for m in document["models"]] == ["ours", "replaced"]
    assert document["models"][1]["rule"] == "abs_error"
    assert "replaced" in capsys.readouterr().out


def never_stream(*args, **kwargs):
    pytest.fail("a reading was streamed before the inputs were checked")


@pytest.mark.parametrize("windows, problem", [
    ([["2030-01-01 00:00:00", "2030-01-02 00:00:00"]], "holds no row"),
    ([[0, 100]], "timestamp pairs"),
    ([["2020-01-04 00:00:00", "2020-01-04 01:00:00"],
      ["2020-01-03 00:00:00", "2020-01-03 01:00:00"]], "must be sorted"),
])
def test_bad_windows_fail_in_one_line_before_streaming(tmp_path, capsys, monkeypatch,
                                                       windows, problem):
    monkeypatch.setattr(detectar, "stream", never_stream)
    csv_path, windows_path = write_nab_csv(tmp_path, synthetic_values())
    windows_path.write_text(json.dumps({SERIES: windows}))
    code = cli.main(["--csv", str(csv_path), "--windows", str(windows_path), "--out",
                     str(tmp_path), "--no-compare-reference", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"evaluate: {windows_path}: ") and problem in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("option", [["--model"], ["--compare-reference", "--reference"]])
def test_a_missing_model_fails_in_one_line_before_streaming(tmp_path, capsys, monkeypatch,
                                                            option):
    monkeypatch.setattr(detectar, "stream", never_stream)
    csv_path, windows_path = write_nab_csv(tmp_path, synthetic_values())
    missing = tmp_path / "no-model"
    code = cli.main(["--csv", str(csv_path), "--windows", str(windows_path), "--out",
                     str(tmp_path), "--no-progress", *option, str(missing)])
    assert code == 2
    assert capsys.readouterr().err == f"evaluate: {option[-1]}: {missing}: no such model folder\n"


def test_a_series_inside_the_warm_up_is_flagged(tmp_path, capsys):
    csv_path, windows_path = write_nab_csv(tmp_path, synthetic_values())
    short = tmp_path / "short.csv"
    short.write_text("".join(csv_path.read_text().splitlines(keepends=True)[:6]))  # 5 rows
    stamps = [line.split(",")[0] for line in short.read_text().splitlines()[3:5]]
    windows_path.write_text(json.dumps({SERIES: [stamps]}))
    code = cli.main(["--csv", str(short), "--windows", str(windows_path), "--out",
                     str(tmp_path), "--no-compare-reference", "--no-progress", "--no-plot"])
    assert code == 0   # a warning, not an error: the figures are still those of the run
    (warning,) = capsys.readouterr().err.splitlines()
    assert warning.startswith("evaluate: warning: ours") and "rows 0-9 are its first window" in warning
    assert "only 5 rows" in warning


def test_labelled_windows_inside_the_warm_up_are_flagged():
    values = synthetic_values()
    series = series_of(values, [(100, 199), (749, 800), (1000, 1099)])
    warnings = report.warm_up_warnings("ours", MODEL, series)
    # five-minute readings: the rule learns for a day from row 10, i.e. until row 298
    assert [w.split(": ")[-1] for w in warnings] == [
        "labelled window 1 (rows 100-199) starts while it learns"]


def series_of(values, windows) -> nab.NabSeries:
    """A series of five-minute readings with the given labelled rows."""
    start = datetime(2014, 1, 1)
    stamps = [(start + row * timedelta(minutes=5)).isoformat() for row in range(len(values))]
    return nab.NabSeries(SERIES, stamps, np.asarray(values, dtype=float), windows, [],
                         Path("x.csv"), "")


def quiet_report(series: nab.NabSeries, rule: str | None) -> report.ModelReport:
    """The report of a run that flagged nothing."""
    rows = len(series)
    result = report.Stream([False] * rows, [False] * rows, [None] * rows, [None] * rows, [None] * rows,
                           None, 0.0)
    return report.report_of("ours", "a model", "via", rule, result, series, "s")


def test_the_gateway_s_rule_is_named_not_none():
    series = series_of(np.zeros(3), [])
    table = report.format_table([quiet_report(series, None)], series)
    (rule,) = [line for line in table.splitlines() if line.startswith("rule")]
    assert rule.split()[1:] == ["(the", "gateway's)"]


def test_the_legend_hides_no_reading():
    import matplotlib.pyplot as plt

    from models.evaluation.plot import evaluation_figure

    series = series_of(synthetic_values(), [WINDOW_ROWS])
    figure = evaluation_figure(series, [quiet_report(series, "record_events")] * 2)
    try:
        figure.canvas.draw()   # lays the figure out
        for axis in figure.axes:
            legend = axis.get_legend().get_window_extent()
            assert not legend.overlaps(axis.get_window_extent())
    finally:
        plt.close(figure)


def redis_child(parent: int) -> tuple[int, Path] | None:
    """The redis-server started by process `parent`, once it runs in its folder."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            folder = Path(os.readlink(stat.parent / "cwd"))
        except OSError:   # gone meanwhile, or not ours
            continue
        name, rest = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:]
        if name == "redis-server" and int(rest.split()[1]) == parent \
                and folder.name.startswith("evaluate-redis-"):
            return int(stat.parent.name), folder
    return None


def streaming(folder: Path) -> bool:
    """Redis appends every write to its AOF: tens of kB of it mean readings are flowing."""
    return sum(f.stat().st_size for f in folder.glob("appendonlydir/*.incr.aof")) > 50_000


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stopped_evaluation_stops_its_redis(tmp_path, signum):
    """Ctrl-C or SIGTERM: one line, exit 130, and no redis-server or temporary folder left."""
    csv_path, windows_path = write_nab_csv(tmp_path, synthetic_values(60_000))  # ~1 min
    stderr = tmp_path / "stderr"   # a file: an orphaned redis-server would hold a pipe open
    with stderr.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "infra.evaluate", "--csv", str(csv_path), "--windows",
             str(windows_path), "--model", str(MODEL), "--no-compare-reference", "--no-plot",
             "--no-progress", "--out", str(tmp_path / "out")],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=log,
            # a shell's background job ignores SIGINT, and Python then keeps ignoring it
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    redis = None
    try:
        deadline = time.monotonic() + 15
        while not (redis and streaming(redis[1])) and process.poll() is None \
                and time.monotonic() < deadline:
            redis = redis or redis_child(process.pid)
            time.sleep(0.05)
        assert redis and streaming(redis[1]), "the evaluation did not start streaming"
        process.send_signal(signum)
        process.wait(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        orphaned = bool(redis) and Path(f"/proc/{redis[0]}").exists()
        if orphaned:   # left running: clean up, the test fails below
            os.kill(redis[0], signal.SIGKILL)
            shutil.rmtree(redis[1], ignore_errors=True)
    # -SIGINT: under `python -m`, CPython exits by SIGINT when the interrupt ever ended a
    # string exec (e.g. a dataclass being built), caught or not; a shell shows 130 either way
    assert process.returncode in (130, -signal.SIGINT)
    assert stderr.read_text() == "evaluate: interrupted\n"
    assert not orphaned and not redis[1].exists()

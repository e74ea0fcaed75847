"""Stream a NAB series through `detectar` and score it: `python -m models.evaluate`.

Every reading goes, one by one and in file order, through the very code the `detectar`
function runs, so the figures are those of the deployed system and nothing else:

- by default in process: `shared.endpoint.serve(event, context, DETECTAR, services)`, the
  one call `functions/detectar/handler.py` makes, with the event the python3-http template
  builds (infra/local/gateway.py), against a real Redis Stack server started here
  (infra/local/redis_server.py, free port, temporary folder), with `Services` of its own
  configured like the function's environment (REDIS_HOST/PORT, MODEL_PATH,
  MODEL_ENGINE=embedded, WINDOW_SIZE = the model's window);
- with `--url http://127.0.0.1:8080`: over HTTP through a running gateway (`make up`), i.e.
  whatever model that deployment serves.

Each run writes to a fresh sensor id, so the model starts with no history and no detector
state. The CSV repeats one hour (2014-01-07 02:00-02:55) and Redis never overwrites a
timestamp, so readings are stored at explicit derived timestamps: row i at
first timestamp + i * step, step = the median spacing of the file's timestamps (5 minutes
for NAB). Rows are identified by position throughout.

Reported per model: windows detected, false positives, the first detection in each window,
the NAB standard-profile raw score (models/scoring.py); a PNG plot and a JSON of the figures
go to --out (default `evaluation/`). `--compare-reference` (on by default when the replaced
system's SavedModel is at `$REFERENCE_MODEL_DIR/modelo` or `<repo>/../shared/reference-model/
modelo`) evaluates that model too, with its built-in description (newest-first raw window,
|reading - output[0,0,0]| > 9.2333), always in process, and prints both side by side.

    python -m models.evaluate                       # our model + the replaced one, NAB data
    python -m models.evaluate --model path/to/modelo/1 --no-compare-reference
    python -m models.evaluate --csv my.csv --windows my_windows.json
    python -m models.evaluate --url http://127.0.0.1:8080
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from . import nab
from .scoring import NabResult, probationary_length, score

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO_ROOT / "models" / "modelo"
DEFAULT_OUT = REPO_ROOT / "evaluation"

# A reading the detector answers: the fields of detectar's JSON document we keep.
Answer = Mapping[str, Any]
Detectar = Callable[[str, int, float], Answer]


class EvaluationError(RuntimeError):
    """detectar refused a reading, or the inputs cannot be evaluated."""


# --------------------------------------------------------------------------- the series

@dataclass(frozen=True)
class Series:
    name: str
    values: np.ndarray                 # float64, file order
    timestamps: list[str]              # as in the file (may repeat)
    windows: list[tuple[int, int]]     # inclusive row ranges
    csv_path: str
    sha256: str
    step_ms: int

    def __len__(self) -> int:
        return len(self.values)

    def stream_timestamps(self) -> list[int]:
        """Unique, increasing ms timestamps: the first row's time + row * step."""
        first = _parse_time(self.timestamps[0])
        return [first + row * self.step_ms for row in range(len(self.values))]


def _parse_time(text: str) -> int:
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(round(moment.timestamp() * 1000))


def _median_step_ms(timestamps: Sequence[str]) -> int:
    times = [_parse_time(t) for t in timestamps]
    steps = [b - a for a, b in zip(times, times[1:]) if b > a]
    if not steps:
        raise EvaluationError("cannot derive a reading interval: the timestamps never increase")
    return int(statistics.median(steps))


def series_key(windows_path: Path, csv_path: Path, series: str | None) -> str:
    """Which entry of a NAB windows json belongs to the CSV: --series, else the entry whose
    file name is the CSV's, else the only entry."""
    try:
        data = json.loads(Path(windows_path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvaluationError(f"{windows_path}: cannot read it as JSON: {exc}") from exc
    if not isinstance(data, dict) or not data:
        raise EvaluationError(f"{windows_path}: expected an object of series -> windows")
    if series is not None:
        if series not in data:
            raise EvaluationError(f"{windows_path}: no windows for {series!r}")
        return series
    named = [key for key in data if Path(key).name == Path(csv_path).name]
    if len(named) == 1:
        return named[0]
    if len(data) == 1:
        return next(iter(data))
    raise EvaluationError(f"{windows_path}: holds several series; name one with --series")


def load_series(csv_path: Path | None = None, windows_path: Path | None = None,
                series: str | None = None) -> Series:
    """The NAB machine-temperature series (NAB_DATA_DIR or the pinned download), or any
    NAB-format CSV with its windows json."""
    if csv_path is None:
        data = nab.load_machine_temperature()
        name = nab.SERIES
    else:
        if windows_path is None:
            raise EvaluationError("--csv needs --windows (its NAB windows json)")
        name = series_key(windows_path, csv_path, series)
        data = nab.load_series(csv_path, windows_path, name)
    if len(data) < 2:
        raise EvaluationError(f"{data.csv_path}: too few rows to evaluate")
    return Series(name, data.values, data.timestamps, data.windows, str(data.csv_path),
                  data.sha256, _median_step_ms(data.timestamps))


# ---------------------------------------------------------------- the detectar function

class _Event:
    """The python3-http template's event (what infra/local/gateway.py builds)."""

    def __init__(self, body: bytes):
        from werkzeug.datastructures import Headers, MultiDict

        self.body = body
        self.headers = Headers({"Content-Type": "application/json", "Accept": "application/json"})
        self.method = "POST"
        self.query = MultiDict({"format": "json"})
        self.path = "/"


class _Context:
    hostname = "models.evaluate"


def model_description(model_path: Path):
    """The model's description (its model.json, or the replaced model's built-in one)."""
    from shared.serving.description import load_description, resolve_version_dir

    try:
        return load_description(resolve_version_dir(model_path))
    except ValueError as exc:  # not a model folder, or a bad model.json
        raise EvaluationError(str(exc)) from exc


def model_window(model_path: Path) -> int:
    return model_description(model_path).window


def detectar_env(redis_port: int, model_path: Path) -> dict[str, str]:
    """The settings detectar runs with here: our Redis, the model, the embedded engine."""
    return {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis_port),
            "MODEL_PATH": str(model_path), "MODEL_ENGINE": "embedded",
            "WINDOW_SIZE": str(model_window(model_path)),
            "API_TOKEN_FILE": "", "REDIS_PASSWORD_FILE": ""}


def _answer(status: int, body: str, sensor: str, timestamp: int) -> Answer:
    try:
        document = json.loads(body)
    except json.JSONDecodeError:
        document = {"error": body[:300]}
    if status != 200:
        raise EvaluationError(f"detectar answered {status} for sensor {sensor!r} at "
                              f"{timestamp}: {document.get('error', document)}")
    return document


@contextmanager
def in_process(model_path: Path, redis_port: int) -> Iterator[Detectar]:
    """detectar's endpoint in this process, over the Redis at `redis_port`."""
    from shared.actions import DETECTAR
    from shared.endpoint import serve
    from shared.services import Services

    services = Services(detectar_env(redis_port, model_path))
    services.detector  # load the model now: a broken one fails before any reading

    def call(sensor: str, timestamp: int, value: float) -> Answer:
        body = json.dumps({"sensor": sensor, "dato": value, "timestamp": timestamp})
        returned = serve(_Event(body.encode()), _Context(), DETECTAR, services)
        return _answer(returned["statusCode"], returned["body"], sensor, timestamp)

    try:
        yield call
    finally:
        services.store.client.close()


@contextmanager
def over_http(url: str, token: str | None = None, timeout: float = 10.0) -> Iterator[Detectar]:
    """detectar behind a running gateway (`make up`) at `url`."""
    import requests

    endpoint = url.rstrip("/") + "/function/detectar"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with requests.Session() as http:
        def call(sensor: str, timestamp: int, value: float) -> Answer:
            try:
                reply = http.post(endpoint, params={"format": "json"}, headers=headers,
                                  json={"sensor": sensor, "dato": value, "timestamp": timestamp},
                                  timeout=timeout)
            except requests.RequestException as exc:
                raise EvaluationError(f"cannot reach detectar at {endpoint}: {exc}") from exc
            return _answer(reply.status_code, reply.text, sensor, timestamp)

        yield call


@contextmanager
def local_redis() -> Iterator[int]:
    """A Redis Stack server of our own on a free port in a temporary folder."""
    from infra.local.redis_server import RedisServer

    with tempfile.TemporaryDirectory(prefix="evaluate-redis-") as folder:
        server = RedisServer(Path(folder), fsync="no")  # durability is not the point
        try:  # also stops a server interrupted while it starts
            yield server.start().port
        finally:
            server.stop()


# ------------------------------------------------------------------------- streaming

@dataclass
class Stream:
    """detectar's verdict on every row, in order."""

    anomaly: list[bool | None]
    predicted: list[float | None]
    error: list[float | None]
    threshold: list[float | None]
    engine: str | None
    seconds: float

    @property
    def detections(self) -> list[int]:
        return [row for row, flag in enumerate(self.anomaly) if flag]


def new_sensor(tag: str) -> str:
    safe = "".join(c if c.isalnum() or c in "._:-" else "-" for c in tag)[:40]
    return f"eval-{safe}-{uuid.uuid4().hex[:12]}"


def stream(detectar: Detectar, values: Sequence[float], timestamps: Sequence[int],
           sensor: str, progress: bool = True, label: str = "detectar") -> Stream:
    """Send every reading, in order, and keep the verdicts."""
    if len(values) != len(timestamps):
        raise EvaluationError("values and timestamps differ in length")
    rows = range(len(values))
    if progress:
        from tqdm import tqdm

        rows = tqdm(rows, desc=label, unit="reading", mininterval=0.5, leave=False,
                    file=sys.stderr)
    result = Stream([], [], [], [], None, 0.0)
    started = time.perf_counter()
    for row in rows:
        answer = detectar(sensor, int(timestamps[row]), float(values[row]))
        result.anomaly.append(answer.get("anomaly"))
        result.predicted.append(answer.get("predicted"))
        result.error.append(answer.get("error"))
        result.threshold.append(answer.get("threshold"))
        result.engine = answer.get("engine") or result.engine
    result.seconds = time.perf_counter() - started
    return result


def run_in_process(model_path: Path, values: Sequence[float], timestamps: Sequence[int],
                   redis_port: int | None = None, sensor: str | None = None,
                   progress: bool = False, label: str | None = None) -> Stream:
    """Stream `values` through detectar's endpoint with `model_path` (starts a Redis unless
    `redis_port` is given). Used by the CLI and the tests alike."""
    sensor = sensor or new_sensor(Path(model_path).name)
    if redis_port is None:
        with local_redis() as port:
            return run_in_process(model_path, values, timestamps, port, sensor, progress, label)
    with in_process(Path(model_path), redis_port) as detectar:
        return stream(detectar, values, timestamps, sensor, progress,
                      label or Path(model_path).name)


# ------------------------------------------------------------------------- reporting

@dataclass
class ModelReport:
    label: str
    model: str
    via: str
    rule: str | None
    windows_detected: int
    windows_total: int
    false_positives: list[int]
    first_detections: list[int | None]
    window_scores: list[float]
    false_positive_costs: list[float]
    score: float
    detections: list[int]
    readings: int
    readings_judged: int
    engine: str | None
    seconds: float
    sensor: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_false_positives(self) -> int:
        return len(self.false_positives)


def report_of(label: str, model: str, via: str, rule: str | None, result: Stream,
              series: Series, sensor: str) -> ModelReport:
    nab_result: NabResult = score(len(series), result.detections, series.windows)
    return ModelReport(
        label=label, model=model, via=via, rule=rule,
        windows_detected=nab_result.windows_detected, windows_total=len(series.windows),
        false_positives=nab_result.false_positives,
        first_detections=nab_result.first_detections,
        window_scores=[round(s, 6) for s in nab_result.window_scores],
        false_positive_costs=[round(c, 6) for c in nab_result.false_positive_costs],
        score=round(nab_result.score, 6), detections=result.detections,
        readings=len(result.anomaly),
        readings_judged=sum(flag is not None for flag in result.anomaly),
        engine=result.engine, seconds=round(result.seconds, 2), sensor=sensor)


def describe_rule(model_path: Path) -> str | None:
    return model_description(model_path).decision.get("rule")


def warm_up_warnings(label: str, model_path: Path, series: Series) -> list[str]:
    """Where the model cannot alarm: its first window + min_count rows (filling the window,
    then the rule learning the sensor), so a series or a labelled window there is not judged."""
    description = model_description(model_path)
    min_count = int(description.decision.get("min_count", 0))
    warm_up = description.window + min_count
    why = (f"{label} ({model_path}) raises no alarm in its warm-up, rows 0-{warm_up - 1} "
           f"(window {description.window} + min_count {min_count})")
    if len(series) <= warm_up:
        return [f"{why}: the series has only {len(series)} rows, so nothing can be detected"]
    return [f"{why}: labelled window {k + 1} (rows {left}-{right}) starts inside it"
            for k, (left, right) in enumerate(series.windows) if left < warm_up]


RECORD_VARIANTS = (
    ("record_level, test=reading (round 3: the reading beyond the 30-day range)",
     {"test": "reading"}, False),
    ("record_level, test=prediction (V1: the prediction beyond it)", {"test": "prediction"}, False),
    ("record_level, test=both (V2: reading and prediction beyond it, same side)",
     {"test": "both"}, False),
    ("record_level, test=either (the reading or the prediction beyond it)",
     {"test": "either"}, False),
    ("V3: the rule fed the predictions (range, level, re-arming over past predictions)",
     {"test": "reading"}, True),
)


def rule_variants(model_path: Path, values: Sequence[float], result: Stream,
                  series: Series) -> list[dict[str, Any]]:
    """The `record_level` variants of round 4, replayed offline on the predictions detectar
    answered in the run (the same predictions for all): empty for any other rule."""
    from shared import rules

    decision = dict(model_description(model_path).decision)
    if decision.get("rule") != "record_level":
        return []
    decision.pop("calibration", None)
    shipped = decision.get("test", "reading")
    empty = np.zeros(0)
    out = []
    for name, change, fed_predictions in RECORD_VARIANTS:
        state: dict[str, float] = {}
        detections = []
        for row, (value, predicted) in enumerate(zip(values, result.predicted)):
            if predicted is None:
                continue
            reading = float(predicted) if fed_predictions else float(value)
            verdict = rules.decide({**decision, **change}, reading, float(predicted), empty, state)
            state = verdict.state
            if verdict.anomaly:
                detections.append(row)
        nab_result = score(len(series), detections, series.windows)
        out.append({"variant": name, "shipped": not fed_predictions and change["test"] == shipped,
                    "windows_detected": nab_result.windows_detected,
                    "windows_total": len(series.windows),
                    "false_positives": nab_result.false_positives,
                    "first_detections": nab_result.first_detections,
                    "window_scores": [round(x, 6) for x in nab_result.window_scores],
                    "score": round(nab_result.score, 6)})
    return out


def format_variants(variants: Sequence[Mapping[str, Any]]) -> str:
    lines = ["record_level variants on the same predictions (offline replay; * = shipped):"]
    for v in variants:
        lines.append(f"{'*' if v['shipped'] else ' '} {v['variant']}\n"
                     f"    {v['windows_detected']}/{v['windows_total']} windows, "
                     f"{len(v['false_positives'])} FP, NAB {v['score']:+.2f}, first "
                     f"{_fmt_rows(v['first_detections'])}, FP rows "
                     f"{_fmt_rows(v['false_positives'])}")
    return "\n".join(lines)


def _fmt_rows(rows: Sequence[int | None]) -> str:
    return ", ".join("-" if r is None else str(r) for r in rows) or "none"


def format_table(reports: Sequence[ModelReport], series: Series) -> str:
    lines = [f"series {series.name}: {len(series)} rows, windows (rows) "
             f"{', '.join(f'{a}-{b}' for a, b in series.windows)}, probationary rows "
             f"0-{probationary_length(len(series)) - 1}",
             f"timestamps: first row's + row * {series.step_ms // 1000} s (rows by position)"]
    rows = [
        ("model", [r.label for r in reports]),
        ("path / via", [f"{r.model} ({r.via})" for r in reports]),
        ("rule", [r.rule or "(the gateway's)" for r in reports]),
        ("windows detected", [f"{r.windows_detected}/{r.windows_total}" for r in reports]),
        ("false positives", [str(r.n_false_positives) for r in reports]),
        ("first detections", [_fmt_rows(r.first_detections) for r in reports]),
        ("window scores", [", ".join(f"{s:+.2f}" for s in r.window_scores) for r in reports]),
        ("NAB raw score", [f"{r.score:+.2f}" for r in reports]),
        ("false-positive rows", [_fmt_rows(r.false_positives) for r in reports]),
        ("seconds", [f"{r.seconds:.1f}" for r in reports]),
    ]
    width = max(len(name) for name, _ in rows)
    columns = [max(len(cells[i]) for _, cells in rows) for i in range(len(reports))]
    for name, cells in rows:
        lines.append("  ".join([name.ljust(width)] + [c.ljust(w) for c, w in zip(cells, columns)]))
    return "\n".join(lines)


def write_json(path: Path, series: Series, reports: Sequence[ModelReport],
               variants: Sequence[Mapping[str, Any]] = ()) -> Path:
    document = {
        "series": {"name": series.name, "csv": series.csv_path, "sha256": series.sha256,
                   "rows": len(series), "windows": [list(w) for w in series.windows],
                   "probationary_rows": probationary_length(len(series)),
                   "timestamps": f"first row's timestamp + row * {series.step_ms} ms "
                                 "(the CSV repeats timestamps; rows are identified by position)"},
        "scoring": "NAB standard profile (tp 1, fp 0.11, fn 1), raw score of this file",
        "models": [{**asdict(r), "n_false_positives": r.n_false_positives} for r in reports],
        "rule_variants": list(variants),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path


def reference_model_dir() -> Path | None:
    """The replaced system's SavedModel folder, if it is where we are given it."""
    candidates = []
    if os.environ.get("REFERENCE_MODEL_DIR"):
        candidates.append(Path(os.environ["REFERENCE_MODEL_DIR"]) / "modelo")
    candidates.append(REPO_ROOT.parent / "shared" / "reference-model" / "modelo")
    return next((c for c in candidates if c.is_dir()), None)


# ------------------------------------------------------------------------------- CLI

def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m models.evaluate",
                                     description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL,
                        help="a SavedModel folder (a version folder, or a base folder with "
                             "numeric versions; model.json optional) (default models/modelo)")
    parser.add_argument("--csv", type=Path, help="a NAB-format CSV (timestamp,value) "
                        "(default: the machine-temperature series, NAB_DATA_DIR or download)")
    parser.add_argument("--windows", type=Path, help="its NAB windows json")
    parser.add_argument("--series", help="the series' key in the windows json (default: the "
                        "entry named like the CSV, or the only one)")
    parser.add_argument("--url", help="stream through a running gateway, e.g. "
                        "http://127.0.0.1:8080 (its model, not --model)")
    parser.add_argument("--token", default=os.environ.get("API_TOKEN"),
                        help="API token for --url when writes need one (default $API_TOKEN)")
    reference = reference_model_dir()
    parser.add_argument("--compare-reference", action=argparse.BooleanOptionalAction,
                        default=reference is not None,
                        help="also evaluate the replaced system's model (default: on when it "
                             f"is found; now {'found at ' + str(reference) if reference else 'not found'})")
    parser.add_argument("--reference", type=Path, default=reference,
                        help="the replaced system's model folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="folder for evaluation.png and evaluation.json (default evaluation/)")
    parser.add_argument("--no-plot", action="store_true", help="write no PNG")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if (args.csv is None) != (args.windows is None):
        parser.error("--csv and --windows go together")
    if args.compare_reference and args.reference is None:
        parser.error("--compare-reference: the replaced model was not found; name it with "
                     "--reference or REFERENCE_MODEL_DIR")
    return args


def evaluate(args: argparse.Namespace) -> list[ModelReport]:
    series = load_series(args.csv, args.windows, args.series)
    in_process_models = [("ours", "--model", args.model)] if args.url is None else []
    if args.compare_reference:
        in_process_models.append(("replaced", "--reference", args.reference))
    for label, option, path in in_process_models:  # a bad model fails before any reading
        try:
            warnings = warm_up_warnings(label, path, series)
        except EvaluationError as exc:
            raise EvaluationError(f"{option}: {exc}") from exc
        for warning in warnings:
            print(f"evaluate: warning: {warning}", file=sys.stderr)
    timestamps = series.stream_timestamps()
    progress = not args.no_progress
    reports = []

    variants: list[dict[str, Any]] = []

    def in_process_report(label: str, path: Path, port: int) -> ModelReport:
        sensor = new_sensor(label)
        result = run_in_process(path, series.values, timestamps, port, sensor, progress, label)
        if label == "ours":
            variants.extend(rule_variants(path, series.values, result, series))
        return report_of(label, str(path), "in process: detectar's endpoint",
                         describe_rule(path), result, series, sensor)

    needs_redis = args.url is None or args.compare_reference
    with (local_redis() if needs_redis else _nothing()) as port:
        if args.url is None:
            reports.append(in_process_report("ours", args.model, port))
        else:
            sensor = new_sensor("ours")
            with over_http(args.url, args.token) as detectar:
                result = stream(detectar, series.values, timestamps, sensor, progress,
                                "detectar (HTTP)")
            reports.append(report_of("ours", "the gateway's model", f"HTTP: {args.url}",
                                     None, result, series, sensor))
        if args.compare_reference:
            reports.append(in_process_report("replaced", args.reference, port))

    print(format_table(reports, series))
    if variants:
        print(format_variants(variants))
    args.out.mkdir(parents=True, exist_ok=True)
    written = [write_json(args.out / "evaluation.json", series, reports, variants)]
    if not args.no_plot:
        from .plot import plot_evaluation

        written.append(plot_evaluation(args.out / "evaluation.png", series, reports))
    print("wrote " + ", ".join(str(p) for p in written))
    return reports


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    # SIGTERM unwinds like Ctrl-C, so the local Redis is stopped and its folder removed
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        evaluate(args)
    except (EvaluationError, nab.NabDataError) as exc:
        print(f"evaluate: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("evaluate: interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Stream a NAB series through `detectar` and score it: `python -m infra.evaluate`.

Every reading goes, one by one and in file order, through the very code the `detectar`
function runs, so the figures are those of the deployed system and nothing else:

- by default in process: `shared.endpoint.serve(event, context, DETECTAR, services)`, the
  one call `functions/detectar/handler.py` makes, with the event the local gateway builds
  (infra/local/gateway.py), against a real Redis Stack server started here
  (infra/local/redis_server.py, free port, temporary folder), with `Services` of its own
  configured like the function's environment (REDIS_HOST/PORT, MODEL_PATH,
  MODEL_ENGINE=embedded, WINDOW_SIZE = the model's window);
- with `--url http://127.0.0.1:8080`: over HTTP through a running gateway (`make up`), i.e.
  whatever model that deployment serves; `--url` alone: the `make up` recorded in
  data/local-stack.json (infra/local/stack_state.py).

Each run writes to a fresh sensor id, so the model starts with no history and no detector
state. Readings are stored at the file's own timestamps; a sensor never holds two readings at
one timestamp and detectar judges readings in order, so a repeated or earlier timestamp (the
machine-temperature CSV repeats 2014-01-07 02:00-02:55) is moved 1 ms past the one before.
Rows are identified by position throughout.

Reported per model: windows detected, false positives, the first detection in each window,
the NAB standard-profile raw score (models/evaluation/scoring.py); a PNG plot and a JSON of
the figures go to --out (default `evaluation/`). `--compare-reference` (on by default when the
replaced system's SavedModel is found, models/locations.py) evaluates that model too, with its
built-in description (newest-first raw window, |reading - output[0,0,0]| > 9.2333), always in
process, and prints both side by side.

    python -m infra.evaluate                       # our model + the replaced one, NAB data
    python -m infra.evaluate --model path/to/modelo/1 --no-compare-reference
    python -m infra.evaluate --csv my.csv --windows my_windows.json
    python -m infra.evaluate --url http://127.0.0.1:8080
    python -m infra.evaluate --url                 # the running `make up`
    python -m infra.evaluate --corpus               # every file of NAB_DATA_DIR/corpus

`--corpus [DIR]` streams every file of a NAB corpus (`<category>/<file>.csv` with
`windows.json`; default NAB_DATA_DIR/corpus) through detectar in process, `--jobs` files at
once, each under a fresh sensor at the file's own timestamps, and prints per file and in
total the windows found, false alarms and NAB raw score, and the normalised score, beside the
published detectors' (`published_scores.json`); `--plot-files` adds a PNG per file. A
detection is an alert: the reading that starts an event, what an operator is paged for.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

from models.evaluation import EvaluationError, corpus, generalisation, nab
from models.evaluation.report import (
    ModelReport,
    format_table,
    model_description,
    report_of,
    warm_up_warnings,
    write_json,
)
from models.locations import DEFAULT_MODEL, reference_model_dir
from shared.config import REPO_ROOT

from ..local import stack_state
from ..simulator import suite
from .corpus import evaluate_corpus
from .detectar import in_process, local_redis, new_sensor, over_http, run_in_process, stream

DEFAULT_OUT = REPO_ROOT / "evaluation"


def load_series(csv_path: Path | None, windows_path: Path | None,
                series: str | None) -> nab.NabSeries:
    """The NAB machine-temperature series (NAB_DATA_DIR or the pinned download), or any
    NAB-format CSV with its windows json."""
    if csv_path is None:
        data = nab.load_machine_temperature()
    elif windows_path is None:
        raise EvaluationError("--csv and --windows go together")
    else:
        data = nab.load_series(csv_path, windows_path, series)
    if len(data) < 2:
        raise EvaluationError(f"{data.csv_path}: too few rows to evaluate")
    return data


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m infra.evaluate",
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
    parser.add_argument("--corpus", type=Path, nargs="?", const=default_corpus(),
                        help="evaluate every file of a NAB corpus folder instead "
                             f"(default {default_corpus()})")
    parser.add_argument("--jobs", type=int, default=2,
                        help="with --corpus: files streamed at once (default 2)")
    parser.add_argument("--cadences", default="0,900,3600",
                        help="with --corpus: the cadences to run the corpus at, seconds, "
                             "comma-separated; 0 is each file as recorded, others average "
                             "each interval (default 0,900,3600)")
    parser.add_argument("--scenarios", action="store_true",
                        help="run the operator scenario suite (infra/simulator/suite.py) "
                             "through detectar in process instead")
    parser.add_argument("--plot-files", action="store_true",
                        help="with --corpus: a PNG per file under --out/corpus/")
    parser.add_argument("--url", nargs="?", const="",
                        help="stream through a running gateway, e.g. http://127.0.0.1:8080 (its "
                             "model, not --model); --url alone: the running `make up`")
    parser.add_argument("--token", default=os.environ.get("API_TOKEN"),
                        help="API key for --url when writes need one: each call is signed "
                        "with it (default $API_TOKEN)")
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
    return parser


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The options, checked against each other."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.scenarios and (args.corpus is not None or args.csv or args.url):
        parser.error("--scenarios runs its own sensors in process: not with --corpus, --csv "
                     "or --url")
    if args.scenarios:
        args.compare_reference = False
    if args.corpus is not None and (args.csv or args.url):
        parser.error("--corpus streams its own files in process: not with --csv or --url")
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if args.corpus is not None:
        args.compare_reference = False  # the corpus run scores --model only
    try:
        args.cadences = sorted({int(c) for c in args.cadences.split(",")})
    except ValueError:
        parser.error(f"--cadences: whole seconds, comma-separated, got {args.cadences!r}")
    if not args.cadences or min(args.cadences) < 0:
        parser.error("--cadences: at least one, none negative")
    if (args.csv is None) != (args.windows is None):
        parser.error("--csv and --windows go together")
    if args.compare_reference and args.reference is None:
        parser.error("--compare-reference: the replaced model was not found; name it with "
                     "--reference or REFERENCE_MODEL_DIR")
    return args


def default_corpus() -> Path:
    return Path(os.environ.get("NAB_DATA_DIR") or REPO_ROOT.parent / "shared" / "data" / "nab") / "corpus"


def evaluate_whole_corpus(args: argparse.Namespace) -> list[corpus.FileScore]:
    model_description(args.model)  # a bad model fails before any reading
    detectors = corpus.published(args.corpus)
    runs = {}
    with local_redis() as redis_env:
        for cadence in args.cadences:
            runs[cadence] = evaluate_corpus(args.corpus, args.model, redis_env, args.jobs,
                                            not args.no_progress, cadence)
    results = runs[args.cadences[0]]
    scores = [score for _, score in results]
    print(corpus.format_table(scores, detectors))
    print(corpus.format_categories(scores))
    summary = generalisation.summary({c: [s for _, s in r] for c, r in runs.items()},
                                     corpus.published_profiles(args.corpus))
    print(generalisation.format_summary(summary))
    written = [corpus.write_json(args.out / "corpus.json", scores, detectors, summary)]
    if args.plot_files:
        from models.evaluation.plot import plot_evaluation

        for series, score in results:
            written.append(plot_evaluation(args.out / "corpus" / score.key.replace(".csv", ".png"),
                                           series, [score.report]))
    print(f"wrote {written[0]}" + (f" and {len(written) - 1} PNGs" if len(written) > 1 else ""))
    return scores


def evaluate_scenarios(args: argparse.Namespace) -> dict:
    """The operator scenario suite through detectar's endpoint, in process."""
    model_description(args.model)  # a bad model fails before any reading
    with local_redis() as redis_env, in_process(args.model, redis_env) as detectar:
        def judge(scenario: suite.Scenario) -> suite.Answers:
            result = stream(detectar, scenario.values, scenario.timestamps,
                            new_sensor(scenario.name.split(" ")[0]), not args.no_progress,
                            scenario.name)
            return list(zip(result.alert, result.kind, result.notes, strict=True))

        report = suite.run(judge)
    print(suite.format_score(report))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "scenarios.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return report


def evaluate(args: argparse.Namespace) -> list[ModelReport]:
    if args.url == "":  # --url alone: the stack `make up` recorded
        args.url, why = stack_state.gateway_url(None)
        print(why)
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

    def in_process_report(label: str, path: Path, redis_env: dict[str, str] | None) -> ModelReport:
        sensor = new_sensor(label)
        result = run_in_process(path, series.values, timestamps, redis_env, sensor, progress,
                                label)
        return report_of(label, str(path), "in process: detectar's endpoint",
                         model_description(path).decision.get("rule"), result, series, sensor)

    needs_redis = args.url is None or args.compare_reference
    with (local_redis() if needs_redis else nullcontext()) as redis_env:
        if args.url is None:
            reports.append(in_process_report("ours", args.model, redis_env))
        else:
            sensor = new_sensor("ours")
            with over_http(args.url, args.token) as detectar:
                result = stream(detectar, series.values, timestamps, sensor, progress,
                                "detectar (HTTP)")
            reports.append(report_of("ours", "the gateway's model", f"HTTP: {args.url}",
                                     None, result, series, sensor))
        if args.compare_reference:
            reports.append(in_process_report("replaced", args.reference, redis_env))

    print(format_table(reports, series))
    args.out.mkdir(parents=True, exist_ok=True)
    written = [write_json(args.out / "evaluation.json", series, reports)]
    if not args.no_plot:
        from models.evaluation.plot import plot_evaluation

        written.append(plot_evaluation(args.out / "evaluation.png", series, reports))
    print("wrote " + ", ".join(str(p) for p in written))
    return reports


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    # SIGTERM unwinds like Ctrl-C, so the local Redis is stopped and its folder removed
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        if args.scenarios:
            evaluate_scenarios(args)
        elif args.corpus is not None:
            evaluate_whole_corpus(args)
        else:
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

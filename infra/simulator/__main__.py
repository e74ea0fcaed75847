"""`make simulate`: sensors that send readings with anomalies at known times, and a report.

    python -m infra.simulator [--gateway http://127.0.0.1:8080] [--sensors 3] [--seed 7]
    python -m infra.simulator --csv $NAB_DATA_DIR/machine_temperature_system_failure.csv
    python -m infra.simulator --via mqtt --broker tcp://127.0.0.1:1883
    python -m infra.simulator --gateway http://swarm-host:8080 --token-file infra/.secrets/api-token

Generates realistic readings (or replays a NAB-format CSV) for N sensors, injects anomalies
of known kinds (spike, drop, stuck, drift) at known times after a warm-up, sends them to
`detectar` (one call per reading, or `/async-function/`), to `nuevo` in batches, or over
MQTT, and reports which anomalies detectar caught, how fast, and its false alarms: printed,
and saved as JSON (--report). See infra/simulator/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from models.evaluation.nab import NabDataError
from models.locations import DEFAULT_MODEL
from shared.config import REPO_ROOT

from ..local import stack_state
from . import report as reporting
from .scenario import CADENCE_S, KINDS, Plan, SensorSeries, generate, replay, sensor_names, stamp
from .transport import Gateway, MqttPublisher, Tally, TransportError

MARGIN = 30  # readings of warm-up beyond what the rule needs


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows the defaults that are values: an option without one says in its help what
    happens, and a flag's False says nothing."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m infra.simulator",
                                description=__doc__.split("\n")[0], formatter_class=HelpFormatter)
    p.add_argument("--gateway", default=os.environ.get("OPENFAAS_URL"),
                   help="the gateway (local stack or Swarm; default $OPENFAAS_URL, else the "
                        "running `make up`, else http://127.0.0.1:8080)")
    p.add_argument("--token-file", type=Path, help="file holding the functions' API key (signs each write)")
    p.add_argument("--via", choices=("detectar", "nuevo", "mqtt"), default="detectar",
                   help="detectar: one call per reading; nuevo: batches (stored, not judged); "
                        "mqtt: one message per reading to --broker")
    p.add_argument("--async", dest="asynchronous", action="store_true",
                   help="detectar through /async-function/ and the queue worker")
    p.add_argument("--batch", type=int, default=500, help="readings per nuevo call")
    p.add_argument("--broker", default=os.environ.get("MQTT_BROKER") or "tcp://127.0.0.1:1883",
                   help="the MQTT broker, for --via mqtt")
    p.add_argument("--topic", default="planta/temperatura",
                   help="MQTT topic; '{sensor}' in it is replaced by the sensor "
                        "(e.g. planta/{sensor}/temperatura) and the payload then names none")
    p.add_argument("--qos", type=int, choices=(0, 1, 2), default=1, help="MQTT QoS")
    p.add_argument("--csv", type=Path, help="replay this NAB-format CSV instead of generating")
    p.add_argument("--limit", type=int, help="replay only the first LIMIT rows")
    p.add_argument("--sensors", type=int, default=3, help="how many sensors")
    p.add_argument("--sensor-prefix", default="sim", help="sensors are <prefix>-<run>-<i>")
    p.add_argument("--seed", type=int, default=7, help="seed of the generated readings")
    p.add_argument("--kinds", help="anomaly kinds to inject, comma-separated, in order: "
                   f"{','.join(KINDS)} (default: all when generating, none when replaying)")
    p.add_argument("--warmup", type=int, help="readings per sensor before the first anomaly "
                   "(default: what the model's rule needs, plus a margin)")
    p.add_argument("--tolerance", type=int, default=12,
                   help="readings after an anomaly's end in which a flag still counts as caught")
    p.add_argument("--gap", type=int, default=24, help="extra calm readings between anomalies")
    p.add_argument("--cadence", type=int, default=CADENCE_S, help="simulated seconds between readings")
    p.add_argument("--rate", type=float, default=0.0, help="readings per second (0: as fast as it goes)")
    p.add_argument("--settle-timeout", type=float, default=120.0,
                   help="seconds to wait for asynchronous readings to be stored (async, mqtt)")
    p.add_argument("--model-path", type=Path, default=Path(os.environ.get("MODEL_PATH") or DEFAULT_MODEL),
                   help="the model whose rule sets the warm-up and the spacing")
    p.add_argument("--report", type=Path, help="where the JSON goes "
                   "(default data/simulator/report-<run>.json)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if (args.sensors < 1 or args.batch < 1 or args.tolerance < 0 or args.gap < 0 or args.cadence < 1
            or (args.limit is not None and args.limit < 1)):
        p.error("--sensors, --batch, --cadence and --limit must be at least 1; "
                "--tolerance and --gap at least 0")
    if args.asynchronous and args.via != "detectar":
        p.error("--async applies to --via detectar")
    try:
        args.kind_list = [KINDS[k.strip()] for k in (args.kinds or "").split(",") if k.strip()]
    except KeyError as exc:
        p.error(f"unknown anomaly kind {exc.args[0]!r}; known: {', '.join(KINDS)}")
    if args.kinds is None and args.csv is None:
        args.kind_list = list(KINDS.values())
    return args


def model_rule(model_path: Path, cadence_s: int) -> dict[str, Any]:
    """The model's window and decision rule: its learning period and hold-off, in readings at
    `cadence_s`, or defaults and a reason."""
    try:
        from shared.serving.description import load_description, resolve_version_dir

        description = load_description(resolve_version_dir(model_path))
    except (OSError, ValueError) as exc:  # a missing or foreign model only changes the defaults
        return {"window": 10, "rule": None, "min_count": 0, "holdoff": 0,
                "note": f"model at {model_path} not readable ({exc}); assuming no warm-up rule"}
    decision = description.decision
    learning_s, holdoff_s = decision.get("learning_s", 0), decision.get("holdoff_s", 0)
    return {"window": description.window, "rule": decision.get("rule"),
            "learning_s": learning_s, "holdoff_s": holdoff_s,
            "min_count": math.ceil(learning_s / cadence_s), "holdoff": math.ceil(holdoff_s / cadence_s),
            "threshold": decision.get("threshold"), "model": str(model_path)}


def interleaved(series: list[SensorSeries]) -> Iterator[tuple[SensorSeries, int]]:
    """All sensors' reading i, then all sensors' reading i+1: as sensors report in time."""
    for i in range(max(len(s.values) for s in series)):
        for s in series:
            if i < len(s.values):
                yield s, i


class Pacer:
    def __init__(self, rate: float):
        self.rate, self.started, self.sent = rate, time.monotonic(), 0

    def wait(self, readings: int = 1) -> None:
        self.sent += readings
        if self.rate > 0:
            ahead = self.started + self.sent / self.rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)


def progress(total: int, desc: str, disabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="reading", disable=disabled, file=sys.stderr,
                dynamic_ncols=True)


def send(args, series: list[SensorSeries], gateway: Gateway) -> tuple[dict, Tally, bool]:
    """Send every reading; returns (verdicts per sensor, tally, verdicts came back directly)."""
    tally, pacer = Tally(), Pacer(args.rate)
    verdicts: dict[str, list[bool | None]] = {s.sensor: [None] * len(s.values) for s in series}
    total = sum(len(s.values) for s in series)
    with progress(total, f"{args.via}{' (async)' if args.asynchronous else ''}",
                  args.no_progress) as bar:
        if args.via == "nuevo":
            for start in range(0, max(len(s.values) for s in series), args.batch):
                for s in series:
                    chunk = list(zip(s.timestamps[start:start + args.batch],
                                     s.values[start:start + args.batch], strict=True))
                    if chunk:
                        status = gateway.nuevo_batch(s.sensor, chunk)
                        tally.count(status, len(chunk), failure=gateway.last_failure)
                        pacer.wait(len(chunk))
                        bar.update(len(chunk))
            return verdicts, tally, True
        publisher = MqttPublisher(args.broker, args.topic, args.qos).connect() if args.via == "mqtt" else None
        try:
            for s, i in interleaved(series):
                if publisher is not None:
                    publisher.publish(s.sensor, s.timestamps[i], s.values[i])
                    tally.accepted += 1
                elif args.asynchronous:
                    status = gateway.detectar_async(s.sensor, s.timestamps[i], s.values[i])
                    tally.count(status, ok=(202,), failure=gateway.last_failure)
                else:
                    status, verdicts[s.sensor][i] = gateway.detectar(s.sensor, s.timestamps[i], s.values[i])
                    tally.count(status, failure=gateway.last_failure)
                pacer.wait()
                bar.update()
        finally:
            if publisher is not None:
                publisher.close()
                tally.statuses["published"] = tally.accepted
    return verdicts, tally, publisher is None and not args.asynchronous


def settle(args, series: list[SensorSeries], gateway: Gateway, expected: int) -> dict:
    """Wait until the readings sent asynchronously are stored; read the verdicts (listar)."""
    deadline = time.monotonic() + args.settle_timeout
    with progress(expected, "stored", args.no_progress) as bar:
        while True:
            stored = sum(gateway.listar(s.sensor, s.timestamps[0], s.timestamps[-1], 1)["total"]
                         for s in series)
            bar.update(stored - bar.n)
            if stored >= expected:
                break
            if time.monotonic() > deadline:
                print(f"warning: only {stored} of {expected} readings were stored within "
                      f"{args.settle_timeout:g} s; the rest count as not judged", file=sys.stderr)
                break
            time.sleep(0.25)
    time.sleep(0.5)  # detectar marks an anomaly just after storing the reading
    verdicts = {}
    for s in series:
        flags = gateway.stored(s.sensor, s.timestamps[0], s.timestamps[-1])
        verdicts[s.sensor] = [flags.get(t) for t in s.timestamps]
    return verdicts


def build(args, run_id: str, rule: dict[str, Any]) -> tuple[list[SensorSeries], Plan, dict, list[str]]:
    needed = rule["min_count"] + rule["window"]
    warmup = args.warmup if args.warmup is not None else needed + MARGIN
    warnings = []
    if warmup < needed:
        warnings.append(f"warm-up of {warmup} readings is shorter than the {needed} the model's rule "
                        f"needs (it learns for {rule['min_count']} readings after the first "
                        f"{rule['window']}): only gross anomalies before that can be flagged")
    plan = Plan(warmup=warmup, tolerance=args.tolerance, holdoff=rule["holdoff"], gap=args.gap)
    names = sensor_names(args.sensor_prefix, run_id, args.sensors)
    source: dict[str, Any] = {"mode": "generated", "seed": args.seed}
    if args.csv:
        series, windows_file = replay(args.csv, names, args.kind_list, plan, args.limit)
        source = {"mode": "replay", "csv": str(args.csv), "windows_file": windows_file,
                  "rows": len(series[0].values)}
    else:
        series = generate(names, args.kind_list, plan, args.seed)
    stamp(series, end_ms=int(time.time() * 1000) - 60_000, cadence_s=args.cadence)
    placed = sum(1 for s in series for a in s.anomalies if a.source == "injected")
    if args.kind_list and placed < len(args.kind_list) * len(series):
        warnings.append(f"only {placed} of {len(args.kind_list) * len(series)} anomalies fit "
                        "in the replayed rows (raise --limit)")
    return series, plan, source, warnings


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def announce(args: argparse.Namespace, series: list[SensorSeries], plan: Plan, rule: dict[str, Any],
             target: str, warnings: list[str]) -> None:
    """What is about to be sent where, the warm-up it needs, and the build's warnings."""
    per_sensor = len(series[0].values)
    print(f"{reporting.plural(len(series), 'sensor')} x {reporting.plural(per_sensor, 'reading')} "
          f"({per_sensor * args.cadence / 86400:.1f} simulated days, one every {args.cadence} s) "
          f"-> {target}")
    if args.via != "nuevo":  # nuevo judges nothing: no warm-up to explain
        spacing = ", ".join(f"{k.name} {plan.spacing(k)}" for k in args.kind_list) or "-"
        print(f"warm-up: the first {plan.warmup} readings of each sensor only train its detector: "
              f"the model's rule ({rule['rule']}) learns a sensor for "
              f"{rule.get('learning_s', 0) / 3600:g} h ({rule['min_count']} readings here) and pages "
              f"once per event in {rule.get('holdoff_s', 0) / 3600:g} h ({rule['holdoff']} readings); "
              f"anomalies come after the warm-up, each kind {spacing} readings apart")
    for line in warnings + ([rule["note"]] if "note" in rule else []):
        print("warning: " + line, file=sys.stderr)


def target_of(args: argparse.Namespace, gateway: Gateway) -> str:
    """Where the readings go: the MQTT broker and topic, or the function's URL."""
    if args.via == "mqtt":
        return args.broker + f" (topic {args.topic})"
    return f"{gateway.base}/{'async-function' if args.asynchronous else 'function'}/{args.via}"


def unjudged(result: dict[str, Any]) -> None:
    """A nuevo run's report: the anomalies sent, none of them caught or missed."""
    result["note"] = ("nuevo stores readings without judging them; --via detectar or mqtt "
                      "sends them to detectar")
    for entry in result["anomalies"]:
        entry["caught"] = None
    result["summary"] = {"known": len(result["anomalies"])}
    result["false_alarms"] = []


def run(args: argparse.Namespace) -> int:
    run_id = time.strftime("%y%m%d%H%M%S", time.gmtime())
    rule = model_rule(args.model_path, args.cadence)
    try:
        series, plan, source, warnings = build(args, run_id, rule)
        key = args.token_file.read_text().strip() if args.token_file else None
    except (OSError, ValueError, NabDataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    url, why = stack_state.gateway_url(args.gateway)
    if why:
        print(why)
    gateway = Gateway(url, key)
    target = target_of(args, gateway)
    announce(args, series, plan, rule, target, warnings)
    started_at, t0 = datetime.now(UTC), time.monotonic()
    try:
        verdicts, tally, direct = send(args, series, gateway)
        elapsed = time.monotonic() - t0
        stored_after = None
        if args.via != "nuevo" and not direct:
            verdicts = settle(args, series, gateway, tally.accepted)
            stored_after = round(time.monotonic() - t0, 3)
    except TransportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        gateway.close()
    scored = reporting.score(series, verdicts, args.tolerance, args.cadence, rule["holdoff"],
                             verdicts_seen=direct)
    total, per_sensor = sum(len(s.values) for s in series), len(series[0].values)
    result = {
        "run": {"id": run_id, "started_at": started_at.isoformat(timespec="seconds"),
                "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
                **source, "via": args.via, "asynchronous": args.asynchronous, "target": target,
                "sensors": [s.sensor for s in series], "readings_per_sensor": per_sensor,
                "cadence_s": args.cadence, "first_timestamp": series[0].timestamps[0],
                "last_timestamp": series[0].timestamps[-1], "warmup_readings": plan.warmup,
                "tolerance_readings": plan.tolerance, "gap_readings": plan.gap, "rule": rule,
                "kinds": {k.name: k.description for k in args.kind_list},
                "verdicts_from": "detectar's answers" if direct else "listar"},
        "sent": {"readings": total, "accepted": tally.accepted, "refused": tally.refused,
                 "statuses": dict(tally.statuses), "elapsed_s": round(elapsed, 3),
                 "readings_per_s": round(total / elapsed, 1) if elapsed > 0 else None,
                 "stored_after_s": stored_after},
        "judged": args.via != "nuevo",
        "warnings": warnings,
        **scored,
    }
    if args.via == "nuevo":
        unjudged(result)
    path = args.report or REPO_ROOT / "data" / "simulator" / f"report-{run_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(reporting.render_text(result))
    print(f"report: {path}")
    if tally.accepted == 0:
        print(f"error: {target} accepted none of the {total} readings", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

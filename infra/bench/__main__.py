"""`python -m infra.bench` (`make bench`): how fast the local stack is, measured end to end.

    python -m infra.bench [--seconds 10] [--connections 16] [--big 1000000] [--quick]

Starts its own redis-server (AOF, appendfsync always, as `make up`) and gateway
(`python -m infra.local`, its default of two workers per core) on free ports in a temporary folder, then:
0. against the machine: a hello-world app and one that does a single Redis round trip, served
   exactly as the gateway is (infra/bench/baseline.py), loaded with wrk in turn with detectar,
   nuevo and listar, in short interleaved rounds; each rate is a share of the hello-world
   rate of its round (what other jobs on the host do moves both alike);
1. batch ingestion: a 1,000,000-reading sensor loaded through `nuevo` in POSTs of 10,000
   readings (4 concurrent clients, bodies encoded before the clock starts);
2. `detectar`, `nuevo` and `listar` with wrk (16 connections, --seconds each) on a sensor
   with 20 readings and on the 1,000,000-reading one: requests/s, p50/p99 latency,
   non-2xx answers, and the CPU time each process spent per request (/proc);
3. the same writes with `appendfsync everysec`, for the cost of fsync-per-write;
4. batch ingestion and `detectar` over 12 sensors, on one server and on a Redis Cluster of
   3 masters with a replica each (infra/local/redis_cluster.py), every write waiting for its
   replica and, for the cost of that, not waiting (REDIS_WAIT_REPLICAS=0);
5. `detectar` with the alert forwarder on (ALERTMANAGER_URL naming an Alertmanager that is
   down, so the forwarder keeps retrying an undelivered alert) and off: two stacks side by
   side, loaded in turn five times each, the medians compared;
6. the embedded engine alone (µs per window) and the TF Serving client's cost per call
   against the local TF-Serving-compatible server (infra/bench/tfserving_standin.py);
7. memory (RSS, PSS) of every process.
Writes infra/bench/results/latest.json and the table into infra/bench/RESULTS.md (between
its `bench:begin`/`bench:end` markers; the notes around them are kept). A --quick run only
prints them, unless --json or --markdown says where they go: its figures are not the ones
to commit.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import requests

from infra.local.workers import cpu_count
from infra.local.redis_server import free_port
from models.locations import DEFAULT_MODEL, reference_model_dir
from shared.config import REPO_ROOT

from . import baseline, report
from .stack import Stack, cpu_seconds, machine_busy_seconds, memory_mib, wait_for_200
from .wrk import WrkMissing, WrkResult, ensure_wrk, run

HERE = Path(__file__).resolve().parent
WRK_THREADS = 2
HOUR_MS = 3_600_000
DEFAULT_JSON = HERE / "results" / "latest.json"
DEFAULT_MARKDOWN = HERE / "RESULTS.md"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m infra.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each wrk run")
    parser.add_argument("--connections", type=int, default=16, help="concurrent wrk clients")
    parser.add_argument("--big", type=int, default=1_000_000, help="readings of the big sensor")
    parser.add_argument("--batch", type=int, default=10_000, help="readings per ingestion POST")
    parser.add_argument("--workers", type=int, default=0, help="gateway workers (default: the gateway's, two per core)")
    parser.add_argument("--threads", type=int, default=0, help="threads per gateway worker")
    parser.add_argument("--no-everysec", action="store_true", help="skip the appendfsync everysec runs")
    parser.add_argument("--no-cluster", action="store_true",
                        help="skip the runs over many sensors on one server and on a Redis Cluster")
    parser.add_argument("--no-forwarding", action="store_true",
                        help="skip detectar with the alert forwarder on and off")
    parser.add_argument("--no-install", action="store_true", help="never install wrk with apt")
    parser.add_argument("--only", default="detectar,nuevo,listar",
                        help="the functions to load with wrk (comma-separated)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 3 s per run, a 100,000-reading big sensor; "
                             "writes no files unless --json or --markdown is given")
    parser.add_argument("--json", type=Path,
                        help=f"where the figures go (default: {DEFAULT_JSON.relative_to(REPO_ROOT)}; "
                             "nowhere with --quick)")
    parser.add_argument("--markdown", type=Path,
                        help=f"where the table goes, '-': nowhere (default: "
                             f"{DEFAULT_MARKDOWN.relative_to(REPO_ROOT)}; nowhere with --quick)")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.big = min(args.seconds, 3.0), min(args.big, 100_000)
    else:  # only a full run replaces the committed figures by default
        args.json = args.json or DEFAULT_JSON
        args.markdown = args.markdown or DEFAULT_MARKDOWN
    if str(args.markdown) == "-":
        args.markdown = None
    return args


class Clock:
    """Hands out timestamps no run has used: every write of the benchmark is accepted."""

    def __init__(self, start: int):
        self.next = start

    def take(self, count: int) -> int:
        first, self.next = self.next, self.next + count
        return first


def post_batches(stack: Stack, sensors: str | list[str], count: int, batch: int, first: int,
                 clients: int = 4) -> dict[str, Any]:
    """Load `count` readings, `batch` per POST (POST k to sensor k of `sensors`, round and
    round); bodies are encoded before timing."""
    rng = random.Random(7)
    sensors = [sensors] if isinstance(sensors, str) else sensors
    bodies = []
    for k, start in enumerate(range(0, count, batch)):
        n = min(batch, count - start)
        readings = [{"dato": round(20 + 5 * rng.random(), 2), "timestamp": first + start + i}
                    for i in range(n)]
        bodies.append(json.dumps({"sensor": sensors[k % len(sensors)],
                                  "readings": readings}).encode())
    url = stack.url("/function/nuevo?format=json")
    sessions: dict[int, requests.Session] = {}

    def send(body: bytes) -> int:
        session = sessions.setdefault(threading.get_ident(), requests.Session())
        answer = session.post(url, data=body, headers={"Content-Type": "application/json"},
                              timeout=120)
        if answer.status_code != 200:
            raise RuntimeError(f"batch POST answered {answer.status_code}: {answer.text[:300]}")
        return answer.json()["stored"]

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        stored = sum(pool.map(send, bodies))
    elapsed = time.perf_counter() - started
    for session in sessions.values():
        session.close()
    if stored != count:
        raise RuntimeError(f"{stored} of {count} readings stored")
    return {"readings": count, "batch": batch, "clients": clients, "seconds": round(elapsed, 2),
            "readings_per_s": round(count / elapsed)}


def total_of(stack: Stack, sensor: str) -> int:
    answer = requests.get(stack.url("/function/listar"),
                          params={"sensor": sensor, "count": 1, "format": "json"}, timeout=30)
    answer.raise_for_status()
    return answer.json()["total"]


def children_cpu_seconds() -> float:
    """CPU time of this process' finished children (each wrk run, once waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def load_run(stack: Stack, wrk: str, args: argparse.Namespace, function: str, sensor: str,
             clock: Clock | None, sensors: int | None = None) -> dict[str, Any]:
    """One wrk run, with the CPU time every process of the stack spent on it; with `sensors`,
    requests go round that many sensors (`sensor` is then SENSOR, see wrk.lua)."""
    if function == "listar":
        path = f"/function/listar?sensor={sensor}&count=20&format=json"
    else:
        path = f"/function/{function}?sensor={sensor}&dato=21.5&format=json"
    first = None
    if clock is not None:
        # Enough timestamps for any rate wrk can reach in this run (20,000 requests/s).
        first = clock.take(int(args.seconds * 20_000 * WRK_THREADS) + 10)
    processes = stack.processes()
    before = {role: cpu_seconds(pid) for role, pid in processes.items()}
    machine_before, wrk_before = machine_busy_seconds(), children_cpu_seconds()
    started = time.monotonic()
    result: WrkResult = run(wrk, stack.base, path, seconds=args.seconds,
                            connections=args.connections, threads=WRK_THREADS,
                            first_timestamp=first, sensors=sensors)
    elapsed = time.monotonic() - started
    spent = {role: cpu_seconds(pid) - before[role] for role, pid in processes.items()}
    wrk_cpu = children_cpu_seconds() - wrk_before
    # What the rest of the machine used meanwhile (other people's jobs on a shared host):
    # figures measured while it is high are lower than the stack can do.
    others = machine_busy_seconds() - machine_before - sum(spent.values()) - wrk_cpu
    per_request = lambda seconds: round(seconds * 1e6 / max(result.requests, 1), 1)  # noqa: E731
    gateway = sum(v for role, v in spent.items() if role.startswith("gateway"))
    return {
        "function": function, "sensor": sensor, "requests": result.requests,
        "rate": round(result.rate, 1), "p50_ms": result.p50_ms, "p90_ms": result.p90_ms,
        "p99_ms": result.p99_ms, "p999_ms": result.p999_ms, "max_ms": result.max_ms,
        "non_2xx": result.non_2xx, "socket_errors": result.socket_errors,
        "wrk_cpu_us_per_request": per_request(wrk_cpu),
        "other_processes_cpu_pct": round(max(others, 0.0) / (elapsed * cpu_count()) * 100, 1),
        "cpu_us_per_request": {"gateway": per_request(gateway),
                               "redis": per_request(sum(v for role, v in spent.items()
                                         if role.startswith("redis")))},
    }


def warm_up(stack: Stack, wrk: str, args: argparse.Namespace, function: str, clock: Clock) -> None:
    """One unmeasured second of the same load on a sensor of its own: every worker has its
    Redis connections and its code paths warm before the clock starts."""
    sensor = "bench-warm-up"
    path = (f"/function/listar?sensor={sensor}&count=20&format=json" if function == "listar"
            else f"/function/{function}?sensor={sensor}&dato=21.5&format=json")
    first = None if function == "listar" else clock.take(20_000 * WRK_THREADS + 10)
    run(wrk, stack.base, path, seconds=1, connections=args.connections, threads=WRK_THREADS,
        first_timestamp=first)


def http_runs(stack: Stack, wrk: str, args: argparse.Namespace, sensors: dict[str, str],
              clock: Clock, functions: tuple[str, ...]) -> list[dict[str, Any]]:
    runs = []
    for function in functions:
        warm_up(stack, wrk, args, function, clock)
        for size, sensor in sensors.items():
            print(f"  {function:8s} on the {size} sensor ...", end=" ", flush=True)
            outcome = load_run(stack, wrk, args, function, sensor,
                               None if function == "listar" else clock)
            outcome["size"] = size
            print(f"{outcome['rate']:8.0f} requests/s, p50 {outcome['p50_ms']} ms, "
                  f"p99 {outcome['p99_ms']} ms, non-2xx {outcome['non_2xx']}, other processes "
                  f"{outcome['other_processes_cpu_pct']}% of the machine", flush=True)
            runs.append(outcome)
    return runs


MACHINE_ROUNDS, MACHINE_SECONDS = 5, 2  # interleaved short runs: the load of a shared host moves


@contextmanager
def baseline_apps(stack: Stack) -> Iterator[dict[str, str]]:
    """The baseline apps (infra/bench/baseline.py) with the gateway's workers, threads and
    Redis, each on a free port, while the block runs: app -> base URL."""
    settings = stack.gateway_settings()
    servers, bases = [], {}
    try:
        for app in baseline.APPS:
            port = free_port()
            servers.append(subprocess.Popen(
                [sys.executable, "-m", "infra.bench.baseline", "--app", app, "--port", str(port),
                 "--workers", str(settings["gateway_workers"]),
                 "--threads", str(settings["gateway_threads"] or 4)],
                cwd=REPO_ROOT, env={**os.environ, **stack.redis_env()},
                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
            bases[app] = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        for server, (app, base) in zip(servers, bases.items()):
            wait_for_200(base + "/", server, deadline, f"the {app} baseline app")
        yield bases
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=20)


def machine_runs(stack: Stack, wrk: str, args: argparse.Namespace, sensors: dict[str, str],
                 clock: Clock) -> dict[str, Any]:
    """The functions against the machine: MACHINE_ROUNDS rounds of hello-world, one Redis
    round trip, detectar, nuevo and listar (the 20-reading sensors), MACHINE_SECONDS each, one
    after the other; each rate is a share of the hello-world rate of its own round, so that
    what the rest of the machine does moves numerator and denominator alike."""
    rates: dict[str, list[float]] = {}
    p99: dict[str, list[float]] = {}
    with baseline_apps(stack) as bases:
        targets = {app: (base, "/", None) for app, base in bases.items()}
        for function in ("detectar", "nuevo", "listar"):
            sensor = sensors[function]
            path = (f"/function/listar?sensor={sensor}&count=20&format=json" if function == "listar"
                    else f"/function/{function}?sensor={sensor}&dato=21.5&format=json")
            targets[function] = (stack.base, path, None if function == "listar" else clock)
        for base, path, _ in targets.values():  # warm every worker up
            run(wrk, base, path.replace("sensor=", "sensor=warm-"), seconds=1,
                connections=args.connections, threads=WRK_THREADS,
                first_timestamp=clock.take(20_000 * WRK_THREADS + 10) if "dato=" in path else None)
        for round_ in range(MACHINE_ROUNDS):
            for name, (base, path, stamps) in targets.items():
                first = stamps.take(int(MACHINE_SECONDS * 20_000 * WRK_THREADS) + 10) if stamps else None
                result = run(wrk, base, path, seconds=MACHINE_SECONDS, connections=args.connections,
                             threads=WRK_THREADS, first_timestamp=first)
                rates.setdefault(name, []).append(round(result.rate, 1))
                p99.setdefault(name, []).append(result.p99_ms)
            shares = "  ".join(f"{n} {rates[n][-1] / rates['hello'][-1]:.0%}" for n in targets)
            print(f"  round {round_ + 1}: hello {rates['hello'][-1]:,.0f} requests/s; {shares}",
                  flush=True)
    return {"rounds": MACHINE_ROUNDS, "seconds": MACHINE_SECONDS,
            "apps": {name: {"rates": rates[name], "p99_ms": p99[name],
                            "shares": [round(r / h, 3) for r, h in zip(rates[name], rates["hello"])]}
                     for name in targets}}


def small_sensor(stack: Stack, name: str, clock: Clock) -> str:
    post_batches(stack, name, 20, 20, clock.take(20), clients=1)
    return name


SPREAD_SENSORS = 12  # enough that a cluster's masters share them (CLUSTER KEYSLOT)
SPREAD_LAYOUTS = {  # label -> (masters, settings): the same load on each Redis layout
    "one server": (0, {}),
    "cluster, 3 masters + 3 replicas, each write waits for its replica": (3, {}),
    "cluster, 3 masters + 3 replicas, REDIS_WAIT_REPLICAS=0": (3, {"REDIS_WAIT_REPLICAS": "0"}),
}


def spread_runs(stack: Stack, wrk: str, args: argparse.Namespace, clock: Clock) -> dict[str, Any]:
    """Batch ingestion and detectar over SPREAD_SENSORS sensors: on a cluster they land on
    every master, where one sensor's load would all go to one."""
    sensors = [small_sensor(stack, f"bench-spread-{n}", clock) for n in range(SPREAD_SENSORS)]
    print(f"  batch ingestion: {args.big:,} readings over {SPREAD_SENSORS} sensors ...",
          end=" ", flush=True)
    ingestion = post_batches(stack, sensors, args.big, args.batch, clock.take(args.big))
    print(f"{ingestion['readings_per_s']:,} readings/s", flush=True)
    warm_up(stack, wrk, args, "detectar", clock)
    detectar = load_run(stack, wrk, args, "detectar", "SENSOR", clock, sensors=SPREAD_SENSORS)
    print(f"  detectar over {SPREAD_SENSORS} sensors: {detectar['rate']:8.0f} requests/s, "
          f"p99 {detectar['p99_ms']} ms, non-2xx {detectar['non_2xx']}", flush=True)
    return {"ingestion": ingestion, "detectar": detectar}


def raise_alert(stack: Stack, sensor: str, clock: Clock) -> None:
    """Steady readings, then a gross departure (an alert from the first judgement on)."""
    first = clock.take(21)
    readings = [{"dato": 20 + (i % 3) / 10, "timestamp": first + i} for i in range(20)]
    requests.post(stack.url("/function/nuevo?format=json"), json={"sensor": sensor,
                  "readings": readings}, timeout=30).raise_for_status()
    requests.get(stack.url("/function/detectar"), params={"sensor": sensor, "dato": "95",
                 "timestamp": str(first + 20), "format": "json"}, timeout=30).raise_for_status()


def forwarding_runs(folder: Path, wrk: str, args: argparse.Namespace, clock: Clock,
                    stack_options: dict[str, Any], rounds: int = 5) -> dict[str, Any]:
    """detectar with the alert forwarder off and on: two stacks side by side, loaded in
    turn `rounds` times each (off, on, off, on, ...), so that whatever else the machine does
    weighs on both alike; the medians are compared. The forwarder's Alertmanager is a port
    nothing listens on (down), and an alert it cannot deliver waits in the outbox, so it
    keeps retrying throughout."""
    down = f"http://127.0.0.1:{free_port()}"
    runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    stacks = {}
    with contextlib.ExitStack() as running:
        for label, url in (("off", ""), ("on", down)):
            (folder / f"forwarding-{label}").mkdir(exist_ok=True)
            stack = running.enter_context(Stack(folder / f"forwarding-{label}",
                                                env={"ALERTMANAGER_URL": url}, **stack_options))
            raise_alert(stack, "bench-alerting", clock)
            stacks[label] = (stack, small_sensor(stack, f"bench-forwarding-{label}", clock))
            warm_up(stack, wrk, args, "detectar", clock)
        for _ in range(rounds):
            for label, (stack, sensor) in stacks.items():
                outcome = load_run(stack, wrk, args, "detectar", sensor, clock)
                print(f"  forwarding {label:3s}: {outcome['rate']:8.0f} requests/s, p99 "
                      f"{outcome['p99_ms']} ms", flush=True)
                runs[label].append(outcome)
    return {label: sorted(found, key=lambda r: r["rate"])[len(found) // 2]
            for label, found in runs.items()}


def engine_figures() -> list[dict[str, Any]]:
    """µs per window of the embedded engine alone (batch of one, as detectar calls it)."""
    from shared.serving.description import load_description, resolve_version_dir
    from shared.serving.engine import EmbeddedModel

    figures = []
    for label, path in (("shipped (models/modelo)", DEFAULT_MODEL),
                        ("replaced system's (reference-model)", reference_model_dir())):
        if path is None:
            figures.append({"model": label, "missing": True})
            continue
        version = resolve_version_dir(path)
        description = load_description(version)
        model = EmbeddedModel.load(version, description)
        window = np.random.default_rng(1).normal(20, 2, (1, *model.input_shape)).astype(np.float32)
        for _ in range(200):
            model.predict(window)
        samples = []
        for _ in range(7):
            count = 2000
            started = time.perf_counter()
            for _ in range(count):
                model.predict(window)
            samples.append((time.perf_counter() - started) / count * 1e6)
        layers = ", ".join(f"{spec['type']}({spec.get('units', spec.get('n', ''))})"
                           for spec in description.layers)
        figures.append({"model": label, "path": str(path), "layers": layers,
                        "us_per_window": round(statistics.median(samples), 1),
                        "us_per_window_best": round(min(samples), 1)})
    return figures


def tfserving_figures(engine: list[dict[str, Any]]) -> dict[str, Any]:
    """The TF Serving REST client's cost per call against the local test server."""
    from shared.serving.tfserving import TFServingClient

    model_dir = DEFAULT_MODEL
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "infra.bench.tfserving_standin", "--model-dir", str(model_dir),
         "--port", str(port)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        server.stdout.readline()  # "serving ... at ..." once it listens
        client = TFServingClient(f"http://127.0.0.1:{port}", "modelo", 5.0)
        from shared.serving.description import load_description, resolve_version_dir
        window_size = load_description(resolve_version_dir(model_dir)).window
        window = np.random.default_rng(1).normal(20, 2, (1, window_size, 1)).astype(np.float32)
        for _ in range(100):
            client.predict(window)
        count = 2000
        cpu, started = time.process_time(), time.perf_counter()
        for _ in range(count):
            client.predict(window)
        wall = (time.perf_counter() - started) / count * 1e6
        cpu = (time.process_time() - cpu) / count * 1e6
        client.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    embedded = next((e["us_per_window"] for e in engine if e.get("us_per_window")), 0.0)
    return {"server": "infra/bench/tfserving_standin.py (models/modelo)", "calls": count,
            "us_per_call": round(wall, 1), "client_cpu_us_per_call": round(cpu, 1),
            "overhead_us_per_call": round(wall - embedded, 1)}


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
                 platform.processor())
    return {"cores": cpu_count(), "cpu": model, "python": platform.python_version(),
            "load_average_at_start": list(os.getloadavg()),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        wrk = ensure_wrk(install=not args.no_install)
    except WrkMissing as exc:
        print(exc, file=sys.stderr)
        return 2
    results: dict[str, Any] = {"machine": machine(), "settings": {
        "seconds_per_run": args.seconds, "connections": args.connections,
        "wrk_threads": WRK_THREADS, "big_sensor_readings": args.big,
        "gateway_workers": args.workers or None, "gateway_threads": args.threads or None}}
    print(f"{results['machine']['cores']} cores ({results['machine']['cpu']}), load average "
          f"{results['machine']['load_average_at_start'][0]:.2f} at the start", flush=True)
    # Timestamps in the past, beyond anything the runs can reach: the big sensor's history
    # ends 6 hours ago, every later write comes after it.
    clock = Clock(int(time.time() * 1000) - 6 * HOUR_MS)
    with tempfile.TemporaryDirectory(prefix="anomalias-bench-") as folder:
        stack_options = {"workers": args.workers or None, "threads": args.threads or None}
        with Stack(Path(folder), fsync="always", **stack_options) as stack:
            print(f"stack: gateway {stack.base}, processes {stack.processes()}", flush=True)
            results["settings"].update(stack.gateway_settings())
            print(f"batch ingestion: {args.big:,} readings through nuevo ...", end=" ", flush=True)
            ingestion = post_batches(stack, "bench-big", args.big, args.batch,
                                     clock.take(args.big))
            print(f"{ingestion['readings_per_s']:,} readings/s", flush=True)
            results["ingestion"] = ingestion
            results["big_total_at_start"] = total_of(stack, "bench-big")
            sensors = {"20-reading": "", f"{args.big:,}-reading": "bench-big"}
            runs = []
            for function in args.only.split(","):
                sensors["20-reading"] = small_sensor(stack, f"bench-small-{function}", clock)
                runs += http_runs(stack, wrk, args, sensors, clock, (function,))
            results["http"] = runs
            print("against the machine (hello-world, one Redis round trip, the functions, in "
                  "rounds):", flush=True)
            small = {f: small_sensor(stack, f"bench-share-{f}", clock)
                     for f in ("detectar", "nuevo", "listar")}
            results["against_machine"] = machine_runs(stack, wrk, args, small, clock)
            results["memory_mib"] = {role: memory_mib(pid) for role, pid in stack.processes().items()}
            # The append-only folder: base (RDB preamble after a rewrite) + incremental files.
            results["aof_mib"] = round(sum(f.stat().st_size for f in
                                           (Path(folder) / "redis-always").rglob("appendonly*")
                                           if f.is_file()) / 2**20, 1)
        if not args.no_everysec:
            print("appendfsync everysec (for comparison; the default stays always):", flush=True)
            with Stack(Path(folder), fsync="everysec", **stack_options) as stack:
                sensors = {}
                everysec = []
                for function in [f for f in args.only.split(",") if f != "listar"]:
                    sensors = {"20-reading": small_sensor(stack, f"bench-small-{function}", clock)}
                    everysec += http_runs(stack, wrk, args, sensors, clock, (function,))
                results["everysec"] = everysec
        if not args.no_cluster:
            results["spread"] = {}
            for index, (label, (masters, settings)) in enumerate(SPREAD_LAYOUTS.items()):
                print(f"{label}:", flush=True)
                with Stack(Path(folder), cluster_masters=masters, env=settings,
                           label=f"spread-{index}", **stack_options) as stack:
                    results["spread"][label] = spread_runs(stack, wrk, args, clock)
        if not args.no_forwarding:
            print("detectar with the alert forwarder off and on (Alertmanager down):", flush=True)
            results["forwarding"] = forwarding_runs(Path(folder), wrk, args, clock, stack_options)
    print("embedded engine ...", flush=True)
    results["engine"] = engine_figures()
    print("TF Serving client against the local test server ...", flush=True)
    results["tfserving"] = tfserving_figures(results["engine"])
    table = report.markdown(results)
    print()
    print(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nfigures: {args.json}")
    if args.markdown:
        report.write_markdown(args.markdown, table)
        print(f"table:   {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
   side, loaded in turn five times each, the medians compared (forwarding.py);
6. the embedded engine alone (µs per window) and the TF Serving client's cost per call
   against the local TF-Serving-compatible server (infra/bench/tfserving_standin.py);
7. memory (RSS, PSS) of every process.
Writes infra/bench/results/latest.json and the table into infra/bench/RESULTS.md (between
its `bench:begin`/`bench:end` markers; the notes around them are kept). A --quick run only
prints them, unless --json or --markdown says where they go: its figures are not the ones
to commit.

This module runs the stages in order; the loads are in load.py, the rounds against the
machine in against_machine.py, the model's cost per call in model_speed.py, the stack under
test in stack.py, the table in report.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infra.local.workers import cpu_count
from shared.config import REPO_ROOT

from . import report
from .against_machine import machine_runs
from .forwarding import forwarding_runs
from .load import (
    SPREAD_LAYOUTS,
    WRK_THREADS,
    Clock,
    http_runs,
    post_batches,
    small_sensor,
    spread_runs,
    total_of,
)
from .model_speed import engine_figures, tfserving_figures
from .stack import Stack, memory_mib
from .wrk import WrkMissing, ensure_wrk

HERE = Path(__file__).resolve().parent
HOUR_MS = 3_600_000
DEFAULT_JSON = HERE / "results" / "latest.json"
DEFAULT_MARKDOWN = HERE / "RESULTS.md"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m infra.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each wrk run")
    parser.add_argument("--connections", type=int, default=16, help="concurrent wrk clients")
    parser.add_argument("--big", type=int, default=1_000_000, help="readings of the big sensor")
    parser.add_argument("--batch", type=int, default=10_000, help="readings per ingestion POST")
    parser.add_argument("--workers", type=int, default=0,
                        help="gateway workers (default: the gateway's, two per core)")
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


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
                 platform.processor())
    return {"cores": cpu_count(), "cpu": model, "python": platform.python_version(),
            "load_average_at_start": list(os.getloadavg()),
            "date": datetime.now(UTC).isoformat(timespec="seconds")}


def new_stack(folder: Path, args: argparse.Namespace, **options: Any) -> Stack:
    """A stack in `folder` with the gateway workers and threads asked for (0: the gateway's)."""
    return Stack(folder, workers=args.workers or None, threads=args.threads or None, **options)


def always_runs(folder: Path, args: argparse.Namespace, wrk: str, clock: Clock,
                results: dict[str, Any]) -> None:
    """On the stack as `make up` runs it (appendfsync always), into `results`: batch ingestion,
    the functions with wrk on both sensors, against the machine, memory, the append-only file."""
    with new_stack(folder, args, fsync="always") as stack:
        print(f"stack: gateway {stack.base}, processes {stack.processes()}", flush=True)
        results["settings"].update(stack.gateway_settings())
        print(f"batch ingestion: {args.big:,} readings through nuevo ...", end=" ", flush=True)
        ingestion = post_batches(stack, "bench-big", args.big, args.batch, clock.take(args.big))
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
                                       (folder / "redis-always").rglob("appendonly*")
                                       if f.is_file()) / 2**20, 1)


def everysec_runs(folder: Path, args: argparse.Namespace, wrk: str,
                  clock: Clock) -> list[dict[str, Any]]:
    """The writing functions again with `appendfsync everysec`: what fsync per write costs."""
    print("appendfsync everysec (for comparison; the default stays always):", flush=True)
    everysec = []
    with new_stack(folder, args, fsync="everysec") as stack:
        for function in [f for f in args.only.split(",") if f != "listar"]:
            sensors = {"20-reading": small_sensor(stack, f"bench-small-{function}", clock)}
            everysec += http_runs(stack, wrk, args, sensors, clock, (function,))
    return everysec


def spread_over_layouts(folder: Path, args: argparse.Namespace, wrk: str,
                        clock: Clock) -> dict[str, Any]:
    """The load over many sensors on each Redis layout of SPREAD_LAYOUTS: label -> figures."""
    spread = {}
    for index, (label, (masters, settings)) in enumerate(SPREAD_LAYOUTS.items()):
        print(f"{label}:", flush=True)
        with new_stack(folder, args, cluster_masters=masters, env=settings,
                       label=f"spread-{index}") as stack:
            spread[label] = spread_runs(stack, wrk, args, clock)
    return spread


def write_results(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """The table on the terminal; figures and table where the arguments say."""
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
    with tempfile.TemporaryDirectory(prefix="anomalias-bench-") as name:
        folder = Path(name)
        always_runs(folder, args, wrk, clock, results)
        if not args.no_everysec:
            results["everysec"] = everysec_runs(folder, args, wrk, clock)
        if not args.no_cluster:
            results["spread"] = spread_over_layouts(folder, args, wrk, clock)
        if not args.no_forwarding:
            print("detectar with the alert forwarder off and on (Alertmanager down):", flush=True)
            results["forwarding"] = forwarding_runs(
                folder, wrk, args, clock, lambda path, **options: new_stack(path, args, **options))
    print("embedded engine ...", flush=True)
    results["engine"] = engine_figures()
    print("TF Serving client against the local test server ...", flush=True)
    results["tfserving"] = tfserving_figures(results["engine"])
    write_results(args, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())

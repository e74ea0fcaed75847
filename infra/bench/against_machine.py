"""The functions against the machine: each one's rate as a share of what a hello-world app and
one Redis round trip (infra/bench/baseline.py) reach on the same server stack, in the same run."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from infra.local.redis_server import free_port
from shared.config import REPO_ROOT

from . import baseline
from .load import WRK_THREADS, Clock, function_path
from .stack import Stack, wait_for_200
from .wrk import run

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
        for server, (app, base) in zip(servers, bases.items(), strict=True):
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
        # name -> (base URL, path, the clock of its timestamps when it writes)
        targets: dict[str, tuple[str, str, Clock | None]] = {
            app: (base, "/", None) for app, base in bases.items()}
        for function in ("detectar", "nuevo", "listar"):
            targets[function] = (stack.base, function_path(function, sensors[function]),
                                 None if function == "listar" else clock)
        for base, path, _ in targets.values():  # warm every worker up
            run(wrk, base, path.replace("sensor=", "sensor=warm-"), seconds=1,
                connections=args.connections, threads=WRK_THREADS,
                first_timestamp=clock.take_for_wrk(1) if "dato=" in path else None)
        for round_ in range(MACHINE_ROUNDS):
            for name, (base, path, stamps) in targets.items():
                first = stamps.take_for_wrk(MACHINE_SECONDS) if stamps else None
                result = run(wrk, base, path, seconds=MACHINE_SECONDS, connections=args.connections,
                             threads=WRK_THREADS, first_timestamp=first)
                rates.setdefault(name, []).append(round(result.rate, 1))
                p99.setdefault(name, []).append(result.p99_ms)
            shares = "  ".join(f"{n} {rates[n][-1] / rates['hello'][-1]:.0%}" for n in targets)
            print(f"  round {round_ + 1}: hello {rates['hello'][-1]:,.0f} requests/s; {shares}",
                  flush=True)
    of_hello = {name: [round(r / h, 3) for r, h in zip(rates[name], rates["hello"], strict=True)]
                for name in targets}
    return {"rounds": MACHINE_ROUNDS, "seconds": MACHINE_SECONDS,
            "apps": {name: {"rates": rates[name], "p99_ms": p99[name], "shares": of_hello[name]}
                     for name in targets}}

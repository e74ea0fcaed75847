"""The loads `make bench` drives through the gateway: batch ingestion, wrk runs (with the CPU
time every process of the stack spent on them), and both over many sensors at once."""

from __future__ import annotations

import argparse
import json
import random
import resource
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from infra.local.workers import cpu_count

from .stack import Stack, cpu_seconds, machine_busy_seconds
from .wrk import WrkResult, run

WRK_THREADS = 2


class Clock:
    """Hands out timestamps no run has used: every write of the benchmark is accepted."""

    def __init__(self, start: int):
        self.next = start

    def take(self, count: int) -> int:
        first, self.next = self.next, self.next + count
        return first

    def take_for_wrk(self, seconds: float) -> int:
        """The first of enough timestamps for any rate wrk can reach in `seconds`
        (20,000 requests/s a thread)."""
        return self.take(int(seconds * 20_000 * WRK_THREADS) + 10)


def function_path(function: str, sensor: str) -> str:
    """What wrk asks of a function: listar the sensor's last 20 readings; detectar and nuevo
    take a reading (wrk.lua gives each its own timestamp)."""
    if function == "listar":
        return f"/function/listar?sensor={sensor}&count=20&format=json"
    return f"/function/{function}?sensor={sensor}&dato=21.5&format=json"


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
                          params={"sensor": sensor, "count": "1", "format": "json"}, timeout=30)
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
    path = function_path(function, sensor)
    first = None if clock is None else clock.take_for_wrk(args.seconds)
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
    first = None if function == "listar" else clock.take_for_wrk(1)
    run(wrk, stack.base, function_path(function, sensor), seconds=1,
        connections=args.connections, threads=WRK_THREADS, first_timestamp=first)


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

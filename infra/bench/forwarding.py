"""`detectar` with the alert forwarder off and on, side by side: what forwarding costs a call."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from infra.local.redis_server import free_port

from .load import Clock, load_run, small_sensor, warm_up
from .stack import Stack


def raise_alert(stack: Stack, sensor: str, clock: Clock) -> None:
    """Steady readings, then a gross departure (an alert from the first judgement on)."""
    first = clock.take(21)
    readings = [{"dato": 20 + (i % 3) / 10, "timestamp": first + i} for i in range(20)]
    requests.post(stack.url("/function/nuevo?format=json"), json={"sensor": sensor,
                  "readings": readings}, timeout=30).raise_for_status()
    requests.get(stack.url("/function/detectar"), params={"sensor": sensor, "dato": "95",
                 "timestamp": str(first + 20), "format": "json"}, timeout=30).raise_for_status()


def forwarding_runs(folder: Path, wrk: str, args: argparse.Namespace, clock: Clock,
                    new_stack: Callable[..., Stack], rounds: int = 5) -> dict[str, Any]:
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
            stack = running.enter_context(new_stack(folder / f"forwarding-{label}",
                                                    env={"ALERTMANAGER_URL": url}))
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

"""The benchmark's figures as a markdown table, checked against the targets of issues 5 and 18."""

from __future__ import annotations

import re
import statistics
from pathlib import Path
from typing import Any

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
TARGETS = {
    "detectar_rate": 1500,  # requests/s with 16 clients on the 20-reading sensor
    "detectar_p99_ms": 25,
    "size_ratio": 0.8,  # the 1,000,000-reading rate at least 80% of the 20-reading rate
    "ingestion": 100_000,  # readings/s through nuevo batches
    "engine_us": 200,  # embedded engine, µs per window
    "detectar_share": 0.4,  # of the hello-world rate on the same server, in the same run
    "forwarding_ratio": 0.95,  # detectar with the alert forwarder on, against off
}


def share(results: dict[str, Any], app: str) -> float:
    """The app's median share of the hello-world rate over the interleaved rounds."""
    return statistics.median(results["against_machine"]["apps"][app]["shares"])


def machine_table(results: dict[str, Any]) -> list[str]:
    """Each app's rate as a share of the hello-world rate, all on the same server stack."""
    runs = results.get("against_machine")
    if not runs:
        return []
    out = ["", f"Against the machine, on the same server stack (infra/bench/baseline.py): "
           f"{runs['rounds']} rounds of {runs['seconds']:g} s per app in turn, each rate a share "
           "of the hello-world rate of its own round; medians over the rounds (the 20-reading "
           "sensors):", "",
           "| app | requests/s | p99 ms | share of hello-world | shares, round by round |",
           "|---|---:|---:|---:|---|"]
    for app, run in runs["apps"].items():
        out.append(f"| {app} | {statistics.median(run['rates']):,.0f} "
                   f"| {statistics.median(run['p99_ms'])} | {share(results, app):.0%} "
                   f"| {', '.join(f'{x:.0%}' for x in run['shares'])} |")
    return out


def _ok(condition: bool) -> str:
    return "met" if condition else "**not met**"


def markdown(results: dict[str, Any]) -> str:
    m, s = results["machine"], results["settings"]
    out = [f"Measured {m['date']} on **{m['cores']} cores** ({m['cpu']}), Python {m['python']}. "
           f"wrk: {s['connections']} connections, {s['wrk_threads']} threads, "
           f"{s['seconds_per_run']:g} s per run; gateway: {s['gateway_workers']} worker processes"
           + (f", {s['gateway_threads']} threads each" if s.get("gateway_threads") else "")
           + "; Redis AOF `appendfsync always`.", "",
           "| function | sensor | requests/s | p50 ms | p99 ms | non-2xx | CPU µs/req: gateway "
           "| redis | wrk | other processes |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for run in results["http"]:
        cpu = run["cpu_us_per_request"]
        out.append(f"| {run['function']} | {run['size']} | {run['rate']:,.0f} | {run['p50_ms']} "
                   f"| {run['p99_ms']} | {run['non_2xx']} | {cpu['gateway']:,.0f} | {cpu['redis']:,.0f} "
                   f"| {run.get('wrk_cpu_us_per_request', 0):,.0f} "
                   f"| {run.get('other_processes_cpu_pct', 0)}% |")
    out.append("")
    out.append("`listar` asks for `count=20` on both sensors, so both answers hold 20 readings. "
               "`nuevo` and `detectar` send a unique explicit timestamp per request (wrk.lua). "
               "CPU µs/req: CPU time (user + system) each part spent per request; other processes: "
               "the share of the machine that processes outside the benchmark used meanwhile "
               "(a shared host: the higher, the lower the figures on that row).")
    out += machine_table(results)
    ingestion = results["ingestion"]
    out += ["", f"Batch ingestion through `nuevo`: **{ingestion['readings_per_s']:,} readings/s** "
            f"({ingestion['readings']:,} readings in POSTs of {ingestion['batch']:,}, "
            f"{ingestion['clients']} concurrent clients, {ingestion['seconds']} s)."]
    if results.get("everysec"):
        out += ["", "Fsync per write (`appendfsync always`, the default: no acknowledged reading is "
                "lost) against `everysec` (up to one second of acknowledged writes lost on a crash):",
                "", "| function (20-reading sensor) | always req/s | always p99 ms | everysec req/s "
                "| everysec p99 ms |", "|---|---:|---:|---:|---:|"]
        always = {r["function"]: r for r in results["http"] if r["size"] == "20-reading"}
        for run in results["everysec"]:
            a = always.get(run["function"])
            if a:
                out.append(f"| {run['function']} | {a['rate']:,.0f} | {a['p99_ms']} | "
                           f"{run['rate']:,.0f} | {run['p99_ms']} |")
    out += spread_table(results)
    out += forwarding_table(results)
    out += ["", "| embedded engine | layers | µs per window (median of 7) |", "|---|---|---:|"]
    for e in results["engine"]:
        if e.get("missing"):
            out.append(f"| {e['model']} | not found | - |")
        else:
            out.append(f"| {e['model']} | {e['layers']} | {e['us_per_window']} |")
    tf = results["tfserving"]
    out += ["", f"TF Serving REST client against {tf['server']}: {tf['us_per_call']} µs per call "
            f"({tf['client_cpu_us_per_call']} µs of it client CPU); overhead over the embedded "
            f"engine: **{tf['overhead_us_per_call']} µs per call**."]
    out += ["", "| process | RSS MiB | PSS MiB |", "|---|---:|---:|"]
    for role, mem in results["memory_mib"].items():
        out.append(f"| {role} | {mem.get('rss', '-')} | {mem.get('pss', '-')} |")
    out.append(f"\nAOF after the runs: {results.get('aof_mib', '-')} MiB.")
    out += ["", "| target | figure | |", "|---|---|---|"]
    for line in targets(results):
        out.append(line)
    return "\n".join(out)


def spread_table(results: dict[str, Any]) -> list[str]:
    """The same load over 12 sensors on each Redis layout (empty when it was not run)."""
    if not results.get("spread"):
        return []
    out = ["", "Over 12 sensors (a cluster spreads them over its masters by hash slot), each layout "
           "fresh, on the same machine as everything else:", "",
           "| Redis | batch ingestion readings/s | detectar req/s | p50 ms | p99 ms | non-2xx "
           "| CPU µs/req: gateway | redis (all nodes) | other processes |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label, spread in results["spread"].items():
        d, cpu = spread["detectar"], spread["detectar"]["cpu_us_per_request"]
        out.append(f"| {label} | {spread['ingestion']['readings_per_s']:,} | {d['rate']:,.0f} "
                   f"| {d['p50_ms']} | {d['p99_ms']} | {d['non_2xx']} | {cpu['gateway']:,.0f} "
                   f"| {cpu['redis']:,.0f} | {d.get('other_processes_cpu_pct', 0)}% |")
    return out


def forwarding_table(results: dict[str, Any]) -> list[str]:
    """detectar with the alert forwarder off and on (empty when it was not run)."""
    if not results.get("forwarding"):
        return []
    out = ["", "`detectar` (20-reading sensor) with the alert forwarder off and on, its "
           "Alertmanager down and an alert waiting in the outbox (two stacks side by side, "
           "loaded in turn five times each; the median run of each):", "",
           "| alert forwarding | requests/s | p50 ms | p99 ms | non-2xx |", "|---|---:|---:|---:|---:|"]
    for label, run in results["forwarding"].items():
        out.append(f"| {label} | {run['rate']:,.0f} | {run['p50_ms']} | {run['p99_ms']} "
                   f"| {run['non_2xx']} |")
    return out


def targets(results: dict[str, Any]) -> list[str]:
    runs = {(r["function"], r["size"]): r for r in results["http"]}
    big = next(r["size"] for r in results["http"] if r["size"] != "20-reading")
    lines = []
    d = runs.get(("detectar", "20-reading"))
    if d:
        lines += [f"| detectar >= {TARGETS['detectar_rate']:,} requests/s | {d['rate']:,.0f} | "
                  f"{_ok(d['rate'] >= TARGETS['detectar_rate'])} |",
                  f"| detectar p99 < {TARGETS['detectar_p99_ms']} ms | {d['p99_ms']} ms | "
                  f"{_ok(d['p99_ms'] < TARGETS['detectar_p99_ms'])} |"]
    if results.get("against_machine"):
        detectar = share(results, "detectar")
        lines.append(f"| detectar >= {TARGETS['detectar_share']:.0%} of the hello-world rate | "
                     f"{detectar:.0%} | {_ok(detectar >= TARGETS['detectar_share'])} |")
    for function in ("detectar", "nuevo", "listar"):
        if (function, "20-reading") not in runs or (function, big) not in runs:
            continue
        small, large = runs[(function, "20-reading")], runs[(function, big)]
        ratio = large["rate"] / small["rate"] if small["rate"] else 0.0
        lines.append(f"| {function}: {big} rate within 20% of the 20-reading rate | "
                     f"{ratio:.0%} | {_ok(ratio >= TARGETS['size_ratio'])} |")
    forwarding = results.get("forwarding")
    if forwarding and forwarding["off"]["rate"]:
        ratio = forwarding["on"]["rate"] / forwarding["off"]["rate"]
        lines.append(f"| detectar with alert forwarding on within 5% of off | {ratio:.0%} | "
                     f"{_ok(ratio >= TARGETS['forwarding_ratio'])} |")
    rate = results["ingestion"]["readings_per_s"]
    lines.append(f"| batch ingestion >= {TARGETS['ingestion']:,} readings/s | {rate:,} | "
                 f"{_ok(rate >= TARGETS['ingestion'])} |")
    for e in results["engine"]:
        if not e.get("missing"):
            lines.append(f"| engine < {TARGETS['engine_us']} µs per window, {e['model']} | "
                         f"{e['us_per_window']} µs | {_ok(e['us_per_window'] < TARGETS['engine_us'])} |")
    return lines


def write_markdown(path: Path, table: str) -> None:
    """Replace the table between the markers; keep the notes around it."""
    block = f"{BEGIN}\n{table}\n{END}"
    if path.exists() and BEGIN in path.read_text():
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block,
                      path.read_text(), flags=re.S)
    else:
        text = ("# Benchmark results\n\n`python -m infra.bench` (`make bench`) rewrites the part "
                "between the markers; the notes outside them are kept.\n\n" + block + "\n")
    path.write_text(text)

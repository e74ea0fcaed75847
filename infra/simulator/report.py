"""Which known anomalies detectar caught, how fast, and its false alarms: one pure function.

An anomaly counts as caught when detectar flags any reading from its first changed reading
up to `tolerance` readings after its last one. The delay is from its first changed reading
to the first flag, in readings and in simulated time. A flag outside every anomaly's window
is a false alarm.
"""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any, Sequence

from .scenario import CADENCE_S, SensorSeries


def _window(anomaly, tolerance: int, n: int) -> range:
    return range(anomaly.start, min(anomaly.end + tolerance, n - 1) + 1)


def score(series: Sequence[SensorSeries], verdicts: dict[str, list[bool | None]],
          tolerance: int, cadence_s: int = CADENCE_S) -> dict[str, Any]:
    """verdicts[sensor][i]: detectar's answer for reading i (True, False, or None: not
    judged or not stored). Returns the anomalies with their outcome, the false alarms and
    a summary."""
    anomalies, false_alarms = [], []
    judged = flagged = 0
    for s in series:
        marks = verdicts.get(s.sensor, [None] * len(s.values))
        judged += sum(v is not None for v in marks)
        flags = [i for i, v in enumerate(marks) if v is True]
        flagged += len(flags)
        covered: set[int] = set()
        for anomaly in s.anomalies:
            window = _window(anomaly, tolerance, len(s.values))
            covered.update(window)
            hits = [i for i in flags if i in window]
            entry = anomaly.to_dict()
            entry.update(caught=bool(hits), flags=len(hits))
            if hits:
                delay = hits[0] - anomaly.start
                entry.update(detected_index=hits[0], detected_timestamp=s.timestamps[hits[0]],
                             delay_readings=delay, delay_seconds=delay * cadence_s)
            anomalies.append(entry)
        false_alarms.extend({"sensor": s.sensor, "index": i, "timestamp": s.timestamps[i],
                             "value": s.values[i]} for i in flags if i not in covered)
    return {"anomalies": anomalies, "false_alarms": false_alarms,
            "summary": summarize(anomalies, false_alarms, judged, flagged, cadence_s)}


def summarize(anomalies: list[dict], false_alarms: list[dict], judged: int, flagged: int,
              cadence_s: int) -> dict[str, Any]:
    caught = [a for a in anomalies if a["caught"]]
    delays = [a["delay_readings"] for a in caught]
    by_kind: dict[str, dict[str, Any]] = {}
    for kind, count in Counter(a["kind"] for a in anomalies).items():
        hits = [a for a in caught if a["kind"] == kind]
        by_kind[kind] = {"known": count, "caught": len(hits),
                         "median_delay_readings": statistics.median(
                             [a["delay_readings"] for a in hits]) if hits else None}
    days = judged * cadence_s / 86400
    return {
        "known": len(anomalies), "caught": len(caught), "missed": len(anomalies) - len(caught),
        "recall": round(len(caught) / len(anomalies), 4) if anomalies else None,
        "median_delay_readings": statistics.median(delays) if delays else None,
        "mean_delay_readings": round(statistics.fmean(delays), 2) if delays else None,
        "median_delay_minutes": statistics.median(delays) * cadence_s / 60 if delays else None,
        "by_kind": by_kind,
        "judged_readings": judged, "flagged_readings": flagged,
        "false_alarms": len(false_alarms),
        "false_alarms_per_simulated_day": round(len(false_alarms) / days, 3) if days else None,
    }


def minutes(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:.1f} h"


def render_text(report: dict[str, Any]) -> str:
    """The report as a few lines for the terminal."""
    run, sent = report["run"], report["sent"]
    lines = [f"sent {sent['readings']} readings of {len(run['sensors'])} sensors via {run['via']} "
             f"to {run['target']} in {sent['elapsed_s']:.1f} s ({sent['readings_per_s']:.0f}/s); "
             f"accepted {sent['accepted']}, refused {sent['refused']}"
             + (f" {sent['statuses']}" if sent["refused"] else "")
             + (f"; all stored after {sent['stored_after_s']:.1f} s" if sent.get("stored_after_s")
                else "")]
    if not report["judged"]:
        lines.append("not judged: " + report["note"])
        return "\n".join(lines)
    lines.append(f"{'anomaly':<11}{'sensor':<28}{'starts at (simulated)':<26}{'caught':<8}delay")
    for a in report["anomalies"]:
        delay = (f"{a['delay_readings']} reading{'' if a['delay_readings'] == 1 else 's'} "
                 f"({minutes(a['delay_seconds'])})" if a["caught"] else "-")
        lines.append(f"{a['kind']:<11}{a['sensor']:<28}{a['start_time']:<26}"
                     f"{'yes' if a['caught'] else 'no':<8}{delay}")
    s = report["summary"]
    recall = f" ({s['recall']:.0%})" if s["recall"] is not None else ""
    lines.append(f"caught {s['caught']} of {s['known']} known anomalies{recall}; "
                 f"false alarms: {s['false_alarms']} in {s['judged_readings']} judged readings"
                 + (f" ({s['false_alarms_per_simulated_day']} per simulated day)"
                    if s["false_alarms_per_simulated_day"] is not None else ""))
    return "\n".join(lines)

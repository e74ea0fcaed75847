"""Which known anomalies detectar caught, how fast, and its false alarms: one pure function.

An anomaly counts as caught when detectar flags any reading from its first changed reading
up to `tolerance` readings after its last one. The delay is from its first changed reading
to the first flag, in readings and in simulated time. A flag outside every anomaly's window
is a false alarm. A missed anomaly that starts within the rule's hold-off after an earlier
flag could not be flagged: it is marked so.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any

from .scenario import CADENCE_S, SensorSeries

FALSE_ALARMS_SHOWN = 20  # in the text; the JSON report has them all


def _window(anomaly, tolerance: int, n: int) -> range:
    return range(anomaly.start, min(anomaly.end + tolerance, n - 1) + 1)


def score(series: Sequence[SensorSeries], verdicts: dict[str, list[bool | None]],
          tolerance: int, cadence_s: int = CADENCE_S, holdoff: int = 0,
          verdicts_seen: bool = True) -> dict[str, Any]:
    """verdicts[sensor][i]: detectar's answer for reading i (True, False, or None: not
    judged or not stored). With `verdicts_seen` False only the flags are known (read back
    with listar: False may be "not judged"), so the judged readings are unknown. `holdoff`:
    readings the rule stays silent after a flag. Returns the anomalies with their outcome,
    the false alarms and a summary."""
    anomalies: list[dict[str, Any]] = []
    false_alarms: list[dict[str, Any]] = []
    judged: int | None = 0 if verdicts_seen else None
    flagged = 0
    for s in series:
        marks = verdicts.get(s.sensor, [None] * len(s.values))
        if judged is not None:
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
            else:
                earlier = [i for i in flags if i < anomaly.start]
                if earlier and anomaly.start - earlier[-1] <= holdoff:
                    entry["held_off_by_alarm_at"] = earlier[-1]
            anomalies.append(entry)
        false_alarms.extend({"sensor": s.sensor, "index": i, "timestamp": s.timestamps[i],
                             "value": s.values[i]} for i in flags if i not in covered)
    return {"anomalies": anomalies, "false_alarms": false_alarms,
            "summary": summarize(anomalies, false_alarms, judged, flagged, cadence_s)}


def summarize(anomalies: list[dict], false_alarms: list[dict], judged: int | None, flagged: int,
              cadence_s: int) -> dict[str, Any]:
    caught = [a for a in anomalies if a["caught"]]
    delays = [a["delay_readings"] for a in caught]
    by_kind: dict[str, dict[str, Any]] = {}
    for kind, count in Counter(a["kind"] for a in anomalies).items():
        hits = [a for a in caught if a["kind"] == kind]
        by_kind[kind] = {"known": count, "caught": len(hits),
                         "median_delay_readings": statistics.median(
                             [a["delay_readings"] for a in hits]) if hits else None}
    days = (judged or 0) * cadence_s / 86400
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


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def minutes(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:.1f} h"


def render_text(report: dict[str, Any]) -> str:
    """The report as a few lines for the terminal."""
    run, sent = report["run"], report["sent"]
    lines = [f"sent {plural(sent['readings'], 'reading')} of {plural(len(run['sensors']), 'sensor')} "
             f"via {run['via']} to {run['target']} in {sent['elapsed_s']:.1f} s "
             f"({sent['readings_per_s']:.0f}/s); "
             f"accepted {sent['accepted']}, refused {sent['refused']}"
             + (f" {sent['statuses']}" if sent["refused"] else "")
             + (f"; all stored after {sent['stored_after_s']:.1f} s" if sent.get("stored_after_s")
                else "")]
    if not report["judged"]:
        lines.append("not judged: " + report["note"])
        return "\n".join(lines)
    lines.append(f"{'anomaly':<11}{'sensor':<28}{'reading':<9}{'starts at (simulated)':<26}"
                 f"{'caught':<8}delay")
    for a in report["anomalies"]:
        if a["caught"]:
            delay = f"{plural(a['delay_readings'], 'reading')} ({minutes(a['delay_seconds'])})"
        elif "held_off_by_alarm_at" in a:
            delay = f"missed: inside the hold-off of the alarm at {a['held_off_by_alarm_at']}"
        else:
            delay = "-"
        lines.append(f"{a['kind']:<11}{a['sensor']:<28}{a['start']:<9}{a['start_time']:<26}"
                     f"{'yes' if a['caught'] else 'no':<8}{delay}")
    s = report["summary"]
    recall = f" ({s['recall']:.0%})" if s["recall"] is not None else ""
    judged = ("; verdicts not seen (async/MQTT)" if s["judged_readings"] is None
              else f" in {s['judged_readings']} judged readings")
    lines.append(f"caught {s['caught']} of {s['known']} known anomalies{recall}; "
                 f"false alarms: {s['false_alarms']}{judged}"
                 + (f" ({s['false_alarms_per_simulated_day']} per simulated day)"
                    if s["false_alarms_per_simulated_day"] is not None else ""))
    if report["false_alarms"]:
        lines.append("false alarms at readings " + false_alarm_list(report["false_alarms"]))
    return "\n".join(lines)


def false_alarm_list(false_alarms: list[dict]) -> str:
    """The first FALSE_ALARMS_SHOWN false alarms' indices, by sensor."""
    by_sensor: dict[str, list[str]] = {}
    for alarm in false_alarms[:FALSE_ALARMS_SHOWN]:
        by_sensor.setdefault(alarm["sensor"], []).append(str(alarm["index"]))
    more = len(false_alarms) - FALSE_ALARMS_SHOWN
    return ("; ".join(f"{sensor}: {', '.join(indices)}" for sensor, indices in by_sensor.items())
            + (f"; {more} more in the JSON report" if more > 0 else ""))

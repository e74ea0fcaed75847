"""The corpus run as a test of generalisation: the same files at several cadences, NAB's
three profiles beside the published detectors, leave-one-category-out, and how often the
verdict's band holds the readings outside NAB's windows. A pure report of scored runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .corpus import FileScore, category_totals, leave_one_category_out, profile_totals, totals

SHOWN = ("ARTime", "contextOSE", "numenta")


def cadence_name(seconds: int) -> str:
    if not seconds:
        return "as recorded"
    return f"{seconds // 60} min" if seconds < 3600 else f"{seconds // 3600} h"


def summary(runs: Mapping[int, Sequence[FileScore]],
            published: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """runs[cadence_s]: each file's score at that cadence (0: as recorded)."""
    recorded = runs[min(runs)]
    return {
        "cadences": {cadence_name(c): {**totals(s), "categories": category_totals(s)}
                     for c, s in runs.items()},
        "profiles": {name: {"ours": ours,
                            "published": {d: published.get(name, {}).get(d) for d in SHOWN}}
                     for name, ours in profile_totals(recorded).items()},
        "leave_one_category_out": leave_one_category_out({"shipped": recorded}),
        "leave_one_category_out_note": (
            "one configuration, nothing chosen per run: each category is scored with the "
            "configuration the model description fixes, so this equals the in-sample score"),
    }


def format_summary(report: Mapping[str, Any]) -> str:
    lines = ["generalisation: cadence, normalised (standard), windows, false alerts, false "
             "alerts per sensor-week outside windows, readings outside windows inside the band"]
    for name, t in report["cadences"].items():
        lines.append(f"  {name:<12} {t['normalised']:5.1f}  {t['windows_found']:>3}/"
                     f"{t['windows']:<3} {t['false_positives']:>4} FP  "
                     f"{t['false_alerts_per_sensor_week']:5.2f}/week  band {t['band_coverage']:.1%}")
    lines.append("profiles (as recorded): ours  " + "  ".join(SHOWN))
    for name, p in report["profiles"].items():
        theirs = "  ".join("-" if p["published"][d] is None
                           else f"{p['published'][d]['normalized']:.1f}" for d in SHOWN)
        lines.append(f"  {name:<20} {p['ours']['normalised']:5.1f}  {theirs}")
    loco = report["leave_one_category_out"]
    lines.append(f"leave-one-category-out: {loco['normalised']:.1f} ("
                 + ", ".join(f"{c} {v['normalised']:.1f}" for c, v in loco["categories"].items()
                             if v["windows"]) + ")")
    lines.append("  " + report["leave_one_category_out_note"])
    return "\n".join(lines)

"""NAB's corpus as one benchmark: its files, each file's score, and the normalised total
beside the published detectors' (`published_scores.json`, NAB's standard profile on exactly
these files).

A corpus folder holds `<category>/<file>.csv`, `windows.json` keyed `<category>/<file>.csv`
and, optionally, `published_scores.json`. The normalised score is NAB's own:
100 * (sum of raw scores + windows) / (2 * windows), so the null detector scores 0 and a
perfect one 100.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cadence import quiet_weeks
from .nab import NabDataError, NabSeries, load_series, read_windows_file
from .report import ModelReport
from .scoring import PROFILES, STANDARD, Profile, score

WINDOWS_FILE = "windows.json"
PUBLISHED_FILE = "published_scores.json"
# The published detectors shown beside ours, best first (all of them are in the JSON).
SHOWN = ("ARTime", "contextOSE", "numenta", "htmjava", "earthgeckoSkyline")


@dataclass(frozen=True)
class FileScore:
    key: str                 # <category>/<file>.csv
    report: ModelReport      # what streaming it through detectar scored
    windows: tuple[tuple[int, int], ...] = ()  # the labelled windows, rows
    quiet_weeks: float = 0.0  # weeks outside windows after the probation (cadence.py)
    band: tuple[int, int] = (0, 0)  # readings outside windows: inside the verdict's band, judged

    @classmethod
    def of(cls, series: NabSeries, report: ModelReport,
           inside_band: list[bool | None] | None = None) -> FileScore:
        outside = set(range(len(series)))
        for left, right in series.windows:
            outside -= set(range(left, right + 1))
        marks = [inside_band[i] for i in sorted(outside)] if inside_band else []
        judged = [m for m in marks if m is not None]
        return cls(series.name, report, tuple(series.windows), quiet_weeks(series),
                   (sum(judged), len(judged)))

    def raw(self, profile: Profile) -> float:
        if profile == STANDARD:
            return self.report.score
        return score(self.report.readings, self.report.detections, self.windows, profile).score

    @property
    def category(self) -> str:
        return self.key.split("/")[0]


def keys(folder: Path) -> list[str]:
    """The corpus's files, as windows.json lists them."""
    return sorted(read_windows_file(Path(folder) / WINDOWS_FILE))


def load(folder: Path, key: str) -> NabSeries:
    return load_series(Path(folder) / key, Path(folder) / WINDOWS_FILE, key)


def normalised(raw_total: float, windows: int) -> float:
    return 100.0 * (raw_total + windows) / (2.0 * windows)


def published(folder: Path) -> dict[str, Any]:
    """The published detectors' results on these files, {} when the corpus has none."""
    path = Path(folder) / PUBLISHED_FILE
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("detectors", {})
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
        raise NabDataError(f"{path}: cannot read it: {exc}") from exc


def totals(scores: Sequence[FileScore]) -> dict[str, float]:
    windows = sum(s.report.windows_total for s in scores)
    raw = sum(s.report.score for s in scores)
    false_positives = sum(s.report.n_false_positives for s in scores)
    weeks = sum(s.quiet_weeks for s in scores)
    inside, judged = (sum(s.band[k] for s in scores) for k in (0, 1))
    return {"files": len(scores), "windows": windows,
            "windows_found": sum(s.report.windows_detected for s in scores),
            "false_positives": false_positives,
            "false_alerts_per_sensor_week": false_positives / weeks if weeks else 0.0,
            "band_coverage": inside / judged if judged else 0.0,
            "raw": raw, "normalised": normalised(raw, windows) if windows else 0.0}


def profile_totals(scores: Sequence[FileScore]) -> dict[str, dict[str, float]]:
    """Each NAB profile's raw total and normalised score over these files."""
    windows = sum(len(s.windows) for s in scores)
    out = {}
    for profile in PROFILES:
        raw = sum(s.raw(profile) for s in scores)
        out[profile.name] = {"raw": raw, "normalised": profile.normalised(raw, windows)}
    return out


def published_profiles(folder: Path) -> dict[str, dict[str, Any]]:
    """The published detectors' totals per profile ({} when the corpus has none)."""
    path = Path(folder) / PUBLISHED_FILE
    if not path.exists():
        return {}
    try:
        profiles = json.loads(path.read_text(encoding="utf-8")).get("profiles", {})
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
        raise NabDataError(f"{path}: cannot read it: {exc}") from exc
    return {name: profile.get("detectors", {}) for name, profile in profiles.items()}


def leave_one_category_out(candidates: dict[str, Sequence[FileScore]]) -> dict[str, Any]:
    """Each category scored with the candidate (a configuration) that scores best on the
    other categories, and the normalised total of those choices. With one candidate nothing
    is chosen and this is the in-sample score, category by category."""
    first = next(iter(candidates.values()))
    names = sorted({s.category for s in first})
    chosen: dict[str, dict[str, Any]] = {}
    raw, windows = 0.0, 0
    for held_out in names:
        elsewhere = {label: totals([s for s in scores if s.category != held_out])["normalised"]
                     for label, scores in candidates.items()}
        best = max(candidates, key=elsewhere.__getitem__)
        scored = totals([s for s in candidates[best] if s.category == held_out])
        chosen[held_out] = {"candidate": best, **scored}
        raw, windows = raw + scored["raw"], windows + int(scored["windows"])  # a count
    return {"candidates": len(candidates), "categories": chosen,
            "normalised": normalised(raw, windows) if windows else 0.0}


def category_totals(scores: Sequence[FileScore]) -> dict[str, dict[str, float]]:
    by_category: dict[str, list[FileScore]] = {}
    for file_score in scores:
        by_category.setdefault(file_score.category, []).append(file_score)
    return {name: totals(group) for name, group in sorted(by_category.items())}


def format_categories(scores: Sequence[FileScore]) -> str:
    lines = ["by category: windows found, false alarms, raw score, normalised (where it has windows)"]
    for name, total in category_totals(scores).items():
        normal = f"{total['normalised']:5.1f}" if total["windows"] else "    -"
        lines.append(f"  {name:<24} {total['windows_found']:>3}/{total['windows']:<3} "
                     f"{total['false_positives']:>4} FP  {total['raw']:>+7.2f}  {normal}")
    return "\n".join(lines)


def write_json(path: Path, scores: Sequence[FileScore], detectors: dict[str, Any],
               generalisation: dict[str, Any] | None = None) -> Path:
    document = {
        "scoring": "NAB standard profile (tp 1, fp 0.11, fn 1); alerts are the detections",
        "total": totals(scores), "categories": category_totals(scores),
        "published": {name: {"normalised": d["normalized"], "raw_total": d["raw_total"]}
                      for name, d in detectors.items()},
        "files": [{"file": s.key, "rows": s.report.readings, "windows": s.report.windows_total,
                   "windows_found": s.report.windows_detected,
                   "false_positives": s.report.n_false_positives, "raw": s.report.score,
                   "first_detections": s.report.first_detections, "sensor": s.report.sensor,
                   "seconds": s.report.seconds} for s in scores],
    }
    if generalisation is not None:
        document["generalisation"] = generalisation
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path


def format_table(scores: Sequence[FileScore], detectors: dict[str, Any]) -> str:
    """Per file and in total: windows found, false alarms, raw score; the published
    detectors' raw score per file and their normalised score in total."""
    shown = [name for name in SHOWN if name in detectors]
    width = max(len(s.key) for s in scores)
    head = (f"{'file'.ljust(width)}  {'rows':>6}  {'found':>7}  {'FP':>4}  {'raw':>7}  "
            + "  ".join(f"{name[:10]:>10}" for name in shown))
    lines = [head, "-" * len(head)]
    for s in scores:
        theirs = [detectors[name]["files"].get(s.key, {}).get("raw") for name in shown]
        r = s.report
        lines.append(f"{s.key.ljust(width)}  {r.readings:>6}  "
                     f"{f'{r.windows_detected}/{r.windows_total}':>7}  "
                     f"{r.n_false_positives:>4}  {r.score:>+7.2f}  "
                     + "  ".join(f"{'-' if r is None else f'{r:+.2f}':>10}" for r in theirs))
    total = totals(scores)
    found = f"{total['windows_found']}/{total['windows']}"
    lines += ["-" * len(head),
              f"{'total'.ljust(width)}  {sum(s.report.readings for s in scores):>6}  {found:>7}  "
              f"{total['false_positives']:>4}  {total['raw']:>+7.2f}  "
              + "  ".join(f"{detectors[name]['raw_total']:>+10.2f}" for name in shown),
              f"{'normalised score (null 0, perfect 100)'.ljust(width)}  {'':>6}  {'':>7}  "
              f"{'':>4}  {total['normalised']:>7.1f}  "
              + "  ".join(f"{detectors[name]['normalized']:>10.1f}" for name in shown)]
    if shown:
        lines.append("published detectors (columns): " + ", ".join(shown))
    return "\n".join(lines)

"""The variants of the shipped `record_level` rule, replayed offline on the predictions one
run of detectar answered (the same predictions for all), so a run shows what each choice of
the tested value would have scored."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from shared import rules

from .nab import NabSeries
from .report import Stream, format_rows, model_description
from .scoring import score

RECORD_VARIANTS = (
    ("record_level, test=reading (the reading beyond the 30-day range)", {"test": "reading"}, False),
    ("record_level, test=prediction (the prediction beyond it)", {"test": "prediction"}, False),
    ("record_level, test=both (reading and prediction beyond it, same side)", {"test": "both"}, False),
    ("record_level, test=either (the reading or the prediction beyond it)", {"test": "either"}, False),
    ("record_level fed the predictions (range, level, re-arming over past predictions)",
     {"test": "reading"}, True),
)


def rule_variants(model_path: Path, values: Sequence[float], result: Stream,
                  series: NabSeries) -> list[dict[str, Any]]:
    """Each variant's NAB figures; empty for a model whose rule is not `record_level`."""
    decision = dict(model_description(model_path).decision)
    if decision.get("rule") != "record_level":
        return []
    shipped = decision.get("test", "reading")
    timestamps = series.stream_timestamps()
    out = []
    for name, change, fed_predictions in RECORD_VARIANTS:
        rule = rules.build({**decision, **change})
        state: Mapping[str, float] = {}
        detections = []
        for row, (value, predicted) in enumerate(zip(values, result.predicted)):
            if predicted is None:
                continue
            reading = float(predicted) if fed_predictions else float(value)
            verdict = rule.judge(rules.Observed(reading, float(predicted), timestamps[row]), state)
            state = verdict.state
            if verdict.anomaly:
                detections.append(row)
        nab_result = score(len(series), detections, series.windows)
        out.append({"variant": name, "shipped": not fed_predictions and change["test"] == shipped,
                    "windows_detected": nab_result.windows_detected,
                    "windows_total": len(series.windows),
                    "false_positives": nab_result.false_positives,
                    "first_detections": nab_result.first_detections,
                    "window_scores": [round(x, 6) for x in nab_result.window_scores],
                    "score": round(nab_result.score, 6)})
    return out


def format_variants(variants: Sequence[Mapping[str, Any]]) -> str:
    lines = ["record_level variants on the same predictions (offline replay; * = shipped):"]
    for v in variants:
        lines.append(f"{'*' if v['shipped'] else ' '} {v['variant']}\n"
                     f"    {v['windows_detected']}/{v['windows_total']} windows, "
                     f"{len(v['false_positives'])} FP, NAB {v['score']:+.2f}, first "
                     f"{format_rows(v['first_detections'])}, FP rows "
                     f"{format_rows(v['false_positives'])}")
    return "\n".join(lines)

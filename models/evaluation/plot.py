"""The evaluation plot: one panel per model, the series with its labelled windows shaded,
the probationary rows marked, detections inside windows (green) and outside (red)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .scoring import probationary_length


def plot_evaluation(path: Path, series: Any, reports: Sequence[Any]) -> Path:
    """Write the PNG to `path` (series: a NabSeries; reports: ModelReports)."""
    import matplotlib.pyplot as plt

    figure = evaluation_figure(series, reports)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def evaluation_figure(series: Any, reports: Sequence[Any]):
    """The matplotlib Figure of plot_evaluation (the caller closes it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = np.asarray(series.values)
    rows = np.arange(len(values))
    probation = probationary_length(len(values))
    panels = max(len(reports), 1)
    figure, axes = plt.subplots(panels, 1, figsize=(16, 3.6 * panels), sharex=True,
                                squeeze=False, layout="constrained")
    for axis, report in zip(axes[:, 0], reports, strict=False):  # no reports: one empty panel
        axis.plot(rows, values, color="#4a6fa5", linewidth=0.6, label="reading")
        for k, (left, right) in enumerate(series.windows):
            axis.axvspan(left, right, color="#f2c94c", alpha=0.35, linewidth=0,
                         label="labelled window" if k == 0 else None)
        axis.axvspan(0, probation - 0.5, color="#bbbbbb", alpha=0.35, linewidth=0,
                     label=f"probationary rows (0-{probation - 1})")
        detections = np.asarray(report.detections, dtype=int)
        false = np.asarray(report.false_positives, dtype=int)
        first = np.asarray([f for f in report.first_detections if f is not None], dtype=int)
        inside = np.setdiff1d(detections[detections >= probation], false)
        ignored = detections[detections < probation]
        if len(ignored):
            axis.scatter(ignored, values[ignored], marker="o", s=18, facecolors="none",
                         edgecolors="grey", label="detection in probation (not scored)", zorder=3)
        if len(inside):
            axis.scatter(inside, values[inside], marker="o", s=16, color="#27ae60",
                         label="detection in a window", zorder=3)
        if len(first):
            axis.scatter(first, values[first], marker="*", s=160, color="#1e8449",
                         edgecolors="black", linewidths=0.5, label="first detection in a window",
                         zorder=4)
        if len(false):
            axis.scatter(false, values[false], marker="x", s=40, color="#c0392b",
                         label="false positive", zorder=4)
        axis.set_title(f"{report.label}: {report.model} ({report.rule or 'rule of the gateway'}) "
                       f"- windows {report.windows_detected}/{report.windows_total}, "
                       f"false positives {report.n_false_positives}, NAB raw score "
                       f"{report.score:+.2f}", fontsize=10, loc="left")
        axis.set_ylabel("reading")
        # right of the axes: inside them it hid readings (window 2's fall to 2 degrees)
        axis.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=7)
        axis.grid(alpha=0.25)
    axes[-1, 0].set_xlabel(f"row (median step {series.step_ms // 1000} s; "
                           f"{Path(series.csv_path).name})")
    return figure

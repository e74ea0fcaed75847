"""The one verdict type, from the decision rule to the answer and the page.

A rule sees a reading as `Observed` and returns a `Decision`; the detector adds the model's
prediction and engine (`Verdict`), and `Verdict.fields()` is what detectar answers and its page
shows. A field added to `Decision` reaches the answer with no other edit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from typing import Any


@dataclass(frozen=True)
class Observed:
    value: float
    predicted: float               # the model's prediction of `value` from `window`
    timestamp: int                 # ms since the epoch
    window: tuple[float, ...] = () # the readings before it, newest first


@dataclass(frozen=True)
class Decision:
    anomaly: bool          # this reading is anomalous
    alert: bool            # it starts a new event: what an operator is paged for
    error: float
    threshold: float
    state: dict[str, float] = field(default_factory=dict)
    note: str | None = None  # why a reading was not flagged, or a silence before it
    kinds: tuple[str, ...] = ()     # what kinds of departure flagged it (rules that say)
    learning: tuple[str, ...] = ()  # which parts of the rule are still learning the sensor
    # What normal is (rules that say; None otherwise):
    expected: float | None = None  # the value normal for this sensor now
    lower: float | None = None     # the band inside which this reading alone is not anomalous
    upper: float | None = None
    severity: int | None = None    # 0-100; 50 and more where a test flags
    explanation: str | None = None  # one sentence an operator reads
    kind: str | None = None        # the kind of the event this reading belongs to
    resolved: str | None = None    # the kind of a paged event this reading closes

    def fields(self) -> dict[str, Any]:
        """The answer's fields (the state stays in the store). Field by field, not asdict:
        asdict deep-copies the state, and that copy was half of detectar's Python time."""
        out = {f.name: getattr(self, f.name) for f in dataclass_fields(self) if f.name != "state"}
        out["kinds"], out["learning"] = list(self.kinds), list(self.learning)
        return out


@dataclass(frozen=True)
class Verdict:
    decision: Decision | None        # None: not judged (see message)
    predicted: float | None = None
    engine: str | None = None
    message: str | None = None       # why it was not judged
    state: dict[str, float] = field(default_factory=dict)

    @property
    def anomaly(self) -> bool | None:
        return None if self.decision is None else self.decision.anomaly

    @property
    def alert(self) -> bool | None:
        return None if self.decision is None else self.decision.alert

    def fields(self) -> dict[str, Any]:
        """detectar's answer about the reading: anomaly and alert None when not judged;
        message and note only when there is one."""
        out: dict[str, Any] = {"anomaly": None, "alert": None, "kinds": [], "learning": []}
        if self.decision is not None:
            out.update(self.decision.fields())
        out.update(predicted=self.predicted, engine=self.engine)
        out.setdefault("error", None)
        out.setdefault("threshold", None)
        if self.message:
            out["message"] = self.message
        if not out.get("note"):
            out.pop("note", None)
        return out


def number(decision: Mapping[str, Any], key: str, minimum: float,
           default: float | None = None) -> float:
    """A rule's parameter: a finite number >= minimum (ValueError names it)."""
    value = decision.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value) \
            or value < minimum or (math.isinf(value) and value != default):
        raise ValueError(f"decision.{key}: {decision.get('rule')} needs a number >= {minimum:g}, "
                         f"got {value!r}")
    return float(value)


def whole(decision: Mapping[str, Any], key: str) -> int:
    value = decision.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"decision.{key}: {decision.get('rule')} needs a whole number >= 1, "
                         f"got {value!r}")
    return value


def threshold(decision: Mapping[str, Any], override: float | None,
              default: float | None = None) -> float:
    if override is not None:
        return float(override)
    return number(decision, "threshold", 0.0, default)

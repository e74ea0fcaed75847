"""Window -> model input -> prediction -> verdict, for one sensor's new reading.

The model only predicts; window standardisation (shared/standardise.py) and the decision rule
(shared/rules.py) come from the model's description file, so one runtime serves both the
replaced system's autoencoder and our own model.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from . import rules, standardise
from .serving import Predictor, ServingError, ServingUnavailable
from .serving.description import ModelDescription
from .verdict import Verdict

log = logging.getLogger(__name__)


class ModelUnavailable(Exception):
    """The model server cannot compute a prediction and there is no fallback."""


class Detector:
    def __init__(self, description: ModelDescription, predictor: Predictor,
                 fallback: Predictor | None = None, threshold: float | None = None):
        self.description = description
        self.predictor = predictor
        self.fallback = fallback
        self.rule = rules.build(description.decision, threshold)

    @property
    def window_size(self) -> int:
        return self.description.window

    def _predict(self, instances: np.ndarray) -> tuple[np.ndarray, str]:
        try:
            return self.predictor.predict(instances), self.predictor.name
        except (ServingUnavailable, ServingError) as exc:
            if isinstance(exc, ServingError):  # a refusal means a mismatch an operator must fix
                log.warning("model server refused a prediction: %s", exc)
            if self.fallback is None:
                raise ModelUnavailable(f"model server unavailable: {exc}") from exc
            return self.fallback.predict(instances), f"{self.fallback.name} (fallback)"

    def judge(self, value: float, timestamp: int, window: list[float],
              state: dict[str, float]) -> Verdict:
        """Judge `value`, read at `timestamp`, against the readings before it (newest first)."""
        if len(window) < self.window_size:
            return Verdict(None, state=state, message=(
                f"not judged: the sensor needs {self.window_size} previous readings "
                f"and has {len(window)}"))
        raw = np.asarray(window[: self.window_size], dtype=np.float64)
        instances, to_degrees = standardise.model_input(self.description, raw)
        output, engine = self._predict(instances)
        predicted = to_degrees(float(output[0][tuple(self.description.prediction_index)]))
        if not math.isfinite(predicted):
            return Verdict(None, engine=engine, state=state,
                           message="not judged: the model's prediction is not a finite number")
        observed = rules.Observed(value, predicted, timestamp, tuple(window[: self.window_size]))
        decision = self.rule.judge(observed, state)
        return Verdict(decision, predicted, engine, state=decision.state)

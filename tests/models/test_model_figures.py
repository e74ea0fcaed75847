"""The model card's figures (models/README.md) for the shipped model on the NAB series.

`make evaluate` streams every reading through detectar (Redis included, ~20 s); this test
computes the same verdicts without the store: the embedded engine on every window, then
the description's decision rule reading by reading. Both must give the card's figures.
"""

from pathlib import Path

import numpy as np
import pytest

from models import nab
from models.scoring import score
from shared import rules, scaling
from shared.serving.description import load_description, resolve_version_dir
from shared.serving.engine import EmbeddedModel
from tests.models.test_nab_data import DATA_DIR, needs_data

MODEL = Path(__file__).resolve().parents[2] / "models" / "modelo"


@needs_data
def test_the_shipped_model_has_the_model_cards_figures():
    version_dir = resolve_version_dir(MODEL)
    description = load_description(version_dir)
    series = nab.load_machine_temperature(DATA_DIR)
    values, w = series.values, description.window
    newest_first = np.stack([values[i - w:i][::-1] for i in range(w, len(values))])
    scaled, offset, scale = scaling.scale_windows(newest_first, description.scaling)
    ordered = scaled[:, ::-1] if description.input_order == "oldest_first" else scaled
    engine = EmbeddedModel.load(version_dir, description)
    output = engine.predict(ordered[..., None].astype(np.float32))
    predicted = offset + scale * output[(slice(None), *description.prediction_index)]
    state, detections = {}, []
    for row in range(w, len(values)):
        decision = rules.decide(description.decision, values[row], predicted[row - w],
                                newest_first[row - w], state)
        state = decision.state
        if decision.anomaly:
            detections.append(row)
    result = score(len(values), detections, series.windows)
    assert description.decision["rule"] == "record_level"
    assert description.decision["test"] == "either"
    assert result.windows_detected == 4
    assert result.first_detections == [2139, 3885, 16340, 19354]
    assert result.false_positives == [808, 3117, 4466, 6832, 15170, 16970, 18024, 21530]
    assert result.score == pytest.approx(2.95, abs=0.005)

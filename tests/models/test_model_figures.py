"""The model card's figures (models/README.md) for the shipped model on the NAB series.

`make evaluate` streams every reading through detectar (Redis included, ~20 s); this test
computes the same verdicts without the store: the embedded engine on every window, then
the description's decision rule reading by reading. Both must give the card's figures.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models.evaluation import nab
from models.evaluation.scoring import score
from models.locations import DEFAULT_MODEL
from shared import rules, standardise
from shared.serving.checkpoint import read_variables
from shared.serving.description import load_description, resolve_version_dir
from shared.serving.engine import EmbeddedModel
from tests.conftest import NAB_DATA_DIR
from tests.models.evaluation.test_nab_data import needs_data


def assert_the_model_cards_figures(version_dir: Path) -> None:
    description = load_description(version_dir)
    series = nab.load_machine_temperature(NAB_DATA_DIR)
    values, w = series.values, description.window
    newest_first = np.stack([values[i - w:i][::-1] for i in range(w, len(values))])
    scaled, offset, scale = standardise.scale_windows(newest_first, description.scaling)
    ordered = scaled[:, ::-1] if description.input_order == "oldest_first" else scaled
    engine = EmbeddedModel.load(version_dir, description)
    output = engine.predict(ordered[..., None].astype(np.float32))
    prediction: tuple[slice | int, ...] = (slice(None), *description.prediction_index)
    predicted = offset + scale * output[prediction]
    rule = rules.build(description.decision)
    state: dict[str, float] = {}
    detections: list[int] = []
    timestamps = series.stream_timestamps()
    for row in range(w, len(values)):
        observed = rules.Observed(float(values[row]), float(predicted[row - w]), timestamps[row],
                                  tuple(map(float, newest_first[row - w])))
        decision = rule.judge(observed, state)
        state = decision.state
        if decision.alert:
            detections.append(row)
    result = score(len(values), detections, series.windows)
    assert description.decision["rule"] == "record_events"
    assert result.windows_detected == 4
    assert result.first_detections == [2150, 3969, 16127, 19320]
    assert result.false_positives == [819, 9693, 15172, 18035]
    assert result.score == pytest.approx(3.41, abs=0.005)


@needs_data
def test_the_shipped_model_has_the_model_cards_figures():
    assert_the_model_cards_figures(resolve_version_dir(DEFAULT_MODEL))


def float_arrays(version_dir: Path) -> list[np.ndarray]:
    """The checkpoint's weights, whatever numbers TF gave them (the order varies by run)."""
    arrays = [a for a in read_variables(version_dir).values() if a.dtype.kind == "f"]
    return sorted(arrays, key=lambda a: (a.shape, a.tobytes()))


@needs_data
def test_make_train_reproduces_the_shipped_model(tmp_path):
    """`make train` is `python -m models.train`: retrained from scratch, the model has the same
    weights and the same figures as the committed one."""
    pytest.importorskip("tensorflow")
    subprocess.run([sys.executable, "-m", "models.train", "--models-dir", str(tmp_path),
                    "--data-dir", str(NAB_DATA_DIR)], check=True, cwd=DEFAULT_MODEL.parents[1],
                   capture_output=True, timeout=600)
    retrained = tmp_path / "modelo" / "1"
    shipped, fresh = float_arrays(resolve_version_dir(DEFAULT_MODEL)), float_arrays(retrained)
    assert [a.shape for a in fresh] == [a.shape for a in shipped]
    for new, old in zip(fresh, shipped, strict=True):
        np.testing.assert_allclose(new, old, rtol=1e-4, atol=1e-6)
    assert_the_model_cards_figures(retrained)

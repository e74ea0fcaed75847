"""The exported SavedModel (models/modelo/<version>/), when one exists."""

import json

import numpy as np
import pytest

from models import train
from models.locations import MODELS_DIR
from shared import rules
from shared.serving.checkpoint import read_variables

VERSIONS = sorted(p for p in (MODELS_DIR / "modelo").glob("*") if (p / "saved_model.pb").is_file())
pytestmark = pytest.mark.skipif(not VERSIONS, reason="no exported model in models/modelo/")


@pytest.fixture(scope="module", params=VERSIONS, ids=lambda p: p.name)
def version_dir(request):
    return request.param


def test_model_json_matches_the_checkpoint(version_dir):
    description = json.loads((version_dir / "model.json").read_text())
    assert description["format"] == 1
    assert description["input_order"] in ("newest_first", "oldest_first")
    keys = [key for layer in description["layers"] for key in layer.get("weights", [])]
    variables = read_variables(version_dir, keys)
    units = description["layers"][0]["units"]
    gru = description["layers"][0]
    assert gru["type"] == "gru" and gru["reset_after"] is True
    kernel, recurrent, bias = (variables[k] for k in gru["weights"])
    assert kernel.shape == (1, 3 * units) and recurrent.shape == (units, 3 * units)
    assert bias.shape == (2, 3 * units)
    dense_kernel, dense_bias = (variables[k] for k in description["layers"][1]["weights"])
    assert dense_kernel.shape == (units, 1) and dense_bias.shape == (1,)
    decision = description["decision"]
    assert decision["rule"] in rules.RULES
    # what `make train` writes: the shipped configuration, and why it is what it is
    assert {key: value for key, value in decision.items() if key != "calibration"} == train.DECISION
    assert decision["calibration"] == train.CALIBRATION
    training = description["training"]
    assert training["data"]["labels_used"] is False
    assert training["data"]["rows_used"] == [0, 749]


def test_models_config():
    text = (MODELS_DIR / "models_config" / "models.config").read_text()
    for line in ("name: 'modelo'", "base_path: '/models/modelo'", "model_platform: 'tensorflow'",
                 "model_version_policy { latest { num_versions: 2 } }"):
        assert line in text


def test_serving_signature(version_dir):
    tf = pytest.importorskip("tensorflow")
    description = json.loads((version_dir / "model.json").read_text())
    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    (spec,) = signature.structured_input_signature[1].values()
    assert spec.shape.as_list() == [None, description["window"], 1]
    assert spec.dtype == tf.float32
    assert list(signature.structured_outputs) == [description["output"]]
    x = np.zeros((2, description["window"], 1), np.float32)
    out = signature(tf.constant(x))[description["output"]].numpy()
    assert out.shape[0] == 2
    assert np.isfinite(out[0][tuple(description["prediction_index"])])


def _instances(window: int, n: int = 512) -> np.ndarray:
    """Window-standardised stretches of a noisy daily cycle, plus plain N(0, 1) noise."""
    rng = np.random.default_rng(0)
    t = np.arange(n + window)
    series = 80 + 10 * np.sin(2 * np.pi * t / 288) + rng.normal(0, 1.5, len(t))
    windows = np.stack([series[i:i + window] for i in range(n)])
    windows = (windows - windows.mean(1, keepdims=True)) / windows.std(1, keepdims=True)
    noise = rng.normal(0, 1, (n, window))
    return np.concatenate([windows, noise])[..., None].astype(np.float32)


def test_tensorflow_and_the_embedded_engine_agree(version_dir):
    tf = pytest.importorskip("tensorflow")
    from shared.serving.description import load_description
    from shared.serving.engine import EmbeddedModel

    description = load_description(version_dir)
    x = _instances(description.window)
    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    expected = signature(tf.constant(x))[description.output].numpy().astype(np.float64)
    engine = EmbeddedModel.load(version_dir, description)
    got = np.concatenate([engine.predict(x[i:i + 1]) for i in range(len(x))])  # as served
    index = (slice(None), *description.prediction_index)
    # Relative error, its denominator floored at 0.1 (a tenth of the window's own standard
    # deviation, the unit of the model's output): float32 keeps about 1e-7 in absolute terms,
    # so an output within 1e-3 of zero cannot have a meaningful relative error.
    relative = np.abs(got[index] - expected[index]) / np.maximum(np.abs(expected[index]), 0.1)
    assert relative.max() < 1e-5
    np.testing.assert_allclose(engine.predict(x), expected, rtol=1e-5, atol=1e-6)  # batched

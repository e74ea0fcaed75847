"""The exported SavedModel (models/modelo/<version>/), when one exists."""

import json
from pathlib import Path

import numpy as np
import pytest

from shared import rules
from shared.serving.checkpoint import read_variables

MODELS = Path(__file__).resolve().parents[2] / "models"
VERSIONS = sorted(p for p in (MODELS / "modelo").glob("*") if (p / "saved_model.pb").is_file())
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
    if decision["rule"] == "residual_z":
        assert decision["threshold"] == pytest.approx(rules.critical_z(decision["tail_probability"]))
        assert decision["calibration"]
    training = description["training"]
    assert training["data"]["labels_used"] is False
    assert training["data"]["rows_used"] == [0, 749]


def test_models_config():
    text = (MODELS / "models_config" / "models.config").read_text()
    for line in ("name: 'modelo'", "base_path: '/models/modelo'", "model_platform: 'tensorflow'"):
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

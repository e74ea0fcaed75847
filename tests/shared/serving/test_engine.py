"""The embedded engine against a plain transcription of the Keras 3 layer equations
(float64, no tricks), plus its load-time checks. TensorFlow itself: test_against_tensorflow."""

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from shared.serving.description import description_from_dict, load_description
from shared.serving.engine import EmbeddedModel
from tests.shared.serving.bundle import write_small_autoencoder
from tests.shared.serving.keras_equations import keras_forward

WINDOW = 10


def random_model(layers: list[dict[str, Any]], seed: int = 0) -> tuple[Any, dict[str, np.ndarray]]:
    """A description of `layers` and random weights for it, under keys of our making."""
    rng = np.random.default_rng(seed)
    layers = [dict(spec) for spec in layers]
    tensors: dict[str, np.ndarray] = {}
    shape: tuple[int, ...] = (WINDOW, 1)
    for position, spec in enumerate(layers):
        kind, units = spec["type"], spec.get("units", 0)
        shapes: list[tuple[int, ...]] = []
        if kind in ("lstm", "gru"):
            gates = 4 if kind == "lstm" else 3
            shapes = [(shape[-1], gates * units), (units, gates * units),
                      (gates * units,) if kind == "lstm" else (2, gates * units)]
            shape = (shape[0], units) if spec.get("return_sequences") else (units,)
        elif kind == "dense":
            shapes, shape = [(shape[-1], units), (units,)], (*shape[:-1], units)
        elif kind == "repeat_vector":
            shape = (spec["n"], *shape)
        elif kind == "flatten":
            shape = (int(np.prod(shape)),)
        else:
            shape = tuple(spec["target_shape"])
        if shapes:
            spec["weights"] = [f"variables/{position}/{i}" for i in range(len(shapes))]
            for key, weight_shape in zip(spec["weights"], shapes, strict=True):
                tensors[key] = rng.normal(0.0, 0.5, weight_shape).astype(np.float32)
    data = {"format": 1, "window": WINDOW, "input_order": "oldest_first", "output": "output_0",
            "prediction_index": [0] * len(shape), "scaling": {"kind": "none"},
            "decision": {"rule": "abs_error", "threshold": 1.0}, "layers": layers}
    return description_from_dict(data), tensors


ARCHITECTURES: dict[str, list[dict[str, Any]]] = {
    "lstm autoencoder": [
        {"type": "lstm", "units": 6, "activation": "relu"},
        {"type": "repeat_vector", "n": WINDOW},
        {"type": "lstm", "units": 5, "recurrent_activation": "hard_sigmoid", "return_sequences": True},
        {"type": "dense", "units": 1}],
    "stacked gru": [
        {"type": "gru", "units": 7, "return_sequences": True},
        {"type": "gru", "units": 4, "activation": "relu", "recurrent_activation": "hard_sigmoid"},
        {"type": "dense", "units": 2, "activation": "sigmoid"}],
    "flatten and reshape": [
        {"type": "lstm", "units": 3, "activation": "linear", "return_sequences": True},
        {"type": "flatten"},
        {"type": "dense", "units": 6, "activation": "tanh"},
        {"type": "reshape", "target_shape": [3, 2]},
        {"type": "dense", "units": 1, "activation": "relu"}],
    "dense over a repeated vector": [
        {"type": "gru", "units": 5, "activation": "linear"},
        {"type": "repeat_vector", "n": 4},
        {"type": "dense", "units": 2, "activation": "relu"},
        {"type": "flatten"}],
    "repeated vector out": [
        {"type": "dense", "units": 1},
        {"type": "flatten"},
        {"type": "repeat_vector", "n": 3}],
}


def inputs(count: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, (count, WINDOW, 1))
    x[: count // 4] *= 40.0  # some large, temperature-sized values too
    return x.astype(np.float32)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_matches_the_keras_equations(name):
    description, tensors = random_model(ARCHITECTURES[name])
    model = EmbeddedModel(description, tensors)
    x = inputs(64)
    got = model.predict(x)
    expected = keras_forward(description.layers, tensors, x)
    assert got.dtype == np.float64 and got.shape == expected.shape == (64, *model.output_shape)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_each_instance_is_computed_independently_of_its_batch():
    description, tensors = random_model(ARCHITECTURES["stacked gru"])
    model = EmbeddedModel(description, tensors)
    x = inputs(9)
    batch = model.predict(x)
    for row in range(len(x)):
        np.testing.assert_allclose(model.predict(x[row:row + 1])[0], batch[row], rtol=1e-6, atol=1e-6)


def test_concurrent_predictions_do_not_share_state():
    description, tensors = random_model(ARCHITECTURES["lstm autoencoder"])
    model = EmbeddedModel(description, tensors)
    x = inputs(40)
    serial = [model.predict(x[i:i + 1]) for i in range(len(x))]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda i: model.predict(x[i:i + 1]), [i % len(x) for i in range(400)]))
    for i, result in enumerate(parallel):
        np.testing.assert_array_equal(result, serial[i % len(x)])


@pytest.mark.parametrize("instances, message", [
    (np.zeros((1, 9, 1), np.float32), r"shape \(batch >= 1, 10, 1\), got \(1, 9, 1\)"),
    (np.zeros((10, 1), np.float32), r"got \(10, 1\)"),
    (np.zeros((0, 10, 1), np.float32), r"got \(0, 10, 1\)"),
    (np.full((1, 10, 1), np.nan, np.float32), "finite"),
])
def test_bad_instances_are_refused(instances, message):
    model = EmbeddedModel(*random_model(ARCHITECTURES["stacked gru"]))
    with pytest.raises(ValueError, match=message):
        model.predict(instances)


def test_loads_a_saved_model_folder(tmp_path):
    version_dir = write_small_autoencoder(tmp_path / "1", units=4)
    model = EmbeddedModel.load(version_dir, load_description(version_dir))
    assert model.name == "embedded"
    assert model.input_shape == (10, 1) and model.output_shape == (10, 1)


def test_the_doc_example_keys_are_refused_on_a_keras_3_export(tmp_path):
    """variables/3 of a Keras 3 export is the first LSTM's seed state, not a weight."""
    version_dir = write_small_autoencoder(tmp_path / "1", units=4)
    description = load_description(version_dir)
    description.layers[2]["weights"] = ["variables/3", "variables/4", "variables/5"]
    with pytest.raises(ValueError, match=r"'variables/3' is int64 \(2,\), expected float \(4, 16\) "
                                         r"\(an integer tensor: .*seed-generator states"):
        EmbeddedModel.load(version_dir, description)


def test_missing_weights_name_the_folder(tmp_path):
    version_dir = write_small_autoencoder(tmp_path / "1", units=4)
    description = load_description(version_dir)
    description.layers[3]["weights"] = ["variables/8", "variables/10"]
    with pytest.raises(ValueError, match=rf"{version_dir}: .*no variable\(s\) \['variables/10'\]"):
        EmbeddedModel.load(version_dir, description)


def assert_refused(name: str, change: Callable[..., None], message: str) -> None:
    """The ARCHITECTURES[name] model, changed by `change`, fails to build saying `message`."""
    description, tensors = random_model(ARCHITECTURES[name])
    change(description, tensors)
    with pytest.raises(ValueError, match=re.escape(message)):
        EmbeddedModel(description, tensors)


def test_weight_shapes_are_checked():
    def wrong_recurrent(description, tensors):
        key = description.layers[0]["weights"][1]
        tensors[key] = tensors[key][:, :-1]
    assert_refused("lstm autoencoder", wrong_recurrent,
                   "weight 'variables/0/1' is float32 (6, 23), expected float (6, 24)")


def test_layer_order_is_checked():
    def unrolled(description, tensors):
        description.layers[0]["return_sequences"] = False
    assert_refused("stacked gru", unrolled, "layers[1] (gru) needs a sequence input (steps, "
                                            "features), got per-instance shape (7,)")

    def repeat_a_sequence(description, tensors):
        description.layers.insert(1, {"type": "repeat_vector", "n": 2})
    assert_refused("flatten and reshape", repeat_a_sequence,
                   "layers[1] (repeat_vector) needs one vector per instance")

    def bad_reshape(description, tensors):
        description.layers[3]["target_shape"] = [4, 2]
    assert_refused("flatten and reshape", bad_reshape,
                   "layers[3] (reshape) cannot reshape (6,) into (4, 2)")


@pytest.mark.parametrize("index", [(0,), (0, 1), (10, 0), (0, 0, 0)])
def test_prediction_index_must_index_the_output(tmp_path, index):
    version_dir = write_small_autoencoder(tmp_path / "1", units=4)
    description = load_description(version_dir)
    object.__setattr__(description, "prediction_index", index)
    with pytest.raises(ValueError,
                       match=r"does not index the model's per-instance output of shape \(10, 1\)"):
        EmbeddedModel.load(version_dir, description)

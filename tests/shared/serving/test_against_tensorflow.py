"""The checkpoint reader and the embedded engine against TensorFlow itself: the replaced
system's SavedModel, and small Keras 3 models this module builds and exports."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shared.serving.checkpoint import read_variables
from shared.serving.description import description_from_dict, load_description
from shared.serving.engine import EmbeddedModel
from tests.conftest import reference_model_dir
from tests.shared.serving.bundle import VARIABLE_SUFFIX, write_bundle
from tests.shared.serving.keras_equations import keras_forward

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

OBJECT_GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"


def max_relative_error(got: np.ndarray, expected: np.ndarray) -> float:
    return float(np.max(np.abs(got - expected) / np.abs(expected)))


def signature_of(version_dir: Path) -> Callable[[np.ndarray], np.ndarray]:
    """The SavedModel's serving_default signature as TF Serving runs it."""
    function = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    (input_name,) = function.structured_input_signature[1]
    return lambda x: function(**{input_name: tf.constant(x)})["output_0"].numpy().astype(np.float64)


# --- the replaced system's model -----------------------------------------------------------

@pytest.fixture(scope="module")
def reference_dir() -> Path:
    return reference_model_dir() / "1"


@pytest.fixture(scope="module")
def reference_signature(reference_dir):
    return signature_of(reference_dir)


@pytest.fixture(scope="module")
def reference_engine(reference_dir) -> EmbeddedModel:
    return EmbeddedModel.load(reference_dir, load_description(reference_dir))


def test_checkpoint_reader_equals_tensorflow(reference_dir):
    reader = tf.train.load_checkpoint(str(reference_dir / "variables" / "variables"))
    expected = {key.removesuffix(VARIABLE_SUFFIX): reader.get_tensor(key)
                for key in reader.get_variable_to_shape_map() if key != OBJECT_GRAPH}
    ours = read_variables(reference_dir)
    assert sorted(ours) == sorted(expected) and len(ours) == 18  # variables/0..9, _all_variables/0..7
    for name, tensor in expected.items():
        assert ours[name].dtype == tensor.dtype and ours[name].shape == tensor.shape, name
        np.testing.assert_array_equal(ours[name], tensor, err_msg=name)


def test_tensorflow_reads_what_the_test_bundle_writer_writes(tmp_path):
    tensors = {"variables/0": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
               "variables/1": np.array([1e-300, -2.5]), "variables/2": np.array([2**40, -3], np.int64),
               "variables/3": np.array(4.25, np.float32)}
    write_bundle(tmp_path / "variables", tensors, entries_per_block=2, restart_interval=2)
    reader = tf.train.load_checkpoint(str(tmp_path / "variables" / "variables"))
    for name, tensor in tensors.items():
        np.testing.assert_array_equal(reader.get_tensor(name + VARIABLE_SUFFIX), tensor)


def temperature_walks(count: int, seed: int) -> np.ndarray:
    """Windows like the real sensor's: a level in its usual 60..105 degrees plus a random walk."""
    rng = np.random.default_rng(seed)
    walks = rng.uniform(60, 105, (count, 1)) + np.cumsum(rng.normal(0, 1, (count, 10)), axis=1)
    return walks[:, :, np.newaxis].astype(np.float32)


def test_reference_model_matches_tensorflow_on_realistic_windows(reference_engine, reference_signature):
    x = temperature_walks(300, seed=0)
    assert max_relative_error(reference_engine.predict(x), reference_signature(x)) < 1e-5


def test_reference_model_is_as_accurate_as_tensorflow_on_arbitrary_windows(
        reference_dir, reference_engine, reference_signature):
    """On windows unlike any temperature record (independent values over 0..110, and flat
    ones) this relu LSTM amplifies float32 rounding: TensorFlow itself is up to ~1e-3 off
    the exact float64 answer there, so agreement with TF is judged against that."""
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(0, 110, (250, 10, 1)),
                        np.repeat(rng.uniform(0, 110, (50, 1, 1)), 10, axis=1)]).astype(np.float32)
    description = load_description(reference_dir)
    exact = keras_forward(description.layers, read_variables(reference_dir), x)
    ours = max_relative_error(reference_engine.predict(x), exact)
    theirs = max_relative_error(reference_signature(x), exact)
    assert ours <= 2 * theirs and ours < 1e-3


# --- small Keras 3 models, exported here -------------------------------------------------

def layer_description(layer: Any, keys: dict[str, str]) -> dict[str, Any]:
    """model.json's entry for one Keras layer; `keys` maps variable paths to checkpoint keys."""
    if isinstance(layer, keras.layers.TimeDistributed):
        layer = layer.layer  # Dense on the last axis is the same thing
    weights = {"weights": [keys[weight.path] for weight in layer.weights]}
    if isinstance(layer, keras.layers.LSTM | keras.layers.GRU):
        return {"type": "lstm" if isinstance(layer, keras.layers.LSTM) else "gru", "units": layer.units,
                "activation": layer.activation.__name__,
                "recurrent_activation": layer.recurrent_activation.__name__,
                "return_sequences": layer.return_sequences, **weights}
    if isinstance(layer, keras.layers.Dense):
        return {"type": "dense", "units": layer.units, "activation": layer.activation.__name__, **weights}
    if isinstance(layer, keras.layers.RepeatVector):
        return {"type": "repeat_vector", "n": layer.n}
    if isinstance(layer, keras.layers.Flatten):
        return {"type": "flatten"}
    return {"type": "reshape", "target_shape": list(layer.target_shape)}


def export(model: Any, version_dir: Path) -> Any:
    """model.export() plus the description; Keras 3 numbers the checkpoint's variables/N
    in the order of model.variables (seed-generator states included), not model.weights."""
    rng = np.random.default_rng(7)
    for weight in model.weights:  # random biases too, so bias handling is tested
        weight.assign(rng.normal(0.0, 0.3, weight.shape).astype(np.float32))
    model.export(str(version_dir), verbose=False)
    keys = {variable.path: f"variables/{position}" for position, variable in enumerate(model.variables)}
    output_rank = len(model.output_shape) - 1
    return description_from_dict({
        "format": 1, "window": 10, "input_order": "newest_first", "output": "output_0",
        "prediction_index": [0] * output_rank, "scaling": {"kind": "none"},
        "decision": {"rule": "abs_error", "threshold": 1.0},
        "layers": [layer_description(layer, keys) for layer in model.layers]})


def small_models() -> dict[str, list[Any]]:
    L = keras.layers
    return {
        "lstm tanh autoencoder": [L.LSTM(16, activation="tanh"), L.RepeatVector(10),
                                  L.LSTM(8, activation="tanh", return_sequences=True),
                                  L.TimeDistributed(L.Dense(1))],
        "gru tanh autoencoder": [L.GRU(16, activation="tanh"), L.RepeatVector(10),
                                 L.GRU(8, activation="tanh", return_sequences=True),
                                 L.TimeDistributed(L.Dense(1))],
        "lstm relu hard_sigmoid, flatten, reshape": [
            L.LSTM(8, activation="relu", recurrent_activation="hard_sigmoid", return_sequences=True),
            L.Flatten(), L.Dense(4, activation="sigmoid"), L.Reshape((2, 2))],
        "gru relu hard_sigmoid": [L.GRU(12, activation="relu", recurrent_activation="hard_sigmoid"),
                                  L.Dense(1)],
    }


@pytest.fixture(scope="module", params=list(small_models()))
def small_model(request, tmp_path_factory):
    keras.utils.set_random_seed(11)
    model = keras.Sequential([keras.Input((10, 1)), *small_models()[request.param]])
    version_dir = tmp_path_factory.mktemp("keras") / "1"
    description = export(model, version_dir)
    return EmbeddedModel.load(version_dir, description), signature_of(version_dir)


def test_small_keras_models_match_tensorflow(small_model):
    engine, signature = small_model
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(0, 110, (150, 10, 1)),  # raw degrees
                        rng.normal(0, 1, (150, 10, 1))]).astype(np.float32)  # standardised
    expected = signature(x)
    assert engine.predict(x).shape == expected.shape
    np.testing.assert_allclose(engine.predict(x), expected, rtol=1e-5, atol=1e-6)

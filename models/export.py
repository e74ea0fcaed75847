"""The exported model's files, as the runtime and TF Serving read them: the SavedModel folder,
where each weight sits in its checkpoint and the layers that model.json records (the embedded
engine computes from them), the serving signature's output, TF Serving's models.config."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import keras


def export_saved_model(model: keras.Model, version_dir: Path) -> None:
    """The SavedModel into `version_dir`, replacing what was there."""
    if version_dir.exists():
        shutil.rmtree(version_dir)
    version_dir.parent.mkdir(parents=True, exist_ok=True)
    model.export(str(version_dir), verbose=False)


def checkpoint_keys(model: keras.Model, version_dir: Path) -> list[str]:
    """model.weights -> their checkpoint keys `variables/N`, matched by value on read-back.

    Keras 3 numbers `variables/N` in the order of the model's *variables*, which may include
    non-trainable seed-generator states, so N is not always the position in model.weights.
    """
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(version_dir / "variables" / "variables"))
    suffix = "/.ATTRIBUTES/VARIABLE_VALUE"
    stored = {key[: -len(suffix)]: reader.get_tensor(key)
              for key in reader.get_variable_to_shape_map()
              if key.startswith("variables/") and key.endswith(suffix)}
    keys: list[str] = []
    for position, weight in enumerate(model.weights):
        value = np.asarray(weight.numpy())
        expected = f"variables/{position}"
        if expected in stored and stored[expected].shape == value.shape \
                and np.array_equal(stored[expected], value):
            keys.append(expected)
            continue
        matches = [k for k, v in stored.items() if v.shape == value.shape and np.array_equal(v, value)]
        if len(matches) != 1:
            raise RuntimeError(f"cannot place weight {weight.path} in the checkpoint: {matches}")
        keys.append(matches[0])
    return keys


def layer_description(model: keras.Model, keys: list[str]) -> list[dict[str, Any]]:
    """model.json's layers: what the embedded engine computes, each weight by checkpoint key."""
    gru, dense = model.get_layer("gru"), model.get_layer("next_reading")
    if not gru.reset_after:
        raise RuntimeError("the embedded engine computes only GRU reset_after=True")
    position = {id(w): k for w, k in zip(model.weights, keys, strict=True)}
    return [
        {"type": "gru", "units": gru.units, "activation": gru.activation.__name__,
         "recurrent_activation": gru.recurrent_activation.__name__,
         "return_sequences": False, "reset_after": True,
         "weights": [position[id(w)] for w in gru.weights]},
        {"type": "dense", "units": 1, "activation": dense.activation.__name__,
         "weights": [position[id(w)] for w in dense.weights]},
    ]


def signature_output(version_dir: Path, window: int) -> str:
    """The name of the serving signature's one output, its input checked to be (None, window, 1)."""
    import tensorflow as tf

    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    (spec,) = signature.structured_input_signature[1].values()
    if list(spec.shape) != [None, window, 1] or spec.dtype != tf.float32:
        raise RuntimeError(f"unexpected serving input {spec}")
    outputs = list(signature.structured_outputs)
    if len(outputs) != 1:
        raise RuntimeError(f"expected one serving output, got {outputs}")
    return str(outputs[0])


def write_models_config(models_dir: Path, model_name: str) -> Path:
    """TF Serving's models.config, serving `model_name` from /models/<model_name>."""
    config_dir = models_dir / "models_config"
    config_dir.mkdir(parents=True, exist_ok=True)
    path = config_dir / "models.config"
    path.write_text(
        "model_config_list {\n"
        "  config {\n"
        f"    name: '{model_name}'\n"
        f"    base_path: '/models/{model_name}'\n"
        "    model_platform: 'tensorflow'\n"
        # the functions ask for their own version by number: the previous one stays loaded
        # until they are rebuilt with the new one
        "    model_version_policy { latest { num_versions: 2 } }\n"
        "  }\n"
        "}\n", encoding="utf-8")
    return path

"""The model description file (`model.json`) beside a SavedModel: what the runtime reads.

Schema: docs/architecture.md. Layer entries are normalised here (Keras defaults filled in)
so the engine never guesses; a SavedModel without model.json is the replaced system's
LSTM autoencoder (`REFERENCE_DESCRIPTION`).
"""

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import rules

DESCRIPTION_FILE = "model.json"
INPUT_ORDERS = ("newest_first", "oldest_first")

# The replaced system's autoencoder. Its checkpoint numbers `variables/N` in the order of
# the Keras model's *variables*, which include each LSTM's int64 seed-generator state
# (variables/3 and variables/7), so the second LSTM starts at 4 and the dense at 8.
REFERENCE_DESCRIPTION: dict[str, Any] = {
    "format": 1,
    "window": 10,
    "input_order": "newest_first",
    "output": "output_0",
    "prediction_index": [0, 0],
    "scaling": {"kind": "none"},
    "decision": {"rule": "abs_error", "threshold": 9.233296204297654},
    "layers": [
        {"type": "lstm", "units": 100, "activation": "relu", "recurrent_activation": "sigmoid",
         "return_sequences": False, "weights": ["variables/0", "variables/1", "variables/2"]},
        {"type": "repeat_vector", "n": 10},
        {"type": "lstm", "units": 100, "activation": "relu", "recurrent_activation": "sigmoid",
         "return_sequences": True, "weights": ["variables/4", "variables/5", "variables/6"]},
        {"type": "dense", "units": 1, "activation": "linear", "weights": ["variables/8", "variables/9"]},
    ],
    "training": {},
}

_RNN_ACTIVATIONS = ("relu", "tanh", "linear")
_GATE_ACTIVATIONS = ("sigmoid", "hard_sigmoid")
_DENSE_ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid")

# Per layer type: field -> (allowed values, or a type check name; Keras default or REQUIRED).
_REQUIRED = object()
_RNN_FIELDS = {
    "units": ("positive_int", _REQUIRED),
    "activation": (_RNN_ACTIVATIONS, "tanh"),
    "recurrent_activation": (_GATE_ACTIVATIONS, "sigmoid"),
    "return_sequences": ("bool", False),
    "weights": ("keys3", _REQUIRED),
}
_LAYER_FIELDS: dict[str, dict[str, tuple[Any, Any]]] = {
    "lstm": _RNN_FIELDS,
    # Keras 3's default reset_after=True is the only GRU form the engine computes.
    "gru": {**_RNN_FIELDS, "reset_after": ((True,), True)},
    "repeat_vector": {"n": ("positive_int", _REQUIRED)},
    "dense": {
        "units": ("positive_int", _REQUIRED),
        "activation": (_DENSE_ACTIVATIONS, "linear"),
        "weights": ("keys2", _REQUIRED),
    },
    "flatten": {},
    "reshape": {"target_shape": ("shape", _REQUIRED)},
}


@dataclass(frozen=True)
class ModelDescription:
    window: int
    input_order: str
    output: str
    prediction_index: tuple[int, ...]
    scaling: dict[str, Any]
    decision: dict[str, Any]
    layers: list[dict[str, Any]]
    training: dict[str, Any]


def load_description(version_dir: Path) -> ModelDescription:
    """The description in `version_dir/model.json`, or the reference autoencoder's."""
    path = Path(version_dir) / DESCRIPTION_FILE
    if not path.exists():
        return description_from_dict(copy.deepcopy(REFERENCE_DESCRIPTION))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read it as JSON: {exc}") from exc
    try:
        return description_from_dict(data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def description_from_dict(data: Any) -> ModelDescription:
    """Validate a parsed model.json; ValueError names the first bad field."""
    if not isinstance(data, Mapping):
        raise ValueError("the description must be a JSON object")
    known = {"format", "window", "input_order", "output", "prediction_index", "scaling",
             "decision", "layers", "training"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown field(s) {unknown}")
    missing = sorted(known - {"training"} - set(data))
    if missing:
        raise ValueError(f"missing field(s) {missing}")
    if data["format"] != 1:
        raise ValueError(f"format must be 1, got {data['format']!r}")
    window = data["window"]
    if not _is_int(window) or window < 1:
        raise ValueError(f"window must be a positive integer, got {window!r}")
    if data["input_order"] not in INPUT_ORDERS:
        raise ValueError(f"input_order must be one of {INPUT_ORDERS}, got {data['input_order']!r}")
    if not isinstance(data["output"], str) or not data["output"]:
        raise ValueError(f"output must be a tensor name, got {data['output']!r}")
    index = data["prediction_index"]
    if not isinstance(index, list) or not all(_is_int(i) and i >= 0 for i in index):
        raise ValueError(f"prediction_index must be a list of non-negative integers, got {index!r}")
    return ModelDescription(
        window=window,
        input_order=data["input_order"],
        output=data["output"],
        prediction_index=tuple(index),
        scaling=_kind_object(data["scaling"], "scaling", "kind"),
        decision=_decision(data["decision"]),
        layers=_layers(data["layers"]),
        training=_object(data.get("training", {}), "training"),
    )


def resolve_version_dir(path: Path) -> Path:
    """A version folder as is, or the highest numeric version inside a model base folder
    (TF Serving's default `latest` policy)."""
    path = Path(path)
    if (path / "saved_model.pb").is_file():
        return path
    if not path.is_dir():
        raise ValueError(f"{path}: no such model folder")
    versions = [child for child in path.iterdir() if child.is_dir() and child.name.isdigit()]
    if not versions:
        raise ValueError(f"{path}: neither a SavedModel (no saved_model.pb) nor a model folder "
                         f"with numeric version subfolders")
    latest = max(versions, key=lambda child: int(child.name))
    if not (latest / "saved_model.pb").is_file():
        raise ValueError(f"{latest}: the highest version has no saved_model.pb")
    return latest


def _layers(layers: Any) -> list[dict[str, Any]]:
    if not isinstance(layers, list) or not layers:
        raise ValueError("layers must be a non-empty list")
    return [_layer(position, layer) for position, layer in enumerate(layers)]


def _layer(position: int, layer: Any) -> dict[str, Any]:
    where = f"layers[{position}]"
    if not isinstance(layer, Mapping):
        raise ValueError(f"{where} must be an object")
    kind = layer.get("type")
    if kind not in _LAYER_FIELDS:
        raise ValueError(f"{where}.type must be one of {sorted(_LAYER_FIELDS)}, got {kind!r}")
    fields = _LAYER_FIELDS[kind]
    unknown = sorted(set(layer) - set(fields) - {"type"})
    if unknown:
        raise ValueError(f"{where} ({kind}): unknown field(s) {unknown}")
    normalised: dict[str, Any] = {"type": kind}
    for name, (check, default) in fields.items():
        if name not in layer:
            if default is _REQUIRED:
                raise ValueError(f"{where} ({kind}): missing {name}")
            normalised[name] = default
            continue
        value = layer[name]
        if not _passes(check, value):
            raise ValueError(f"{where}.{name}: {_describe(check)}, got {value!r}")
        normalised[name] = list(value) if isinstance(value, list) else value
    return normalised


def _passes(check: Any, value: Any) -> bool:
    if isinstance(check, tuple):
        return any(type(value) is type(allowed) and value == allowed for allowed in check)
    if check == "positive_int":
        return _is_int(value) and value > 0
    if check == "bool":
        return isinstance(value, bool)
    if check in ("keys2", "keys3"):
        return (isinstance(value, list) and len(value) == int(check[-1])
                and all(isinstance(key, str) and key for key in value))
    if check == "shape":
        return isinstance(value, list) and bool(value) and all(_is_int(d) and d > 0 for d in value)
    raise AssertionError(check)


def _describe(check: Any) -> str:
    if isinstance(check, tuple):
        return f"must be one of {list(check)}"
    return {
        "positive_int": "must be a positive integer",
        "bool": "must be true or false",
        "keys2": "must list 2 checkpoint keys (kernel, bias)",
        "keys3": "must list 3 checkpoint keys (kernel, recurrent kernel, bias)",
        "shape": "must be a list of positive integers",
    }[check]


def _decision(value: Any) -> dict[str, Any]:
    decision = _kind_object(value, "decision", "rule")
    rules.build(decision)  # a rule whose parameters cannot work fails here, not per reading
    return decision


def _kind_object(value: Any, name: str, key: str) -> dict[str, Any]:
    checked = _object(value, name)
    if not isinstance(checked.get(key), str) or not checked[key]:
        raise ValueError(f"{name}.{key} must be a non-empty string, got {checked.get(key)!r}")
    return checked


def _object(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be an object, got {value!r}")
    return dict(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)

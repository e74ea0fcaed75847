"""model.json loading and validation, and the choice of the version folder."""

import json
from pathlib import Path

import pytest

from shared.serving.description import (
    REFERENCE_DESCRIPTION,
    description_from_dict,
    load_description,
    resolve_version_dir,
)


def write_json(folder: Path, content: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.json").write_text(content if isinstance(content, str) else json.dumps(content))
    return folder


def valid() -> dict:
    return json.loads(json.dumps(REFERENCE_DESCRIPTION))


def test_a_folder_without_model_json_is_the_reference_autoencoder(tmp_path):
    description = load_description(tmp_path)
    assert description.window == 10
    assert description.input_order == "newest_first"
    assert description.output == "output_0"
    assert description.prediction_index == (0, 0)
    assert description.scaling == {"kind": "none"}
    assert description.decision == {"rule": "abs_error", "threshold": 9.233296204297654}
    assert [(layer["type"], layer.get("units"), layer.get("activation"), layer.get("return_sequences"),
             layer.get("weights")) for layer in description.layers] == [
        ("lstm", 100, "relu", False, ["variables/0", "variables/1", "variables/2"]),
        ("repeat_vector", None, None, None, None),
        ("lstm", 100, "relu", True, ["variables/4", "variables/5", "variables/6"]),
        ("dense", 1, "linear", None, ["variables/8", "variables/9"]),
    ]
    assert description.training == {}


def test_the_default_is_a_fresh_copy_each_time(tmp_path):
    load_description(tmp_path).decision["threshold"] = 0.0
    load_description(tmp_path).layers[0]["units"] = 1
    assert load_description(tmp_path).decision["threshold"] == 9.233296204297654
    assert load_description(tmp_path).layers[0]["units"] == 100


def test_model_json_is_read_and_keras_defaults_filled_in(tmp_path):
    data = valid()
    data["input_order"] = "oldest_first"
    data["prediction_index"] = [0]
    data["layers"] = [{"type": "gru", "units": 4, "weights": ["a", "b", "c"]},
                      {"type": "dense", "units": 1, "weights": ["d", "e"]}]
    data["training"] = {"epochs": 3}
    description = load_description(write_json(tmp_path, data))
    assert description.input_order == "oldest_first"
    assert description.prediction_index == (0,)
    assert description.layers == [
        {"type": "gru", "units": 4, "activation": "tanh", "recurrent_activation": "sigmoid",
         "return_sequences": False, "reset_after": True, "weights": ["a", "b", "c"]},
        {"type": "dense", "units": 1, "activation": "linear", "weights": ["d", "e"]}]
    assert description.training == {"epochs": 3}


def test_training_is_optional():
    data = valid()
    del data["training"]
    assert description_from_dict(data).training == {}


def changed(**changes) -> dict:
    data = valid()
    for path, value in changes.items():
        *parents, last = path.split("__")
        target = data
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if value is KeyError:
            del target[int(last) if last.isdigit() else last]
        else:
            target[int(last) if last.isdigit() else last] = value
    return data


@pytest.mark.parametrize("data, message", [
    ([], "must be a JSON object"),
    (changed(format=2), "format must be 1"),
    (changed(window=0), "window must be a positive integer"),
    (changed(window=True), "window must be a positive integer"),
    (changed(input_order="newest"), "input_order must be one of"),
    (changed(output=""), "output must be a tensor name"),
    (changed(prediction_index=[0, -1]), "prediction_index must be a list of non-negative integers"),
    (changed(scaling={}), "scaling.kind must be a non-empty string"),
    (changed(decision__threshold="9"), "decision.threshold: abs_error needs a number >= 0"),
    (changed(decision__threshold=float("nan")), "decision.threshold: abs_error needs a number >= 0"),
    (changed(decision__rule=KeyError), "decision.rule must be a non-empty string"),
    (changed(layers=[]), "layers must be a non-empty list"),
    (changed(layers__0__type="conv1d"), r"layers\[0\].type must be one of"),
    (changed(layers__0__activation="softmax"), r"layers\[0\].activation: must be one of"),
    (changed(layers__2__return_sequences=1), r"layers\[2\].return_sequences: must be true or false"),
    (changed(layers__3__weights=["variables/8"]), r"layers\[3\].weights: must list 2 checkpoint keys"),
    (changed(layers__0__units=KeyError), r"layers\[0\] \(lstm\): missing units"),
    (changed(layers__0__return_sequence=True),
     r"layers\[0\] \(lstm\): unknown field\(s\) \['return_sequence'\]"),
    (changed(layers__1__n=0), r"layers\[1\].n: must be a positive integer"),
    (changed(window=KeyError), r"missing field\(s\) \['window'\]"),
    (changed(threshold=9.0), r"unknown field\(s\) \['threshold'\]"),
])
def test_a_bad_description_names_the_problem(tmp_path, data, message):
    folder = write_json(tmp_path, data)
    with pytest.raises(ValueError, match=message) as raised:
        load_description(folder)
    assert str(folder / "model.json") in str(raised.value)


def test_gru_without_reset_after_is_refused():
    data = valid()
    data["layers"] = [{"type": "gru", "units": 2, "reset_after": False, "weights": ["a", "b", "c"]}]
    with pytest.raises(ValueError, match=r"layers\[0\].reset_after: must be one of \[True\]"):
        description_from_dict(data)


def test_model_json_that_is_not_json_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"model\.json: cannot read it as JSON"):
        load_description(write_json(tmp_path, "{window: 10"))


def saved_model(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"")
    return folder


def test_a_version_folder_is_used_as_is(tmp_path):
    version = saved_model(tmp_path / "7")
    assert resolve_version_dir(version) == version


def test_a_model_folder_resolves_to_its_highest_numeric_version(tmp_path):
    for name in ("1", "2", "10"):
        saved_model(tmp_path / name)
    saved_model(tmp_path / "99-old")  # not a version: TF Serving ignores it too
    (tmp_path / "assets").mkdir()
    assert resolve_version_dir(tmp_path) == tmp_path / "10"  # numerically, not by name


def test_a_highest_version_without_saved_model_is_an_error(tmp_path):
    saved_model(tmp_path / "1")
    (tmp_path / "2").mkdir()
    with pytest.raises(ValueError, match=r"highest version has no saved_model\.pb"):
        resolve_version_dir(tmp_path)


@pytest.mark.parametrize("make", [lambda p: p.mkdir(), lambda p: None])
def test_a_folder_with_no_model_is_an_error(tmp_path, make):
    folder = tmp_path / "empty"
    make(folder)
    with pytest.raises(ValueError, match=str(folder)):
        resolve_version_dir(folder)

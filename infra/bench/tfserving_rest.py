"""What TF Serving's REST API answers for one model's served versions, without the HTTP
(g3doc/api_rest.md; model_servers/http_rest_api_util.cc for the paths, http_server.cc for
the codes):
- `GET  /v1/models/NAME[/versions/N]`: version status (version as a string, state, status);
- `POST /v1/models/NAME[/versions/N]:predict`: predictions computed by the embedded engine on
  a real SavedModel folder (the request and the answer in TF Serving's JSON: tfserving_json.py);
- a window longer than the model's is served from its first `window` steps, as our graph
  does on the real server ((1,20,1) answers 200); a shorter one, or another feature count,
  is refused. That message is the stand-in's own (TF reports it from inside the graph, in
  words that vary by model);
- the newest `num_versions` (2, as models/models_config/models.config keeps) numeric
  versions of a model base folder are served, each by number, the highest as latest;
- errors as `{"error": "..."}` with TF Serving's codes and messages.
Metadata (`.../metadata`), classify and regress are not served (501).
"""

import re
from pathlib import Path
from typing import Any, Literal

import numpy as np

from shared.serving.description import load_description
from shared.serving.engine import EmbeddedModel

from .tfserving_json import InvalidArgument, parse_predict_request, shape_text, tensor_json

# A served version's state, as TF Serving reports it (only AVAILABLE serves predictions).
State = Literal["UNKNOWN", "START", "LOADING", "AVAILABLE", "UNLOADING", "END"]

# Path grammar of model_servers/http_rest_api_util.cc (case-insensitive).
_MODEL_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<suffix>/metadata|:predict|:classify|:regress)?$", re.IGNORECASE)


def served_versions(model_dir: Path, num_versions: int) -> dict[int, Path]:
    """version -> folder: a version folder alone (as version 1 unless it is numbered), or
    the newest `num_versions` numeric versions of a base folder (the `latest` policy)."""
    model_dir = Path(model_dir)
    if (model_dir / "saved_model.pb").is_file():
        return {int(model_dir.name) if model_dir.name.isdigit() else 1: model_dir}
    found = sorted((int(child.name), child) for child in model_dir.iterdir()
                   if child.name.isdigit() and (child / "saved_model.pb").is_file())
    if not found:
        raise ValueError(f"{model_dir}: no version folder with a saved_model.pb")
    return dict(found[-num_versions:])


class TFServingRest:
    """One model's newest versions, loaded, and TF Serving's REST answers about them."""

    def __init__(self, model_dir: Path, model_name: str, *, input_name: str | None,
                 num_versions: int) -> None:
        self.models = {number: EmbeddedModel.load(folder, load_description(folder))
                       for number, folder in served_versions(model_dir, num_versions).items()}
        self.version = max(self.models)  # what `latest` serves
        self.model_name = model_name
        self.input_name = input_name  # None: the named-input request forms are refused
        self.state: State = "AVAILABLE"

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        """(HTTP status, JSON-ready payload or preformatted JSON text) for one request."""
        if not path.lower().startswith("/v1/"):
            return 404, {"error": f"Not found: {path}"}
        match = _MODEL_PATH.match(path)
        if match is None:
            return 400, {"error": f"Malformed request: {method} {path}"}
        suffix = (match["suffix"] or "").lower()
        if method == "GET" and suffix == "":
            return self._status(match["name"], match["version"])
        if method == "POST" and suffix == ":predict":
            return self._predict(match["name"], match["version"], match["label"], body)
        if suffix in ("/metadata", ":classify", ":regress"):
            return 501, {"error": f"{suffix} is not served by this stub"}
        return 400, {"error": f"Malformed request: {method} {path}"}

    def _status(self, name: str, version: str | None) -> tuple[int, Any]:
        if name != self.model_name:
            return 404, {"error": f"Could not find any versions of model {name}"}
        if version is not None and int(version) not in self.models:
            return 404, {"error": f"Could not find version {version} of model {name}"}
        numbers = [int(version)] if version is not None else sorted(self.models, reverse=True)
        return 200, {"model_version_status": [{
            "version": str(number), "state": self.state,
            "status": {"error_code": "OK", "error_message": ""}} for number in numbers]}

    def _predict(self, name: str, version: str | None, label: str | None, body: bytes) -> tuple[int, Any]:
        if label is not None:
            return 400, {"error": f"Unrecognized servable version label: {label}"}
        request = f"Specific({name}, {version})" if version else f"Latest({name})"
        number = int(version) if version is not None else self.version
        if name != self.model_name or self.state != "AVAILABLE" or number not in self.models:
            return 404, {"error": f"Servable not found for request: {request}"}
        model = self.models[number]
        try:
            key, instances = parse_predict_request(body, self.input_name)
        except InvalidArgument as exc:
            return 400, {"error": str(exc)}
        steps, features = model.input_shape
        if instances.ndim != 3 or instances.shape[1] < steps or instances.shape[2] != features:
            return 400, {"error": f"input shape {shape_text(instances.shape)} does not match the "
                                  f"signature's {shape_text((-1, steps, features))}"}
        instances = instances[:, :steps]  # the graph reads the first `steps` time steps
        outputs = model.predict(instances) if np.isfinite(instances).all() else \
            np.full((len(instances), *model.output_shape), np.nan)  # TF would compute NaN too
        result_key = "predictions" if key == "instances" else "outputs"
        return 200, f'{{"{result_key}": {tensor_json(outputs.astype(np.float32))}}}'

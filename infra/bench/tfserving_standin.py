"""A local stand-in for TensorFlow Serving's REST API, for tests and benchmarks.

Answers as TF Serving's REST API does (g3doc/api_rest.md; util/json_tensor.cc for the
request parsing and its messages; model_servers/http_server.cc for the codes):
- `GET  /v1/models/NAME[/versions/N]`: version status (version as a string, state, status);
- `POST /v1/models/NAME[/versions/N]:predict`: `instances` (row) or `inputs` (columnar),
  predictions computed by the embedded engine on a real SavedModel folder, written as TF
  Serving writes floats (shortest float32 text, ".0" on whole numbers);
- numbers are read as TF Serving 2.20 reads them for a float input (json_tensor.cc
  `AddValueToTensor`, DT_FLOAT: any JSON number, `GetFloat()`): 1e39 becomes infinity, and
  a non-number is refused;
- a window longer than the model's is served from its first `window` steps, as our graph
  does on the real server ((1,20,1) answers 200); a shorter one, or another feature count,
  is refused. That message is this stub's own (TF reports it from inside the graph, in
  words that vary by model);
- the newest `num_versions` (2, as models/models_config/models.config keeps) numeric
  versions of a model base folder are served, each by number, the highest as latest;
- an idle keep-alive connection is closed after `idle_timeout_s` (TF Serving's HTTP
  server, libevent's evhttp, closes it after 50 s);
- errors as `{"error": "..."}` with TF Serving's codes and messages.
Fault modes, switchable while running: "unavailable" (503), "hang" (no answer until
stopped, past any client timeout), "close" (drops the connection without an answer);
`drop_next = n` drops only the next n requests (a connection closed under a request).
Metadata (`.../metadata`) is not served.

    with running_tfserving(model_dir) as base_url: ...           # just the URL
    with TFServingStub(model_dir) as stub: stub.fault = "hang"   # URL + controls

Benchmarks: python -m infra.bench.tfserving_standin --model-dir DIR --port P
"""

import argparse
import json
import math
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from shared.serving.description import load_description
from shared.serving.engine import EmbeddedModel

FAULTS = ("none", "unavailable", "hang", "close")
STATES = ("UNKNOWN", "START", "LOADING", "AVAILABLE", "UNLOADING", "END")

# Path grammar of model_servers/http_rest_api_util.cc (case-insensitive).
_MODEL_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<suffix>/metadata|:predict|:classify|:regress)?$", re.IGNORECASE)
IDLE_TIMEOUT_S = 50.0  # evhttp's default connection timeout


class BadRequest(Exception):
    """An INVALID_ARGUMENT from request parsing: HTTP 400 with this message."""


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


class TFServingStub:
    """One model, its newest versions, served on 127.0.0.1 (an ephemeral port unless told)."""

    def __init__(self, model_dir: Path, model_name: str = "modelo", *, port: int = 0,
                 input_name: str | None = None, hang_s: float = 60.0, num_versions: int = 2,
                 idle_timeout_s: float = IDLE_TIMEOUT_S) -> None:
        self.models = {number: EmbeddedModel.load(folder, load_description(folder))
                       for number, folder in served_versions(model_dir, num_versions).items()}
        self.version = max(self.models)  # what `latest` serves
        self.model_name = model_name
        self.input_name = input_name  # None: the named-input request forms are refused
        self.hang_s = hang_s
        self.fault = "none"
        self.drop_next = 0
        self.state = "AVAILABLE"
        self.idle_timeout_s = idle_timeout_s
        self.idle_closed = 0  # connections closed for being idle
        self.client_ports: set[int] = set()  # one per TCP connection seen: shows keep-alive
        self._released = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._server.daemon_threads = True
        self._server.stub = self  # type: ignore[attr-defined]
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="tfserving-stub",
                                        daemon=True)

    def __enter__(self) -> "TFServingStub":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._released.set()  # frees "hang" handlers
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        """(HTTP status, JSON-ready payload or preformatted JSON text) for one request."""
        if not path.lower().startswith("/v1/"):
            return 404, {"error": f"Not found: {path}"}
        match = _MODEL_PATH.match(path)
        suffix = (match["suffix"] or "").lower() if match else None
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
            key, instances = self._parse_predict_request(body)
        except BadRequest as exc:
            return 400, {"error": str(exc)}
        steps, features = model.input_shape
        if instances.ndim != 3 or instances.shape[1] < steps or instances.shape[2] != features:
            return 400, {"error": f"input shape {_shape_text(instances.shape)} does not match the "
                                  f"signature's {_shape_text((-1, steps, features))}"}
        instances = instances[:, :steps]  # the graph reads the first `steps` time steps
        outputs = model.predict(instances) if np.isfinite(instances).all() else \
            np.full((len(instances), *model.output_shape), np.nan)  # TF would compute NaN too
        result_key = "predictions" if key == "instances" else "outputs"
        return 200, f'{{"{result_key}": {_tensor_json(outputs.astype(np.float32))}}}'

    def _parse_predict_request(self, body: bytes) -> tuple[str, np.ndarray]:
        """("instances" | "inputs", the batched float32 tensor), as json_tensor.cc parses."""
        if not body:
            raise BadRequest("JSON Parse error: The document is empty")
        try:
            doc = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            detail = exc.msg if isinstance(exc, json.JSONDecodeError) else "Invalid encoding in string."
            offset = exc.pos if isinstance(exc, json.JSONDecodeError) else exc.start
            raise BadRequest(f"JSON Parse error: {detail} at offset: {offset}") from exc
        if not isinstance(doc, dict):
            raise BadRequest(f"JSON Value: {_dump(doc)} Is not object")
        signature = doc.get("signature_name", "serving_default")
        if not isinstance(signature, str):
            raise BadRequest(f"JSON Value: {_dump(doc)} not formatted correctly. "
                             f"'signature_name' key must be a string value.")
        if signature not in ("", "serving_default"):
            raise BadRequest(f'Serving signature name: "{signature}" not found in signature def')
        if "instances" in doc and "inputs" in doc:
            raise BadRequest(f"JSON Value: {_dump(doc)} Not formatted correctly expecting only one "
                             f"of 'inputs' or 'instances' keys to exist ")
        if "instances" in doc:
            instances = doc["instances"]
            if not isinstance(instances, list):
                raise BadRequest(f"JSON Value: {_dump(doc)} Excepting 'instances' to be an list/array")
            if not instances:
                raise BadRequest(f"JSON Value: {_dump(doc)} No values in 'instances' array")
            return "instances", self._rows(instances)
        if "inputs" in doc:
            inputs = doc["inputs"]
            if isinstance(inputs, dict):
                if self.input_name is None or self.input_name not in inputs:
                    raise BadRequest(f"Missing named input: {self.input_name or '?'} in 'inputs' object.")
                inputs = inputs[self.input_name]
            return "inputs", _dense_tensor(inputs)
        raise BadRequest("Missing 'inputs' or 'instances' key")

    def _rows(self, instances: list[Any]) -> np.ndarray:
        """Row format: every element one example; all of the same shape."""
        named = isinstance(instances[0], dict)
        rows = []
        for position, element in enumerate(instances):
            if named != isinstance(element, dict):
                found, wanted = ("list", "object") if named else ("object", "value/list")
                raise BadRequest(f"Expecting {wanted} but got {found} at item {position} of input list")
            if named:
                unknown = sorted(set(element) - {self.input_name})
                if unknown:
                    raise BadRequest(f"Failed to process element: {position} key: {unknown[0]} of "
                                     f"'instances' list. Error: INVALID_ARGUMENT: JSON object: does "
                                     f"not have named input: {unknown[0]}")
                if self.input_name not in element:
                    raise BadRequest(f"Failed to process element: {position} of 'instances' list. "
                                     f"JSON object: {_dump(element)} keys must be equal to: "
                                     f"{self.input_name}")
                element = element[self.input_name]
            try:
                row = _dense_tensor(element)
                if rows and row.size != rows[0].size:
                    raise BadRequest(f"Expecting tensor size: {rows[0].size} but got: {row.size}")
                if rows and row.shape != rows[0].shape:
                    raise BadRequest(f"Expecting shape {_shape_text(rows[0].shape)} but got: "
                                     f"{_shape_text(row.shape)}")
            except BadRequest as exc:
                raise BadRequest(f"Failed to process element: {position} of 'instances' list. "
                                 f"Error: INVALID_ARGUMENT: {exc}") from exc
            rows.append(row)
        return np.stack(rows)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as TF Serving's server
    # Headers and body go out in two writes; with Nagle's algorithm on, the body would wait
    # for the client's delayed ACK (40 ms on Linux), which TF Serving does not make it do.
    disable_nagle_algorithm = True
    server: ThreadingHTTPServer

    def setup(self) -> None:
        # The socket timeout bounds the wait for a connection's next request: idle past it,
        # the handler ends and the connection closes (handle_one_request on TimeoutError).
        self.timeout = self.server.stub.idle_timeout_s  # type: ignore[attr-defined]
        super().setup()

    def log_error(self, format: str, *args: Any) -> None:
        if format.startswith("Request timed out"):  # http.server's words for the idle close
            self.server.stub.idle_closed += 1  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def log_message(self, format: str, *args: Any) -> None:  # quiet under pytest
        pass

    def _serve(self, method: str) -> None:
        stub: TFServingStub = self.server.stub  # type: ignore[attr-defined]
        stub.client_ports.add(self.client_address[1])
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fault = stub.fault
        if stub.drop_next > 0:
            stub.drop_next -= 1
            fault = "close"
        if fault == "close":
            self.close_connection = True
            return
        if fault == "hang":
            stub._released.wait(stub.hang_s)
            self.close_connection = True
            return
        if fault == "unavailable":
            status, payload = 503, {"error": "Stub is in fault mode: unavailable"}
        else:
            status, payload = stub.answer(method, self.path.split("?", 1)[0], body)
        text = payload if isinstance(payload, str) else json.dumps(payload)
        data = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def running_tfserving(model_dir: Path, model_name: str = "modelo") -> Iterator[str]:
    """A stub serving `model_dir` as `model_name`; yields its base URL."""
    with TFServingStub(model_dir, model_name) as stub:
        yield stub.base_url


def _dense_tensor(value: Any) -> np.ndarray:
    """A JSON value as a dense float32 tensor; the shape comes from the first elements,
    as GetDenseTensorShape does, and every list must match it (FillTensorProto)."""
    shape: list[int] = []
    probe = value
    while isinstance(probe, list):
        shape.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    flat: list[float] = []
    _fill(value, 0, shape, flat)
    with np.errstate(over="ignore"):  # beyond float32's range: infinity, as GetFloat() gives
        return np.array(flat, dtype=np.float32).reshape(shape)


def _fill(value: Any, level: int, shape: list[int], flat: list[float]) -> None:
    if not isinstance(value, list):
        if level != len(shape):
            raise BadRequest(f"JSON Value: {_dump(value)} found at incorrect level: {level + 1} "
                             f"in the JSON DOM. Expected at level: {len(shape)}")
        flat.append(_float_value(value))
        return
    if level >= len(shape):
        raise BadRequest(f"Encountered list at unexpected level: {level} expected < {len(shape)}")
    if len(value) != shape[level]:
        raise BadRequest(f"Encountered list at unexpected size: {len(value)} at level: {level} "
                         f"expected size: {shape[level]}")
    for item in value:
        _fill(item, level + 1, shape, flat)


def _float_value(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"JSON Value: {_dump(value)} Type: {_json_type(value)} is not of "
                         f"expected type: float")
    return float(value)  # np.float32 of it below: beyond float32's range, infinity


def _json_type(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return str(value).replace("None", "Null")
    return "String" if isinstance(value, str) else "Object"


def _tensor_json(values: np.ndarray) -> str:
    """JSON text of a float32 tensor, numbers written as TF Serving's WriteDecimal does."""
    if values.ndim == 0:
        return _decimal(np.float32(values))
    return "[" + ",".join(_tensor_json(row) for row in values) + "]"


def _decimal(exact: np.float32) -> str:
    value = float(exact)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = f"{value:g}"  # absl::StrCat: six significant digits
    if np.float32(text) != exact:
        text = f"{value:.9g}"  # max_digits10 of float
    if "." not in text and "e" not in text:
        text += ".0"
    return text


def _shape_text(shape: tuple[int, ...]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True,
                        help="a SavedModel version folder or a model folder with numeric versions")
    parser.add_argument("--model-name", default="modelo")
    parser.add_argument("--port", type=int, default=8501)
    args = parser.parse_args()
    stub = TFServingStub(args.model_dir, args.model_name, port=args.port)
    versions = ", ".join(str(n) for n in sorted(stub.models))
    print(f"serving {args.model_name} versions {versions} at {stub.base_url}", flush=True)
    try:
        stub.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

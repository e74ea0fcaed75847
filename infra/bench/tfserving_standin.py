"""A local stand-in for TensorFlow Serving's REST API, for tests and benchmarks.

Answers as TF Serving's REST API does (g3doc/api_rest.md; util/json_tensor.cc for the
request parsing and its messages; model_servers/http_server.cc for the codes):
- `GET  /v1/models/NAME[/versions/N]`: version status (version as a string, state, status);
- `POST /v1/models/NAME[/versions/N]:predict`: `instances` (row) or `inputs` (columnar),
  predictions computed by the embedded engine on a real SavedModel folder, written as TF
  Serving writes floats (shortest float32 text, ".0" on whole numbers);
- errors as `{"error": "..."}` with TF Serving's codes and messages. One message is this
  stub's own: a well-formed tensor of the wrong shape (TF reports that from inside the
  graph, in words that vary by model).
Fault modes, switchable while running: "unavailable" (503), "hang" (no answer until
stopped, past any client timeout), "close" (drops the connection without an answer).
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

from shared.serving.description import load_description, resolve_version_dir
from shared.serving.engine import EmbeddedModel

FAULTS = ("none", "unavailable", "hang", "close")
STATES = ("UNKNOWN", "START", "LOADING", "AVAILABLE", "UNLOADING", "END")

# Path grammar of model_servers/http_rest_api_util.cc (case-insensitive).
_MODEL_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<suffix>/metadata|:predict|:classify|:regress)?$", re.IGNORECASE)
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_FLOAT32_EXACT_INT = 2 ** 24  # larger integers lose precision in float32


class BadRequest(Exception):
    """An INVALID_ARGUMENT from request parsing: HTTP 400 with this message."""


class TFServingStub:
    """One model, one version, served on 127.0.0.1 (an ephemeral port unless told)."""

    def __init__(self, model_dir: Path, model_name: str = "modelo", *, port: int = 0,
                 input_name: str | None = None, hang_s: float = 60.0) -> None:
        version_dir = resolve_version_dir(Path(model_dir))
        self.version = int(version_dir.name) if version_dir.name.isdigit() else 1
        self.model = EmbeddedModel.load(version_dir, load_description(version_dir))
        self.model_name = model_name
        self.input_name = input_name  # None: the named-input request forms are refused
        self.hang_s = hang_s
        self.fault = "none"
        self.state = "AVAILABLE"
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
        if version is not None and int(version) != self.version:
            return 404, {"error": f"Could not find version {version} of model {name}"}
        return 200, {"model_version_status": [{
            "version": str(self.version), "state": self.state,
            "status": {"error_code": "OK", "error_message": ""}}]}

    def _predict(self, name: str, version: str | None, label: str | None, body: bytes) -> tuple[int, Any]:
        if label is not None:
            return 400, {"error": f"Unrecognized servable version label: {label}"}
        request = f"Specific({name}, {version})" if version else f"Latest({name})"
        if (name != self.model_name or self.state != "AVAILABLE"
                or (version is not None and int(version) != self.version)):
            return 404, {"error": f"Servable not found for request: {request}"}
        try:
            key, instances = self._parse_predict_request(body)
        except BadRequest as exc:
            return 400, {"error": str(exc)}
        expected = self.model.input_shape
        if instances.ndim != 3 or instances.shape[1:] != expected:
            return 400, {"error": f"input shape {_shape_text(instances.shape)} does not match the "
                                  f"signature's {_shape_text((-1, *expected))}"}
        outputs = self.model.predict(instances) if np.isfinite(instances).all() else \
            np.full((len(instances), *self.model.output_shape), np.nan)  # TF would compute NaN too
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
    lossy = (abs(value) > _FLOAT32_EXACT_INT if isinstance(value, int)
             else math.isfinite(value) and abs(value) > _FLOAT32_MAX)
    if lossy:
        raise BadRequest(f"Cannot convert JSON value: {_dump(value)} to float without loss of precision.")
    return float(value)


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
    print(f"serving {args.model_name} version {stub.version} at {stub.base_url}", flush=True)
    try:
        stub.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

"""TF Serving's JSON tensors, as the stand-in reads and writes them (util/json_tensor.cc).

- A predict request's body is read into one batched float32 tensor, with TF Serving's
  messages for what it refuses: `instances` (row format: every element one example) or
  `inputs` (columnar: one dense tensor).
- Numbers are read as TF Serving 2.20 reads them for a float input (`AddValueToTensor`,
  DT_FLOAT: any JSON number, `GetFloat()`): 1e39 becomes infinity, and a non-number is refused.
- A float32 tensor is written as TF Serving writes floats (`WriteDecimal`: shortest float32
  text, ".0" on whole numbers, NaN and Infinity bare).
"""

import json
import math
from typing import Any

import numpy as np


class InvalidArgument(Exception):
    """TF Serving's INVALID_ARGUMENT while parsing a request: HTTP 400 with this message."""


def parse_predict_request(body: bytes, input_name: str | None) -> tuple[str, np.ndarray]:
    """("instances" | "inputs", the batched float32 tensor), as json_tensor.cc parses a predict
    request. `input_name` None: the named-input request forms are refused."""
    if not body:
        raise InvalidArgument("JSON Parse error: The document is empty")
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else "Invalid encoding in string."
        offset = exc.pos if isinstance(exc, json.JSONDecodeError) else exc.start
        raise InvalidArgument(f"JSON Parse error: {detail} at offset: {offset}") from exc
    if not isinstance(doc, dict):
        raise InvalidArgument(f"JSON Value: {_dump(doc)} Is not object")
    signature = doc.get("signature_name", "serving_default")
    if not isinstance(signature, str):
        raise InvalidArgument(f"JSON Value: {_dump(doc)} not formatted correctly. "
                              f"'signature_name' key must be a string value.")
    if signature not in ("", "serving_default"):
        raise InvalidArgument(f'Serving signature name: "{signature}" not found in signature def')
    if "instances" in doc and "inputs" in doc:
        raise InvalidArgument(f"JSON Value: {_dump(doc)} Not formatted correctly expecting only one "
                              f"of 'inputs' or 'instances' keys to exist ")
    if "instances" in doc:
        instances = doc["instances"]
        if not isinstance(instances, list):
            raise InvalidArgument(f"JSON Value: {_dump(doc)} Excepting 'instances' to be an list/array")
        if not instances:
            raise InvalidArgument(f"JSON Value: {_dump(doc)} No values in 'instances' array")
        return "instances", _rows(instances, input_name)
    if "inputs" in doc:
        inputs = doc["inputs"]
        if isinstance(inputs, dict):
            if input_name is None or input_name not in inputs:
                raise InvalidArgument(f"Missing named input: {input_name or '?'} in 'inputs' object.")
            inputs = inputs[input_name]
        return "inputs", _dense_tensor(inputs)
    raise InvalidArgument("Missing 'inputs' or 'instances' key")


def _rows(instances: list[Any], input_name: str | None) -> np.ndarray:
    """Row format: every element one example; all of the same shape."""
    named = isinstance(instances[0], dict)
    rows: list[np.ndarray] = []
    for position, element in enumerate(instances):
        if named != isinstance(element, dict):
            found, wanted = ("list", "object") if named else ("object", "value/list")
            raise InvalidArgument(f"Expecting {wanted} but got {found} at item {position} of input list")
        value = _named_value(element, position, input_name) if named else element
        try:
            row = _dense_tensor(value)
            if rows and row.size != rows[0].size:
                raise InvalidArgument(f"Expecting tensor size: {rows[0].size} but got: {row.size}")
            if rows and row.shape != rows[0].shape:
                raise InvalidArgument(f"Expecting shape {shape_text(rows[0].shape)} but got: "
                                      f"{shape_text(row.shape)}")
        except InvalidArgument as exc:
            raise InvalidArgument(f"Failed to process element: {position} of 'instances' list. "
                                  f"Error: INVALID_ARGUMENT: {exc}") from exc
        rows.append(row)
    return np.stack(rows)


def _named_value(element: dict[str, Any], position: int, input_name: str | None) -> Any:
    """The value of a row given as {input name: value}: the one input, by its name."""
    unknown = sorted(set(element) - {input_name})
    if unknown:
        raise InvalidArgument(f"Failed to process element: {position} key: {unknown[0]} of "
                              f"'instances' list. Error: INVALID_ARGUMENT: JSON object: does "
                              f"not have named input: {unknown[0]}")
    if input_name not in element:
        raise InvalidArgument(f"Failed to process element: {position} of 'instances' list. "
                              f"JSON object: {_dump(element)} keys must be equal to: {input_name}")
    return element[input_name]


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
            raise InvalidArgument(f"JSON Value: {_dump(value)} found at incorrect level: {level + 1} "
                                  f"in the JSON DOM. Expected at level: {len(shape)}")
        flat.append(_float_value(value))
        return
    if level >= len(shape):
        raise InvalidArgument(f"Encountered list at unexpected level: {level} expected < {len(shape)}")
    if len(value) != shape[level]:
        raise InvalidArgument(f"Encountered list at unexpected size: {len(value)} at level: {level} "
                              f"expected size: {shape[level]}")
    for item in value:
        _fill(item, level + 1, shape, flat)


def _float_value(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(f"JSON Value: {_dump(value)} Type: {_json_type(value)} is not of "
                              f"expected type: float")
    return float(value)  # np.float32 of it later: beyond float32's range, infinity


def _json_type(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return str(value).replace("None", "Null")
    return "String" if isinstance(value, str) else "Object"


def tensor_json(values: np.ndarray) -> str:
    """JSON text of a float32 tensor, numbers written as TF Serving's WriteDecimal does."""
    if values.ndim == 0:
        return _decimal(np.float32(values))
    return "[" + ",".join(tensor_json(row) for row in values) + "]"


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


def shape_text(shape: tuple[int, ...]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))

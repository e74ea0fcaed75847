"""Writes small TensorFlow tensor bundles (a SavedModel's `variables/`) without TensorFlow,
so the checkpoint reader, the engine and the TF Serving stub can be tested on models and
corruptions of our choosing. test_against_tensorflow checks TF reads what this writes."""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from shared.serving.checkpoint import masked_crc32c

VARIABLE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
TABLE_MAGIC = 0xDB4775248B80FB57
DTYPE_ENUMS = {np.dtype("float32"): 1, np.dtype("float64"): 2, np.dtype("int32"): 3,
               np.dtype("int64"): 9, np.dtype("bool"): 10}


def write_saved_model(version_dir: Path, tensors: Mapping[str, np.ndarray],
                      description: Mapping[str, Any] | None = None, **table_options: Any) -> Path:
    """A version folder the serving code accepts: a placeholder saved_model.pb (only TF
    reads the graph), the variables bundle, and model.json when a description is given."""
    version_dir.mkdir(parents=True, exist_ok=True)
    (version_dir / "saved_model.pb").write_bytes(b"")
    write_bundle(version_dir / "variables", tensors, **table_options)
    if description is not None:
        (version_dir / "model.json").write_text(json.dumps(description))
    return version_dir


def write_bundle(variables_dir: Path, tensors: Mapping[str, np.ndarray], *, entries_per_block: int = 4,
                 restart_interval: int = 3, compression: int = 0, num_shards: int = 1) -> None:
    """`variables.index` + `variables.data-00000-of-0000N` holding `tensors`, keyed by their
    short names ("variables/0" is stored as "variables/0/.ATTRIBUTES/VARIABLE_VALUE")."""
    variables_dir.mkdir(parents=True, exist_ok=True)
    data = bytearray()
    entries = {b"": _header(num_shards)}
    for name, tensor in tensors.items():
        raw = np.ascontiguousarray(tensor).astype(tensor.dtype.newbyteorder("<")).tobytes()
        entries[(name + VARIABLE_SUFFIX).encode()] = _entry(tensor, raw, len(data))
        data += raw
    (variables_dir / f"variables.data-00000-of-{num_shards:05d}").write_bytes(bytes(data))
    (variables_dir / "variables.index").write_bytes(
        _table(sorted(entries.items()), entries_per_block, restart_interval, compression))


def _header(num_shards: int) -> bytes:
    version = _field(1, 1)  # VersionDef.producer
    return _field(1, num_shards) + _field(3, version)


def _entry(tensor: np.ndarray, raw: bytes, offset: int) -> bytes:
    shape = b"".join(_field(2, _field(1, dim)) for dim in tensor.shape)
    return (_field(1, DTYPE_ENUMS[tensor.dtype]) + _field(2, shape) + _field(4, offset)
            + _field(5, len(raw)) + _tag(6, 5) + masked_crc32c(raw).to_bytes(4, "little"))


def _table(items: list[tuple[bytes, bytes]], entries_per_block: int, restart_interval: int,
           compression: int) -> bytes:
    out = bytearray()
    index = []
    for start in range(0, len(items), entries_per_block):
        chunk = items[start:start + entries_per_block]
        handle = _write_block(out, _block(chunk, restart_interval), compression)
        index.append((chunk[-1][0], handle))
    metaindex = _write_block(out, _block([], restart_interval), 0)
    index_handle = _write_block(out, _block(index, 1), 0)
    footer = (metaindex + index_handle).ljust(40, b"\0") + TABLE_MAGIC.to_bytes(8, "little")
    return bytes(out + footer)


def _block(items: list[tuple[bytes, bytes]], restart_interval: int) -> bytes:
    out, restarts, previous = bytearray(), [], b""
    for position, (key, value) in enumerate(items):
        shared = 0
        if position % restart_interval == 0:
            restarts.append(len(out))
        else:
            while shared < min(len(key), len(previous)) and key[shared] == previous[shared]:
                shared += 1
        out += _varint(shared) + _varint(len(key) - shared) + _varint(len(value))
        out += key[shared:] + value
        previous = key
    restarts = restarts or [0]
    for restart in restarts:
        out += restart.to_bytes(4, "little")
    return bytes(out + len(restarts).to_bytes(4, "little"))


def _write_block(out: bytearray, block: bytes, compression: int) -> bytes:
    handle = _varint(len(out)) + _varint(len(block))
    trailer = bytes([compression])
    out += block + trailer + masked_crc32c(block + trailer).to_bytes(4, "little")
    return handle


def _field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, bytes):
        return _tag(number, 2) + _varint(len(value)) + value
    return _tag(number, 0) + _varint(value)


def _tag(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)



def write_small_autoencoder(version_dir: Path, units: int = 8, seed: int = 0) -> Path:
    """The reference architecture (LSTM -> RepeatVector -> LSTM -> Dense) at a small size,
    random weights, laid out as a Keras 3 export (seed states at variables/3 and /7)."""
    rng = np.random.default_rng(seed)

    def weights(*shape: int) -> np.ndarray:
        return rng.normal(0.0, 0.3, shape).astype(np.float32)

    tensors = {"variables/0": weights(1, 4 * units), "variables/1": weights(units, 4 * units),
               "variables/2": weights(4 * units), "variables/3": np.array([7, 0], np.int64),
               "variables/4": weights(units, 4 * units), "variables/5": weights(units, 4 * units),
               "variables/6": weights(4 * units), "variables/7": np.array([9, 0], np.int64),
               "variables/8": weights(units, 1), "variables/9": weights(1)}
    lstm = {"type": "lstm", "units": units, "activation": "tanh"}
    description = {
        "format": 1, "window": 10, "input_order": "newest_first", "output": "output_0",
        "prediction_index": [0, 0], "scaling": {"kind": "none"},
        "decision": {"rule": "abs_error", "threshold": 1.0},
        "layers": [{**lstm, "weights": ["variables/0", "variables/1", "variables/2"]},
                   {"type": "repeat_vector", "n": 10},
                   {**lstm, "return_sequences": True,
                    "weights": ["variables/4", "variables/5", "variables/6"]},
                   {"type": "dense", "units": 1, "weights": ["variables/8", "variables/9"]}],
    }
    return write_saved_model(version_dir, tensors, description)

"""Reads a SavedModel's variables (TensorFlow tensor bundle) without TensorFlow or protobuf.

Layout of `variables/`:
- `variables.index`: a LevelDB-format table (SSTable). Key "" holds a BundleHeaderProto;
  every other key names a tensor and holds a BundleEntryProto (dtype, shape, shard, offset,
  size) telling where its raw little-endian bytes sit in the data file.
- `variables.data-00000-of-00001`: the tensors' bytes, back to back.

Block trailers and tensors carry masked CRC-32C checksums, checked here as TF checks them
(pure Python: ~0.1 s per MB, paid once at load).

Keras 3 `model.export()` names variables `variables/N/.ATTRIBUTES/VARIABLE_VALUE`; the
returned dict drops the `/.ATTRIBUTES/VARIABLE_VALUE` suffix (`variables/N`), which is how
model.json refers to them.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

_DATA_FILE = "variables.data-00000-of-00001"  # single shard
_VARIABLE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
_OBJECT_GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"  # TF's own bookkeeping (a string), no variable
_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48  # two block handles padded to 40 bytes + 8-byte magic
_BLOCK_TRAILER_SIZE = 5  # compression type byte + masked crc32c
_NO_COMPRESSION = 0
# TensorFlow DataType enum -> little-endian numpy dtype. Floats are the model's weights;
# the integers cover Keras 3's seed-generator states, which every export carries.
_DTYPES: dict[int, np.dtype[Any]] = {1: np.dtype("<f4"), 2: np.dtype("<f8"), 3: np.dtype("<i4"),
                                     9: np.dtype("<i8")}
_DTYPE_NAMES = {1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8",
                7: "string", 9: "int64", 10: "bool", 14: "bfloat16", 19: "float16"}


@dataclass(frozen=True)
class _Entry:
    dtype: int
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc32c: int


def read_variables(version_dir: Path, names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """The named variables (all variables when `names` is None) of a SavedModel version."""
    variables_dir = Path(version_dir) / "variables"
    index_path = variables_dir / "variables.index"
    try:
        index = index_path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{index_path}: cannot read the checkpoint index: {exc}") from exc
    try:
        entries = _parse_index(index)
    except ValueError as exc:
        raise ValueError(f"{index_path}: {exc}") from exc
    by_name = {_short(key): entry for key, entry in entries.items() if key != _OBJECT_GRAPH}
    wanted = sorted(by_name) if names is None else list(dict.fromkeys(names))
    missing = [name for name in wanted if name not in by_name]
    if missing:
        raise ValueError(f"{index_path}: no variable(s) {missing}; it holds {sorted(by_name)}")
    return _read_tensors(variables_dir / _DATA_FILE, {name: by_name[name] for name in wanted})


def _short(key: str) -> str:
    return key.removesuffix(_VARIABLE_SUFFIX)


def _read_tensors(data_path: Path, entries: dict[str, _Entry]) -> dict[str, np.ndarray]:
    try:
        with open(data_path, "rb") as data:
            return {name: _read_tensor(data, data_path, name, entry) for name, entry in entries.items()}
    except OSError as exc:
        raise ValueError(f"{data_path}: cannot read the checkpoint data: {exc}") from exc


def _read_tensor(data: BinaryIO, data_path: Path, name: str, entry: _Entry) -> np.ndarray:
    if entry.dtype not in _DTYPES:
        dtype_name = _DTYPE_NAMES.get(entry.dtype, f"enum {entry.dtype}")
        raise ValueError(f"{data_path}: variable {name!r} is {dtype_name}; only "
                         f"float32, float64, int32 and int64 are supported")
    dtype = _DTYPES[entry.dtype]
    if entry.shard != 0 or int(np.prod(entry.shape, dtype=np.int64)) * dtype.itemsize != entry.size:
        raise ValueError(f"{data_path}: variable {name!r} has an inconsistent entry "
                         f"(shard {entry.shard}, {entry.size} bytes for {entry.shape})")
    data.seek(entry.offset)
    raw = data.read(entry.size)
    if len(raw) != entry.size:
        raise ValueError(f"{data_path}: truncated at variable {name!r}")
    if masked_crc32c(raw) != entry.crc32c:
        raise ValueError(f"{data_path}: checksum mismatch in variable {name!r} (corrupt file)")
    return np.frombuffer(raw, dtype=dtype).reshape(entry.shape).copy()


def _parse_index(index: bytes) -> dict[str, _Entry]:
    """Tensor key -> entry, from the index table of a single-shard little-endian bundle."""
    header: bytes | None = None
    entries: dict[str, _Entry] = {}
    for key, value in _table_items(index):
        if key == b"":
            header = value
        else:
            entries[key.decode("utf-8")] = _parse_entry(key, value)
    if header is None:
        raise ValueError("no bundle header (empty key) in the index")
    num_shards, endianness = 1, 0
    for number, field in _fields(header):
        if number == 1:
            num_shards = field
        elif number == 2:
            endianness = field
    if endianness != 0:
        raise ValueError("the bundle is big-endian; only little-endian bundles are supported")
    if num_shards != 1:
        raise ValueError(f"the bundle has {num_shards} shards; only single-shard bundles are supported")
    return entries


def _parse_entry(key: bytes, value: bytes) -> _Entry:
    fields = {"dtype": 0, "shard": 0, "offset": 0, "size": 0, "crc32c": 0}
    shape: tuple[int, ...] = ()
    for number, field in _fields(value):
        if number == 1:
            fields["dtype"] = field
        elif number == 2:
            shape = _parse_shape(field)
        elif number in (3, 4, 5, 6):
            fields[("shard", "offset", "size", "crc32c")[number - 3]] = field
        elif number == 7:
            raise ValueError(f"tensor {key!r} is stored as slices, which is not supported")
    return _Entry(shape=shape, **fields)


def _parse_shape(shape_proto: bytes) -> tuple[int, ...]:
    dims: list[int] = []
    for number, field in _fields(shape_proto):
        if number == 2:  # TensorShapeProto.dim
            size = next((v for n, v in _fields(field) if n == 1), 0)
            dims.append(size)
        elif number == 3 and field:
            raise ValueError("a tensor of unknown rank in the checkpoint")
    return tuple(dims)


def _table_items(table: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Key/value pairs of a LevelDB table, in key order."""
    if len(table) < _FOOTER_SIZE:
        raise ValueError("too short to be a table")
    footer = table[-_FOOTER_SIZE:]
    if int.from_bytes(footer[-8:], "little") != _TABLE_MAGIC:
        raise ValueError("not a LevelDB table (bad magic number)")
    _, position = _block_handle(footer, 0)  # the metaindex block is unused
    index_handle, _ = _block_handle(footer, position)
    for _, handle in _block_items(table, index_handle):
        data_handle, _ = _block_handle(handle, 0)
        yield from _block_items(table, data_handle)


def _block_handle(buf: bytes, position: int) -> tuple[tuple[int, int], int]:
    offset, position = _varint(buf, position)
    size, position = _varint(buf, position)
    return (offset, size), position


def _block_items(table: bytes, handle: tuple[int, int]) -> Iterator[tuple[bytes, bytes]]:
    """Entries of one block: prefix-compressed keys, then a restart array we don't need
    because we read every entry in order."""
    offset, size = handle
    if offset + size + _BLOCK_TRAILER_SIZE > len(table) - _FOOTER_SIZE or size < 4:
        raise ValueError(f"block handle ({offset}, {size}) points outside the table")
    compression = table[offset + size]
    if compression != _NO_COMPRESSION:
        raise ValueError(f"block at {offset} uses compression type {compression} "
                         f"(1 = snappy); only uncompressed tables are supported")
    block = table[offset:offset + size]
    stored_crc = int.from_bytes(table[offset + size + 1:offset + size + _BLOCK_TRAILER_SIZE], "little")
    if masked_crc32c(table[offset:offset + size + 1]) != stored_crc:
        raise ValueError(f"block at {offset}: checksum mismatch (corrupt file)")
    num_restarts = int.from_bytes(block[-4:], "little")
    limit = size - 4 - 4 * num_restarts
    if limit < 0:
        raise ValueError(f"block at {offset} has a corrupt restart array")
    position, key = 0, b""
    while position < limit:
        shared, position = _varint(block, position)
        unshared, position = _varint(block, position)
        value_size, position = _varint(block, position)
        end = position + unshared + value_size
        if shared > len(key) or end > limit:
            raise ValueError(f"block at {offset} has a corrupt entry at byte {position}")
        key = key[:shared] + block[position:position + unshared]
        yield key, block[position + unshared:end]
        position = end


def _fields(message: bytes) -> Iterator[tuple[int, Any]]:
    """(field number, value) of a protobuf message: varint and fixed fields as ints,
    length-delimited ones as bytes."""
    position = 0
    while position < len(message):
        tag, position = _varint(message, position)
        number, wire_type = tag >> 3, tag & 7
        value: int | bytes
        if wire_type == 0:
            value, position = _varint(message, position)
        elif wire_type in (1, 5):
            width = 8 if wire_type == 1 else 4
            value = int.from_bytes(message[position:position + width], "little")
            position += width
        elif wire_type == 2:
            length, position = _varint(message, position)
            value = message[position:position + length]
            position += length
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")
        if position > len(message):
            raise ValueError("truncated protobuf message")
        yield number, value


def _varint(buf: bytes, position: int) -> tuple[int, int]:
    """A base-128 varint at `position`, as a signed 64-bit value, and the next position."""
    result = shift = 0
    while True:
        if position >= len(buf) or shift > 63:
            raise ValueError("truncated or overlong varint")
        byte = buf[position]
        position += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    if result >= 1 << 63:
        result -= 1 << 64
    return result, position


def masked_crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) as LevelDB and TF store it: rotated right 15 bits plus a constant."""
    crc, table = 0xFFFFFFFF, _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return table


_CRC32C_TABLE = _crc32c_table()

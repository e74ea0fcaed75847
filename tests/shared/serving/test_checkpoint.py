"""The tensor-bundle reader on bundles written by tests/shared/serving/bundle.py (TF reads them
too: test_against_tensorflow), including the corruptions it must refuse."""

from pathlib import Path

import numpy as np
import pytest

from shared.serving.checkpoint import read_variables
from tests.shared.serving.bundle import write_bundle


def tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    values: dict[str, np.ndarray] = {
        f"variables/{i}": rng.normal(size=(i % 3 + 1, 4)).astype(np.float32) for i in range(12)}
    values.update({"dense/kernel": rng.normal(size=(2, 3)),  # float64, and a name without the suffix family
                   "counts": np.array([3, -4], np.int64), "steps": np.array([[1, 2]], np.int32),
                   "scale": np.array(2.5, np.float32)})
    return values


@pytest.fixture
def version_dir(tmp_path) -> Path:
    write_bundle(tmp_path / "variables", tensors())
    return tmp_path


def test_reads_every_tensor_with_its_dtype_and_shape(version_dir):
    expected = tensors()
    read = read_variables(version_dir)
    assert sorted(read) == sorted(expected)
    for name, tensor in expected.items():
        assert read[name].dtype == tensor.dtype and read[name].shape == tensor.shape, name
        np.testing.assert_array_equal(read[name], tensor)


@pytest.mark.parametrize("entries_per_block, restart_interval", [(1, 1), (3, 2), (100, 16)])
def test_block_layout_does_not_matter(tmp_path, entries_per_block, restart_interval):
    write_bundle(tmp_path / "variables", tensors(), entries_per_block=entries_per_block,
                 restart_interval=restart_interval)
    read = read_variables(tmp_path, ["variables/11", "variables/1", "counts"])
    assert list(read) == ["variables/11", "variables/1", "counts"]
    np.testing.assert_array_equal(read["variables/11"], tensors()["variables/11"])


def test_returned_arrays_are_writable_copies(version_dir):
    kernel = read_variables(version_dir, ["dense/kernel"])["dense/kernel"]
    kernel[0, 0] = 42.0
    assert read_variables(version_dir, ["dense/kernel"])["dense/kernel"][0, 0] != 42.0


def test_missing_names_are_listed(version_dir):
    with pytest.raises(ValueError, match=r"no variable\(s\) \['variables/99'\]; it holds"):
        read_variables(version_dir, ["variables/1", "variables/99"])


def test_unsupported_dtypes_fail_only_when_asked_for(tmp_path):
    write_bundle(tmp_path / "variables", {"flags": np.array([True, False]), "w": np.ones(2, np.float32)})
    assert read_variables(tmp_path, ["w"])["w"].tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="'flags' is bool; only float32, float64, int32 and int64"):
        read_variables(tmp_path)


def test_compressed_blocks_are_refused_clearly(tmp_path):
    write_bundle(tmp_path / "variables", tensors(), compression=1)
    with pytest.raises(ValueError, match="compression type 1 \\(1 = snappy\\)"):
        read_variables(tmp_path)


def test_multi_shard_bundles_are_refused_clearly(tmp_path):
    write_bundle(tmp_path / "variables", tensors(), num_shards=2)
    with pytest.raises(ValueError, match="2 shards; only single-shard"):
        read_variables(tmp_path)


def flip_byte(path: Path, position: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_corrupt_tensor_fails_its_checksum(version_dir):
    flip_byte(version_dir / "variables" / "variables.data-00000-of-00001", 3)
    with pytest.raises(ValueError, match="checksum mismatch in variable 'variables/0'"):
        read_variables(version_dir)


def test_a_corrupt_index_block_fails_its_checksum(version_dir):
    flip_byte(version_dir / "variables" / "variables.index", 10)
    with pytest.raises(ValueError, match="checksum mismatch \\(corrupt file\\)"):
        read_variables(version_dir)


def test_a_file_that_is_not_a_table_is_refused(version_dir):
    index = version_dir / "variables" / "variables.index"
    flip_byte(index, index.stat().st_size - 1)
    with pytest.raises(ValueError, match=r"variables\.index: not a LevelDB table \(bad magic number\)"):
        read_variables(version_dir)


def test_a_truncated_data_file_is_refused(version_dir):
    data = version_dir / "variables" / "variables.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:-8])
    with pytest.raises(ValueError, match="truncated at variable"):
        read_variables(version_dir)


def test_a_folder_without_variables_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="cannot read the checkpoint index"):
        read_variables(tmp_path)


def test_a_missing_data_file_is_a_clear_error(version_dir):
    (version_dir / "variables" / "variables.data-00000-of-00001").unlink()
    with pytest.raises(ValueError, match="cannot read the checkpoint data"):
        read_variables(version_dir)

"""Window standardisation (shared/standardise.py): raw window -> model input -> degrees."""

from types import SimpleNamespace

import numpy as np
import pytest

from shared import standardise

STD = {"kind": "window_standardize", "std_floor": 1e-3, "std_floor_rel": 1e-3}


def description(scaling_dict, order="newest_first", window=5):
    return SimpleNamespace(window=window, input_order=order, scaling=scaling_dict)


RAW = np.array([5.0, 4.0, 3.0, 2.0, 1.0])   # newest first


def test_none_is_identity_and_layout_follows_input_order():
    x, to_degrees = standardise.model_input(description({"kind": "none"}), RAW)
    assert x.shape == (1, 5, 1) and x.dtype == np.float32
    assert x[0, :, 0].tolist() == RAW.tolist()
    assert to_degrees(7.25) == 7.25
    x, _ = standardise.model_input(description({"kind": "none"}, "oldest_first"), RAW)
    assert x[0, :, 0].tolist() == RAW[::-1].tolist()


def test_window_standardize():
    x, to_degrees = standardise.model_input(description(STD), RAW)
    values = x[0, :, 0].astype(np.float64)
    assert values.mean() == pytest.approx(0.0, abs=1e-6)
    assert values.std() == pytest.approx(1.0, abs=1e-6)
    assert to_degrees(0.0) == pytest.approx(3.0)
    assert to_degrees(float(values[0])) == pytest.approx(5.0, abs=1e-5)
    assert to_degrees(1.0) == pytest.approx(3.0 + np.std(RAW))


def test_window_standardize_serves_any_range_and_noise():
    a, _ = standardise.model_input(description(STD, "oldest_first"), RAW)
    b, to_degrees = standardise.model_input(description(STD, "oldest_first"), 250.0 + 40.0 * RAW)
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert to_degrees(0.5) == pytest.approx(250.0 + 40.0 * (3.0 + 0.5 * np.std(RAW)))


def test_flat_window_uses_the_floor():
    x, to_degrees = standardise.model_input(description(STD), np.full(5, 80.0))
    assert np.all(x == 0.0)
    assert to_degrees(1.0) == pytest.approx(80.0 + 80.0 * 1e-3)
    x, to_degrees = standardise.model_input(description(STD), np.zeros(5))
    assert np.all(np.isfinite(x)) and to_degrees(1.0) == pytest.approx(1e-3)


def test_batch_and_single_window_agree():
    rng = np.random.default_rng(1)
    windows = rng.normal(70, 5, size=(4, 5))
    scaled, offset, scale = standardise.scale_windows(windows, STD)
    for row in range(4):
        single, to_degrees = standardise.scale_window(windows[row], STD)
        np.testing.assert_allclose(scaled[row], single)
        assert to_degrees(0.0) == pytest.approx(offset[row])
    np.testing.assert_allclose(offset[:, None] + scale[:, None] * scaled, windows)


@pytest.mark.parametrize("size", [1, 2, 7, 8, 9, 10, 17, 100, 129, 300])
def test_single_window_is_bit_for_bit_the_batch(size):
    """detectar's path (one window, numpy's reductions called directly) and training's
    (mean and std of a batch) give the very same floats, flat and tiny windows included."""
    rng = np.random.default_rng(size)
    windows = [rng.normal(70, 5, size), rng.normal(0, 1e-6, size), np.full(size, 21.5),
               rng.normal(-3e5, 1e3, size), rng.integers(-40, 40, size).astype(float)]
    for window in windows:
        scaled, offset, scale = standardise.scale_windows(window[None, :], STD)
        single, to_degrees = standardise.scale_window(window, STD)
        assert single.tobytes() == scaled[0].tobytes()
        assert to_degrees(0.25) == float(offset[0]) + float(scale[0]) * 0.25


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match=r"expected 5 readings, got shape \(4,\)"):
        standardise.model_input(description(STD), RAW[:4])
    with pytest.raises(ValueError, match="the window holds a non-finite reading"):
        standardise.model_input(description(STD), np.array([1.0, np.nan, 2.0, 3.0, 4.0]))
    with pytest.raises(ValueError, match="unknown scaling"):
        standardise.model_input(description({"kind": "minmax"}), RAW)
    with pytest.raises(ValueError, match="input_order"):
        standardise.model_input(description(STD, "sideways"), RAW)

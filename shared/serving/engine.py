"""The embedded engine: computes the layers a ModelDescription lists, in numpy, in process.

Semantics follow Keras 3 (LSTM gates i, f, c, o; GRU gates z, r, h with reset_after=True;
Dense on the last axis, so it also covers TimeDistributed(Dense)). Speed matters (one call
per reading), so weights are rearranged once at load:
- the input projection of every timestep is one matmul before the recurrent loop, and a
  RepeatVector'ed input is projected once, not once per step;
- gate columns are pre-scaled so gate activations run in place on one slice, without exp
  or temporaries (sigmoid(z) = 0.5 * tanh(z / 2) + 0.5; hard_sigmoid(z) = clip(z / 6 + 0.5, 0, 1));
- LSTM gate columns are reordered to i, f, o, c so the three gates are one slice;
- buffers are allocated once per call and reused across timesteps (no shared state,
  so one model serves concurrent requests).
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np

from .checkpoint import read_variables
from .description import ModelDescription

_FLOAT = np.float32  # TF computes in float32 too; float64 buys no agreement, costs speed
# 0-d arrays, not Python floats: numpy converts a Python scalar on every call (2x slower).
_ZERO, _HALF, _ONE = (np.array(value, _FLOAT) for value in (0.0, 0.5, 1.0))

Shape = tuple[int, ...]
Activation = Callable[[np.ndarray, np.ndarray], None]  # (values, out): out = f(values)


@dataclass(frozen=True)
class _Repeated:
    """A (batch, features) vector repeated n times along time, kept unrepeated so the next
    layer can work on it once instead of n times."""

    vector: np.ndarray
    n: int

    def materialise(self) -> np.ndarray:
        return np.repeat(self.vector[:, np.newaxis, :], self.n, axis=1)


# What flows between layers: a tensor, or a repeated vector not yet materialised.
Value: TypeAlias = np.ndarray | _Repeated


def _relu(values: np.ndarray, out: np.ndarray) -> None:
    np.maximum(values, _ZERO, out=out)


def _tanh(values: np.ndarray, out: np.ndarray) -> None:
    np.tanh(values, out=out)


def _linear(values: np.ndarray, out: np.ndarray) -> None:
    if out is not values:
        np.copyto(out, values)


def _sigmoid(values: np.ndarray, out: np.ndarray) -> None:
    np.multiply(values, _HALF, out=out)
    _sigmoid_of_half(out)


def _sigmoid_of_half(half: np.ndarray) -> None:
    """In place: sigmoid(z) from z / 2 (the gate columns were pre-halved)."""
    np.tanh(half, out=half)
    np.multiply(half, _HALF, out=half)
    np.add(half, _HALF, out=half)


def _clip_unit(values: np.ndarray) -> None:
    np.maximum(values, _ZERO, out=values)
    np.minimum(values, _ONE, out=values)


_ACTIVATIONS: dict[str, Activation] = {"relu": _relu, "tanh": _tanh, "linear": _linear,
                                       "sigmoid": _sigmoid}


@dataclass(frozen=True)
class _Gate:
    """A recurrent (gate) activation as an affine map folded into the weights plus an
    in-place finish: gate(z) = finish(scale * z + shift)."""

    scale: float
    shift: float
    finish: Callable[[np.ndarray], None]


_GATES = {"sigmoid": _Gate(0.5, 0.0, _sigmoid_of_half),
          "hard_sigmoid": _Gate(1.0 / 6.0, 0.5, _clip_unit)}  # Keras 3: relu6(z + 3) / 6


def _projections(x: Value, kernel: np.ndarray, bias: np.ndarray) -> tuple[Iterable[np.ndarray], int, int]:
    """Input projections x_t @ kernel + bias, one (batch, columns) array per timestep."""
    if isinstance(x, _Repeated):
        once = x.vector @ kernel
        once += bias
        return repeat(once, x.n), x.n, len(x.vector)
    projected = np.matmul(x.transpose(1, 0, 2), kernel)  # time-major: (steps, batch, columns)
    projected += bias
    return projected, projected.shape[0], projected.shape[1]


class _Recurrent:
    """What an LSTM and a GRU keep alike: gate-scaled weights as float32, and their options."""

    def _keep(self, spec: Mapping[str, Any], gate: _Gate, kernel: np.ndarray,
              recurrent: np.ndarray, bias: np.ndarray) -> None:
        self.kernel = kernel.astype(_FLOAT)
        self.recurrent = recurrent.astype(_FLOAT)
        self.bias = bias.astype(_FLOAT)
        self.units = spec["units"]
        self.finish_gates = gate.finish
        self.activation = _ACTIVATIONS[spec["activation"]]
        self.return_sequences = spec["return_sequences"]


class _LSTM(_Recurrent):
    def __init__(self, spec: Mapping[str, Any], weights: list[np.ndarray], input_shape: Shape) -> None:
        units = spec["units"]
        kernel, recurrent, bias = _check_weights(
            spec, weights, [(input_shape[-1], 4 * units), (units, 4 * units), (4 * units,)])
        gate = _GATES[spec["recurrent_activation"]]
        order = np.r_[0:2 * units, 3 * units:4 * units, 2 * units:3 * units]  # i f c o -> i f o c
        scale = np.r_[np.full(3 * units, gate.scale), np.ones(units)]
        shift = np.r_[np.full(3 * units, gate.shift), np.zeros(units)]
        self._keep(spec, gate, kernel[:, order] * scale, recurrent[:, order] * scale,
                   bias[order] * scale + shift)

    def __call__(self, x: Value) -> np.ndarray:
        steps, count, batch = _projections(x, self.kernel, self.bias)
        units, recurrent = self.units, self.recurrent
        activation, finish_gates = self.activation, self.finish_gates
        z = np.empty((batch, 4 * units), _FLOAT)
        gates, candidate = z[:, :3 * units], z[:, 3 * units:]
        input_gate, forget_gate, output_gate = z[:, :units], z[:, units:2 * units], z[:, 2 * units:3 * units]
        cell = np.zeros((batch, units), _FLOAT)
        activated_cell = np.empty((batch, units), _FLOAT)
        outputs = np.empty((count if self.return_sequences else 1, batch, units), _FLOAT)
        hidden = outputs[0]
        for step, projection in enumerate(steps):
            if step:
                np.dot(hidden, recurrent, out=z)
                np.add(z, projection, out=z)
            else:  # the initial state is zero: nothing to multiply
                np.copyto(z, projection)
            finish_gates(gates)
            activation(candidate, candidate)
            np.multiply(cell, forget_gate, out=cell)
            np.multiply(candidate, input_gate, out=candidate)
            np.add(cell, candidate, out=cell)
            activation(cell, activated_cell)
            if self.return_sequences:
                hidden = outputs[step]
            np.multiply(output_gate, activated_cell, out=hidden)
        return outputs.transpose(1, 0, 2) if self.return_sequences else hidden


class _GRU(_Recurrent):
    def __init__(self, spec: Mapping[str, Any], weights: list[np.ndarray], input_shape: Shape) -> None:
        units = spec["units"]
        kernel, recurrent, bias = _check_weights(
            spec, weights, [(input_shape[-1], 3 * units), (units, 3 * units), (2, 3 * units)])
        gate = _GATES[spec["recurrent_activation"]]
        scale = np.r_[np.full(2 * units, gate.scale), np.ones(units)]
        shift = np.r_[np.full(2 * units, gate.shift), np.zeros(units)]
        # The recurrent bias of z and r adds straight to the input's; only the candidate's
        # stays apart because the reset gate multiplies it (reset_after=True).
        input_bias = bias[0] + np.r_[bias[1][:2 * units], np.zeros(units)]
        self._keep(spec, gate, kernel * scale, recurrent * scale, input_bias * scale + shift)
        self.candidate_recurrent_bias = bias[1][2 * units:].astype(_FLOAT)

    def __call__(self, x: Value) -> np.ndarray:
        steps, count, batch = _projections(x, self.kernel, self.bias)
        units, recurrent = self.units, self.recurrent
        activation, finish_gates = self.activation, self.finish_gates
        candidate_bias = self.candidate_recurrent_bias
        m = np.empty((batch, 3 * units), _FLOAT)
        gates, candidate = m[:, :2 * units], m[:, 2 * units:]
        update_gate, reset_gate = m[:, :units], m[:, units:2 * units]
        difference = np.empty((batch, units), _FLOAT)
        outputs = np.empty((count if self.return_sequences else 1, batch, units), _FLOAT)
        hidden = np.zeros((batch, units), _FLOAT)  # the initial state
        for step, projection in enumerate(steps):
            if step:
                np.dot(hidden, recurrent, out=m)
            else:  # the initial state is zero: nothing to multiply
                m.fill(0.0)
            np.add(gates, projection[:, :2 * units], out=gates)
            finish_gates(gates)
            np.add(candidate, candidate_bias, out=candidate)
            np.multiply(candidate, reset_gate, out=candidate)
            np.add(candidate, projection[:, 2 * units:], out=candidate)
            activation(candidate, candidate)
            # h = z * h_prev + (1 - z) * candidate, as candidate + z * (h_prev - candidate)
            np.subtract(hidden, candidate, out=difference)
            np.multiply(difference, update_gate, out=difference)
            hidden = outputs[step if self.return_sequences else 0]
            np.add(candidate, difference, out=hidden)
        return outputs.transpose(1, 0, 2) if self.return_sequences else hidden


class _Dense:
    def __init__(self, spec: Mapping[str, Any], weights: list[np.ndarray], input_shape: Shape) -> None:
        kernel, bias = _check_weights(spec, weights, [(input_shape[-1], spec["units"]), (spec["units"],)])
        self.kernel = kernel.astype(_FLOAT)
        self.bias = bias.astype(_FLOAT)
        self.activation = _ACTIVATIONS[spec["activation"]]

    def __call__(self, x: Value) -> Value:
        if isinstance(x, _Repeated):  # per-timestep and identical: compute once
            return _Repeated(self._dense(x.vector), x.n)
        return self._dense(x)

    def _dense(self, x: np.ndarray) -> np.ndarray:
        y: np.ndarray = np.matmul(x, self.kernel)
        y += self.bias
        self.activation(y, y)
        return y


class _RepeatVector:
    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, x: Value) -> _Repeated:
        assert isinstance(x, np.ndarray)  # load() checked the input is one vector per instance
        return _Repeated(x, self.n)


class _Reshape:
    def __init__(self, shape: Shape) -> None:
        self.shape = shape

    def __call__(self, x: Value) -> np.ndarray:
        values = x.materialise() if isinstance(x, _Repeated) else x
        return values.reshape((len(values), *self.shape))


def _build(spec: Mapping[str, Any], tensors: Mapping[str, np.ndarray],
           input_shape: Shape, where: str) -> tuple[Callable[[Value], Value], Shape]:
    """One layer and its output shape (per instance), checked against its input shape."""
    kind = spec["type"]
    weights = [tensors[key] for key in spec.get("weights", [])]
    if kind in ("lstm", "gru"):
        if len(input_shape) != 2:
            raise ValueError(f"{where} ({kind}) needs a sequence input (steps, features), "
                             f"got per-instance shape {input_shape}")
        layer = (_LSTM if kind == "lstm" else _GRU)(spec, weights, input_shape)
        units = spec["units"]
        return layer, (input_shape[0], units) if spec["return_sequences"] else (units,)
    if kind == "dense":
        return _Dense(spec, weights, input_shape), (*input_shape[:-1], spec["units"])
    if kind == "repeat_vector":
        if len(input_shape) != 1:
            raise ValueError(f"{where} (repeat_vector) needs one vector per instance, "
                             f"got per-instance shape {input_shape}")
        return _RepeatVector(spec["n"]), (spec["n"], input_shape[0])
    size = int(np.prod(input_shape))
    target = (size,) if kind == "flatten" else tuple(spec["target_shape"])
    if int(np.prod(target)) != size:
        raise ValueError(f"{where} (reshape) cannot reshape {input_shape} into {target}")
    return _Reshape(target), target


def _check_weights(spec: Mapping[str, Any], weights: list[np.ndarray],
                   expected: list[Shape]) -> list[np.ndarray]:
    for key, tensor, shape in zip(spec["weights"], weights, expected, strict=True):
        if tensor.shape != shape or not np.issubdtype(tensor.dtype, np.floating):
            hint = (" (an integer tensor: in a Keras 3 export variables/N counts model.variables,"
                    " seed-generator states included)" if np.issubdtype(tensor.dtype, np.integer) else "")
            raise ValueError(f"{spec['type']} layer with {spec.get('units')} units: weight {key!r} "
                             f"is {tensor.dtype} {tensor.shape}, expected float {shape}{hint}")
    return weights


class EmbeddedModel:
    """The model computed in process; satisfies the `Predictor` contract."""

    name = "embedded"

    def __init__(self, description: ModelDescription, tensors: Mapping[str, np.ndarray]) -> None:
        self.description = description
        self.input_shape: Shape = (description.window, 1)
        shape: Shape = self.input_shape
        self._layers: list[Callable[[Value], Value]] = []
        for position, spec in enumerate(description.layers):
            layer, shape = _build(spec, tensors, shape, f"layers[{position}]")
            self._layers.append(layer)
        self.output_shape: Shape = shape
        index = description.prediction_index
        if len(index) != len(shape) or any(i >= dim for i, dim in zip(index, shape, strict=True)):
            raise ValueError(f"prediction_index {list(index)} does not index the model's "
                             f"per-instance output of shape {shape}")

    @classmethod
    def load(cls, version_dir: Path, description: ModelDescription) -> "EmbeddedModel":
        keys = [key for spec in description.layers for key in spec.get("weights", [])]
        try:
            return cls(description, read_variables(version_dir, keys))
        except ValueError as exc:
            raise ValueError(f"{version_dir}: {exc}") from exc

    def predict(self, instances: np.ndarray) -> np.ndarray:
        x = np.asarray(instances, dtype=_FLOAT)
        if x.ndim != 3 or x.shape[1:] != self.input_shape or not len(x):
            raise ValueError(f"instances must have shape (batch >= 1, {self.input_shape[0]}, "
                             f"{self.input_shape[1]}), got {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("instances must be finite (no NaN or infinity)")
        value: Value = x
        for layer in self._layers:
            value = layer(value)
        if isinstance(value, _Repeated):
            value = value.materialise()
        return value.astype(np.float64)

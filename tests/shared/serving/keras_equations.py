"""Keras 3 layer equations transcribed plainly, in float64: the yardstick for the engine
(test_engine) and the "exact" answer TensorFlow's float32 is measured against."""

from collections.abc import Callable

import numpy as np


def sigmoid(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp(-z) -> inf gives the right limit, 0
        return 1.0 / (1.0 + np.exp(-z))


Function = Callable[[np.ndarray], np.ndarray]
ACTIVATIONS: dict[str, Function] = {"relu": lambda z: np.maximum(z, 0.0), "tanh": np.tanh,
                                    "linear": lambda z: z, "sigmoid": sigmoid}
GATES: dict[str, Function] = {"sigmoid": sigmoid, "hard_sigmoid": lambda z: np.clip(z / 6.0 + 0.5, 0.0, 1.0)}


def keras_lstm(x: np.ndarray, spec: dict, kernel: np.ndarray, recurrent: np.ndarray,
               bias: np.ndarray) -> np.ndarray:
    act, gate = ACTIVATIONS[spec["activation"]], GATES[spec["recurrent_activation"]]
    h = c = np.zeros((len(x), spec["units"]))
    outputs = []
    for t in range(x.shape[1]):
        i, f, g, o = np.split(x[:, t] @ kernel + h @ recurrent + bias, 4, axis=1)  # Keras: i, f, c, o
        c = gate(f) * c + gate(i) * act(g)
        h = gate(o) * act(c)
        outputs.append(h)
    return np.stack(outputs, axis=1) if spec["return_sequences"] else h


def keras_gru(x: np.ndarray, spec: dict, kernel: np.ndarray, recurrent: np.ndarray,
              bias: np.ndarray) -> np.ndarray:  # reset_after=True
    act, gate = ACTIVATIONS[spec["activation"]], GATES[spec["recurrent_activation"]]
    h = np.zeros((len(x), spec["units"]))
    outputs = []
    for t in range(x.shape[1]):
        x_z, x_r, x_h = np.split(x[:, t] @ kernel + bias[0], 3, axis=1)
        h_z, h_r, h_h = np.split(h @ recurrent + bias[1], 3, axis=1)
        z, r = gate(x_z + h_z), gate(x_r + h_r)
        h = z * h + (1 - z) * act(x_h + r * h_h)
        outputs.append(h)
    return np.stack(outputs, axis=1) if spec["return_sequences"] else h


def keras_forward(layers: list[dict], tensors: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    for spec in layers:
        weights = [tensors[key].astype(np.float64) for key in spec.get("weights", [])]
        kind = spec["type"]
        if kind == "lstm":
            x = keras_lstm(x, spec, *weights)
        elif kind == "gru":
            x = keras_gru(x, spec, *weights)
        elif kind == "dense":
            x = ACTIVATIONS[spec["activation"]](x @ weights[0] + weights[1])
        elif kind == "repeat_vector":
            x = np.repeat(x[:, np.newaxis, :], spec["n"], axis=1)
        elif kind == "flatten":
            x = x.reshape(len(x), -1)
        else:
            x = x.reshape(len(x), *spec["target_shape"])
    return x

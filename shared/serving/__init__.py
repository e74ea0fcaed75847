"""The model behind one contract: `Predictor.predict(instances) -> ndarray`, two engines.

`instances` is a float32 array (batch, window, 1) laid out as the model expects (see the
model description's `input_order`), finite values only; the result is the model's output
tensor for the batch as float64, e.g. (batch, 10, 1) for the reference autoencoder.
Engines: `engine.EmbeddedModel` (numpy, in process) and `tfserving.TFServingClient`.
"""

from typing import Protocol

import numpy as np


class Predictor(Protocol):
    name: str  # "embedded" or "tfserving"

    def predict(self, instances: np.ndarray) -> np.ndarray: ...


class ServingUnavailable(Exception):
    """The model could not answer (unreachable, 5xx, 429, timeout): the caller answers 503."""


class ServingError(Exception):
    """The model server answered but refused the request (4xx); carries the server's message."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


__all__ = ["Predictor", "ServingError", "ServingUnavailable"]

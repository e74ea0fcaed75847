"""TensorFlow Serving REST client: one pooled keep-alive session.

A predict has no side effects, so one whose connection broke (a pooled keep-alive connection
the server closed: TF Serving closes idle ones after 50 s) is sent once more on a new one;
a timeout is never retried. A window of the wrong shape is refused before anything is sent.

API facts (TF Serving g3doc/api_rest.md, model_servers/http_server.cc): errors come as
`{"error": "..."}`; UNAVAILABLE is 503, RESOURCE_EXHAUSTED 429, DEADLINE_EXCEEDED 504,
bad requests 400 and unknown models 404. Model status answers 200 even while a version is
LOADING, so readiness means a version in state AVAILABLE.
"""

import json
from typing import Any

import numpy as np
import requests
from requests.adapters import HTTPAdapter

from . import ServingError, ServingUnavailable

_JSON = {"Content-Type": "application/json"}


class TFServingClient:
    """Predictions from a TF Serving model over REST; satisfies the `Predictor` contract."""

    name = "tfserving"

    def __init__(self, base_url: str, model_name: str, timeout_s: float,
                 session: requests.Session | None = None, *, pool_size: int = 16,
                 version: str | None = None, window: int | None = None) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s!r}")
        if version is not None and not version.isdigit():
            raise ValueError(f"version must be a number, got {version!r}")
        # A pinned version: the server answers 404 rather than judge with another version's
        # weights while the caller applies this version's scaling and decision rule.
        model_url = f"{base_url.rstrip('/')}/v1/models/{model_name}" + (
            f"/versions/{version}" if version is not None else "")
        self.predict_url = f"{model_url}:predict"
        self.window = window  # the model's time steps (its model.json); None: not checked
        self.timeout = (timeout_s, timeout_s)  # (connect, read)
        self.session = session or _pooled_session(pool_size)

    def predict(self, instances: np.ndarray) -> np.ndarray:
        x = np.asarray(instances, dtype=np.float32)
        steps_ok = x.ndim == 3 and (self.window is None or x.shape[1] == self.window)
        if not steps_ok or not len(x) or x.shape[2] != 1:
            # TF Serving would judge (1, 20, 1) by its first steps and answer 200: refuse it here
            raise ValueError(f"instances must have shape (batch >= 1, {self.window or 'window'}, 1), "
                             f"got {x.shape}")
        # TF Serving would accept NaN/Infinity tokens and answer garbage; refuse them here.
        if not np.isfinite(x).all():
            raise ValueError("instances must be finite (no NaN or infinity)")
        payload = self._call("POST", self.predict_url, json.dumps({"instances": x.tolist()}))
        predictions = payload.get("predictions") if isinstance(payload, dict) else None
        if predictions is None:
            raise ServingError(f"TF Serving answered 200 without 'predictions': {str(payload)[:200]}")
        try:
            output = np.asarray(predictions, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ServingError(f"TF Serving answered predictions that are not a tensor: {exc}") from exc
        if output.ndim == 0 or len(output) != len(x):
            raise ServingError(f"TF Serving answered {output.shape} predictions for {len(x)} instances")
        return output

    def close(self) -> None:
        self.session.close()

    def _call(self, method: str, url: str, body: str | None = None) -> Any:
        response = self._send(method, url, body)
        code = response.status_code
        if code == 200:
            try:
                return response.json()
            except ValueError as exc:
                raise ServingError(f"TF Serving answered 200 with a body that is not JSON: "
                                   f"{response.text[:200]!r}") from exc
        message = _error_message(response)
        if code >= 500 or code == 429:
            raise ServingUnavailable(f"TF Serving answered {code}: {message}")
        raise ServingError(f"TF Serving refused the request ({code}): {message}", status=code)


    def _send(self, method: str, url: str, body: str | None) -> requests.Response:
        def send() -> requests.Response:
            return self.session.request(method, url, data=body, headers=_JSON,
                                        timeout=self.timeout)

        try:
            try:
                return send()
            except requests.ConnectionError as exc:
                if isinstance(exc, requests.Timeout):  # a connect timeout: the server is away
                    raise
                return send()  # the connection broke under the request: once more, on a new one
        except requests.RequestException as exc:  # refused, reset, DNS, connect/read timeout
            raise ServingUnavailable(f"TF Serving at {url} did not answer: {exc}") from exc


def _pooled_session(pool_size: int) -> requests.Session:
    session = requests.Session()
    # Internal service: no proxy/netrc lookups from the environment (they also cost time
    # on every request).
    session.trust_env = False
    # One host, up to pool_size concurrent keep-alive connections; max_retries=0: the one
    # resend (TFServingClient._send) is ours, for broken connections only.
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _error_message(response: requests.Response) -> str:
    """TF Serving's `{"error": "..."}` message, or whatever a proxy put in its place."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str):
        return error
    return response.text[:200] or response.reason or "no message"

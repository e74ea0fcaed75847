"""detectar as a function of (sensor, timestamp, value) -> its JSON answer, run the way the
deployed function runs: in this process through the very code `functions/detectar` calls,
or over HTTP through a running gateway; and a series streamed through it, row by row."""

from __future__ import annotations

import json
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from werkzeug.test import EnvironBuilder

from models.evaluation import EvaluationError
from models.evaluation.report import Stream, model_description
from shared.actions import DETECTAR
from shared.endpoint import serve
from shared.services import Services
from shared.signing import SigningAuth

from ..local.gateway import Context, Event
from ..local.redis_server import RedisServer

# A reading the detector answers: the fields of detectar's JSON document we keep.
Answer = Mapping[str, Any]
Detectar = Callable[[str, int, float], Answer]


def detectar_env(redis_env: Mapping[str, str], model_path: Path) -> dict[str, str]:
    """The settings detectar runs with here: our Redis (its REDIS_* settings), the model,
    the embedded engine."""
    return {**redis_env, "MODEL_PATH": str(model_path), "MODEL_ENGINE": "embedded",
            "WINDOW_SIZE": str(model_description(model_path).window), "API_TOKEN_FILE": ""}


def _answer(status: int, body: str, sensor: str, timestamp: int) -> Answer:
    try:
        document = json.loads(body)
    except json.JSONDecodeError:
        document = {"error": body[:300]}
    if status != 200:
        raise EvaluationError(f"detectar answered {status} for sensor {sensor!r} at "
                              f"{timestamp}: {document.get('error', document)}")
    return document


@contextmanager
def in_process(model_path: Path, redis_env: Mapping[str, str]) -> Iterator[Detectar]:
    """detectar's endpoint in this process, over the Redis `redis_env` names, given the event
    the local gateway builds for a JSON POST."""
    services = Services(detectar_env(redis_env, model_path))
    _ = services.detector  # load the model now: a broken one fails before any reading
    context = Context()

    def call(sensor: str, timestamp: int, value: float) -> Answer:
        body = json.dumps({"sensor": sensor, "dato": value, "timestamp": timestamp})
        request = EnvironBuilder(method="POST", query_string="format=json", data=body,
                                 content_type="application/json").get_request()
        returned = serve(Event(request, "/"), context, DETECTAR, services)
        return _answer(returned["statusCode"], returned["body"], sensor, timestamp)

    try:
        yield call
    finally:
        services.redis.close()


@contextmanager
def over_http(url: str, key: str | None = None, timeout: float = 10.0) -> Iterator[Detectar]:
    """detectar behind a running gateway (`make up`) at `url`."""
    import requests

    endpoint = url.rstrip("/") + "/function/detectar"
    with requests.Session() as http:
        if key:  # each call signed for itself (shared/signing.py)
            http.auth = SigningAuth(key.encode())
        def call(sensor: str, timestamp: int, value: float) -> Answer:
            try:
                reply = http.post(endpoint, params={"format": "json"},
                                  json={"sensor": sensor, "dato": value, "timestamp": timestamp},
                                  timeout=timeout)
            except requests.RequestException as exc:
                raise EvaluationError(f"cannot reach detectar at {endpoint}: {exc}") from exc
            return _answer(reply.status_code, reply.text, sensor, timestamp)

        yield call


@contextmanager
def local_redis() -> Iterator[dict[str, str]]:
    """A Redis Stack server of our own on a free port in a temporary folder: its settings."""
    with tempfile.TemporaryDirectory(prefix="evaluate-redis-") as folder:
        server = RedisServer(Path(folder), fsync="no")  # durability is not the point
        try:  # also stops a server interrupted while it starts
            yield server.start().env()
        finally:
            server.stop()


def new_sensor(tag: str) -> str:
    safe = "".join(c if c.isalnum() or c in "._:-" else "-" for c in tag)[:40]
    return f"eval-{safe}-{uuid.uuid4().hex[:12]}"


def stream(detectar: Detectar, values: Sequence[float] | np.ndarray, timestamps: Sequence[int],
           sensor: str, progress: bool = True, label: str = "detectar") -> Stream:
    """Send every reading, in order, and keep the verdicts."""
    if len(values) != len(timestamps):
        raise EvaluationError("values and timestamps differ in length")
    rows: Iterable[int] = range(len(values))
    if progress:
        from tqdm import tqdm

        rows = tqdm(rows, desc=label, unit="reading", mininterval=0.5, leave=False,
                    file=sys.stderr)
    result = Stream([], [], [], [], [], None, 0.0)
    started = time.perf_counter()
    for row in rows:
        answer = detectar(sensor, int(timestamps[row]), float(values[row]))
        result.anomaly.append(answer.get("anomaly"))
        result.alert.append(answer.get("alert"))
        result.predicted.append(answer.get("predicted"))
        result.error.append(answer.get("error"))
        result.threshold.append(answer.get("threshold"))
        result.kind.append(answer.get("kind"))
        lower, upper = answer.get("lower"), answer.get("upper")
        result.inside_band.append(None if lower is None or upper is None
                                  else lower <= float(values[row]) <= upper)
        result.notes.append(answer.get("note"))
        result.engine = answer.get("engine") or result.engine
    result.seconds = time.perf_counter() - started
    return result


def run_in_process(model_path: Path, values: Sequence[float] | np.ndarray, timestamps: Sequence[int],
                   redis_env: Mapping[str, str] | None = None, sensor: str | None = None,
                   progress: bool = False, label: str | None = None) -> Stream:
    """Stream `values` through detectar's endpoint with `model_path` (starts a Redis unless
    `redis_env` names one). Used by the CLI and the tests alike."""
    sensor = sensor or new_sensor(Path(model_path).name)
    if redis_env is None:
        with local_redis() as env:
            return run_in_process(model_path, values, timestamps, env, sensor, progress, label)
    with in_process(Path(model_path), redis_env) as detectar:
        return stream(detectar, values, timestamps, sensor, progress,
                      label or Path(model_path).name)

"""How readings reach the platform: the gateway over HTTP, or an MQTT broker.

- `detectar`: one call per reading, `POST /function/detectar?format=json`; the answer is
  the verdict. With `asynchronous`, `POST /async-function/detectar` (the gateway answers
  202 and the queue worker calls detectar later; Swarm or `make up`);
- `nuevo`: batches `{"sensor", "readings": [...]}` to `/function/nuevo`: stored, not judged;
- `mqtt`: one message per reading to the broker, for the mqtt-connector (Swarm) or the
  local bridge (`make up` with MQTT_BROKER) to hand to detectar.
Where the answer is not the verdict (async, MQTT), `listar` reads the verdicts back: it
lists every stored reading with `anomaly` true where detectar flagged it.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import requests

from shared.signing import SigningAuth

LIST_PAGE = 10_000  # listar's default LIST_MAX_COUNT
MAX_FAILURES = 10  # calls in a row not answered or refused before the run stops


class TransportError(RuntimeError):
    """The target cannot be reached or keeps refusing: the run stops."""


@dataclass
class Tally:
    """What the target answered, per HTTP status ('error' when there was no answer)."""

    statuses: Counter = field(default_factory=Counter)
    accepted: int = 0
    refused: int = 0
    consecutive_failures: int = 0

    def count(self, status: int | None, readings: int = 1, ok: Iterable[int] = (200,),
              failure: str = "") -> bool:
        """Count one call's answer; `failure` (what went wrong, e.g. `Gateway.last_failure`)
        goes into the error that stops the run."""
        self.statuses["error" if status is None else str(status)] += readings
        if status in tuple(ok):
            self.accepted += readings
            self.consecutive_failures = 0
            return True
        self.refused += readings
        self.consecutive_failures += 1
        if self.consecutive_failures >= MAX_FAILURES:
            what = "did not answer" if status is None else "refused the readings"
            raise TransportError(f"the target {what} {MAX_FAILURES} times in a row "
                                 f"(last: {failure}); stopping")
        return False


class Gateway:
    """The OpenFaaS gateway (or the local stand-in) at `base_url`."""

    def __init__(self, base_url: str, key: str | None = None, timeout_s: float = 70.0):
        self.base = base_url.rstrip("/")
        self.http = requests.Session()
        self.timeout_s = timeout_s
        self.last_failure = ""  # the URL and cause of the last call that failed
        if key:  # each write signed for itself (shared/signing.py)
            self.http.auth = SigningAuth(key.encode())

    def _post(self, path: str, body: Any) -> requests.Response | None:
        url = f"{self.base}{path}"
        try:
            answer = self.http.post(url, params={"format": "json"}, data=json.dumps(body),
                                    timeout=self.timeout_s,
                                    headers={"Content-Type": "application/json"})
        except requests.RequestException as exc:
            self.last_failure = f"{url}: {exc}"
            return None
        if answer.status_code >= 300:
            text = " ".join(answer.text[:200].split())  # on one line
            self.last_failure = f"{url} answered {answer.status_code}: {text}"
        return answer

    def detectar(self, sensor: str, timestamp: int, value: float) -> tuple[int | None, bool | None]:
        """(status, anomaly) of one reading."""
        answer = self._post("/function/detectar", {"sensor": sensor, "dato": value,
                                                   "timestamp": timestamp})
        if answer is None:
            return None, None
        verdict = None
        if answer.status_code == 200:
            try:
                verdict = answer.json().get("anomaly")
            except ValueError:
                verdict = None
        return answer.status_code, verdict

    def detectar_async(self, sensor: str, timestamp: int, value: float,
                       full_wait_s: float = 60.0) -> int | None:
        """Queue one reading (202). A full queue (429, the local stand-in's bounded queue)
        is waited out for up to `full_wait_s`, then counted as refused."""
        body = {"sensor": sensor, "dato": value, "timestamp": timestamp}
        deadline = time.monotonic() + full_wait_s
        while True:
            answer = self._post("/async-function/detectar", body)
            if answer is None or answer.status_code != 429 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if answer is not None and answer.status_code == 404:
            raise TransportError(f"{self.base}/async-function/detectar is not found (a gateway "
                                 "without the queue: Swarm needs NATS and the queue worker)")
        return None if answer is None else answer.status_code

    def nuevo_batch(self, sensor: str, readings: list[tuple[int, float]]) -> int | None:
        answer = self._post("/function/nuevo", {"sensor": sensor, "readings": [
            {"dato": value, "timestamp": timestamp} for timestamp, value in readings]})
        return None if answer is None else answer.status_code

    def listar(self, sensor: str, start: int, end: int, count: int = LIST_PAGE) -> dict:
        try:
            params: dict[str, str | int] = {"sensor": sensor, "from": start, "to": end,
                                            "count": count, "format": "json"}
            answer = self.http.get(f"{self.base}/function/listar", timeout=self.timeout_s,
                                   params=params)
        except requests.RequestException as exc:
            raise TransportError(f"listar failed: {exc}") from exc
        if answer.status_code != 200:
            raise TransportError(f"listar answered {answer.status_code}: {answer.text[:200]}")
        return answer.json()

    def stored(self, sensor: str, start: int, end: int) -> dict[int, bool]:
        """timestamp -> alert flag of every stored reading of `sensor` in [start, end]: True
        where detectar raised an alert (the reading started an event), False otherwise
        (judged normal, part of an event already alerted, or not judged: listar cannot tell
        the last, so these are no verdicts)."""
        found: dict[int, bool] = {}
        while start <= end:
            page = self.listar(sensor, start, end)
            for reading in page["readings"]:
                found[int(reading["timestamp"])] = bool(reading["alert"])
            if len(page["readings"]) < LIST_PAGE:
                break
            end = min(found) - 1  # newest first: the next page is older
        return found

    def close(self) -> None:
        self.http.close()


class MqttPublisher:
    """Publishes readings to `topic` (which may hold `{sensor}`), QoS 1 by default."""

    def __init__(self, broker_url: str, topic: str, qos: int = 1):
        import paho.mqtt.client as mqtt

        from infra.mqtt_bridge import parse_broker

        self.broker = parse_broker(broker_url)
        self.topic = topic
        self.per_sensor = "{sensor}" in topic
        self.qos = qos
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)
        self.pending: list = []

    def connect(self, timeout_s: float = 10.0) -> MqttPublisher:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.client.connect(self.broker.host, self.broker.port, keepalive=30)
                break
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise TransportError(f"cannot reach the MQTT broker {self.broker}: {exc}") from exc
                time.sleep(0.2)
        self.client.loop_start()
        return self

    def publish(self, sensor: str, timestamp: int, value: float) -> None:
        payload: dict[str, Any] = {"dato": value, "timestamp": timestamp}
        if not self.per_sensor:
            payload["sensor"] = sensor  # the shared topic names no sensor: the payload does
        info = self.client.publish(self.topic.format(sensor=sensor), json.dumps(payload), qos=self.qos)
        self.pending.append(info)
        if len(self.pending) >= 1000:
            self.flush()

    def flush(self, timeout_s: float = 30.0) -> None:
        for info in self.pending:
            info.wait_for_publish(timeout=timeout_s)
        self.pending.clear()

    def close(self) -> None:
        self.flush()
        self.client.disconnect()
        self.client.loop_stop()

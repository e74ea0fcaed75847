"""MQTT messages -> the local functions, the way OpenFaaS's mqtt-connector does it on Swarm.

`make up` with `MQTT_BROKER=tcp://127.0.0.1:1883` starts one `MqttBridge` beside the gateway.
It follows the connector's rules (openfaas/mqtt-connector `main.go`, openfaas/connector-sdk
`types/`), so a setup that works here works on Swarm with infra/swarm/mqtt.yml:
- it subscribes to ONE topic filter (`MQTT_TOPIC`, default `planta/#`; MQTT wildcards are
  allowed there, the filter goes to the broker as it is);
- each message goes to every function whose `topic` annotation (stack.yml; several topics
  separated by commas, spaces trimmed) is EXACTLY the topic the message arrived on: no
  wildcards in annotations. A message no function names is dropped (logged once per topic);
- the call is a POST of the payload, unchanged, to the gateway's `/function/<name>` with
  `Content-Type: application/json` (the connector's default, whatever the payload is),
  `X-Topic: <topic>` and `X-Connector: connector-sdk`;
- one message at a time, in arrival order; an answer that is not 2xx is logged and the
  message is not retried (the connector neither retries).
When the functions need the API key, each call is signed for itself (shared/signing.py):
the bridge holds the key, no call or log line carries it. OpenFaaS's mqtt-connector cannot
do that (it can only put a reusable token in its gateway URL, which it logs), so on Swarm
this bridge runs in its place (infra/swarm/mqtt.yml, `python -m infra.mqtt_bridge`), with the
topic map read from the gateway's /system/functions as connector-sdk reads it.

Why HTTP to the local gateway rather than calling the handlers in-process: the message then
takes the path it takes on Swarm (gateway body limit, template event, token check, response),
and the bridge needs nothing from the functions but their annotations.

The client reconnects by itself (paho's loop, 0.5 s to 5 s back-off) and re-subscribes on
every connect, so a broker restart costs only the messages published while it was down
(QoS 1 + a persistent session keep those too when the broker persists them, as Mosquitto
does with `persistence true`).
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests

from shared.signing import SigningAuth

if TYPE_CHECKING:  # imported when the bridge starts: only `make up` with MQTT_BROKER needs it
    import paho.mqtt.client as mqtt

log = logging.getLogger(__name__)

DEFAULT_TOPIC_FILTER = "planta/#"
CONTENT_TYPE = "application/json"  # mqtt-connector's default `content_type`
CONNECTOR_HEADER = "connector-sdk"  # what connector-sdk puts in X-Connector
TOPIC_DELIMITER = ","  # mqtt-connector's TopicAnnotationDelimiter
SCHEMES = {"tcp": 1883, "mqtt": 1883}


class BridgeConfigError(ValueError):
    """An MQTT_* setting the bridge cannot run with."""


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"tcp://{self.host}:{self.port}"


def parse_broker(url: str) -> BrokerAddress:
    """`tcp://host:port` (the connector's --broker form), `mqtt://host[:port]` or `host[:port]`."""
    text = url.strip()
    if "://" not in text:
        text = "tcp://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise BridgeConfigError(f"MQTT_BROKER={url!r} is not valid: expected tcp://host:port") from None
    if parts.scheme not in SCHEMES or not parts.hostname or parts.path not in ("", "/"):
        raise BridgeConfigError(f"MQTT_BROKER={url!r} is not valid: expected tcp://host:port "
                                "(TLS and websockets are not supported here)")
    return BrokerAddress(parts.hostname, port or SCHEMES[parts.scheme])


def topic_map(annotations: Mapping[str, Mapping[str, str]]) -> dict[str, list[str]]:
    """function name -> annotations, as connector-sdk's `buildServiceMap`: topic -> functions."""
    mapping: dict[str, list[str]] = {}
    for name, notes in annotations.items():
        for topic in str(notes.get("topic", "")).split(TOPIC_DELIMITER):
            topic = topic.strip()
            if topic:
                mapping.setdefault(topic, []).append(name)
    return mapping


class MqttBridge:
    """Subscribes to one topic filter and POSTs each message to the functions that name it."""

    def __init__(self, broker: BrokerAddress, gateway_url: str,
                 topics: Mapping[str, list[str]], topic_filter: str = DEFAULT_TOPIC_FILTER,
                 qos: int = 1, client_id: str | None = None, key: str | None = None,
                 asynchronous: bool = False, timeout_s: float = 65.0,
                 ready_timeout_s: float = 60.0,
                 topics_source: Callable[[], dict[str, list[str]]] | None = None,
                 refresh_s: float = 10.0):
        if qos not in (0, 1, 2):
            raise BridgeConfigError(f"MQTT_QOS={qos!r} is not valid: expected 0, 1 or 2")
        if not topic_filter:
            raise BridgeConfigError("MQTT_TOPIC must not be empty")
        self.broker = broker
        self.gateway_url = gateway_url.rstrip("/")
        self.topics = {topic: list(names) for topic, names in topics.items()}
        self.topic_filter = topic_filter
        self.qos = qos
        self.client_id = client_id or f"anomalias-local-{uuid.uuid4().hex[:8]}"
        self.timeout_s = timeout_s
        self.ready_timeout_s = ready_timeout_s
        # Accept is ours, not the connector's: it only makes the logged answers JSON.
        self.headers = {"Content-Type": CONTENT_TYPE, "X-Connector": CONNECTOR_HEADER,
                        "Accept": "application/json", "User-Agent": "anomalias/local-mqtt-bridge"}
        self.route = "async-function" if asynchronous else "function"  # -async-invoke
        # On Swarm the map is the gateway's, read again every refresh_s: a redeploy with
        # other annotations is followed, as connector-sdk follows it.
        self.topics_source = topics_source
        self.refresh_s = refresh_s
        self._topics_read = float("-inf")
        self.messages: queue.Queue = queue.Queue()
        self.http = requests.Session()
        if key:
            self.http.auth = SigningAuth(key.encode())
        self.delivered = 0  # calls answered 2xx
        self.refused = 0  # calls answered otherwise, or that failed
        self.connected = threading.Event()
        self._unrouted: set[str] = set()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._client: mqtt.Client | None = None

    # --- MQTT side (paho's network thread) ---------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if reason_code.is_failure:
            log.warning("MQTT broker %s refused the connection: %s", self.broker, reason_code)
            return
        client.subscribe(self.topic_filter, qos=self.qos)  # again on every (re)connect
        self.connected.set()
        log.info("MQTT: connected to %s, subscribed to %r (QoS %d)", self.broker,
                 self.topic_filter, self.qos)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            log.warning("MQTT: lost the broker %s (%s); reconnecting", self.broker, reason_code)

    def _on_message(self, client, userdata, message) -> None:
        # Never block the network loop: the calls happen on the worker thread.
        self.messages.put((message.topic, bytes(message.payload)))

    # --- gateway side (worker thread) --------------------------------------------------------
    def _wait_for_gateway(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                if self.http.get(f"{self.gateway_url}/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)

    def _refresh_topics(self) -> None:
        if self.topics_source is None or time.monotonic() - self._topics_read < self.refresh_s:
            return
        try:
            topics = self.topics_source()
            self._topics_read = time.monotonic()
            if topics != self.topics:
                log.info("MQTT: topics from the gateway: %s", _routes(topics))
            self.topics = topics
        except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
            log.warning("MQTT: cannot read the functions' topics from the gateway (%s); "
                        "keeping the last map", exc)

    def deliver(self, topic: str, payload: bytes) -> list[tuple[str, int | None]]:
        """Invoke every function whose annotation names `topic`; (function, status) pairs."""
        self._refresh_topics()
        names = self.topics.get(topic, [])
        if not names and topic not in self._unrouted:
            self._unrouted.add(topic)
            log.info("MQTT: no function has the topic annotation %r; its messages are dropped "
                     "(annotations must name the topic exactly, as connector-sdk matches)", topic)
        results: list[tuple[str, int | None]] = []
        for name in names:
            headers = {**self.headers, "X-Topic": topic}
            try:
                answer = self.http.post(f"{self.gateway_url}/{self.route}/{name}", data=payload,
                                        headers=headers, timeout=self.timeout_s)
            except requests.RequestException as exc:
                self.refused += 1
                log.warning("MQTT %s -> %s failed: %s", topic, name, exc)
                results.append((name, None))
                continue
            if 200 <= answer.status_code < 300:
                self.delivered += 1
                log.debug("MQTT %s -> %s [%d]", topic, name, answer.status_code)
            else:
                self.refused += 1
                log.warning("MQTT %s -> %s [%d] %s", topic, name, answer.status_code,
                            answer.text[:300].replace("\n", " "))
            results.append((name, answer.status_code))
        return results

    def _work(self) -> None:
        self._wait_for_gateway()
        while not self._stop.is_set():
            try:
                topic, payload = self.messages.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self.deliver(topic, payload)
            except Exception:  # one bad message never stops the bridge
                log.exception("MQTT: delivering a message on %r failed", topic)

    # --- life cycle ------------------------------------------------------------------------------
    def start(self) -> MqttBridge:
        import paho.mqtt.client as mqtt  # only `make up` with MQTT_BROKER needs it

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             clean_session=False, protocol=mqtt.MQTTv311)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.reconnect_delay_set(min_delay=1, max_delay=5)  # whole seconds
        self._client = client
        self._worker = threading.Thread(target=self._work, name="mqtt-bridge", daemon=True)
        self._worker.start()
        # connect_async + loop_start: the loop retries until the broker answers, so `make up`
        # does not depend on the broker being up first.
        client.connect_async(self.broker.host, self.broker.port, keepalive=30)
        client.loop_start()
        log.info("MQTT: bridge %s -> %s/%s/<name>, topics: %s", self.broker, self.gateway_url,
                 self.route, "read from the gateway" if self.topics_source else _routes(self.topics))
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
        if self._worker is not None:
            self._worker.join(timeout=5)
        self.http.close()


def bridge_from_env(env: Mapping[str, str], gateway_url: str,
                    annotations: Mapping[str, Mapping[str, str]], key: str | None,
                    default_client_id: str) -> MqttBridge | None:
    """The bridge `MQTT_BROKER` asks for, or None when it is unset."""
    broker = env.get("MQTT_BROKER", "").strip()
    if not broker:
        return None
    qos_text = env.get("MQTT_QOS", "").strip() or "1"
    if qos_text not in ("0", "1", "2"):
        raise BridgeConfigError(f"MQTT_QOS={qos_text!r} is not valid: expected 0, 1 or 2")
    return MqttBridge(parse_broker(broker), gateway_url, topic_map(annotations),
                      topic_filter=env.get("MQTT_TOPIC", "").strip() or DEFAULT_TOPIC_FILTER,
                      qos=int(qos_text), key=key,
                      asynchronous=env.get("MQTT_ASYNC_INVOKE", "").strip() == "true",
                      client_id=env.get("MQTT_CLIENT_ID", "").strip() or default_client_id)


def topics_of(functions: Iterable) -> dict[str, dict[str, str]]:
    """name -> annotations of infra.local.functions.Function objects."""
    return {f.name: dict(f.annotations) for f in functions}


def default_client_id(port: int) -> str:
    """Stable per gateway port, so a restarted `make up` resumes its persistent session."""
    return f"anomalias-local-{os.uname().nodename[:20]}-{port}"


def _routes(topics: Mapping[str, list[str]]) -> str:
    return ", ".join(f"{t} -> {'+'.join(f)}" for t, f in sorted(topics.items())) or "(none annotated)"


def gateway_topics(http: requests.Session, gateway_url: str,
                   credentials: tuple[str, str]) -> dict[str, list[str]]:
    """topic -> functions from the gateway's GET /system/functions (basic auth)."""
    answer = http.get(f"{gateway_url}/system/functions", auth=credentials, timeout=10)
    answer.raise_for_status()
    return topic_map({f["name"]: f.get("annotations") or {} for f in answer.json()})


def main() -> None:
    """On Swarm (infra/swarm/mqtt.yml), in place of OpenFaaS's mqtt-connector: MQTT_BROKER,
    MQTT_TOPIC, MQTT_QOS, MQTT_ASYNC_INVOKE, GATEWAY_URL; the gateway's user and password and
    the API key are read from SECRETS_DIR (/run/secrets), never logged."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    env = os.environ
    secrets = Path(env.get("SECRETS_DIR", "/run/secrets"))
    credentials = ((secrets / "basic-auth-user").read_text().strip(),
                   (secrets / "basic-auth-password").read_text().strip())
    key = (secrets / "api-token").read_text().strip() or None
    gateway = env.get("GATEWAY_URL", "http://gateway:8080").rstrip("/")
    listing = requests.Session()
    bridge = bridge_from_env(env, gateway, {}, key, "anomalias-mqtt-bridge")
    if bridge is None:
        raise SystemExit("MQTT_BROKER is not set")
    bridge.topics_source = lambda: gateway_topics(listing, gateway, credentials)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    bridge.start()
    stopping.wait()
    bridge.stop()


if __name__ == "__main__":
    main()

"""MQTT triggers: real messages through a real broker to the local stack, found in Redis.

The broker is amqtt on a free port; the stack is `python -m infra.local` with MQTT_BROKER
set, over a copy of stack.yml that gives nuevo and detectar `topic` annotations, and with
an API key, so every call the bridge makes must be signed (shared/signing.py).
"""

from __future__ import annotations

import base64
import json
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import pytest
import requests
import yaml
from werkzeug.datastructures import Headers, MultiDict

from infra.local.functions import STACK_FILE
from infra.mqtt_bridge import BridgeConfigError, MqttBridge, gateway_topics, parse_broker, topic_map
from shared import signing
from shared.errors import BadRequest
from shared.params import merged_params, topic_sensor
from shared.store.keys import detector_key
from tests.support.http_server import http_server
from tests.support.mqtt_broker import MqttBroker, publish
from tests.support.stack import LocalStack

TOKEN = "s3cret-token-for-the-mqtt-tests"
ANNOTATIONS = {
    "detectar": "planta/temperatura, planta/horno-1/temperatura,planta/horno-2/temperatura,"
                "planta/bad sensor!/temperatura",
    "nuevo": "planta/lecturas,planta/horno-1/lecturas",
}
DAY_MS = 24 * 3600 * 1000


# --- the topic rules, without a broker ------------------------------------------------------
def test_the_sensor_is_the_middle_level_of_a_three_level_topic():
    assert topic_sensor("planta/horno-1/temperatura") == "horno-1"
    assert topic_sensor("planta/linea_2.b:3/lecturas") == "linea_2.b:3"
    assert topic_sensor("planta/temperatura") is None
    assert topic_sensor("a/b/c/d") is None
    assert topic_sensor("") is None and topic_sensor(None) is None
    for bad in ("planta/bad sensor/temperatura", "planta//temperatura", f"planta/{'x' * 65}/t"):
        with pytest.raises(BadRequest):
            topic_sensor(bad)


def test_the_payload_names_the_sensor_before_the_topic_does():
    topic = Headers({"X-Topic": "planta/horno-1/temperatura"})
    assert merged_params(MultiDict(), b"25.5", topic) == {"dato": 25.5, "sensor": "horno-1"}
    named = merged_params(MultiDict(), b'{"dato": 1, "sensor": "horno-3"}', topic)
    assert named["sensor"] == "horno-3"
    assert merged_params(MultiDict({"sensor": "q"}), b"1", topic)["sensor"] == "q"
    assert "sensor" not in merged_params(MultiDict(), b"1", Headers({"X-Topic": "planta/t"}))
    assert "sensor" not in merged_params(MultiDict(), b"1")  # plain HTTP calls are unchanged


def test_topics_match_annotations_exactly_as_connector_sdk_does():
    topics = topic_map({"detectar": {"topic": " planta/a/temperatura , planta/+/temperatura"},
                        "nuevo": {"topic": "planta/a/temperatura"}, "listar": {}})
    assert topics == {"planta/a/temperatura": ["detectar", "nuevo"],
                      "planta/+/temperatura": ["detectar"]}
    bridge = MqttBridge(parse_broker("tcp://127.0.0.1:1"), "http://127.0.0.1:1", topics)
    # A wildcard in an annotation is a literal string: a real topic never matches it.
    assert bridge.deliver("planta/b/temperatura", b"1") == []


def test_broker_urls():
    assert (parse_broker("tcp://10.0.0.5:1884").host, parse_broker("mosquitto").port) == ("10.0.0.5", 1883)
    for bad in ("ws://h:80", "tcp://", "tcp://h:99999", "tcp://h:1883/x"):
        with pytest.raises(BridgeConfigError):
            parse_broker(bad)


class _Gateway(BaseHTTPRequestHandler):
    """The gateway's GET /system/functions (basic auth) and a /function/ that records calls."""
    functions: ClassVar[list[dict[str, Any]]] = [
        {"name": "detectar", "annotations": {"topic": "planta/a/temperatura"}},
        {"name": "listar", "annotations": None}]

    def do_GET(self):
        ok = self.headers.get("Authorization") == "Basic " + base64.b64encode(b"admin:pw").decode()
        body = json.dumps(self.functions).encode() if ok else b"unauthorized"
        self.send_response(200 if ok else 401)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.calls.append((self.path, dict(self.headers), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_on_swarm_the_topics_come_from_the_gateway_and_each_call_is_signed():
    with http_server(_Gateway) as server:
        server.calls = []
        url = f"http://127.0.0.1:{server.server_address[1]}"
        listing = requests.Session()
        assert gateway_topics(listing, url, ("admin", "pw")) == {"planta/a/temperatura": ["detectar"]}
        with pytest.raises(requests.HTTPError):
            gateway_topics(listing, url, ("admin", "wrong"))
        bridge = MqttBridge(parse_broker("tcp://127.0.0.1:1"), url, {}, key=TOKEN, asynchronous=True,
                            topics_source=lambda: gateway_topics(listing, url, ("admin", "pw")))
        assert bridge.deliver("planta/a/temperatura", b"25.5") == [("detectar", 200)]
        path, headers, body = server.calls[0]
        assert path == "/async-function/detectar" and body == b"25.5"
        assert headers["X-Topic"] == "planta/a/temperatura"
        signing.verify(headers[signing.HEADER], TOKEN.encode(), "detectar", [], body, 60_000)
        assert TOKEN not in json.dumps(headers)
        # the gateway gone: the last map is kept
        bridge.topics_source = lambda: gateway_topics(listing, "http://127.0.0.1:1", ("a", "b"))
        bridge._topics_read = float("-inf")
        assert bridge.deliver("planta/a/temperatura", b"1")[0][0] == "detectar"


# --- end to end ----------------------------------------------------------------------------------
def stack_with_topics(directory: Path) -> Path:
    """stack.yml with topic annotations, handler paths made absolute."""
    stack = yaml.safe_load(STACK_FILE.read_text())
    for name, spec in stack["functions"].items():
        spec["handler"] = str((STACK_FILE.parent / spec["handler"]).resolve())
        if name in ANNOTATIONS:
            spec["annotations"] = {**(spec.get("annotations") or {}), "topic": ANNOTATIONS[name]}
    path = directory / "stack-mqtt.yml"
    path.write_text(yaml.safe_dump(stack))
    return path


class MqttStack:
    def __init__(self, broker: MqttBroker, stack: LocalStack):
        self.broker = broker
        self.stack = stack

    def subscriptions(self) -> int:
        return self.stack.log_path.read_text(errors="replace").count("subscribed to")

    def wait_subscribed(self, at_least: int = 1, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while self.subscriptions() < at_least:
            if time.monotonic() > deadline:
                raise AssertionError(f"the bridge did not subscribe:\n{self.stack.log()}")
            time.sleep(0.05)

    def publish(self, *messages: tuple[str, bytes | str]) -> None:
        publish(self.broker.port, list(messages))


@pytest.fixture(scope="module")
def mqtt_stack(redis_server, tmp_path_factory):
    work = tmp_path_factory.mktemp("mqtt")
    (work / "api-token").write_text(TOKEN)
    with MqttBroker(work) as broker:
        env = {"MQTT_BROKER": broker.url, "STACK_FILE": str(stack_with_topics(work)),
               "API_TOKEN_FILE": str(work / "api-token")}
        with LocalStack(redis_server, log_dir=work, env=env) as stack:
            running = MqttStack(broker, stack)
            running.wait_subscribed()
            yield running


@pytest.fixture
def mqtt(mqtt_stack, redis_client):
    """The MQTT stack with an empty Redis."""
    return mqtt_stack


def wait_for(condition, what: str, timeout_s: float = 15):
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def values(redis_client, key: str) -> list[float]:
    if not redis_client.exists(key):
        return []
    return [v for _, v in redis_client.ts().range(key, "-", "+")]


def test_messages_reach_nuevo_and_detectar_and_are_judged(mqtt, redis_client):
    start = int(time.time() * 1000) - DAY_MS
    batch = {"readings": [{"dato": 70.0, "timestamp": start + i * 300_000} for i in range(10)]}
    mqtt.publish(("planta/horno-1/lecturas", json.dumps(batch)))  # nuevo, sensor from the topic
    wait_for(lambda: len(values(redis_client, "horno-1")) == 10, "the batch")
    assert not redis_client.exists(detector_key("horno-1"))  # nuevo stores, it does not judge
    after = start + 10 * 300_000
    mqtt.publish(("planta/horno-1/temperatura", json.dumps({"dato": 70.5, "timestamp": after})),
                 ("planta/temperatura", json.dumps({"sensor": "horno-2", "dato": 20.5})),
                 ("planta/horno-1/temperatura", json.dumps({"sensor": "horno-3", "dato": 1.5})),
                 ("planta/horno-2/temperatura", "21.25"))  # a bare number, as a device sends it
    wait_for(lambda: values(redis_client, "horno-2") == [20.5, 21.25], "horno-2's readings")
    assert values(redis_client, "horno-3") == [1.5]  # the payload's sensor wins over the topic's
    assert values(redis_client, "horno-1")[-1] == 70.5
    # detectar judged it against the 10 readings before it: the detector learnt one residual.
    # (A flagged reading end to end: tests/infra/simulator/test_simulator.py, whose spike detectar catches.)
    assert float(redis_client.hget(detector_key("horno-1"), "n")) == 1


def test_a_malformed_message_stores_nothing_and_the_next_one_arrives(mqtt, redis_client):
    bad = [b"abc", b"", b'{"dato": NaN}', b'{"dato": 1e999}', b"[1, 2]", b"\xff\xfe",
           b'{"dato": "25,4"}', b'{"dato": 25, "timestamp": "yesterday"}', b'{"sensor": "x y", "dato": 1}']
    mqtt.publish(*[("planta/horno-1/temperatura", body) for body in bad],
                 ("planta/bad sensor!/temperatura", b"25.0"),  # annotated, but no valid sensor
                 ("planta/otro/temperatura", b"25.0"),  # no function names this topic
                 ("planta/horno-2/temperatura", b"21.5"))
    wait_for(lambda: values(redis_client, "horno-2") == [21.5], "the good message")
    sensors = [k.decode() for k in redis_client.keys("*") if not k.startswith(b"/signatures/")]
    assert sensors == ["horno-2"]
    log = mqtt.stack.log_path.read_text(errors="replace")
    assert log.count("planta/horno-1/temperatura -> detectar [400]") == len(bad)
    assert "planta/bad sensor!/temperatura -> detectar [400]" in log
    assert "no function has the topic annotation 'planta/otro/temperatura'" in log


def test_the_bridge_signs_what_the_functions_require(mqtt, redis_client):
    # Unsigned, a direct call is refused: the bridge's messages got in only signed.
    refused = mqtt.stack.http.post(mqtt.stack.url("detectar"), data=b"20",
                                   headers={"X-Topic": "planta/horno-1/temperatura"})
    assert refused.status_code == 401
    accepted = mqtt.stack.http.post(mqtt.stack.url("detectar"), data=b"20",
                                    headers={"X-Topic": "planta/horno-1/temperatura"},
                                    auth=signing.SigningAuth(TOKEN.encode()))
    assert accepted.status_code == 200 and values(redis_client, "horno-1") == [20.0]
    # and the key is in no line the bridge or the gateway logged
    assert TOKEN not in mqtt.stack.log_path.read_text(errors="replace")


def test_the_bridge_reconnects_after_a_broker_restart(mqtt, redis_client):
    before = mqtt.subscriptions()
    mqtt.broker.restart()
    mqtt.wait_subscribed(at_least=before + 1)
    mqtt.publish(("planta/horno-1/temperatura", b"30.5"))
    wait_for(lambda: values(redis_client, "horno-1") == [30.5], "a message after the restart")


def test_the_simulator_sends_over_mqtt_and_reads_the_verdicts_back(mqtt, redis_client, tmp_path):
    from infra.simulator.__main__ import main

    path = tmp_path / "report.json"
    assert main(["--via", "mqtt", "--broker", mqtt.broker.url, "--topic", "planta/temperatura",
                 "--gateway", mqtt.stack.base, "--sensors", "2", "--warmup", "20", "--kinds", "spike",
                 "--tolerance", "4", "--gap", "4", "--report", str(path), "--no-progress"]) == 0
    report = json.loads(path.read_text())
    assert report["run"]["verdicts_from"] == "listar" and "shorter" in report["warnings"][0]
    per_sensor = report["run"]["readings_per_sensor"]
    for sensor in report["run"]["sensors"]:  # the sensor came in the payload (shared topic)
        assert redis_client.ts().info(sensor).total_samples == per_sensor
    assert report["sent"]["readings"] == 2 * per_sensor
    # listar marks anomalies but cannot tell a reading judged normal from one not judged
    assert report["summary"]["judged_readings"] is None
    assert [a["kind"] for a in report["anomalies"]] == ["spike", "spike"]
    assert all(isinstance(a["caught"], bool) for a in report["anomalies"])

"""Dependencies that fail: a clear 503, no traceback, and recovery without a restart."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import redis
from werkzeug.test import EnvironBuilder

from infra.local.gateway import Context, Event
from infra.local.redis_server import RedisServer, free_port
from models.locations import DEFAULT_MODEL
from shared.actions import DETECTAR
from shared.config import REPO_ROOT
from shared.endpoint import serve
from shared.services import Services
from shared.serving.description import resolve_version_dir
from tests.support.stack import LocalStack

T0 = 1_600_000_000_000  # 2020: explicit timestamps after EARLIEST_READING


@pytest.fixture
def own_redis(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def test_redis_down_is_a_503_and_the_functions_recover_when_it_returns(own_redis, tmp_path):
    with LocalStack(own_redis, tmp_path) as stack:
        assert stack.json("nuevo", dato="1", timestamp=str(T0 + 1000)).status_code == 200
        own_redis.kill()
        for function in ("nuevo", "detectar", "listar"):
            answer = stack.json(function, **({} if function == "listar" else {"dato": "2"}))
            assert answer.status_code == 503, answer.text
            assert "Redis is unavailable" in answer.json()["error"]
            # the advice on re-sending is for writes only
            assert ("re-sent" in answer.json()["error"]) == (function != "listar")
        page = stack.get("nuevo", dato="2")
        assert page.status_code == 503 and "Traceback" not in page.text
        assert stack.http.get(f"{stack.base}/healthz").status_code == 503
        own_redis.start()  # same port, same append-only file
        assert stack.json("nuevo", dato="3", timestamp=str(T0 + 3000)).status_code == 200
        assert stack.http.get(f"{stack.base}/healthz").status_code == 200
        readings = stack.json("listar").json()["readings"]
        assert [(r["timestamp"], r["value"]) for r in readings] == [(T0 + 3000, 3.0), (T0 + 1000, 1.0)]


def test_make_ups_own_redis_is_started_again_when_it_dies(tmp_path):
    """`make up` owns its Redis: killed (SIGKILL, like an OOM kill), it is started again on
    the same port and append-only file, and every acknowledged reading is still there."""
    with LocalStack(None, tmp_path) as stack:
        for i in range(20):
            assert stack.json("nuevo", dato=str(i), timestamp=str(T0 + 1000 * (i + 1))).status_code == 200
        first = stack.redis_client()
        pid = first.info("server")["process_id"]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while stack.http.get(f"{stack.base}/healthz").status_code != 200:
            assert time.monotonic() < deadline, stack.log()
            time.sleep(0.1)
        assert stack.redis_client().info("server")["process_id"] != pid
        assert stack.json("nuevo", dato="99", timestamp=str(T0 + 99000)).status_code == 200
        listed = stack.json("listar", count="100").json()
        assert listed["total"] == 21
        assert [r["value"] for r in listed["readings"]] == [99.0, *map(float, range(19, -1, -1))]
        assert "starting it again" in stack.log()


def cluster_base_port(nodes: int = 3) -> int:
    """A port p with p .. p + nodes - 1 and their cluster bus ports (+ 10000) all free."""
    for base in range(21000, 29000, 41):
        try:
            for port in [base + i + bus for i in range(nodes) for bus in (0, 10000)]:
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free ports for a local cluster")


def test_make_up_starts_a_redis_cluster_when_asked(tmp_path):
    """`make up ARGS="--cluster 3"`: three masters (no replicas here, to be quick) on the
    ports from --redis-port on; each sensor's keys land on the master of its slot."""
    base = cluster_base_port()
    args = ("--cluster", "3", "--replicas", "0", "--redis-port", str(base))
    with LocalStack(None, tmp_path, args=args) as stack:
        for sensor in ("a", "b", "c", "mediciones"):
            assert stack.json("nuevo", dato="1.5", sensor=sensor, timestamp=str(T0 + 1000)).status_code == 200
            assert stack.json("listar", sensor=sensor).json()["total"] == 1
        password = (stack.data_dir / "cluster-3x0" / "node-0" / "password").read_text()
        with redis.Redis(port=base, password=password, decode_responses=True) as node:
            info = node.cluster("info")
        assert (info["cluster_state"], info["cluster_size"]) == ("ok", "3")
        keys = set()
        for port in range(base, base + 3):
            with redis.Redis(port=port, password=password, decode_responses=True) as node:
                keys |= set(node.keys("*"))
        assert keys == {"a", "b", "c", "mediciones"}
        assert "Redis Cluster: 3 masters, 0 replicas each" in stack.log()


def feed(stack, count):
    for i in range(count):
        answer = stack.json("nuevo", dato=str(70 + i % 3), timestamp=str(T0 + 1000 * (i + 1)))
        assert answer.status_code == 200


def test_model_server_down_nuevo_works_and_detectar_stores_but_says_it_did_not_judge(own_redis, tmp_path):
    closed = f"http://127.0.0.1:{free_port()}"
    with LocalStack(own_redis, tmp_path, env={"SERVING_URL": closed}) as stack:
        feed(stack, 10)
        answer = stack.json("detectar", dato="71", timestamp=str(T0 + 20000))
        assert answer.status_code == 503
        body = answer.json()
        assert "model server unavailable" in body["error"] and "do not send it again" in body["error"]
        assert body["stored"] is True and body["timestamp"] == T0 + 20000 and body["anomaly"] is None
        assert stack.json("listar").json()["total"] == 11


def test_model_server_down_falls_back_to_the_embedded_engine_when_asked(own_redis, tmp_path):
    closed = f"http://127.0.0.1:{free_port()}"
    env = {"SERVING_URL": closed, "SERVING_FALLBACK": "embedded"}
    with LocalStack(own_redis, tmp_path, env=env) as stack:
        feed(stack, 10)
        answer = stack.json("detectar", dato="71", timestamp=str(T0 + 20000))
        assert answer.status_code == 200
        assert answer.json()["engine"] == "embedded (fallback)"
        assert answer.json()["anomaly"] in (True, False)


def broken_model(tmp_path) -> str:
    """A copy of the shipped model whose rule lacks a parameter it needs."""
    version = resolve_version_dir(DEFAULT_MODEL)
    copy = tmp_path / "modelo" / version.name
    shutil.copytree(version, copy)
    description = json.loads((copy / "model.json").read_text())
    del description["decision"]["holdoff_s"]
    (copy / "model.json").write_text(json.dumps(description))
    return str(copy.parent)


def test_a_model_whose_rule_cannot_work_stops_make_up_naming_the_parameter(own_redis, tmp_path):
    env = {**os.environ, **own_redis.env(), "API_TOKEN_FILE": "", "MODEL_PATH": broken_model(tmp_path)}
    started = subprocess.run([sys.executable, "-m", "infra.local", "--port", str(free_port())],
                             cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert started.returncode != 0
    assert "decision.holdoff_s: record_events needs a number >= 0" in started.stderr
    assert "Traceback" not in started.stderr


def test_a_model_whose_rule_cannot_work_answers_500_naming_the_parameter(own_redis, tmp_path):
    services = Services({**own_redis.env(), "MODEL_PATH": broken_model(tmp_path),
                         "API_TOKEN_FILE": ""})
    request = EnvironBuilder(query_string="dato=70&format=json").get_request()
    answer = serve(Event(request, "/"), Context(), DETECTAR, services)
    assert answer["statusCode"] == 500
    assert "decision.holdoff_s: record_events needs a number >= 0" in answer["body"]
    assert own_redis.client().keys("*") == []  # nothing stored: the model loads before the store

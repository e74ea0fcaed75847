"""Under load and under faults, over real HTTP against a real Redis: every reading that was
acknowledged is stored, none twice, and the functions recover by themselves.

Each writer sends readings with values no other request uses, so a stored value names the
request that stored it. An acknowledgement is a 200, or detectar's 503 with `stored: true`
(stored, not judged); a 503 without it may or may not have stored its reading (Redis can
die between storing and answering), but never twice.
"""

from __future__ import annotations

import http.client
import itertools
import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from urllib.parse import urlencode

import pytest
import requests

from infra.bench import tfserving_standin
from infra.local.redis_cluster import LocalCluster
from infra.local.redis_server import RedisServer
from models.locations import DEFAULT_MODEL
from tests.conftest import ON_BOTH_LAYOUTS, cluster_env
from tests.support.cluster_roles import master_of, replica_of
from tests.support.stack import LocalStack

PAST = 1_600_000_000_000  # 2020: explicit timestamps far from the server clock's
WINDOW = 10


def series(redis_client, key: str) -> list[tuple[int, float]]:
    return redis_client.ts().range(key, "-", "+") if redis_client.exists(key) else []


def write(http: requests.Session, base: str, function: str, sensor: str, value: float,
          timestamp: int | None = None, how: str = "get") -> requests.Response:
    """One reading through nuevo or detectar, as a query (GET) or a JSON body (POST)."""
    params = {"sensor": sensor, "dato": repr(value)}
    if timestamp is not None:
        params["timestamp"] = str(timestamp)
    url = f"{base}/function/{function}"
    if how == "post":
        return http.post(url, json={**params, "dato": value}, params={"format": "json"}, timeout=15)
    return http.get(url, params={**params, "format": "json"}, timeout=15)


def run_writers(count: int, work) -> list:
    """`count` threads, each with its own keep-alive session, running work(index, session)."""
    def one(index: int):
        with requests.Session() as http:
            return work(index, http)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


# --- many concurrent writers -----------------------------------------------------------

@ON_BOTH_LAYOUTS
def test_concurrent_writers_on_one_sensor_lose_nothing_and_store_nothing_twice(api, redis_client):
    """16 threads, server-clock timestamps, nuevo by GET and by POST and detectar, one sensor:
    readings that land in the same millisecond all move to free ones."""
    def work(writer: int, http: requests.Session) -> list[tuple[int, float]]:
        acknowledged = []
        for i in range(40):
            value = writer * 1000 + i + 0.25
            function, how = [("nuevo", "get"), ("nuevo", "post"), ("detectar", "get")][i % 3]
            answer = write(http, api.base, function, "caldera", value, how=how)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["value"] == value
            acknowledged.append((body["timestamp"], value))
        return acknowledged

    acknowledged = [reading for chunk in run_writers(16, work) for reading in chunk]
    stored = series(redis_client, "caldera")
    assert len(acknowledged) == 16 * 40
    assert len({t for t, _ in acknowledged}) == len(acknowledged)  # one timestamp each
    assert sorted(stored) == sorted(acknowledged)  # each at the timestamp it was told


@ON_BOTH_LAYOUTS
def test_concurrent_writers_on_many_sensors_with_and_without_timestamps(api, redis_client):
    sensors = [f"linea-{k}" for k in range(8)]

    def work(writer: int, http: requests.Session) -> list[tuple[str, int, float]]:
        acknowledged = []
        for i in range(32):
            sensor = sensors[(writer + i) % len(sensors)]
            value = writer * 1000 + i + 0.5
            # Explicit timestamps: one range per writer, so no two requests share one.
            timestamp = PAST + writer * 100_000 + i * 7 if i % 2 else None
            function = "detectar" if i % 4 == 1 else "nuevo"
            answer = write(http, api.base, function, sensor, value, timestamp,
                           how="post" if i % 3 else "get")
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert timestamp is None or body["timestamp"] == timestamp
            acknowledged.append((sensor, body["timestamp"], value))
        return acknowledged

    acknowledged = [reading for chunk in run_writers(16, work) for reading in chunk]
    for sensor in sensors:
        mine = sorted((t, v) for s, t, v in acknowledged if s == sensor)
        assert series(redis_client, sensor) == mine


@ON_BOTH_LAYOUTS
def test_concurrent_batches_without_timestamps_are_stored_whole_once_or_not_at_all(api, redis_client):
    """Server-clock batches end at the current millisecond, so concurrent ones overlap and
    their readings move to free milliseconds. 2,400 readings in well under a second are more
    than one sensor's milliseconds can hold (at most MAX_CLOCK_BUMPS past the clock): the
    batches that do not fit are refused whole (429 with Retry-After), never stored in part."""
    def work(writer: int, http: requests.Session) -> list[tuple[int, list[float]]]:
        answers = []
        for batch in range(3):
            values = [writer * 10_000 + batch * 1000 + i + 0.75 for i in range(100)]
            answer = http.post(f"{api.base}/function/nuevo", params={"format": "json"},
                               json={"sensor": "lotes", "readings": [{"dato": v} for v in values]},
                               timeout=30)
            if answer.status_code == 200:
                assert answer.json() == {"sensor": "lotes", "stored": 100}
            else:
                assert answer.status_code == 429, answer.text
                assert "nothing was stored" in answer.json()["error"]
                assert answer.headers["Retry-After"] == "1"
            answers.append((answer.status_code, values))
        return answers

    answers = [answer for chunk in run_writers(8, work) for answer in chunk]
    acknowledged = sorted(v for status, values in answers if status == 200 for v in values)
    assert acknowledged, "no batch was stored"
    stored = series(redis_client, "lotes")
    assert sorted(v for _, v in stored) == acknowledged  # whole batches, each value once
    assert len({t for t, _ in stored}) == len(stored)


def test_a_reading_with_no_free_millisecond_is_told_to_come_back(api, redis_client):
    """Every millisecond from now to 3 s ahead already taken (readings sent with timestamps):
    a server-clock reading cannot move past MAX_CLOCK_BUMPS, so it is refused with 429 and
    Retry-After 1, in the caller's format, and nothing is stored; with a timestamp it fits."""
    now = int(time.time() * 1000)
    taken = [("ocupado", t, 1.0) for t in range(now - 5, now + 3000)]
    redis_client.ts().create("ocupado")
    for start in range(0, len(taken), 1000):
        redis_client.ts().madd(taken[start:start + 1000])
    for params, json_answer in (({"dato": "2.5", "sensor": "ocupado", "format": "json"}, True),
                                ({"dato": "2.5", "sensor": "ocupado"}, False)):
        refused = api.http.get(f"{api.base}/function/nuevo", params=params)
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
        assert "no free millisecond" in (refused.json()["error"] if json_answer else refused.text)
    assert 2.5 not in {v for _, v in series(redis_client, "ocupado")}
    fits = api.json("nuevo", dato="2.5", sensor="ocupado", timestamp=str(now - 10))
    assert fits.status_code == 200


def test_a_batch_that_does_not_fit_yet_is_told_when_to_come_back(api, redis_client):
    """2,000 server-clock readings fill the sensor's last 2 s of milliseconds: a second batch
    right after has no room (429, Retry-After 2, nothing stored) and fits once that has passed."""
    body = {"sensor": "lleno", "readings": [{"dato": i + 0.5} for i in range(2000)]}
    first = api.http.post(f"{api.base}/function/nuevo", json=body, timeout=30)
    refused = api.http.post(f"{api.base}/function/nuevo", json=body, timeout=30)
    assert first.status_code == 200
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "2"
    assert refused.headers["Content-Type"].startswith("text/html")
    assert "retry after 2 s" in refused.text
    assert len(series(redis_client, "lleno")) == 2000
    time.sleep(int(refused.headers["Retry-After"]))
    again = api.http.post(f"{api.base}/function/nuevo", json=body, params={"format": "json"},
                          timeout=30)
    assert again.status_code == 200 and again.json()["stored"] == 2000
    assert len(series(redis_client, "lleno")) == 4000


# --- many callers, each on a connection of its own ------------------------------------

CALLERS, CALLS = 32, 2000


def call_on_a_new_connection(port: int, index: int) -> tuple[float, str]:
    """Call `index` on a connection of its own, as urllib does: a GET or a POST with a JSON
    body, `Connection: close` or keep-alive (closed by the caller once answered), an HTML or
    a JSON answer. Returns the reading's value and the whole answer; an answer cut short
    raises (http.client's IncompleteRead, RemoteDisconnected)."""
    value = index + 0.375
    sensor = f"load-{index % 4}"
    timestamp = PAST + index * 10
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Connection": "close"} if index % 2 else {}
    as_json = index % 3 == 0
    try:
        if index % 4 < 2:
            query = urlencode({"sensor": sensor, "dato": repr(value), "timestamp": timestamp,
                               **({"format": "json"} if as_json else {})})
            connection.request("GET", f"/function/nuevo?{query}", headers=headers)
        else:
            body = json.dumps({"sensor": sensor, "dato": value, "timestamp": timestamp})
            connection.request("POST", "/function/nuevo" + ("?format=json" if as_json else ""),
                               body=body, headers={**headers, "Content-Type": "application/json"})
        answer = connection.getresponse()
        text = answer.read().decode()
    finally:
        connection.close()
    assert answer.status == 200, text
    assert text.endswith("}" if as_json else "</html>"), text[-200:]
    return value, text


@pytest.mark.slow
def test_many_callers_each_on_its_own_connection_are_all_answered_and_stored(api, redis_client):
    """2,000 calls from 32 threads, each on a new connection: every one answered whole, with
    the keep-alive and the `Connection: close` ones mixed, and every reading stored."""
    with ThreadPoolExecutor(CALLERS) as pool:
        answered = list(pool.map(lambda i: call_on_a_new_connection(api.port, i), range(CALLS)))
    stored = sorted(v for k in range(4) for _, v in series(redis_client, f"load-{k}"))
    assert stored == sorted(value for value, _ in answered)


# --- Redis killed in the middle of a write load -----------------------------------------

class Ledger:
    """What every writer was told: acknowledged (stored), maybe stored, or refused."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.acknowledged: list[float] = []
        self.maybe: list[float] = []
        self.unavailable: Counter[str] = Counter()  # function -> 503s without `stored: true`
        self.unexpected: list[str] = []
        self.after: Counter[str] = Counter()  # phase -> acknowledged

    def record(self, function: str, values: list[float], answer: requests.Response, phase: str):
        body = answer.json() if answer.headers.get("Content-Type") == "application/json" else {}
        with self.lock:
            if answer.status_code == 200 or (answer.status_code == 503 and body.get("stored")):
                self.acknowledged += values
                self.after[phase] += 1
            elif answer.status_code == 503 and "Redis is unavailable" in body.get("error", ""):
                self.maybe += values
                self.unavailable[function] += 1
            else:
                self.unexpected.append(f"{function} {answer.status_code} {answer.text[:200]}")


@pytest.fixture
def own_redis(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@contextmanager
def writers(base: str, ledger: Ledger, phase: list[str], count: int = 8) -> Iterator[None]:
    """`count` writers on sensor `horno` while the block runs: nuevo, detectar, and batches of
    5 with explicit timestamps, each reading a value no other request uses."""
    stop = threading.Event()
    values = itertools.count(1)
    take = threading.Lock()

    def fresh(n: int = 1) -> list[float]:
        with take:
            return [next(values) + 0.125 for _ in range(n)]

    def writer(index: int) -> None:
        with requests.Session() as http:
            while not stop.is_set():
                current = phase[0]
                if index % 4 == 3:  # a batch of 5, explicit timestamps of its own
                    batch = fresh(5)
                    readings = [{"dato": v, "timestamp": PAST + int(v) * 10} for v in batch]
                    answer = http.post(f"{base}/function/nuevo", params={"format": "json"},
                                       json={"sensor": "horno", "readings": readings}, timeout=15)
                    ledger.record("nuevo", batch, answer, current)
                else:
                    function = "detectar" if index % 4 == 2 else "nuevo"
                    value = fresh()
                    answer = write(http, base, function, "horno", value[0])
                    ledger.record(function, value, answer, current)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def wait_for_acknowledged(ledger: Ledger, phase: str, count: int, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while ledger.after[phase] < count and time.monotonic() < deadline:
        time.sleep(0.1)


def check_nothing_lost_nothing_twice(ledger: Ledger, stored: Counter) -> None:
    assert not ledger.unexpected, ledger.unexpected[:5]
    assert ledger.after["before"] > 50 and ledger.after["after"] >= 50  # recovered by itself
    assert ledger.unavailable["nuevo"] and ledger.unavailable["detectar"]  # 503 while down
    assert not [v for v, n in stored.items() if n > 1], "a reading was stored twice"
    lost = set(ledger.acknowledged) - set(stored)
    assert not lost, f"{len(lost)} acknowledged readings lost, e.g. {sorted(lost)[:5]}"
    assert set(stored) <= set(ledger.acknowledged) | set(ledger.maybe)  # nothing from nowhere


@pytest.mark.slow
def test_redis_killed_mid_load_loses_no_acknowledged_reading(own_redis, tmp_path):
    ledger, phase = Ledger(), ["before"]
    with LocalStack(own_redis, tmp_path) as stack, writers(stack.base, ledger, phase):
        time.sleep(1.5)
        phase[0] = "down"
        own_redis.kill()  # SIGKILL: no chance to flush anything
        time.sleep(1.0)
        for function in ("nuevo", "detectar", "listar"):
            answer = stack.json(function, sensor="otro",
                                **({} if function == "listar" else {"dato": "1"}))
            assert answer.status_code == 503, answer.text
            assert "Redis is unavailable" in answer.json()["error"]
        assert stack.http.get(f"{stack.base}/healthz").status_code == 503
        own_redis.start()  # same port, same data folder: the append-only file is replayed
        phase[0] = "after"
        wait_for_acknowledged(ledger, "after", 50)
    with own_redis.client() as client:
        check_nothing_lost_nothing_twice(ledger, Counter(v for _, v in series(client, "horno")))


# --- a cluster master killed in the middle of a write load ------------------------------

@pytest.fixture
def own_cluster(tmp_path):
    cluster = LocalCluster(tmp_path / "cluster").start()
    yield cluster
    cluster.stop()


def fail_over_mid_load(cluster: LocalCluster, tmp_path, **settings: str) -> tuple[Ledger, Counter]:
    """Writers on `horno` while its master's replica falls behind (frozen, its link cut: what
    the master writes from then on never reaches it), then the master is SIGKILLed, the
    replica, thawed, is promoted, and the old master started again. Returns what the writers
    were told and what is stored."""
    ledger, phase = Ledger(), ["before"]
    env = cluster_env(cluster, REDIS_TIMEOUT="1", **settings)  # WAIT gives up after 0.5 s
    with LocalStack(None, tmp_path, env=env) as stack, writers(stack.base, ledger, phase):
        time.sleep(1.5)
        master = master_of(cluster, "horno")
        replica = replica_of(cluster, master)
        phase[0] = "replica behind"
        replica.send_signal(signal.SIGSTOP)
        with master.client() as client:
            client.client_kill_filter(_type="slave")
        time.sleep(1.0)
        phase[0] = "down"
        master.kill()
        replica.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + 20
        while master_of(cluster, "horno") is not replica:  # promoted (node timeout 1 s)
            assert time.monotonic() < deadline, "the replica was not promoted"
            time.sleep(0.1)
        # Started again (as make up and Swarm do), the old master rejoins as the new one's
        # replica: until then no replica can confirm a write, and none is acknowledged.
        master.start()
        phase[0] = "after"
        wait_for_acknowledged(ledger, "after", 50)
    with replica.client() as client:
        return ledger, Counter(v for _, v in series(client, "horno"))


@pytest.mark.slow
def test_a_cluster_master_killed_mid_load_its_replica_promoted_loses_no_acknowledged_reading(
        own_cluster, tmp_path):
    """Each write waits for a replica (REDIS_WAIT_REPLICAS, 1 on a cluster): while the replica
    is behind, writes are not acknowledged (503), so the promoted replica has every one that was."""
    ledger, stored = fail_over_mid_load(own_cluster, tmp_path)
    check_nothing_lost_nothing_twice(ledger, stored)
    assert not ledger.after["replica behind"]  # nothing acknowledged that the replica lacked


@pytest.mark.slow
def test_without_waiting_for_a_replica_the_same_failover_loses_acknowledged_readings(
        own_cluster, tmp_path):
    """What the wait is for: Redis replicates asynchronously, so with REDIS_WAIT_REPLICAS=0
    the writes acknowledged while the replica was behind are gone once it is promoted."""
    ledger, stored = fail_over_mid_load(own_cluster, tmp_path, REDIS_WAIT_REPLICAS="0")
    assert ledger.after["replica behind"] > 0
    assert set(ledger.acknowledged) - set(stored)


# --- the model server failing in the middle of a load -----------------------------------

@pytest.fixture
def tfserving():
    with tfserving_standin.TFServingStub(DEFAULT_MODEL, hang_s=5.0) as stub:
        yield stub


FAULTS = [  # (name, how to switch it on), each in the middle of the load
    ("answers 503", lambda stub: setattr(stub, "fault", "unavailable")),
    ("drops connections", lambda stub: setattr(stub, "fault", "close")),
    ("model not loaded (404)", lambda stub: setattr(stub, "state", "LOADING")),
    ("hangs past the timeout", lambda stub: setattr(stub, "fault", "hang")),
]


def heal(stub) -> None:
    stub.fault, stub.state = "none", "AVAILABLE"


def model_server_load(stack: LocalStack, stub, redis_client) -> list[dict]:
    """nuevo and detectar writers while the model server goes through FAULTS; returns one
    record per request: function, phase (when it was sent and when answered), answer."""
    sensors = [f"sonda-{k}" for k in range(4)]
    for sensor in sensors:  # a full window each, so detectar can judge
        readings = [{"dato": 70 + i % 3, "timestamp": PAST + i * 1000} for i in range(WINDOW)]
        assert stack.post("nuevo", {"sensor": sensor, "readings": readings}).status_code == 200
    records, lock, stop, phase = [], threading.Lock(), threading.Event(), ["healthy"]

    def writer(index: int) -> None:
        function, sensor = ("detectar", "nuevo")[index % 2], sensors[index // 2]
        timestamp = PAST + 1_000_000 * (index + 1)
        with requests.Session() as http:
            while not stop.is_set():
                timestamp += 1000
                sent = phase[0]
                answer = write(http, stack.base, function, sensor, 70.5, timestamp)
                json_answer = answer.headers.get("Content-Type") == "application/json"
                with lock:
                    records.append({"function": function, "phase": (sent, phase[0]),
                                    "sensor": sensor, "timestamp": timestamp,
                                    "status": answer.status_code,
                                    "body": answer.json() if json_answer else {"text": answer.text}})

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        for name, switch_on in FAULTS:
            phase[0] = name
            switch_on(stub)
            time.sleep(0.8)
            phase[0] = "healthy"
            heal(stub)
            time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    return records


def check_every_answered_reading_is_stored(records: list[dict], redis_client) -> None:
    stamps = {sensor: Counter(t for t, _ in series(redis_client, sensor))
              for sensor in {r["sensor"] for r in records}}
    for record in records:
        stored = stamps[record["sensor"]][record["timestamp"]]
        if record["status"] == 200 or record["body"].get("stored"):
            assert stored == 1, record
        else:  # refused: the writers send each timestamp once, so it is not there
            assert stored == 0, record


@pytest.mark.slow
def test_model_server_failing_mid_load_nuevo_unaffected_detectar_stores_and_says_so(
        redis_server, redis_client, tfserving, tmp_path):
    env = {"SERVING_URL": tfserving.base_url, "SERVING_TIMEOUT": "0.3"}
    with LocalStack(redis_server, tmp_path, env=env) as stack:
        records = model_server_load(stack, tfserving, redis_client)
    nuevo = [r for r in records if r["function"] == "nuevo"]
    assert nuevo and all(r["status"] == 200 for r in nuevo), [r for r in nuevo if r["status"] != 200][:3]
    detectar = [r for r in records if r["function"] == "detectar"]
    for name, _ in FAULTS:
        during = [r for r in detectar if r["phase"] == (name, name)]
        assert during, f"no detectar call while the model server {name}"
        for record in during:
            body = record["body"]
            assert record["status"] == 503, record
            assert body["stored"] is True and body["anomaly"] is None, record
            assert "model server unavailable" in body["error"], record
            assert "do not send it again" in body["error"], record
    healthy = [r for r in detectar if r["phase"] == ("healthy", "healthy")]
    assert healthy and all(r["status"] == 200 and r["body"]["engine"] == "tfserving"
                           for r in healthy), [r for r in healthy if r["status"] != 200][:3]
    assert healthy[-1]["phase"] == ("healthy", "healthy")  # judged again once it recovered
    check_every_answered_reading_is_stored(records, redis_client)


@pytest.mark.slow
def test_model_server_failing_mid_load_falls_back_to_the_embedded_engine(
        redis_server, redis_client, tfserving, tmp_path):
    env = {"SERVING_URL": tfserving.base_url, "SERVING_TIMEOUT": "0.3",
           "SERVING_FALLBACK": "embedded"}
    with LocalStack(redis_server, tmp_path, env=env) as stack:
        records = model_server_load(stack, tfserving, redis_client)
    assert all(r["status"] == 200 for r in records), [r for r in records if r["status"] != 200][:3]
    detectar = [r for r in records if r["function"] == "detectar"]
    for name, _ in FAULTS:
        during = [r for r in detectar if r["phase"] == (name, name)]
        assert during and all(r["body"]["engine"] == "embedded (fallback)" for r in during), name
        assert all(r["body"]["anomaly"] in (True, False) for r in during)
    healthy = [r for r in detectar if r["phase"] == ("healthy", "healthy")]
    assert healthy and all(r["body"]["engine"] == "tfserving" for r in healthy)
    check_every_answered_reading_is_stored(records, redis_client)

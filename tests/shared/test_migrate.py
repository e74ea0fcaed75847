"""The one-time move of a sensor's derived keys to hash-tagged names, on a Redis holding data
in the old layout: one server (RENAMENX) and a cluster (the two names on different nodes)."""

from __future__ import annotations

import os
import subprocess
import sys

from shared.config import REPO_ROOT, load_settings
from shared.migrate import migrate
from shared.redis_connection import connect
from shared.store.keys import alerts_key, anomalies_key, detector_key
from tests.conftest import ON_BOTH_LAYOUTS, cluster_env
from tests.support.stack import LocalStack


def old_layout(client) -> None:
    """What the functions before hash tags left: readings, anomaly marks, detector state."""
    for sensor in ("mediciones", "horno-3", "a.b:c"):
        client.ts().add(sensor, 1_000, 20.0, labels={"kind": "reading", "sensor": sensor})
        client.ts().add(f"{sensor}/anomalies", 1_000, 20.0,
                        labels={"kind": "anomaly", "sensor": sensor})
        client.ts().add(f"{sensor}/alerts", 1_000, 20.0, labels={"kind": "alert", "sensor": sensor})
        client.hset(f"{sensor}/detector", mapping={"count": 740.0, "level_mean": 20.0})
    client.set("not a sensor/detector", "someone else's")  # a space: no sensor of ours


def connection_for(request, redis_layout):
    if redis_layout == "cluster":
        env = cluster_env(request.getfixturevalue("redis_cluster"))
    else:
        env = request.getfixturevalue("redis_server").env()
    return connect(load_settings(env))


@ON_BOTH_LAYOUTS
def test_old_keys_get_their_new_names_once_and_readings_stay(redis_client, redis_layout, request):
    old_layout(redis_client)
    connection = connection_for(request, redis_layout)
    assert migrate(connection) == {"renamed": 9}
    for sensor in ("mediciones", "horno-3", "a.b:c"):
        assert redis_client.ts().range(sensor, "-", "+") == [(1_000, 20.0)]  # never moves
        assert redis_client.ts().range(anomalies_key(sensor), "-", "+") == [(1_000, 20.0)]
        assert redis_client.ts().info(anomalies_key(sensor)).labels["kind"] == "anomaly"
        assert redis_client.ts().range(alerts_key(sensor), "-", "+") == [(1_000, 20.0)]
        assert redis_client.hgetall(detector_key(sensor)) == {b"count": b"740.0", b"level_mean": b"20.0"}
        for kind in ("anomalies", "alerts", "detector"):
            assert not redis_client.exists(f"{sensor}/{kind}")
    assert redis_client.get("not a sensor/detector") == b"someone else's"
    assert migrate(connection) == {}  # idempotent: nothing left to do


def test_when_both_names_exist_marks_are_merged_and_the_state_in_use_kept(redis_client, request):
    old_layout(redis_client)
    # functions of the new layout already judged horno-3 before the migration ran
    redis_client.ts().add(anomalies_key("horno-3"), 2_000, 95.0)
    redis_client.hset(detector_key("horno-3"), mapping={"count": 3.0})
    assert migrate(connection_for(request, "one server")) == {"renamed": 7, "merged": 2}
    assert redis_client.ts().range(anomalies_key("horno-3"), "-", "+") == [(1_000, 20.0), (2_000, 95.0)]
    assert redis_client.hgetall(detector_key("horno-3")) == {b"count": b"3.0"}
    assert not redis_client.exists("horno-3/anomalies", "horno-3/detector")


def test_make_up_renames_old_keys_before_serving(redis_client, redis_server, tmp_path):
    """listar shows the anomaly and alert marks the old layout held."""
    old_layout(redis_client)
    with LocalStack(redis_server, tmp_path) as stack:
        history = stack.json("listar", sensor="horno-3").json()
    assert history["readings"] == [{"timestamp": 1_000, "value": 20.0, "anomaly": True, "alert": True}]
    assert not redis_client.exists("horno-3/anomalies", "horno-3/detector")


def test_the_command_for_a_swarm_says_what_it_did(redis_client, redis_server):
    old_layout(redis_client)
    env = {**os.environ, **redis_server.env()}
    run = subprocess.run([sys.executable, "-m", "shared.migrate"], cwd=REPO_ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "9 renamed, 0 merged" in run.stderr

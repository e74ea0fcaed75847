"""detectar's alerts through `make up`'s forwarder to a real Alertmanager and its webhook
receiver: a spike after a day of normal readings arrives within 10 s with its labels and
annotations; three alerts raised while Alertmanager is down all arrive, each once, when it
is back; a silenced sensor's alert never reaches the receiver."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.infra.alerts.conftest import ALERTMANAGER, needs_alertmanager
from tests.support.alertmanager import Alertmanager, find_amtool, webhook
from tests.support.stack import LocalStack

pytestmark = needs_alertmanager
HOUR_MS, DAY_MS = 3_600_000, 86_400_000


@pytest.fixture(scope="module")
def receiver():
    with webhook() as (url, received):
        received.url = url
        yield received


@pytest.fixture(scope="module")
def alertmanager(receiver, tmp_path_factory):
    manager = Alertmanager(ALERTMANAGER, tmp_path_factory.mktemp("alertmanager"), receiver.url).start()
    yield manager
    manager.stop()


@pytest.fixture(scope="module")
def alerting(redis_server, alertmanager, tmp_path_factory):
    """`make up` (python -m infra.local) with ALERTMANAGER_URL: it runs the forwarder."""
    with LocalStack(redis_server, log_dir=tmp_path_factory.mktemp("alerting"),
                    env={"ALERTMANAGER_URL": alertmanager.url}) as running:
        yield running


def a_normal_day(api, sensor: str, end: int) -> None:
    """Readings every 5 minutes for the day before `end`, a small daily wave."""
    start = end - DAY_MS
    readings = [{"dato": 70 + (i % 12) / 10, "timestamp": start + i * 300_000} for i in range(288)]
    assert api.post("nuevo", {"sensor": sensor, "readings": readings}).status_code == 200


def spike(api, sensor: str, when: int) -> dict:
    verdict = api.json("detectar", sensor=sensor, dato="250.5", timestamp=str(when)).json()
    assert verdict["alert"] is True, verdict
    return verdict


def test_make_up_says_it_forwards(alerting, alertmanager):
    assert f"detectar's alerts go to Alertmanager {alertmanager.url}" in alerting.log()


def test_a_spike_after_a_normal_day_reaches_the_receiver_within_10_s(alerting, receiver):
    now = int(time.time() * 1000)
    a_normal_day(alerting, "horno-e2e", now)
    sent = time.monotonic()
    verdict = spike(alerting, "horno-e2e", now)
    found = receiver.wait_for(1, deadline_s=10, sensor="horno-e2e")
    assert found and time.monotonic() - sent <= 10, "not delivered within 10 s"
    alert = found[0]
    assert alert["labels"]["alertname"] in ("TemperatureAnomaly", "SensorDataQuality")
    assert alert["labels"]["kind"] and alert["labels"]["severity"] in ("critical", "warning")
    notes = alert["annotations"]
    assert notes["value"] == "250.50"
    assert notes["link"].endswith("/function/listar?sensor=horno-e2e&span=day")
    for field in ("expected", "explanation"):  # the verdict's own words, when it gives them
        if verdict.get(field) is not None:
            assert notes[field]
    if verdict.get("lower") is not None:
        assert notes["band"] == f"{verdict['lower']:.2f} to {verdict['upper']:.2f}"


def test_alerts_raised_while_alertmanager_is_down_all_arrive_once(alerting, alertmanager, receiver):
    now = int(time.time() * 1000)
    sensors = [f"horno-down-{k}" for k in range(3)]
    for sensor in sensors:
        a_normal_day(alerting, sensor, now)
    alertmanager.stop()
    try:
        started = time.monotonic()
        for sensor in sensors:
            spike(alerting, sensor, now)
        assert time.monotonic() - started < 5  # detectar never waits for Alertmanager
        time.sleep(2)
    finally:
        alertmanager.start()
    for sensor in sensors:
        assert len(receiver.wait_for(1, deadline_s=40, sensor=sensor)) == 1, sensor
    time.sleep(3)  # room for a duplicate
    got = [a["labels"]["sensor"] for a in receiver.alerts("firing") if a["labels"]["sensor"] in sensors]
    assert sorted(got) == sensors


@pytest.mark.skipif(find_amtool() is None, reason="amtool is not installed")
def test_a_silenced_sensor_is_held_back_while_another_arrives(alerting, alertmanager, receiver):
    subprocess.run([find_amtool(), "silence", "add", "sensor=horno-maintenance", "--duration=1h",
                    "--comment=maintenance", "--author=test",
                    f"--alertmanager.url={alertmanager.url}"], check=True, capture_output=True)
    now = int(time.time() * 1000)
    for sensor in ("horno-maintenance", "horno-working"):
        a_normal_day(alerting, sensor, now)
        spike(alerting, sensor, now)
    assert len(receiver.wait_for(1, deadline_s=15, sensor="horno-working")) == 1
    time.sleep(3)
    assert not [a for a in receiver.alerts() if a["labels"]["sensor"] == "horno-maintenance"]


def forwarders(stack: LocalStack) -> list[int]:
    """The pids of the stack's forwarder processes (children of `python -m infra.local`)."""
    assert stack.process is not None
    found = []
    for task in Path(f"/proc/{stack.process.pid}/task").glob("*"):
        try:
            children = [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
        for pid in children:
            try:
                if b"infra.alert_forwarder" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.append(pid)
            except OSError:
                pass
    return found


def test_a_forwarder_that_dies_is_started_again_and_loses_nothing(alerting, receiver):
    first, = forwarders(alerting)
    os.kill(first, signal.SIGKILL)
    now = int(time.time() * 1000)
    a_normal_day(alerting, "horno-restart", now)
    spike(alerting, "horno-restart", now)  # while no forwarder runs
    deadline = time.monotonic() + 20
    while forwarders(alerting) in ([], [first]):
        assert time.monotonic() < deadline, "the forwarder was not started again"
        time.sleep(0.1)
    assert len(receiver.wait_for(1, deadline_s=40, sensor="horno-restart")) == 1
    assert "alert forwarder exited" in alerting.log()


def test_a_bad_alertmanager_url_stops_make_up_with_a_message(redis_server, tmp_path):
    stack = LocalStack(redis_server, log_dir=tmp_path, env={"ALERTMANAGER_URL": "ftp://x"})
    with pytest.raises(RuntimeError, match=r"cannot start: ALERTMANAGER_URL='ftp://x' is not valid"):
        stack.__enter__()

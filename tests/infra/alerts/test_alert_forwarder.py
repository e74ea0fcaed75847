"""The forwarder against a real Alertmanager and a real webhook receiver: alerts arrive with
their labels and annotations, a resolved event resolves, nothing is lost while Alertmanager
or the forwarder is down, and a silenced sensor's alert is held back while others arrive."""

from __future__ import annotations

import subprocess
import time

import pytest

from infra.alert_forwarder import ForwarderConfigError, alertmanager_urls
from infra.alert_payload import alert_of, iso
from shared.outbox import entries, outbox_key
from tests.conftest import ON_BOTH_LAYOUTS
from tests.infra.alerts.conftest import needs_alertmanager
from tests.support.alertmanager import find_amtool

T0 = 1_700_000_000_000


def verdict(sensor: str, timestamp: int, value: float = 250.5, **fields) -> dict:
    """A judged verdict document as detectar answers it (the fields the outbox reads)."""
    return {"sensor": sensor, "timestamp": timestamp, "value": value, "alert": True,
            "kind": "high", "severity": 90, "expected": 70.2, "lower": 68.0, "upper": 72.4,
            "explanation": f"{value} is far above the 68.00 to 72.40 normal now.", **fields}


def record(store, document: dict) -> None:
    """The verdict written as detectar writes it (the verdict script: marks, band, outbox)."""
    band = tuple(document.get(name) for name in ("expected", "lower", "upper"))
    store.record_verdict(document["sensor"], document["timestamp"], document["value"],
                         bool(document["alert"]), bool(document["alert"]), {}, {},
                         band if None not in band else None, entries(document))


def pending(redis_client, sensor: str) -> int:
    """Entries the forwarder read and has not acknowledged (0 before it made its group)."""
    groups = redis_client.xinfo_groups(outbox_key(sensor)) if redis_client.exists(
        outbox_key(sensor)) else []
    return sum(group["pending"] for group in groups)


def test_urls_are_http_and_comma_separated():
    assert alertmanager_urls("http://a:9093, https://b/am/") == ["http://a:9093", "https://b/am"]
    for bad in ("", "a:9093", "ftp://a", "http://a:9093,,http://b"):
        with pytest.raises(ForwarderConfigError):
            alertmanager_urls(bad)


def test_an_alert_is_the_verdicts_labels_and_annotations():
    entry, = entries(verdict("horno-3", T0))
    alert = alert_of(entry, "http://pages.example")
    assert alert["labels"] == {"alertname": "TemperatureAnomaly", "sensor": "horno-3",
                               "kind": "high", "severity": "critical"}
    assert alert["startsAt"] == iso(T0) == "2023-11-14T22:13:20.000Z"
    notes = alert["annotations"]
    assert (notes["value"], notes["expected"], notes["band"]) == ("250.50", "70.20", "68.00 to 72.40")
    assert notes["link"] == alert["generatorURL"] == \
        "http://pages.example/function/listar?sensor=horno-3&span=day"
    stuck, = entries(verdict("horno-3", T0, kind="stuck", severity=20))
    assert alert_of(stuck, None)["labels"] | {} == {
        "alertname": "SensorDataQuality", "sensor": "horno-3", "kind": "stuck", "severity": "warning"}


def test_a_verdict_without_the_detail_fields_still_makes_an_alert():
    """Only what the verdict holds: the kind from `kinds`, no band annotation."""
    entry, = entries({"sensor": "s", "timestamp": T0, "value": 90.0, "alert": True,
                      "kinds": ["gross"]})
    alert = alert_of(entry, None)
    assert alert["labels"]["kind"] == "gross" and "band" not in alert["annotations"]
    assert entries({"sensor": "s", "timestamp": T0, "value": 1.0, "alert": False}) == []


@needs_alertmanager
@ON_BOTH_LAYOUTS
def test_an_alert_arrives_with_its_labels_and_annotations_then_resolves(
        redis_client, store, alertmanager, receiver, forwarding):
    with forwarding(alertmanager.url):
        record(store, verdict("horno-3", T0))
        alert, = receiver.wait_for(1, sensor="horno-3")
        assert alert["labels"]["kind"] == "high" and alert["startsAt"].startswith("2023-11-14T22:13:20")
        assert alert["annotations"]["explanation"].startswith("250.5 is far above")
        record(store, {"sensor": "horno-3", "timestamp": T0 + 60_000, "value": 70.1,
                              "alert": False, "resolved": "high"})
        resolved, = receiver.wait_for(1, status="resolved", sensor="horno-3")
        assert resolved["endsAt"].startswith("2023-11-14T22:14:20")
        deadline = time.monotonic() + 5
        while pending(redis_client, "horno-3") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pending(redis_client, "horno-3") == 0  # delivered: acknowledged
        assert redis_client.xlen(outbox_key("horno-3")) == 2  # kept as the sensor's alert log


@needs_alertmanager
def test_alerts_raised_while_alertmanager_is_down_arrive_once_it_is_back(
        redis_client, store, alertmanager, receiver, forwarding):
    with forwarding(alertmanager.url, resend_s=1.0):
        alertmanager.stop()
        for k, sensor in enumerate(("horno-1", "horno-2", "horno-3")):
            record(store, verdict(sensor, T0 + k))
        time.sleep(2)  # the forwarder has tried, and tries again (and re-sends) meanwhile
        assert receiver.alerts() == []
        alertmanager.start()
        received = receiver.wait_for(3)
        time.sleep(3)  # room for any duplicate (group_interval is 1 s, re-sends every 1 s)
    assert sorted(a["labels"]["sensor"] for a in receiver.alerts("firing")) == \
        ["horno-1", "horno-2", "horno-3"], received


@needs_alertmanager
def test_an_entry_read_but_not_delivered_is_delivered_by_the_next_forwarder(
        redis_client, store, alertmanager, receiver, forwarding):
    alertmanager.stop()
    with forwarding(alertmanager.url):
        record(store, verdict("horno-3", T0))
        deadline = time.monotonic() + 5
        while not pending(redis_client, "horno-3"):
            assert time.monotonic() < deadline, "the forwarder never read the entry"
            time.sleep(0.05)
    alertmanager.start()
    with forwarding(alertmanager.url):
        assert len(receiver.wait_for(1, sensor="horno-3")) == 1


@needs_alertmanager
def test_every_alertmanager_of_the_list_gets_every_alert(
        redis_client, store, alertmanager, receiver, forwarding, tmp_path):
    from tests.support.alertmanager import Alertmanager
    (tmp_path / "second").mkdir()
    second = Alertmanager(alertmanager.executable, tmp_path / "second", receiver.url).start()
    try:
        with forwarding(alertmanager.url, second.url):
            record(store, verdict("horno-3", T0))
            deadline = time.monotonic() + 10
            while not (alertmanager.alerts() and second.alerts()):
                assert time.monotonic() < deadline, "an Alertmanager never got the alert"
                time.sleep(0.1)
    finally:
        second.stop()


@needs_alertmanager
@pytest.mark.skipif(find_amtool() is None, reason="amtool is not installed (it comes with "
                                                   "prometheus-alertmanager)")
def test_a_silenced_sensors_alert_is_held_back_while_others_arrive(
        redis_client, store, alertmanager, receiver, forwarding):
    subprocess.run([find_amtool(), "silence", "add", "sensor=horno-3", "--duration=2h",
                    "--comment=maintenance", "--author=test",
                    f"--alertmanager.url={alertmanager.url}"], check=True, capture_output=True)
    with forwarding(alertmanager.url):
        record(store, verdict("horno-3", T0))
        record(store, verdict("horno-4", T0))
        assert len(receiver.wait_for(1, sensor="horno-4")) == 1
        deadline = time.monotonic() + 10
        while not alertmanager.alerts() or len(alertmanager.alerts()) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(2)  # two group intervals: a notification for horno-3 would have come
    states = {a["labels"]["sensor"]: a["status"]["state"] for a in alertmanager.alerts()}
    assert states == {"horno-3": "suppressed", "horno-4": "active"}  # it reached Alertmanager
    assert receiver.alerts() and all(a["labels"]["sensor"] == "horno-4" for a in receiver.alerts())


@needs_alertmanager
def test_an_alert_alertmanager_refuses_for_good_does_not_hold_back_the_next(
        redis_client, store, alertmanager, receiver, forwarding):
    """A close whose time is before its alert's start is refused (400) for good: it is
    logged and acknowledged, and the alerts after it are delivered."""
    with forwarding(alertmanager.url):
        record(store, verdict("horno-3", T0 + 60_000))
        assert len(receiver.wait_for(1, sensor="horno-3")) == 1
        record(store, {"sensor": "horno-3", "timestamp": T0, "value": 70.1, "alert": False,
                       "resolved": "high"})  # ends before it started
        record(store, verdict("horno-4", T0))
        assert len(receiver.wait_for(1, sensor="horno-4")) == 1
        deadline = time.monotonic() + 5
        while pending(redis_client, "horno-3") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pending(redis_client, "horno-3") == 0


@needs_alertmanager
def test_more_pending_entries_than_one_read_are_all_delivered_after_a_restart(
        redis_client, store, alertmanager, receiver, forwarding):
    """A forwarder stopped with 150 entries of one sensor read and not delivered
    (Alertmanager down): the next one reads all of its pending entries, not the first
    hundred again and again."""
    alertmanager.stop()
    with forwarding(alertmanager.url):
        for k in range(150):
            record(store, verdict("horno-3", T0 + k, kind=f"kind-{k}"))
        deadline = time.monotonic() + 20
        while pending(redis_client, "horno-3") < 150:
            assert time.monotonic() < deadline, "the forwarder never read every entry"
            time.sleep(0.1)
    alertmanager.start()
    with forwarding(alertmanager.url):
        kinds = {a["labels"]["kind"] for a in receiver.wait_for(150, deadline_s=30)}
    assert kinds == {f"kind-{k}" for k in range(150)}

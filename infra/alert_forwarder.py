"""The alert outbox (shared/outbox.py) -> Prometheus Alertmanager, with retries until acknowledged.

    ALERTMANAGER_URL=http://127.0.0.1:9093 python -m infra.alert_forwarder

`make up` runs it as a supervised process when ALERTMANAGER_URL is set; on Swarm it is the
`alert-forwarder` service (infra/swarm/alerts.yml). detectar never waits for it: the verdict
script records each alert in the sensor's outbox stream, and this process delivers it.

- Reads every sensor's `{<sensor>}/outbox` with a consumer group (found by SCAN at start
  and every SCAN_S, and at once through the `/outbox` channel the verdict script PUBLISHes
  to); its own pending entries are read again after a restart, so an entry read but not
  delivered is never lost.
- POSTs each alert to `<url>/api/v2/alerts` of EVERY Alertmanager in ALERTMANAGER_URL
  (comma-separated, as Prometheus does: the members of an Alertmanager cluster share
  silences and notifications, not alerts). Each one that does not answer 2xx gets the
  alert again, with a backoff from 0.5 s doubling to 30 s, until it does; the entry is then
  acknowledged (XACK). It stays in the stream as the sensor's alert log (listar's table of
  alerts), which keeps the newest 1,000 (shared/outbox.py). An Alertmanager removed for good must be
  removed from ALERTMANAGER_URL too, or its entries wait for it.
- Re-sends are idempotent: an alert is its label set (alertname, sensor, kind, severity)
  and its startsAt, the reading's time, so Alertmanager merges a copy into the alert it has.
- An open event is sent again every RESEND_S with endsAt 4 x RESEND_S ahead, as Prometheus
  re-sends a firing alert: an Alertmanager restarted meanwhile (it keeps silences and its
  notification log on disk, not alerts) has it again within RESEND_S, and notifies nobody
  twice. The open events live in the hash `/alerts/firing` (`<sensor>\\n<kind>` -> the alert),
  the forwarder's own state. The reading that closes an event sends the same alert with
  endsAt = that reading's time.
Settings: ALERTMANAGER_URL; PAGES_URL (the base of the links to a sensor's page, e.g. the
gateway's public URL); the functions' Redis settings (REDIS_HOST, REDIS_CLUSTER, ...).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import redis
import requests

from shared.config import load_settings
from shared.outbox import CHANNEL, GROUP, OUTBOX_PATTERN, outbox_key, sensor_of
from shared.redis_connection import RedisConnection, connect

from .alert_payload import alert_of, iso, two_decimals

log = logging.getLogger(__name__)

FIRING_KEY = "/alerts/firing"
CONSUMER = "forwarder"  # one forwarder at a time: a fixed name finds its pending entries again
FIRST_BACKOFF_S, LONGEST_BACKOFF_S = 0.5, 30.0
RESEND_S, SCAN_S = 60.0, 30.0
READ_COUNT = 100
MAX_POST = 500  # alerts per POST


class ForwarderConfigError(ValueError):
    """An ALERTMANAGER_URL or PAGES_URL the forwarder cannot work with."""


def alertmanager_urls(raw: str) -> list[str]:
    """ALERTMANAGER_URL: one or more http(s) URLs, comma-separated (a path prefix is kept)."""
    urls = []
    for item in raw.split(","):
        url = item.strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ForwarderConfigError(f"ALERTMANAGER_URL={raw!r} is not valid: expected "
                                       "http(s)://host:port, comma-separated")
        urls.append(url)
    return urls


def _decoded(fields: Mapping[bytes, bytes]) -> dict[str, str]:
    return {key.decode(): value.decode() for key, value in fields.items()}


@dataclass
class Delivery:
    """One outbox entry on its way: the Alertmanagers that have not acknowledged it yet."""

    sensor: str
    entry_id: bytes
    alert: dict[str, Any] | None  # None: nothing to send (a resolve of an unknown event)
    waiting: set[str]
    resolves: str | None = None  # the firing field this entry closes


@dataclass
class Target:
    """One Alertmanager: what it still has to receive, and when to try it again."""

    url: str
    queue: list[Delivery] = field(default_factory=list)
    resends: list[dict[str, Any]] = field(default_factory=list)
    next_try: float = 0.0
    backoff_s: float = FIRST_BACKOFF_S


class AlertForwarder:
    def __init__(self, connection: RedisConnection, urls: list[str], pages_url: str | None = None,
                 resend_s: float = RESEND_S, scan_s: float = SCAN_S, timeout_s: float = 5.0):
        self.connection = connection
        self.targets = [Target(url) for url in urls]
        self.pages_url = pages_url.rstrip("/") if pages_url else None
        self.resend_s, self.scan_s, self.timeout_s = resend_s, scan_s, timeout_s
        self.http = requests.Session()
        self.known: set[str] = set()  # sensors whose outbox has our group
        self.due: set[str] = set()  # sensors whose outbox may hold new entries
        self.resolving: set[str] = set()  # firing fields whose close is on its way
        self.queued: set[tuple[str, bytes]] = set()  # entries on their way (read again: skipped)
        self._pubsub: redis.client.PubSub | None = None
        self._next_scan = self._next_resend = 0.0
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # --- finding entries ---------------------------------------------------------------------
    def _listen(self, wait_s: float) -> None:
        """Wait up to `wait_s` for the verdict script's PUBLISH; note the sensors named."""
        try:
            channel = self._pubsub
            if channel is None:
                channel = self.connection.masters()[0].pubsub(ignore_subscribe_messages=True)
                channel.subscribe(CHANNEL)
                self._pubsub = channel
                self._next_scan = 0.0  # messages may have been missed meanwhile
            message = channel.get_message(timeout=wait_s)
            while message:
                if message["type"] == "message":
                    self.due.add(message["data"].decode())
                message = channel.get_message(timeout=0)
        except (redis.RedisError, OSError) as exc:
            log.warning("alerts: lost the outbox channel (%s); reconnecting", exc)
            self._close_pubsub()
            self.stopping.wait(min(wait_s, 1.0))

    def _close_pubsub(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(redis.RedisError, OSError):
                self._pubsub.close()
            self._pubsub = None

    def _scan(self) -> None:
        for client in self.connection.masters():
            for key in client.scan_iter(match=OUTBOX_PATTERN, count=1000, _type="STREAM"):
                self.due.add(sensor_of(key.decode()))

    def _read(self, sensor: str) -> None:
        """Queue the sensor's undelivered entries: our pending ones first time, then new ones."""
        key = outbox_key(sensor)
        client = self.connection.master_client(key)
        if sensor not in self.known:
            try:
                client.xgroup_create(key, GROUP, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            self.known.add(sensor)
            start = "0"  # what this consumer read before a restart and never acknowledged
        else:
            start = ">"
        while True:
            reply: Any = client.xreadgroup(GROUP, CONSUMER, {key: start}, count=READ_COUNT)
            found = reply[0][1] if reply else []
            for entry_id, fields in found:
                if fields:  # an entry deleted while pending comes back empty
                    self._queue(sensor, entry_id, _decoded(fields))
                else:
                    client.xack(key, GROUP, entry_id)
            if start == ">":
                if len(found) < READ_COUNT:
                    return
            else:  # our pending entries, after the last one read
                start = found[-1][0] if len(found) == READ_COUNT else ">"

    def _queue(self, sensor: str, entry_id: bytes, entry: dict[str, str]) -> None:
        if (sensor, entry_id) in self.queued:  # pending entries read again after a Redis error
            return
        self.queued.add((sensor, entry_id))
        firing_field = f"{sensor}\n{entry['kind']}"
        client = self.connection.master_client(FIRING_KEY)
        resolves = None
        if entry["event"] == "alert":
            alert = alert_of(entry, self.pages_url)
            client.hset(FIRING_KEY, firing_field, json.dumps(alert))
            self.resolving.discard(firing_field)
        else:
            stored: bytes | None = client.hget(FIRING_KEY, firing_field)  # type: ignore[assignment]
            if stored is None:
                log.warning("alerts: %s's %s event closed, but no alert of it is open here",
                            sensor, entry["kind"])
                alert = None
            else:
                alert = {**json.loads(stored), "endsAt": iso(int(entry["timestamp"]))}
                alert["annotations"]["resolved_by"] = two_decimals(entry["value"])
                resolves = firing_field
                self.resolving.add(firing_field)
        delivery = Delivery(sensor, entry_id, alert, {t.url for t in self.targets} if alert else set(),
                            resolves)
        if not delivery.waiting:
            self._done(delivery)
            return
        for target in self.targets:
            target.queue.append(delivery)

    # --- delivering ----------------------------------------------------------------------------
    def _done(self, delivery: Delivery) -> None:
        key = outbox_key(delivery.sensor)
        client = self.connection.master_client(key)
        # Only if no newer alert of that kind was read meanwhile (it opened the event again).
        if delivery.resolves and delivery.resolves in self.resolving:
            self.connection.master_client(FIRING_KEY).hdel(FIRING_KEY, delivery.resolves)
            self.resolving.discard(delivery.resolves)
        client.xack(key, GROUP, delivery.entry_id)
        self.queued.discard((delivery.sensor, delivery.entry_id))

    def _post(self, target: Target, alerts: list[dict[str, Any]]) -> bool:
        try:
            answer = self.http.post(f"{target.url}/api/v2/alerts", json=alerts,
                                    timeout=self.timeout_s)
        except requests.RequestException as exc:
            log.warning("alerts: %s unreachable (%s); trying again in %.1f s", target.url,
                        type(exc).__name__, target.backoff_s)
            return False
        if 200 <= answer.status_code < 300:
            return True
        if 400 <= answer.status_code < 500 and answer.status_code not in (408, 429):
            # Alertmanager keeps the valid alerts of a batch and refuses the others, which
            # would be refused again: say so, and do not hold the ones after them back.
            log.error("alerts: %s refused some alerts for good (%d %s); the others were taken",
                      target.url, answer.status_code, answer.text[:300].replace("\n", " "))
            return True
        log.warning("alerts: %s answered %d %s; trying again in %.1f s", target.url,
                    answer.status_code, answer.text[:200].replace("\n", " "), target.backoff_s)
        return False

    def _deliver(self, now: float) -> None:
        for target in self.targets:
            while (target.queue or target.resends) and target.next_try <= now:
                batch = target.queue[:MAX_POST]
                resends = target.resends[:MAX_POST - len(batch)]
                if not self._post(target, [d.alert for d in batch if d.alert] + resends):
                    target.next_try = now + target.backoff_s
                    target.backoff_s = min(2 * target.backoff_s, LONGEST_BACKOFF_S)
                    break
                target.backoff_s = FIRST_BACKOFF_S
                del target.queue[:len(batch)]
                del target.resends[:len(resends)]
                for delivery in batch:
                    delivery.waiting.discard(target.url)
                    if not delivery.waiting:
                        self._done(delivery)

    def _queue_resends(self) -> None:
        """Every open event again, endsAt ahead (see the module's doc)."""
        firing: dict[bytes, bytes] = self.connection.master_client(FIRING_KEY).hgetall(  # type: ignore[assignment]
            FIRING_KEY)
        ends = iso(time.time() * 1000 + 4 * self.resend_s * 1000)
        alerts = [{**json.loads(alert), "endsAt": ends} for name, alert in firing.items()
                  if name.decode() not in self.resolving]
        for target in self.targets:
            target.resends = list(alerts)

    def step(self, wait_s: float = 0.2) -> None:
        """One round: hear of new entries, read them, send what is due."""
        self._listen(wait_s)
        now = time.monotonic()
        if now >= self._next_scan:
            self._scan()
            self._next_scan = now + self.scan_s
        while self.due:
            self._read(self.due.pop())
        if now >= self._next_resend:
            self._queue_resends()
            self._next_resend = now + self.resend_s
        self._deliver(now)

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.step()
            except redis.RedisError as exc:  # Redis away: nothing is lost, try again soon
                log.warning("alerts: Redis: %s; trying again in 1 s", exc)
                self.known.clear()  # read our pending entries again once it is back
                self._close_pubsub()
                self.stopping.wait(1.0)

    def start(self) -> AlertForwarder:
        self._thread = threading.Thread(target=self.run, name="alert-forwarder", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._close_pubsub()
        self.http.close()


def forwarder_from_env(env: Mapping[str, str]) -> AlertForwarder:
    raw = env.get("ALERTMANAGER_URL", "").strip()
    if not raw:
        raise ForwarderConfigError("ALERTMANAGER_URL is not set")
    pages = env.get("PAGES_URL", "").strip() or None
    if pages and urlsplit(pages).scheme not in ("http", "https"):
        raise ForwarderConfigError(f"PAGES_URL={pages!r} is not valid: expected an http(s) URL")
    return AlertForwarder(connect(load_settings(env)), alertmanager_urls(raw), pages)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        forwarder = forwarder_from_env(os.environ)
    except (ForwarderConfigError, ValueError) as exc:
        raise SystemExit(f"alert forwarder: {exc}") from None
    signal.signal(signal.SIGTERM, lambda *_: forwarder.stopping.set())
    signal.signal(signal.SIGINT, lambda *_: forwarder.stopping.set())
    log.info("alerts: outbox -> %s", ", ".join(t.url for t in forwarder.targets))
    forwarder.run()
    forwarder.stop()


if __name__ == "__main__":
    main()

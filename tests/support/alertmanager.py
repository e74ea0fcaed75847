"""A real Prometheus Alertmanager (Debian's `prometheus-alertmanager`) routing every alert to
a webhook receiver run by the test: its own data folder, a free port, clustering off, and
short group timings so that a notification comes within a second or two."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import requests

from infra.local import processes
from infra.local.redis_server import free_port
from tests.support.http_server import http_server

NAMES = ("prometheus-alertmanager", "alertmanager")


def find_alertmanager() -> str | None:
    return next((found for name in NAMES if (found := shutil.which(name))), None)


def find_amtool() -> str | None:
    return shutil.which("amtool")


class Receiver:
    """What the webhook received: every notification, and the alerts in them."""

    def __init__(self):
        self.notifications: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def alerts(self, status: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [alert for note in self.notifications for alert in note["alerts"]
                    if status is None or alert["status"] == status]

    def wait_for(self, count: int, status: str = "firing", deadline_s: float = 15.0,
                 **labels: str) -> list[dict[str, Any]]:
        """The received alerts of `status` with these labels, once there are `count` (or the
        deadline passed)."""
        deadline = time.monotonic() + deadline_s
        while True:
            found = [a for a in self.alerts(status)
                     if all(a["labels"].get(k) == v for k, v in labels.items())]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)


@contextmanager
def webhook() -> Iterator[tuple[str, Receiver]]:
    """A real HTTP server taking Alertmanager's webhook POSTs: (its URL, what it received)."""
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with receiver.lock:
                receiver.notifications.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    with http_server(Handler) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}/", receiver


CONFIG = """route:
  receiver: test
  group_by: [alertname, sensor, kind]
  group_wait: 200ms
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: test
    webhook_configs:
      - url: {url}
        send_resolved: true
"""


class Alertmanager:
    """The real binary on 127.0.0.1:<free port>; stop() and start() again keep its port and
    data folder (silences and the notification log), as a restart does."""

    def __init__(self, executable: str, folder: Path, webhook_url: str):
        self.executable = executable
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = folder / "alertmanager.yml"
        self.config.write_text(CONFIG.format(url=webhook_url))
        self.process: subprocess.Popen | None = None

    def start(self) -> Alertmanager:
        with open(self.folder / "alertmanager.log", "ab") as log:  # the child keeps its copy
            self.process = subprocess.Popen(
                [self.executable, f"--config.file={self.config}",
                 f"--storage.path={self.folder / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"alertmanager exited:\n{self.log()}")
            try:
                if requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"alertmanager did not become ready:\n{self.log()}")

    def stop(self) -> None:
        processes.stop(self.process)

    def log(self) -> str:
        return (self.folder / "alertmanager.log").read_text(errors="replace")[-3000:]

    def alerts(self) -> list[dict[str, Any]]:
        return requests.get(f"{self.url}/api/v2/alerts", timeout=5).json()

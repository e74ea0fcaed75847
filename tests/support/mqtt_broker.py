"""A real MQTT broker for the tests: amqtt (pure Python, from PyPI) as its own process.

It listens on 127.0.0.1 on a free port; `restart()` keeps the port, so a client that was
connected sees what a broker restart looks like.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from infra.local import processes
from infra.local.redis_server import free_port

CONFIG = """listeners:
  default:
    type: tcp
    bind: 127.0.0.1:{port}
plugins:
  amqtt.plugins.authentication.AnonymousAuthPlugin:
    allow_anonymous: true
"""


class MqttBroker:
    def __init__(self, work_dir: Path):
        self.work_dir = work_dir
        self.port = free_port()
        self.url = f"tcp://127.0.0.1:{self.port}"
        self.config = work_dir / f"amqtt-{self.port}.yaml"
        self.log_path = work_dir / f"amqtt-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 20.0) -> MqttBroker:
        self.config.write_text(CONFIG.format(port=self.port))
        with open(self.log_path, "ab") as log:  # the broker writes to its own copy
            self.process = subprocess.Popen(
                [sys.executable, "-m", "amqtt.scripts.broker_script", "-c", str(self.config)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"amqtt exited:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"amqtt did not listen on {self.port}:\n{self.log()}")

    def stop(self) -> None:
        processes.stop(self.process)

    def restart(self) -> MqttBroker:
        self.stop()
        return self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def __enter__(self) -> MqttBroker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def publish(url_port: int, messages: list[tuple[str, bytes | str]], qos: int = 1) -> None:
    """Publish (topic, payload) pairs in order and wait until the broker has each one."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.connect("127.0.0.1", url_port, keepalive=30)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=qos).wait_for_publish(timeout=10)
    finally:
        client.disconnect()
        client.loop_stop()

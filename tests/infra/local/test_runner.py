"""`make up` (python -m infra.local) as a user starts it: its own Redis or a clear refusal,
options checked, its URL recorded for the tools, and a gateway idle sockets cannot shut out."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from infra.local.redis_server import RedisServer, free_port
from infra.local.stack_state import gateway_url
from infra.local.workers import CHANNEL_TIMEOUT_S
from shared.config import REPO_ROOT
from tests.support.stack import LocalStack


def run_up(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """`python -m infra.local` to its end (a refusal), stderr and stdout as text."""
    return subprocess.run([sys.executable, "-m", "infra.local", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "API_TOKEN_FILE": "", **(env or {})})


def gone(pid: int) -> bool:
    """The process has exited (a zombie not yet reaped by its parent counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z"
    except FileNotFoundError:
        return True


def wait_until(condition, what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for: {what}"
        time.sleep(0.1)


# --- options ------------------------------------------------------------------------------

@pytest.mark.parametrize("args, env, named", [
    (["--threads", "0"], {}, "--threads: '0' is not valid: expected a whole number from 1"),
    (["--threads", "-2"], {}, "--threads: '-2' is not valid"),
    (["--workers", "0"], {}, "--workers: '0' is not valid"),
    (["--port", "70000"], {}, "--port: '70000' is not valid"),
    (["--async-queue", "x"], {}, "--async-queue: 'x' is not valid"),
    (["--stack-file", "missing.yml"], {}, "'missing.yml' is not a file"),
    ([], {"GATEWAY_WORKERS": "abc"}, "GATEWAY_WORKERS='abc' is not valid: expected a whole number"),
    ([], {"GATEWAY_THREADS": "-3"}, "GATEWAY_THREADS='-3' is not valid"),
    ([], {"PORT": "http"}, "PORT='http' is not valid"),
    ([], {"LOCAL_REDIS_PORT": "0x10"}, "LOCAL_REDIS_PORT='0x10' is not valid"),
    ([], {"ASYNC_QUEUE_SIZE": "0"}, "ASYNC_QUEUE_SIZE='0' is not valid"),
])
def test_a_bad_option_or_variable_stops_the_start_with_one_line(args, env, named):
    result = run_up(*args, env=env)
    assert result.returncode == 2
    assert named in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# --- the stack's own Redis ------------------------------------------------------------------

def test_a_port_another_redis_answers_on_is_refused_and_nothing_is_written_there(redis_server, tmp_path):
    redis_server.client().flushall()
    result = run_up("--port", "0", "--redis-port", str(redis_server.port),
                    "--data-dir", str(tmp_path / "redis"), env={"REDIS_HOST": ""})
    assert result.returncode == 2
    assert f"port {redis_server.port} is already in use by another program" in result.stderr
    assert "Traceback" not in result.stderr
    assert redis_server.client().dbsize() == 0 and redis_server.process.poll() is None


def test_a_second_stack_on_the_same_data_folder_is_refused(tmp_path):
    with LocalStack(None, tmp_path) as first:
        assert first.json("nuevo", dato="1", timestamp="1600000001000").status_code == 200
        result = run_up("--port", "0", "--redis-port", str(free_port()),
                        "--data-dir", str(first.data_dir), env={"REDIS_HOST": ""})
        assert result.returncode == 2
        assert f"{first.data_dir} is in use by the stack of process {first.process.pid}" in result.stderr
        assert first.json("listar").json()["total"] == 1  # the first one is untouched


def test_a_killed_supervisor_takes_its_redis_and_workers_with_it(tmp_path):
    """SIGKILL leaves no handler to run: the kernel stops the children (PR_SET_PDEATHSIG),
    the folder's lock goes with them, and the next stack on that folder has every reading."""
    with LocalStack(None, tmp_path) as stack:
        for i in range(5):
            assert stack.json("nuevo", dato=str(i), timestamp=str(1_600_000_000_000 + 1000 * (i + 1))).status_code == 200
        redis_pid = stack.redis_client().info("server")["process_id"]
        workers = [int(pid) for pid in Path(f"/proc/{stack.process.pid}/task/{stack.process.pid}/children")
                   .read_text().split() if int(pid) != redis_pid]
        assert workers
        stack.process.kill()
        stack.process.wait()
        for pid in [redis_pid, *workers]:
            wait_until(functools.partial(gone, pid), f"process {pid} of the killed stack to exit")
    with LocalStack(None, tmp_path) as again:  # same folder: the lock was released
        assert again.json("listar").json()["total"] == 5


def test_sighup_stops_the_stack_cleanly(tmp_path):
    with LocalStack(None, tmp_path) as stack:
        redis_pid = stack.redis_client().info("server")["process_id"]
        stack.process.send_signal(signal.SIGHUP)
        assert stack.process.wait(timeout=30) == 0
        assert gone(redis_pid) and not stack.state_file.exists()


class PlainRedis(RedisServer):
    """A redis-server without the TimeSeries module: what a foreign Redis often is."""

    def command(self) -> list[str]:
        command = super().command()
        at = command.index("--loadmodule")
        return command[:at] + command[at + 2:]


def test_healthz_is_503_naming_why_when_redis_lacks_timeseries(tmp_path):
    plain = PlainRedis(tmp_path / "plain").start()
    try:
        with LocalStack(plain, tmp_path, ready_status=503) as stack:
            health = stack.http.get(f"{stack.base}/healthz")
            assert health.status_code == 503 and "no RedisTimeSeries module" in health.text
            assert stack.json("nuevo", dato="1").status_code != 200
    finally:
        plain.stop()


def test_healthz_is_503_when_redis_refuses_the_password(redis_server, tmp_path):
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password")
    env = {"REDIS_PASSWORD_FILE": str(wrong)}
    with LocalStack(redis_server, tmp_path, env=env, ready_status=503) as stack:
        health = stack.http.get(f"{stack.base}/healthz")
        assert health.status_code == 503 and "refused our credentials" in health.text


# --- the URL the tools use ------------------------------------------------------------------

def test_the_running_stack_is_recorded_for_the_tools_and_forgotten_when_it_stops(tmp_path):
    with LocalStack(None, tmp_path) as stack:
        record = json.loads(stack.state_file.read_text())
        assert record == {"url": stack.base, "pid": stack.process.pid, "redis": {
            "nodes": [["127.0.0.1", stack.redis_port]], "cluster": False,
            "password_file": str(stack.data_dir / "password")}}  # for `make redis-cli`
        assert gateway_url(None, stack.state_file) == (
            stack.base, f"gateway {stack.base}: the running `make up` ({stack.state_file})")
        assert gateway_url("http://elsewhere:8080/", stack.state_file) == ("http://elsewhere:8080", None)
        simulated = subprocess.run(
            [sys.executable, "-m", "infra.simulator", "--via", "nuevo", "--sensors", "1",
             "--kinds", "spike", "--no-progress", "--report", str(tmp_path / "report.json")],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
            env={**os.environ, "LOCAL_STACK_FILE": str(stack.state_file), "OPENFAAS_URL": ""})
        assert simulated.returncode == 0, simulated.stderr
        assert simulated.stdout.startswith(f"gateway {stack.base}: the running `make up`")
        assert stack.redis_client().dbsize() > 0  # its readings went to this stack
    assert not stack.state_file.exists()
    url, why = gateway_url(None, stack.state_file)
    assert url == "http://127.0.0.1:8080" and "no running `make up`" in why


def test_a_record_left_by_a_killed_stack_is_ignored(tmp_path):
    state = tmp_path / "stack.json"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    state.write_text(json.dumps({"url": "http://127.0.0.1:1", "pid": dead.pid}))
    assert gateway_url(None, state)[0] == "http://127.0.0.1:8080"


# --- idle and slow connections ------------------------------------------------------------

def open_sockets(port: int, count: int, first_bytes: bytes = b"") -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if first_bytes:
            sock.sendall(first_bytes)
        sockets.append(sock)
    return sockets


def closed_by_server(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def held_connections(stack: LocalStack) -> int:
    """Sockets the stack's processes hold open (its gateway workers' connections, mostly)."""
    assert stack.process is not None, "the stack is not running"
    parent = stack.process.pid
    pids = [parent, *map(int, Path(f"/proc/{parent}/task/{parent}/children").read_text().split())]
    held = 0
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):  # closed meanwhile
                held += os.readlink(fd).startswith("socket:")
    return held


@pytest.mark.slow
def test_idle_and_slow_sockets_cannot_shut_a_new_caller_out(tmp_path):
    """Thousands of connections that send nothing, or half a request: the workers take them
    in as they come, a new request is answered all along, and each of them is closed once it
    has been quiet for CHANNEL_TIMEOUT_S (nothing held for ever)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 3000:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(3000, hard), hard))
    slow_count = min(1200, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 1200)
    assert slow_count > 600, "too few file descriptors to open a thousand sockets and more"
    with LocalStack(None, tmp_path, args=["--workers", "2"]) as stack:
        idle = open_sockets(stack.port, 800)  # under the listen backlog: all connect at once
        wait_until(lambda: held_connections(stack) >= len(idle), "the workers to accept them")
        slow = open_sockets(stack.port, slow_count, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: ")
        later: list[socket.socket] = []
        try:
            wait_until(lambda: held_connections(stack) >= len(idle) + len(slow),
                       "the workers to accept the slow senders too")
            with requests.Session() as fresh:  # a new connection, after all of those
                answer = fresh.get(stack.url("listar"), params={"format": "json"}, timeout=10)
                assert answer.status_code == 200
            assert not any(map(closed_by_server, idle + slow))  # not cut off before their time
            wait_until(lambda: all(map(closed_by_server, idle + slow)),
                       "the quiet connections to be closed", timeout_s=CHANNEL_TIMEOUT_S + 15)
            later = open_sockets(stack.port, 5)
            with requests.Session() as fresh:
                answer = fresh.get(stack.url("listar"), params={"format": "json"}, timeout=10)
                assert answer.status_code == 200
            assert not any(map(closed_by_server, later))  # the newest are served
        finally:
            for sock in idle + slow + later:
                sock.close()

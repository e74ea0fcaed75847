"""The local stack as a real process, driven over real HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis
import requests

from infra.local import processes
from infra.local.redis_server import REPO_ROOT, RedisServer, free_port


class LocalStack:
    """`python -m infra.local` on a free port, using an already running Redis, or with
    redis None its own, as `make up` does (data in log_dir/redis), unless `env` names
    the Redis to use (REDIS_HOST: a cluster's nodes)."""

    def __init__(self, redis: RedisServer | None, log_dir: Path, env: dict[str, str] | None = None,
                 args: Sequence[str] = (), ready_status: int = 200):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"gateway-{self.port}.log"
        self.state_file = log_dir / f"stack-{self.port}.json"  # never the checkout's
        self.env = {**os.environ, "API_TOKEN_FILE": "", "REDIS_PASSWORD_FILE": "",
                    "LOCAL_STACK_FILE": str(self.state_file), **(env or {})}
        self.args = ["--port", str(self.port)]
        self.data_dir = log_dir / "redis"
        if env and "REDIS_HOST" in env:
            self.redis_port = None
        elif redis is None:
            self.env.pop("REDIS_HOST", None)
            self.redis_port = free_port()
            self.args += ["--redis-port", str(self.redis_port), "--data-dir", str(self.data_dir)]
        else:
            self.env.update({**redis.env(), **(env or {})})  # the caller's settings win
            self.redis_port = redis.port
        self.args += args  # more `python -m infra.local` options (the last of a name wins)
        self.ready_status = ready_status  # what /healthz answers once it serves (503: a broken Redis)
        self.http = requests.Session()
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> LocalStack:
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "infra.local", *self.args], cwd=REPO_ROOT,
            env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the local stack exited:\n{self.log()}")
            try:
                if self.http.get(f"{self.base}/healthz", timeout=1).status_code == self.ready_status:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        processes.stop(self.process)  # a stack that never became ready is not left running
        raise RuntimeError(f"the local stack did not become ready:\n{self.log()}")

    def __exit__(self, *exc) -> None:
        processes.stop(self.process)
        self.http.close()

    def redis_client(self) -> redis.Redis:
        """A client of the stack's own Redis (redis None), with the password it made."""
        if self.redis_port is None:
            raise RuntimeError("this stack uses the Redis its REDIS_HOST names, not one of its own")
        password = (self.data_dir / "password").read_text()
        return redis.Redis(host="127.0.0.1", port=self.redis_port, password=password)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def url(self, function: str) -> str:
        return f"{self.base}/function/{function}"

    def get(self, function: str, **params: Any) -> requests.Response:
        return self.http.get(self.url(function), params=params, timeout=10)

    def post(self, function: str, body: Any = None, **kwargs: Any) -> requests.Response:
        return self.http.post(self.url(function), json=body, timeout=10, **kwargs)

    def json(self, function: str, **params: Any) -> requests.Response:
        return self.http.get(self.url(function), params={**params, "format": "json"}, timeout=10)

    def wait_total(self, sensor: str, count: int, deadline_s: float = 5.0) -> dict[str, Any]:
        """listar's answer once the sensor holds `count` readings (queued calls run later),
        or the last one when the deadline passes."""
        deadline = time.monotonic() + deadline_s
        while True:
            listed = self.json("listar", sensor=sensor).json()
            if listed["total"] >= count or time.monotonic() > deadline:
                return listed
            time.sleep(0.05)

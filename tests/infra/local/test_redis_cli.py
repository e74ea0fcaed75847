"""`make redis-cli` (infra/local/redis_cli.py): the venv's redis-cli on the running stack's
Redis, found through the stack's state file, with its password and its OpenSSL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ON_BOTH_LAYOUTS
from tests.support.stack import LocalStack


def redis_cli(state_file: Path, *args: str, commands: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LOCAL_STACK_FILE": str(state_file)}
    env.pop("REDISCLI_AUTH", None)
    return subprocess.run([sys.executable, "-m", "infra.local.redis_cli", *args], input=commands,
                          env=env, capture_output=True, text=True, timeout=60)


@ON_BOTH_LAYOUTS
def test_it_reads_what_the_stacks_redis_holds(api: LocalStack, redis_client, redis_layout):
    keys = [f"probe-{i}" for i in range(6)]  # on a cluster some live beyond the first node
    for key in keys:
        redis_client.set(key, f"value of {key}")
    result = redis_cli(api.state_file, commands="".join(f"GET {key}\n" for key in keys))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    redirected = [line for line in lines if line.startswith("-> Redirected to slot")]
    assert [line for line in lines if line not in redirected] == [f"value of {k}" for k in keys]
    assert bool(redirected) == (redis_layout == "cluster")  # -c: a cluster's MOVED is followed
    one = redis_cli(api.state_file, "GET", keys[0])
    assert (one.returncode, one.stdout.strip()) == (0, "value of probe-0")


def test_without_a_running_stack_it_says_so(tmp_path):
    result = redis_cli(tmp_path / "none.json", "PING")
    assert result.returncode == 2 and "no running `make up`" in result.stderr
    gone = tmp_path / "gone.json"  # a stack that was killed left its record
    gone.write_text(json.dumps({"url": "http://127.0.0.1:1", "pid": 2**22 + 1, "redis": {
        "nodes": [["127.0.0.1", 1]], "cluster": False, "password_file": None}}))
    result = redis_cli(gone, "PING")
    assert result.returncode == 2 and "no running `make up`" in result.stderr

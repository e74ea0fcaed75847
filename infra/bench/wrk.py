"""wrk, the load generator: found (or installed with apt when we may), run, read."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

SCRIPT = Path(__file__).with_name("wrk.lua")
INSTALL_HINT = ("wrk is not installed. On Debian/Ubuntu: `sudo apt-get install -y wrk` "
                "(on macOS: `brew install wrk`), then run the benchmark again.")


class WrkMissing(RuntimeError):
    pass


def ensure_wrk(install: bool = True) -> str:
    """The wrk binary; installs Debian's package first when running as root with apt."""
    found = shutil.which("wrk")
    if found:
        return found
    if install and os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk is missing: installing Debian's package (apt-get install -y wrk) ...",
              file=sys.stderr, flush=True)
        if _apt_get("install", "-y", "wrk"):
            _apt_get("update")
            _apt_get("install", "-y", "wrk")
        found = shutil.which("wrk")
        if found:
            return found
    raise WrkMissing(INSTALL_HINT)


def _apt_get(*args: str) -> int:
    """apt-get, quietly and without questions; its exit code."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(["apt-get", *args], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.STDOUT).returncode


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    mean_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def run(wrk: str, base: str, path: str, *, seconds: float, connections: int, threads: int,
        first_timestamp: int | None = None, sensors: int | None = None) -> WrkResult:
    """One bounded wrk run against `base` (which must be 127.0.0.1) + `path`; with `sensors`,
    SENSOR in the path goes round that many sensors (wrk.lua)."""
    if urlsplit(base).hostname != "127.0.0.1":
        raise ValueError(f"the benchmark only loads 127.0.0.1, not {base}")
    args = [path] + ([str(first_timestamp), str(threads)] if first_timestamp is not None else [])
    args += [str(sensors)] if sensors else []
    command = [wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
               "--timeout", "5s", "-s", str(SCRIPT), base + path.split("?")[0], "--", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    line = next((out for out in done.stdout.splitlines() if out.startswith("BENCH_JSON ")), None)
    if done.returncode or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(line[len("BENCH_JSON "):])
    ms = lambda key: round(data[key] / 1000, 2)  # noqa: E731
    return WrkResult(data["requests"], data["duration_us"] / 1e6, data["non_2xx"],
                     data["socket_errors"], ms("p50_us"), ms("p90_us"), ms("p99_us"),
                     ms("p999_us"), ms("max_us"), round(data["mean_us"] / 1000, 2))

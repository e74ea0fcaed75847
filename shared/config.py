"""Settings from the environment, read once and validated before the first request.

The names and defaults of the replaced system are kept (REDIS_HOST, SERVING_HOST,
WINDOW_SIZE, THRESHOLD, MODEL_NAME); the rest is what a real deployment needs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from .timestamps import iso_to_ms

T = TypeVar("T")
D = TypeVar("D")  # a default may be of another type than the parsed value (None for "unset")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SENSOR = "mediciones"  # the replaced system's series, so its data stays visible
ENGINES = ("auto", "tfserving", "embedded")
FALLBACKS = ("none", "embedded")


class ConfigError(ValueError):
    """A setting has a value the functions cannot run with."""


@dataclass(frozen=True)
class Settings:
    redis_nodes: tuple[tuple[str, int], ...]  # the server, or a cluster's seed nodes
    redis_cluster: bool
    redis_wait_replicas: int
    redis_password: str | None
    redis_timeout_s: float
    serving_url: str | None
    serving_timeout_s: float
    model_name: str
    model_path: Path
    model_engine: str
    serving_fallback: str
    window_size: int
    threshold: float | None
    api_key: str | None  # signs the write calls (shared/signing.py)
    signature_max_age_s: int
    max_body_bytes: int
    list_default_count: int
    list_max_count: int
    batch_max_readings: int
    earliest_reading_ms: int = 946_684_800_000  # EARLIEST_READING, 2000-01-01


def _read_secret(path: str) -> str | None:
    """A secret file's content, or None when the file is absent (the feature is then off)."""
    if not path:
        return None
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read secret file {path}: {exc.strerror}") from exc
    return value or None


def _parse(env: Mapping[str, str], name: str, default: D, convert: Callable[[str], T],
           valid: Callable[[T], bool], expected: str) -> T | D:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = convert(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not valid: expected {expected}") from None
    if not valid(value):
        raise ConfigError(f"{name}={raw!r} is not valid: expected {expected}")
    return value


def _positive_int(env: Mapping[str, str], name: str, default: int, maximum: int = 10**9) -> int:
    return _parse(env, name, default, int, lambda v: 0 < v <= maximum,
                  f"a whole number from 1 to {maximum}")


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    return _parse(env, name, default, float, lambda v: math.isfinite(v) and v > 0,
                  "a positive number")


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    return _parse(env, name, default, str.lower, lambda v: v in choices,
                  "one of " + ", ".join(choices))


def _serving_url(env: Mapping[str, str]) -> str | None:
    url = env.get("SERVING_URL", "").strip()
    if url:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"SERVING_URL={url!r} is not valid: expected an http(s) URL")
        return url.rstrip("/")
    host = env.get("SERVING_HOST", "").strip()
    if not host:
        return None
    # The replaced system named only the host; TF Serving's REST port is 8501.
    return f"http://{host}" if ":" in host else f"http://{host}:8501"


def _redis_nodes(env: Mapping[str, str], cluster: bool) -> tuple[tuple[str, int], ...]:
    """REDIS_HOST: one host, or for a cluster a comma-separated list of seed nodes, each
    `host` or `host:port` (REDIS_PORT when no port is given)."""
    port = _positive_int(env, "REDIS_PORT", 6379, 65535)
    raw = env.get("REDIS_HOST", "").strip() or "localhost"
    nodes = []
    for item in raw.split(","):
        host, _, node_port = item.strip().partition(":")
        if not host or (node_port and not (node_port.isdigit() and 0 < int(node_port) <= 65535)):
            raise ConfigError(f"REDIS_HOST={raw!r} is not valid: expected host or host:port"
                              + (", comma-separated" if cluster else ""))
        nodes.append((host, int(node_port) if node_port else port))
    if len(nodes) > 1 and not cluster:
        raise ConfigError(f"REDIS_HOST={raw!r} names several nodes: set REDIS_CLUSTER=1 for a "
                          "Redis Cluster")
    return tuple(nodes)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read every setting once; a bad value raises ConfigError naming the setting."""
    env = os.environ if env is None else env
    serving_url = _serving_url(env)
    engine = _choice(env, "MODEL_ENGINE", "auto", ENGINES)
    if engine == "tfserving" and serving_url is None:
        raise ConfigError("MODEL_ENGINE=tfserving needs SERVING_HOST or SERVING_URL")
    # 0 is a real threshold for abs_error (any difference), so only negatives are refused here;
    # a rule that needs more says so when the model loads
    threshold = _parse(env, "THRESHOLD", None, float, lambda v: math.isfinite(v) and v >= 0,
                       "a number >= 0")
    list_max = _positive_int(env, "LIST_MAX_COUNT", 10_000, 1_000_000)
    cluster = _choice(env, "REDIS_CLUSTER", "0", ("0", "1")) == "1"
    return Settings(
        redis_nodes=_redis_nodes(env, cluster),
        redis_cluster=cluster,
        # A cluster has replicas to fail over to: a write waits for one unless told otherwise.
        redis_wait_replicas=_parse(env, "REDIS_WAIT_REPLICAS", int(cluster), int,
                                   lambda v: 0 <= v <= 16, "a whole number from 0 to 16"),
        redis_password=_read_secret(
            env.get("REDIS_PASSWORD_FILE", "/var/openfaas/secrets/redis-password")),
        redis_timeout_s=_positive_float(env, "REDIS_TIMEOUT", 2.0),
        serving_url=serving_url,
        serving_timeout_s=_positive_float(env, "SERVING_TIMEOUT", 2.0),
        model_name=_parse(env, "MODEL_NAME", "modelo", str,
                          lambda v: v.replace("_", "").replace("-", "").isalnum(),
                          "letters, digits, '-' and '_'"),
        model_path=Path(env.get("MODEL_PATH", "").strip() or REPO_ROOT / "models" / "modelo"),
        model_engine=engine,
        serving_fallback=_choice(env, "SERVING_FALLBACK", "none", FALLBACKS),
        window_size=_positive_int(env, "WINDOW_SIZE", 10, 1000),
        threshold=threshold,
        api_key=_read_secret(env.get("API_TOKEN_FILE", "/var/openfaas/secrets/api-token")),
        signature_max_age_s=_positive_int(env, "SIGNATURE_MAX_AGE", 3600, 7 * 86400),
        max_body_bytes=_positive_int(env, "MAX_BODY_BYTES", 1 << 20),
        list_default_count=min(_positive_int(env, "LIST_DEFAULT_COUNT", 100), list_max),
        list_max_count=list_max,
        batch_max_readings=_positive_int(env, "BATCH_MAX_READINGS", 10_000, 1_000_000),
        # A reading before it is a mistake (seconds sent as milliseconds, a 0): refused.
        earliest_reading_ms=_parse(env, "EARLIEST_READING", Settings.earliest_reading_ms,
                                   iso_to_ms, lambda v: v >= 0,
                                   "an ISO-8601 date from 1970 on, e.g. 2000-01-01"),
    )

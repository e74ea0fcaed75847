"""stack.yml (faas-cli): the three functions, their settings, limits, scaling and timeouts."""

from __future__ import annotations

import ast
import re

from shared.config import load_settings
from shared.store.scripts import ALL, LUA_DIR
from tests.infra.stackfiles import (
    COMMON_SH,
    FUNCTIONS,
    REPO_ROOT,
    STACK_YML,
    SWARM_DIR,
    image_tag,
    interpolate,
    load_yaml,
    shell_array,
)

STACK = load_yaml(STACK_YML)
# The names shared/config.py reads; the values the Swarm deployment needs.
COMMON_ENV = {
    "REDIS_HOST": "redis",
    "REDIS_PORT": "6379",
    "REDIS_CLUSTER": "0",
    "REDIS_PASSWORD_FILE": "/var/openfaas/secrets/redis-password",
    "MODEL_NAME": "modelo",
    "MODEL_PATH": "/home/app/function/models/modelo",
    "WINDOW_SIZE": "10",
    "API_TOKEN_FILE": "/var/openfaas/secrets/api-token",
}


def duration_s(value: str) -> float:
    """A Go duration as the watchdog and gateway read it ("30s", "5m5s", "1m"), or bare seconds."""
    value = str(value).strip()
    if re.fullmatch(r"\d+", value):
        return float(value)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", value)
    assert parts and "".join(n + u for n, u in parts) == value, f"not a duration: {value!r}"
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * scale[u] for n, u in parts)


def test_provider_and_template():
    assert STACK["provider"]["name"] == "openfaas"
    templates = STACK["configuration"]["templates"]
    python3_http = [t for t in templates if t["name"] == "python3-http"]
    assert python3_http, "the python3-http template source is not declared"
    source = python3_http[0]["source"]
    assert source.startswith("https://github.com/openfaas/python-flask-template")
    assert "#" in source, "the template is not pinned to a git ref"
    assert set(STACK["configuration"]["copy"]) == {"shared", "models/modelo"}


def test_the_images_carry_the_stores_lua_scripts():
    """faas-cli copies `shared` whole: the scripts the store reads from files go with it."""
    copied = [REPO_ROOT / path for path in STACK["configuration"]["copy"]]
    assert any(LUA_DIR.is_relative_to(folder) for folder in copied)
    assert {path.stem for path in LUA_DIR.glob("*.lua")} == {script.name for script in ALL}


def test_the_three_functions_and_their_handlers():
    assert set(STACK["functions"]) == set(FUNCTIONS)
    for name, fn in STACK["functions"].items():
        assert fn["lang"] == "python3-http"
        assert fn["handler"] == f"./functions/{name}"
        handler_dir = REPO_ROOT / "functions" / name
        handler = handler_dir / "handler.py"
        assert handler.is_file(), f"{handler} is missing"
        tree = ast.parse(handler.read_text())
        handles = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "handle"]
        assert handles, f"{name}/handler.py defines no handle()"
        assert [a.arg for a in handles[0].args.args] == ["event", "context"]
        assert (handler_dir / "requirements.txt").is_file(), f"{name} has no requirements.txt"


def requirement_lines(path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_each_function_installs_the_shared_layers_requirements():
    """The template installs a function's requirements.txt before `shared/` is copied in, so
    each one repeats shared/requirements.txt and must not drift from it."""
    shared = requirement_lines(REPO_ROOT / "shared" / "requirements.txt")
    assert shared
    for name in STACK["functions"]:
        assert requirement_lines(REPO_ROOT / "functions" / name / "requirements.txt") == shared, name


def test_images_are_named_and_versioned():
    for name, fn in STACK["functions"].items():
        image = fn["image"]
        assert image == f"anomalias/{name}:{image_tag(image)}"
        assert image_tag(image) not in (None, "latest")
    raw = STACK_YML.read_text()
    with_registry = interpolate(raw, {"REGISTRY": "registry.example.com:5000/anomalias"})
    assert "registry.example.com:5000/anomalias/nuevo:" in with_registry


def test_settings_are_the_runtime_names():
    for name, fn in STACK["functions"].items():
        env = {k: str(v) for k, v in fn["environment"].items()}
        for key, value in COMMON_ENV.items():
            assert env.get(key) == value, f"{name}: {key}={env.get(key)!r}, expected {value!r}"
        assert "THRESHOLD" not in env, f"{name}: THRESHOLD overrides the model's calibrated one"
        if name == "detectar":
            assert env["SERVING_HOST"] == "serving"
        else:
            assert "SERVING_HOST" not in env


def test_the_functions_can_be_pointed_at_an_external_redis_cluster():
    seeds = "10.0.0.5:7000,10.0.0.6:7000"
    stack = load_yaml(STACK_YML, {"REDIS_CLUSTER": "1", "REDIS_HOST": seeds})
    for name, fn in stack["functions"].items():
        env = {k: str(v) for k, v in fn["environment"].items()}
        settings = load_settings({**env, "REDIS_PASSWORD_FILE": "", "API_TOKEN_FILE": ""})
        assert settings.redis_cluster, name
        assert settings.redis_nodes == (("10.0.0.5", 7000), ("10.0.0.6", 7000)), name
        assert settings.redis_wait_replicas == 1, name  # each write waits for a replica


def test_secrets_are_mounted_and_created_by_deploy():
    created = set(shell_array(COMMON_SH, "SECRETS"))
    for name, fn in STACK["functions"].items():
        assert set(fn["secrets"]) == {"redis-password", "api-token"}
        assert set(fn["secrets"]) <= created
        for key in ("REDIS_PASSWORD_FILE", "API_TOKEN_FILE"):
            secret = fn["environment"][key].rsplit("/", 1)[1]
            assert secret in fn["secrets"], f"{name}: {key} names a secret it does not mount"


def test_cpu_values_are_whole_nanocpus_and_memory_is_set():
    for name, fn in STACK["functions"].items():
        for section in ("limits", "requests"):
            resources = fn[section]
            cpu = resources["cpu"]
            assert isinstance(cpu, str) and re.fullmatch(r"[1-9]\d*", cpu), \
                f"{name} {section}.cpu={cpu!r}: faas-swarm drops anything but whole NanoCPUs"
            assert int(cpu) <= 64 * 10**9
            assert re.fullmatch(r"\d+(Mi|M|m|Gi|G|g)", str(resources["memory"])), name
        assert int(fn["requests"]["cpu"]) <= int(fn["limits"]["cpu"])


def test_function_timeouts_stay_below_the_gateway_upstream_timeout():
    gateway = load_yaml(SWARM_DIR / "openfaas.yml")["services"]["gateway"]["environment"]
    upstream = duration_s(gateway["upstream_timeout"])
    assert duration_s(gateway["read_timeout"]) > upstream
    assert duration_s(gateway["write_timeout"]) > upstream
    for name, fn in STACK["functions"].items():
        env = fn["environment"]
        read, write, exec_ = (duration_s(env[k]) for k in ("read_timeout", "write_timeout",
                                                             "exec_timeout"))
        assert exec_ <= write, f"{name}: exec_timeout above write_timeout"
        assert max(read, write, exec_) < upstream, f"{name}: a timeout reaches upstream_timeout"


def test_a_call_to_a_task_on_a_dead_node_ends_within_5_s_in_the_gateways_502():
    """A task on a killed node stays in Swarm's DNS and load balancer for seconds (until the
    gossip marks the node failed): each call sent there waits for upstream_timeout, which the
    gateway applies to both the connect and the answer, then gets the gateway's 502."""
    services = load_yaml(SWARM_DIR / "openfaas.yml")["services"]
    gateway, provider = services["gateway"]["environment"], services["faas-swarm"]["environment"]
    upstream = duration_s(gateway["upstream_timeout"])
    assert upstream <= 4.5, "no caller may wait more than 5 s"
    # faas-swarm (no-IPVS path) gives up after the gateway: its 500 "Can't reach service"
    # never reaches a caller, the gateway's 502 does
    assert duration_s(provider["read_timeout"]) > upstream
    assert duration_s(provider["write_timeout"]) > upstream
    # The handlers' own waits end first: an unreachable Redis or TF Serving answers the
    # handler's 503 (or the embedded engine judges) before the watchdog's 504.
    settings = load_settings({"REDIS_PASSWORD_FILE": "", "API_TOKEN_FILE": ""})
    for name, fn in STACK["functions"].items():
        env = fn["environment"]
        assert "REDIS_TIMEOUT" not in env and "SERVING_TIMEOUT" not in env, name
        assert duration_s(env["exec_timeout"]) > max(settings.redis_timeout_s,
                                                     settings.serving_timeout_s), name


def test_the_queue_worker_waits_for_a_call_and_its_callback_before_redelivering():
    services = load_yaml(SWARM_DIR / "openfaas.yml")["services"]
    ack_wait = duration_s(services["queue-worker"]["environment"]["ack_wait"])
    upstream = duration_s(services["gateway"]["environment"]["upstream_timeout"])
    assert ack_wait > upstream + 30, "the worker dials an X-Callback-Url for up to 30 s"


def test_scaling_labels():
    for name, fn in STACK["functions"].items():
        labels = {k: str(v) for k, v in fn["labels"].items()}
        assert labels["com.openfaas.scale.min"] == "5", name
        assert int(labels["com.openfaas.scale.max"]) >= 5
        assert 0 < int(labels["com.openfaas.scale.factor"]) <= 100


def test_duration_parser():
    assert duration_s("5m5s") == 305 and duration_s("60s") == 60 and duration_s("8") == 8


def test_the_gateway_and_faas_swarm_are_replaced_only_after_a_minute_of_failed_checks():
    """A starved host (load 36 on 2 cores) had faas-swarm killed by a 2 s, 3-try check while
    it worked: every call failed until its new task was up."""
    services = load_yaml(SWARM_DIR / "openfaas.yml")["services"]
    for name in ("gateway", "faas-swarm"):
        check = services[name]["healthcheck"]
        assert duration_s(check["timeout"]) >= 5, name
        assert duration_s(check["interval"]) * check["retries"] >= 60, name

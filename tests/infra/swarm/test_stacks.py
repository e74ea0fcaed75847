"""The Docker Swarm stack files under infra/swarm/: valid, pinned, consistent with deploy.sh."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter

import pytest
import yaml

from tests.infra.stackfiles import (
    COMMON_SH,
    GRAFANA_DIR,
    REPO_ROOT,
    SWARM_DIR,
    docker_client,
    docker_stack_config,
    image_tag,
    interpolate,
    load_yaml,
    shell_array,
    swarm_stack_files,
)

STACKS = swarm_stack_files()
STACK_IDS = [p.name for p in STACKS]
# Images whose publisher releases no numbered tags: their own release tag is accepted.
UNNUMBERED_RELEASE_TAGS = {"dockersamples/visualizer": "stable"}


def test_the_stack_files_exist():
    names = {p.name for p in STACKS}
    assert "openfaas.yml" in names
    assert "data.yml" in names or {"redis.yml", "serving.yml", "grafana.yml"} <= names


@pytest.mark.parametrize("path", STACKS, ids=STACK_IDS)
def test_docker_stack_config_accepts_the_file(path):
    docker = docker_client()
    if docker is None:
        pytest.skip("the docker client is not installed: `docker stack config` cannot run")
    result = docker_stack_config(docker, path)
    assert result.returncode == 0, f"docker stack config -c {path.name}:\n{result.stderr}"
    assert yaml.safe_load(result.stdout)["services"]


@pytest.mark.parametrize("path", STACKS, ids=STACK_IDS)
def test_every_image_is_pinned_to_a_version(path):
    for name, service in load_yaml(path)["services"].items():
        image = service["image"]
        tag = image_tag(image)
        assert tag, f"{path.name}: service {name} image {image} has no tag"
        assert tag != "latest", f"{path.name}: service {name} uses :latest"
        repo = image.split("@")[0]
        if ":" in repo.rsplit("/", 1)[-1]:
            repo = repo.rsplit(":", 1)[0]
        if UNNUMBERED_RELEASE_TAGS.get(repo) == tag:
            continue
        assert any(ch.isdigit() for ch in tag), f"{path.name}: {image} is not pinned to a version"


def test_no_two_services_publish_one_port():
    published = Counter()
    owners = {}
    for path in STACKS:
        for name, service in load_yaml(path)["services"].items():
            for port in service.get("ports", []):
                number = int(str(port["published"] if isinstance(port, dict)
                                 else str(port).split(":")[-2]))
                published[number] += 1
                owners.setdefault(number, []).append(f"{path.name}:{name}")
    clashes = {port: owners[port] for port, count in published.items() if count > 1}
    assert not clashes, f"ports published twice: {clashes}"
    assert published[8080] == 1, "8080 is the gateway's"
    assert {8080, 3000, 8081, 9090} <= set(published)


@pytest.mark.parametrize("path", STACKS, ids=STACK_IDS)
def test_every_secret_and_config_is_defined_and_exists(path):
    stack = load_yaml(path)
    raw = yaml.safe_load(path.read_text())  # names before interpolation
    created_by_deploy = set(shell_array(COMMON_SH, "SECRETS"))
    for kind in ("secrets", "configs"):
        defined = stack.get(kind) or {}
        for name, service in stack["services"].items():
            for ref in service.get(kind, []):
                source = ref["source"] if isinstance(ref, dict) else ref
                assert source in defined, f"{path.name}: {name} uses undefined {kind[:-1]} {source}"
        for key, spec in defined.items():
            if spec.get("external"):
                assert kind == "secrets", f"{path.name}: external config {key}: nothing creates it"
                assert spec.get("name", key) in created_by_deploy, \
                    f"{path.name}: external secret {key} is not created by infra/deploy.sh"
            else:
                assert (path.parent / spec["file"]).is_file(), f"{path.name}: {spec['file']} missing"
            if kind == "configs":
                # Configs are immutable: a versioned name lets an edited file be deployed.
                assert "_VERSION" in raw[kind][key].get("name", ""), \
                    f"{path.name}: config {key} has no versioned name"


def test_openfaas_is_pinned_to_the_last_swarm_versions():
    services = load_yaml(SWARM_DIR / "openfaas.yml")["services"]
    images = {name: s["image"] for name, s in services.items()}
    assert images["gateway"] == "openfaas/gateway:0.18.18"
    assert images["basic-auth-plugin"] == "openfaas/basic-auth-plugin:0.18.18"
    assert images["faas-swarm"] in ("openfaas/faas-swarm:0.9.0", "openfaas/faas-swarm:0.9.1")
    assert images["nats"] == "nats-streaming:0.17.0"
    assert images["queue-worker"] == "openfaas/queue-worker:0.11.2"
    # The newest releases (Prometheus 3.14.0, Alertmanager 0.34.0, 2026-08): the gateway's
    # rule and webhook still work with them (test_the_scaling_alert_survives_prometheus_3)
    assert images["prometheus"] == "prom/prometheus:v3.14.0"
    assert images["alertmanager"] == "prom/alertmanager:v0.34.0"


def test_openfaas_has_basic_auth_on_and_the_functions_network():
    stack = load_yaml(SWARM_DIR / "openfaas.yml")
    gateway = stack["services"]["gateway"]["environment"]
    assert gateway["basic_auth"] == "true"
    assert gateway["auth_proxy_url"] == "http://basic-auth-plugin:8080/validate"
    assert stack["services"]["faas-swarm"]["environment"]["basic_auth"] == "true"
    assert stack["secrets"]["basic-auth-user"]["external"] is True
    assert stack["secrets"]["basic-auth-password"]["external"] is True
    network = stack["networks"]["functions"]
    assert network["driver"] == "overlay" and network["attachable"] is True
    assert network["labels"] == {"openfaas": "true"}
    # faas-cli calls /function/<fn>.openfaas-fn: Docker's DNS resolves <service>.<network>
    assert network["name"] == "openfaas-fn"
    for name in ("gateway", "faas-swarm", "prometheus", "alertmanager"):
        assert "functions" in stack["services"][name]["networks"]


def test_alertmanager_scales_through_the_gateway():
    rules = yaml.safe_load((SWARM_DIR / "prometheus" / "alert.rules.yml").read_text())
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    rate = alerts["APIHighInvocationRate"]
    assert "gateway_function_invocation_total" in rate["expr"]
    assert rate["labels"]["service"] == "gateway"
    config = yaml.safe_load((SWARM_DIR / "prometheus" / "alertmanager.yml").read_text())
    hooks = [h for r in config["receivers"] for h in r.get("webhook_configs", [])]
    assert hooks and hooks[0]["url"] == "http://gateway:8080/system/alert"
    assert hooks[0]["http_config"]["basic_auth"]["password_file"] == "/run/secrets/basic-auth-password"
    prometheus = yaml.safe_load((SWARM_DIR / "prometheus" / "prometheus.yml").read_text())
    assert any(t == "alertmanager:9093" for a in prometheus["alerting"]["alertmanagers"]
               for c in a["static_configs"] for t in c["targets"])


def _seconds(duration: str) -> int:
    match = re.fullmatch(r"(\d+)([sm])", duration)
    assert match, duration
    return int(match[1]) * (60 if match[2] == "m" else 1)


def test_the_scaling_alert_survives_prometheus_3():
    """Prometheus 3's range selectors are left-open: a window of w seconds over scrapes every
    i seconds holds floor(w / i) samples, and rate() needs two. Its scrapes fail on a
    Content-Type it cannot read unless a fallback is named. Alertmanager routes the alert on
    the labels the rule sets, with `matchers` (`match` is deprecated)."""
    rules = yaml.safe_load((SWARM_DIR / "prometheus" / "alert.rules.yml").read_text())
    rule = next(r for g in rules["groups"] for r in g["rules"]
                if r.get("alert") == "APIHighInvocationRate")
    window = re.search(r"gateway_function_invocation_total\{[^}]*\}\[(\w+)\]", rule["expr"])
    assert window
    prometheus = yaml.safe_load((SWARM_DIR / "prometheus" / "prometheus.yml").read_text())
    gateway = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "gateway")
    assert _seconds(window[1]) // _seconds(gateway["scrape_interval"]) >= 2
    assert gateway["fallback_scrape_protocol"] == "PrometheusText0.0.4"
    config = yaml.safe_load((SWARM_DIR / "prometheus" / "alertmanager.yml").read_text())
    (route,) = [r for r in config["route"]["routes"] if r["receiver"] == "scale-up"]
    assert "match" not in route
    wanted = {m.split("=")[0]: m.split("=")[1].strip('"') for m in route["matchers"]}
    assert wanted == {k: rule["labels"][k] for k in ("service", "severity")}


def _data_services() -> dict:
    services = {}
    for path in STACKS:
        if path.name != "openfaas.yml":
            services.update(load_yaml(path)["services"])
    return services


def test_data_services_join_the_functions_network_by_name():
    for path in STACKS:
        if path.name == "openfaas.yml":
            continue
        networks = load_yaml(path).get("networks") or {}
        for key, spec in networks.items():
            if spec.get("external"):
                assert spec["name"] == "openfaas-fn", f"{path.name}: {key}"
    services = _data_services()
    for name in ("redis", "serving", "grafana"):
        assert name in services, f"no {name} service"
        assert services[name]["networks"], f"{name} is on no network"
    assert "ports" not in services["redis"], "Redis must not be published outside the overlay"
    assert "ports" not in services["serving"], "TF Serving must not be published"


def test_redis_is_durable_authenticated_and_pinned():
    redis = _data_services()["redis"]
    conf = (SWARM_DIR / "redis" / "redis.conf").read_text().splitlines()
    assert "appendonly yes" in conf and "appendfsync always" in conf
    assert "maxmemory-policy noeviction" in conf
    assert any(v.split(":")[1] == "/data" for v in redis["volumes"] if isinstance(v, str))
    script = " ".join(redis["entrypoint"])
    assert "/run/secrets/redis-password" in script and "requirepass" in script
    health = " ".join(redis["healthcheck"]["test"])
    assert "redis-cli -e" in health and "REDISCLI_AUTH" in health
    assert redis["deploy"]["replicas"] == 1
    assert any(c.startswith("node.") for c in redis["deploy"]["placement"]["constraints"])
    assert "redis-password" in redis["secrets"]


def test_tf_serving_loads_the_repo_models_and_checks_availability():
    serving = _data_services()["serving"]
    assert "--model_config_file=/models/models_config/models.config" in serving["command"]
    assert "--model_config_file_poll_wait_seconds=60" in serving["command"]
    mounts = serving["volumes"]
    assert any(m.get("target") == "/models" for m in mounts if isinstance(m, dict))
    health = " ".join(serving["healthcheck"]["test"])
    assert "/dev/tcp/127.0.0.1/8501" in health and "AVAILABLE" in health
    assert "curl" not in health  # the image has none


def test_grafana_gets_the_plugin_password_and_provisioning():
    grafana = _data_services()["grafana"]
    env = grafana["environment"]
    assert env["GF_PLUGINS_ALLOW_LOADING_UNSIGNED_PLUGINS"] == "redis-datasource"
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"].startswith("/run/secrets/")
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env  # both forms abort Grafana's start
    targets = {c["target"] for c in grafana["configs"]}
    assert any(t.startswith("/etc/grafana/provisioning/datasources/") for t in targets)
    assert any(t.startswith("/etc/grafana/provisioning/dashboards/") for t in targets)
    assert "redis-password" in grafana["secrets"]
    base = re.search(r"^FROM grafana/grafana:(\d+)\.", (GRAFANA_DIR / "Dockerfile").read_text(), re.M)
    assert base and base[1] == "9", "redis-datasource 2.2.0 is reported working on Grafana 9 only"


def test_visualizer_stays_on_a_manager_off_8080():
    visualizer = _data_services()["visualizer"]
    assert "node.role == manager" in visualizer["deploy"]["placement"]["constraints"]
    assert [str(p["published"]) for p in visualizer["ports"]] == ["8081"]


def test_interpolation_defaults_match_the_documented_variables():
    # Every ${VAR} in a stack file has a default, so `docker stack deploy` works bare.
    for path in STACKS:
        for match in re.finditer(r"\$\{([A-Za-z_]+)(:?-)?", path.read_text()):
            assert match.group(2), f"{path.name}: ${{{match.group(1)}}} has no default"
    assert interpolate("${X:-a}/${Y}/$$", {"Y": "b"}) == "a/b/$"
    assert REPO_ROOT.joinpath("infra", "swarm").is_dir()


def test_the_operators_alertmanager_is_current_and_apart_from_openfaas_own():
    """A current release, named so that `alertmanager` on the functions' network stays
    OpenFaaS's (Prometheus sends its scaling alerts there), with its own config file."""
    stack = load_yaml(SWARM_DIR / "alerts.yml")
    services = stack["services"]
    assert "alertmanager" not in services
    manager = services["operator-alertmanager"]
    version = re.fullmatch(r"prom/alertmanager:v0\.(\d+)\.\d+", manager["image"])
    assert version and int(version[1]) >= 28, manager["image"]
    assert "--cluster.listen-address=" in manager["command"]
    assert {c["target"] for c in manager["configs"]} == {"/etc/alertmanager/alertmanager.yml"}
    assert stack["configs"]["operator_alertmanager_config"]["file"] == "../alertmanager/alertmanager.yml"
    assert any(v.endswith(":/alertmanager") for v in manager["volumes"])  # silences kept
    forwarder = services["alert-forwarder"]["environment"]
    assert forwarder["ALERTMANAGER_URL"] == "http://operator-alertmanager:9093"
    assert forwarder["REDIS_PASSWORD_FILE"] == "/run/secrets/redis-password"
    assert services["alert-forwarder"]["deploy"]["replicas"] == 1
    openfaas = load_yaml(SWARM_DIR / "openfaas.yml")
    # OpenFaaS's own keeps its name and its config, which scales functions
    assert openfaas["configs"]["alertmanager_config"]["file"] == "./prometheus/alertmanager.yml"
    assert {c["source"] for c in openfaas["services"]["alertmanager"]["configs"]} == {"alertmanager_config"}


def test_the_operators_alertmanager_config_routes_to_a_receiver_to_fill_in():
    config = yaml.safe_load((REPO_ROOT / "infra" / "alertmanager" / "alertmanager.yml").read_text())
    assert config["route"]["receiver"] == "operators"
    assert "sensor" in config["route"]["group_by"]
    assert [r["name"] for r in config["receivers"]] == ["operators"]
    text = (REPO_ROOT / "infra" / "alertmanager" / "alertmanager.yml").read_text()
    for documented in ("webhook_configs", "email_configs", "slack_configs", "amtool silence add"):
        assert documented in text


@pytest.mark.skipif(shutil.which("amtool") is None, reason="amtool is not installed (it comes "
                                                          "with prometheus-alertmanager)")
def test_amtool_accepts_the_operators_alertmanager_config():
    result = subprocess.run(["amtool", "check-config",
                             str(REPO_ROOT / "infra" / "alertmanager" / "alertmanager.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr

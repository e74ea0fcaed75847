"""infra/deploy.sh and infra/down.sh: syntax, shellcheck, and their behaviour against fakes.

The fakes in tests/infra/fakes/ stand in for docker, faas-cli and curl (state in a temporary
directory; `docker stack deploy` still runs the real client's `docker stack config` when it
is installed), so the scripts' decisions are checked offline: what they create, in which
order, and that down leaves the host as deploy found it.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.infra.stackfiles import (
    COMMON_SH,
    DEPLOY_SH,
    DOWN_SH,
    REPO_ROOT,
    STACK_YML,
    docker_client,
    shell_array,
)

FAKES = Path(__file__).resolve().parent / "fakes"
SCRIPTS = [DEPLOY_SH, DOWN_SH]
STACK_FUNCTIONS = list(yaml.safe_load(STACK_YML.read_text())["functions"])  # read by PyYAML


def common_sh_functions(root: Path) -> subprocess.CompletedProcess[str]:
    """What infra/common.sh under `root` sets FUNCTIONS to (one per line), or its error."""
    return subprocess.run(["bash", "-c", 'set -euo pipefail; source "$1"; printf "%s\\n" "${FUNCTIONS[@]}"',
                           "-", str(root / "infra" / "common.sh")],
                          capture_output=True, text=True, timeout=30)


def test_the_scripts_functions_are_the_ones_stack_yml_declares():
    result = common_sh_functions(REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == STACK_FUNCTIONS


def test_a_function_added_to_stack_yml_is_one_of_the_scripts_functions(tmp_path):
    (tmp_path / "infra").mkdir()
    shutil.copy(COMMON_SH, tmp_path / "infra" / "common.sh")
    (tmp_path / "stack.yml").write_text(
        "version: 1.0\nfunctions:\n"
        "  # a comment, then a function whose blocks are anchored\n"
        "  nuevo:\n    lang: python3-http\n    environment: &env\n      A: b\n\n"
        "  resumen:   # the added one\n    lang: python3-http\n    environment: *env\n"
        "configuration:\n  templates:\n    - name: python3-http\n")
    result = common_sh_functions(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["nuevo", "resumen"]
    (tmp_path / "stack.yml").write_text("version: 1.0\nprovider:\n  name: openfaas\n")
    result = common_sh_functions(tmp_path)
    assert result.returncode != 0 and "declares no functions" in result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_bash_syntax(script):
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "set -euo pipefail" in script.read_text()
    assert os.access(script, os.X_OK), f"{script.name} is not executable"


@pytest.mark.parametrize("script", SCRIPTS + sorted(FAKES.iterdir()),
                         ids=lambda p: p.name)
def test_shellcheck(script):
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install -y shellcheck)")
    result = subprocess.run(["shellcheck", "-x", str(script)], capture_output=True, text=True,
                            cwd=REPO_ROOT)  # -x follows `source infra/common.sh`
    assert result.returncode == 0, result.stdout


class Host:
    """A fake host: PATH with the fakes first, state, secrets and models in tmp_path."""

    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.state = tmp_path / "fake-docker"
        self.state.mkdir()
        self.secrets = tmp_path / "secrets"
        self.state_file = tmp_path / "swarm-state"
        models = tmp_path / "models"
        (models / "models_config").mkdir(parents=True)
        (models / "models_config" / "models.config").write_text(
            "model_config_list { config { name: 'modelo' base_path: '/models/modelo' } }\n")
        (models / "modelo" / "1").mkdir(parents=True)
        (models / "modelo" / "1" / "saved_model.pb").write_bytes(b"\x08\x01")
        self.env = {
            "PATH": f"{FAKES}:{os.environ['PATH']}",
            "HOME": str(tmp_path),
            "FAKE_STATE": str(self.state),
            "FAKE_FUNCTIONS": " ".join(STACK_FUNCTIONS),
            "REAL_DOCKER": docker_client() or "",
            "ANOMALIAS_SECRETS_DIR": str(self.secrets),
            "ANOMALIAS_STATE_FILE": str(self.state_file),
            "MODELS_DIR": str(models),
            "DEPLOY_WAIT_SECONDS": "5",
            "DEPLOY_POLL_SECONDS": "0",
            "DOWN_WAIT_SECONDS": "5",
        }

    def run(self, script: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(script), *args], capture_output=True, text=True,
                              env={**self.env, **env}, timeout=120)

    def calls(self) -> list[str]:
        path = self.state / "calls"
        return path.read_text().splitlines() if path.exists() else []

    def swarm(self) -> str:
        path = self.state / "swarm"
        return path.read_text().strip() if path.exists() else "inactive"

    def docker_secrets(self) -> set[str]:
        return {p.name for p in (self.state / "secrets").iterdir()}


@pytest.fixture
def host(tmp_path):
    if docker_client() is None:
        pytest.skip("the docker client is not installed: the fake validates stacks with it")
    return Host(tmp_path)


def _index(calls: list[str], pattern: str) -> int:
    for i, call in enumerate(calls):
        if re.search(pattern, call):
            return i
    raise AssertionError(f"no call matches {pattern!r} in:\n" + "\n".join(calls))


def test_deploy_on_a_fresh_host_then_down_restores_it(host):
    result = host.run(DEPLOY_SH)
    assert result.returncode == 0, result.stdout + result.stderr
    calls = host.calls()

    assert host.swarm() == "active"
    assert (host.state / "labels" / "anomalias.data").read_text().strip() == "true"
    names = shell_array(COMMON_SH, "SECRETS")
    assert host.docker_secrets() == set(names)
    for name in names:
        path = host.secrets / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
    assert (host.secrets / "basic-auth-user").read_text() == "admin"
    password = (host.secrets / "basic-auth-password").read_text()
    assert re.fullmatch(r"[0-9a-f]{64}", password)
    assert len({(host.secrets / n).read_text() for n in names if n != "basic-auth-user"}) == 4
    assert (host.state / "login-password").read_text() == password

    func = _index(calls, r"^docker stack deploy .*openfaas\.yml func$")
    data = _index(calls, r"^docker stack deploy .*data\.yml data$")
    up = _index(calls, r"^faas-cli up -f stack\.yml .*--skip-push")
    assert _index(calls, r"^faas-cli template pull stack -f stack\.yml --overwrite$") < up
    assert func < data < up
    assert _index(calls, r"^docker swarm init") < func
    for fn in STACK_FUNCTIONS:
        assert _index(calls, rf"^curl .*/function/{fn}\?format=json$") > up
    assert _index(calls, r"^docker stack deploy .*mqtt\.yml mqtt$") > _index(
        calls, r"^curl .*/function/detectar\?format=json$")
    for url in ("8080", "3000", "8081", "9090"):
        assert f"http://127.0.0.1:{url}" in result.stdout
    assert "basic-auth-password" in result.stdout
    # Config names carry a hash of their file, so edited files become new configs.
    deployed = (host.state / "stacks" / "data").read_text()
    assert re.search(r"name: anomalias_redis_conf_[0-9a-f]{12}", deployed)
    # The images we build carry a hash of their inputs, and the stacks run those.
    bridge = re.search(r"image: (anomalias/mqtt-bridge:[0-9a-f]{12})\n",
                       (host.state / "stacks" / "mqtt").read_text())
    assert bridge and bridge[1] in (host.state / "images").read_text().split()
    assert _index(calls, r"^docker build -q -t anomalias/mqtt-bridge:") < func
    # The operators' Alertmanager and the forwarder come last, with the image built for it.
    assert _index(calls, r"^docker stack deploy .*alerts\.yml alerts$") > _index(
        calls, r"^docker stack deploy .*mqtt\.yml mqtt$")
    forwarder = re.search(r"image: (anomalias/alert-forwarder:[0-9a-f]{12})\n",
                          (host.state / "stacks" / "alerts").read_text())
    assert forwarder and forwarder[1] in (host.state / "images").read_text().split()
    assert "http://127.0.0.1:9093" in result.stdout

    result = host.run(DOWN_SH)
    assert result.returncode == 0, result.stdout + result.stderr
    calls = host.calls()
    remove = _index(calls, r"^faas-cli remove -f stack\.yml")
    assert remove < _index(calls, r"^docker stack rm data") < _index(calls, r"^docker stack rm func")
    assert host.docker_secrets() == set()
    assert _index(calls, r"^docker swarm leave --force")
    assert host.swarm() == "inactive"
    assert not host.state_file.exists()
    assert (host.secrets / "basic-auth-password").exists(), "kept without --purge"


def test_an_existing_swarm_and_secret_are_left_alone(host):
    (host.state / "swarm").write_text("active\n")
    (host.state / "labels").mkdir()
    (host.state / "labels" / "anomalias.data").write_text("true\n")
    (host.state / "secrets").mkdir()
    (host.state / "secrets" / "redis-password").write_text("theirs")
    host.secrets.mkdir()
    (host.secrets / "redis-password").write_text("theirs")

    result = host.run(DEPLOY_SH)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not any(c.startswith("docker swarm init") for c in host.calls())
    assert not any("--label-add" in c for c in host.calls())

    result = host.run(DOWN_SH)
    assert result.returncode == 0, result.stdout + result.stderr
    calls = host.calls()
    assert not any(c.startswith("docker swarm leave") for c in calls)
    assert host.swarm() == "active"
    assert host.docker_secrets() == {"redis-password"}, "only the secrets deploy created go"
    assert (host.state / "labels" / "anomalias.data").exists()


def test_down_removes_the_label_it_added_and_purge_removes_the_secret_files(host):
    (host.state / "swarm").write_text("active\n")
    assert host.run(DEPLOY_SH).returncode == 0
    assert (host.state / "labels" / "anomalias.data").exists()
    result = host.run(DOWN_SH, "--purge")
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (host.state / "labels" / "anomalias.data").exists()
    assert not host.secrets.exists()
    assert host.swarm() == "active"


def test_a_registry_pushes_and_a_multi_node_swarm_needs_one(host):
    (host.state / "swarm").write_text("active\n")
    result = host.run(DEPLOY_SH, FAKE_NODES="3")
    assert result.returncode != 0
    assert "REGISTRY" in result.stderr
    assert not any("stack deploy" in c for c in host.calls())

    result = host.run(DEPLOY_SH, FAKE_NODES="3", REGISTRY="registry.example.com/anomalias")
    assert result.returncode == 0, result.stdout + result.stderr
    up = [c for c in host.calls() if c.startswith("faas-cli up")]
    assert up and "--skip-push" not in up[-1]
    assert any(re.match(r"docker push -q registry\.example\.com/anomalias/mqtt-bridge:", c)
               for c in host.calls())


@pytest.mark.parametrize("engine, min_api, expected", [
    ("28.2.2", "1.24", "1.30"),   # the version faas-swarm was written against
    ("29.0.1", "1.44", "1.44"),   # 29.0 refuses clients below 1.44
    ("29.7.2", "1.40", "1.40"),   # a later 29.x lowered its minimum
    ("20.10.24", "1.12", "1.30"),
])
def test_faas_swarm_speaks_the_oldest_api_the_engine_accepts_from_1_30(host, engine, min_api, expected):
    result = host.run(DEPLOY_SH, FAKE_ENGINE_VERSION=engine, FAKE_ENGINE_MIN_API=min_api)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"faas-swarm uses API {expected}" in result.stdout
    assert re.search(rf'DOCKER_API_VERSION: "?{re.escape(expected)}"?\n',
                     (host.state / "stacks" / "func").read_text())


def _nothing_deployed(host) -> bool:
    return not any(re.match(r"docker (swarm init|stack deploy|secret create)", c) for c in host.calls())


@pytest.mark.parametrize("env, message", [
    ({"FAKE_FAAS_CLI_VERSION": "0.17.4"}, "faas-cli 0.17.4 cannot pull the template"),
    ({"FAKE_FAAS_CLI_VERSION": "dev"}, "cannot tell faas-cli's version"),
    ({"FAKE_ENGINE_VERSION": "19.03.8"}, "Docker Engine 19.03.8 is older than 20.10"),
    ({"FAAS_SWARM_DOCKER_API_VERSION": "1.30", "FAKE_ENGINE_MIN_API": "1.44"},
     "faas-swarm cannot use Docker API 1.30: this engine accepts 1.44 to 1.50"),
])
def test_every_tool_and_version_is_checked_before_anything_is_deployed(host, env, message):
    result = host.run(DEPLOY_SH, **env)
    assert result.returncode != 0
    assert message in result.stderr
    assert _nothing_deployed(host)


def _tasks(host, target: str, *lines: str) -> None:
    (host.state / "tasks").mkdir(exist_ok=True)
    (host.state / "tasks" / target).write_text("".join(f"{line}\n" for line in lines))


def _replicas(host, stack: str, *lines: str) -> None:
    (host.state / "replicas").mkdir(exist_ok=True)
    (host.state / "replicas" / stack).write_text("".join(f"{line}\n" for line in lines))


def test_a_rejected_task_stops_the_deploy_at_once_with_its_error(host):
    _replicas(host, "func", "func_gateway 1/1", "func_queue-worker 0/1")
    _tasks(host, "func",
           'func_queue-worker.1|Rejected 1 second ago|"No such image: openfaas/queue-worker:0.11.2"',
           'func_queue-worker.1|Rejected 6 seconds ago|"No such image: openfaas/queue-worker:0.11.2"')
    result = host.run(DEPLOY_SH, DEPLOY_WAIT_SECONDS="600")
    assert result.returncode != 0
    assert "service func_queue-worker: task rejected" in result.stderr
    assert "No such image: openfaas/queue-worker:0.11.2" in result.stderr
    assert "*_IMAGE" in result.stderr  # what to do
    assert sum(c.startswith("docker stack ps func") for c in host.calls()) == 1, "no waiting"


def test_a_task_failing_again_and_again_stops_the_deploy_with_its_error(host):
    _replicas(host, "func", "func_gateway 0/1")
    _tasks(host, "func", "func_gateway.1|Starting 1 second ago|",
           *['func_gateway.1|Failed 5 seconds ago|"task: non-zero exit (1)"'] * 3)
    result = host.run(DEPLOY_SH, DEPLOY_WAIT_SECONDS="600")
    assert result.returncode != 0
    assert "service func_gateway: task failed 3 times" in result.stderr
    assert "docker service logs func_gateway" in result.stderr


def test_services_with_no_replicas_and_old_failures_of_ready_ones_do_not_hold_the_deploy(host):
    _replicas(host, "func", "func_gateway 1/1", "func_prometheus 0/0", "func_alertmanager 0/0")
    # the gateway failed while NATS was starting, then came up: not a reason to stop
    _tasks(host, "func", "func_gateway.1|Running 1 minute ago|",
           *['func_gateway.1|Failed 2 minutes ago|"task: non-zero exit (1)"'] * 3)
    result = host.run(DEPLOY_SH)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_function_whose_image_is_missing_stops_the_deploy_naming_it(host):
    _tasks(host, "nuevo", 'nuevo.1|Rejected 2 seconds ago|"No such image: anomalias/nuevo:0.1.0"')
    result = host.run(DEPLOY_SH, FAKE_CONTENT_TYPE="text/plain; charset=utf-8",
                      DEPLOY_WAIT_SECONDS="600")
    assert result.returncode != 0
    assert "service nuevo: task rejected" in result.stderr and "REGISTRY" in result.stderr


def test_deploy_waits_for_the_functions_not_the_gateways_own_answers(host):
    """The gateway answers plain text for a function it cannot reach yet (404, an empty 200
    after its scale-from-zero wait): deploy keeps waiting and fails naming the function."""
    result = host.run(DEPLOY_SH, FAKE_CONTENT_TYPE="text/plain; charset=utf-8")
    assert result.returncode != 0
    assert "function nuevo did not answer" in result.stderr
    assert "text/plain" in result.stderr


def test_deploy_refuses_to_start_without_a_model(host):
    shutil.rmtree(Path(host.env["MODELS_DIR"]) / "modelo")
    result = host.run(DEPLOY_SH)
    assert result.returncode != 0
    assert "SavedModel" in result.stderr
    assert host.calls() == [] or not any("swarm init" in c for c in host.calls())


def test_deploy_names_the_missing_tools(tmp_path):
    # Only basic tools and the fake docker/curl on PATH: never a real engine, no faas-cli, no git.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "sed", "tail", "head", "cat", "grep", "od", "tr", "sha256sum"):
        real = shutil.which(tool)
        if real:
            (bin_dir / tool).symlink_to(real)
    for fake in ("docker", "curl"):
        (bin_dir / fake).symlink_to(FAKES / fake)
    (tmp_path / "state").mkdir()
    result = subprocess.run([shutil.which("bash"), str(DEPLOY_SH)], capture_output=True,
                            text=True, env={"PATH": str(bin_dir), "HOME": str(tmp_path),
                                            "FAKE_STATE": str(tmp_path / "state")})
    assert result.returncode != 0
    assert "missing:" in result.stderr
    assert "faas-cli" in result.stderr and "git" in result.stderr
    calls = (tmp_path / "state" / "calls")
    assert not calls.exists() or not calls.read_text().strip(), "nothing may run before the check"


def test_kernels_without_ipvs_get_dns_round_robin_and_host_mode_ports(host):
    result = host.run(DEPLOY_SH, STACK_OVERRIDES=str(REPO_ROOT / "infra" / "swarm" / "no-ipvs"),
                      PUBLISH_MODE="host", GATEWAY_PORT="18080")
    assert result.returncode == 0, result.stdout + result.stderr
    func = yaml.safe_load((host.state / "stacks" / "func").read_text())["services"]
    assert func["gateway"]["environment"]["direct_functions"] == "false"
    assert func["faas-swarm"]["environment"]["dnsrr"] == "true"
    assert func["gateway"]["ports"] == [{"mode": "host", "target": 8080, "published": 18080}]
    for stack in ("func", "data", "mqtt", "alerts"):
        services = yaml.safe_load((host.state / "stacks" / stack).read_text())["services"]
        assert {s["deploy"].get("endpoint_mode") for s in services.values()} == {"dnsrr"}, stack
    assert "http://127.0.0.1:18080" in result.stdout  # deploy waits on and prints that port


def test_an_update_whose_new_task_is_rejected_stops_the_deploy_while_the_old_one_runs(host):
    """A start-first update keeps the old task: the service still counts n/n, but its slot's
    newest task was refused."""
    _replicas(host, "data", "data_serving 1/1")
    _tasks(host, "data", 'data_serving.1|Rejected 1 second ago|"No such image: tensorflow/serving:9.9"',
           "data_serving.1|Running 5 minutes ago|")
    result = host.run(DEPLOY_SH)
    assert result.returncode != 0
    assert "service data_serving: task rejected" in result.stderr


def test_a_rejected_task_in_the_history_of_a_running_slot_is_no_reason_to_stop(host):
    _replicas(host, "data", "data_serving 1/1")
    _tasks(host, "data", "data_serving.1|Running 1 minute ago|",
           'data_serving.1|Rejected 1 hour ago|"No such image: tensorflow/serving:9.9"')
    result = host.run(DEPLOY_SH)
    assert result.returncode == 0, result.stdout + result.stderr


# --- losing a node: the dispatcher heartbeat --------------------------------------------------

def _heartbeat(host) -> str:
    path = host.state / "heartbeat"
    return path.read_text().strip() if path.exists() else "5s"


def test_deploy_shortens_the_dispatcher_heartbeat_and_down_puts_it_back(host):
    (host.state / "swarm").write_text("active\n")
    result = host.run(DEPLOY_SH)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _heartbeat(host) == "2s"
    assert _index(host.calls(), r"^docker swarm update --dispatcher-heartbeat 2s$") < _index(
        host.calls(), r"^docker stack deploy .*openfaas\.yml func$")
    assert host.run(DEPLOY_SH).returncode == 0  # a redeploy keeps what the first one found
    result = host.run(DOWN_SH)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _heartbeat(host) == "5s"


@pytest.mark.parametrize("found, env", [("1s", {}), ("5s", {"SWARM_HEARTBEAT": ""})])
def test_a_shorter_heartbeat_or_an_empty_setting_is_left_alone(host, found, env):
    (host.state / "swarm").write_text("active\n")
    (host.state / "heartbeat").write_text(f"{found}\n")
    assert host.run(DEPLOY_SH, **env).returncode == 0
    assert host.run(DOWN_SH).returncode == 0
    assert not any(c.startswith("docker swarm update") for c in host.calls())
    assert _heartbeat(host) == found


def test_a_swarm_deploy_creates_gets_the_short_heartbeat(host):
    result = host.run(DEPLOY_SH)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _heartbeat(host) == "2s"
    assert host.run(DEPLOY_SH, SWARM_HEARTBEAT="2 seconds").returncode != 0


# --- --purge on every node ----------------------------------------------------------------------

VOLUMES = shell_array(DOWN_SH, "VOLUMES")


def _volumes(host, node: str) -> set[str]:
    where = host.state if node == "node1" else host.state / "nodes" / node
    return {p.name.removeprefix("volume.") for p in where.glob("volume.*")}


def _add_volumes(host, node: str, *names: str) -> None:
    where = host.state if node == "node1" else host.state / "nodes" / node
    where.mkdir(parents=True, exist_ok=True)
    for name in names:
        (where / f"volume.{name}").write_text("")


def _deploy_on_three_nodes(host, **env) -> str:
    (host.state / "swarm").write_text("active\n")
    result = host.run(DEPLOY_SH, FAKE_NODES="3", REGISTRY="registry.example.com/anomalias", **env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_purge_on_several_nodes_removes_the_volumes_on_every_node_and_says_where(host):
    _deploy_on_three_nodes(host)
    _add_volumes(host, "node2", *VOLUMES)           # the anomalias.data node
    _add_volumes(host, "node3", "data_redis-data")  # where the label was before
    result = host.run(DOWN_SH, "--purge", FAKE_NODES="3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert all(_volumes(host, n) == set() for n in ("node1", "node2", "node3"))
    for volume in VOLUMES:
        assert f"node2: removed {volume}" in result.stdout
    assert "node3: removed data_redis-data" in result.stdout
    assert "node node1: no volume of the stack left" in result.stdout
    assert not host.secrets.exists()
    job = [c for c in host.calls() if c.startswith("docker service create")]
    assert len(job) == 1 and "--mode global-job" in job[0] and "docker:28.2.2-cli" in job[0]
    assert not (host.state / "services" / "anomalias-purge").exists(), "the job is removed"


@pytest.mark.parametrize("env, reason", [
    ({"FAKE_DOWN_NODES": "node3"}, "no task ran there"),
    ({"FAKE_MISSING_IMAGE_NODES": "node3"}, "No such image: docker:28.2.2-cli"),
])
def test_purge_names_each_node_it_could_not_clear_with_what_to_run_there(host, env, reason):
    _deploy_on_three_nodes(host)
    _add_volumes(host, "node2", *VOLUMES)
    _add_volumes(host, "node3", *VOLUMES)
    result = host.run(DOWN_SH, "--purge", FAKE_NODES="3", **env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert _volumes(host, "node2") == set()
    assert _volumes(host, "node3") == set(VOLUMES)
    assert reason in result.stderr
    assert f"on node3: docker volume rm {' '.join(VOLUMES)}" in result.stderr
    assert "on node2" not in result.stderr
    assert (host.secrets / "basic-auth-password").exists(), "kept until the data is gone"


def test_purge_on_one_node_removes_the_volumes_here_without_a_job(host):
    (host.state / "swarm").write_text("active\n")
    assert host.run(DEPLOY_SH).returncode == 0
    _add_volumes(host, "node1", *VOLUMES)
    result = host.run(DOWN_SH, "--purge")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _volumes(host, "node1") == set()
    assert not any(c.startswith("docker service create") for c in host.calls())


# --- host mode: where the published ports answer ------------------------------------------------

def _running_on(host, service: str, *nodes: str) -> None:
    (host.state / "tasks").mkdir(exist_ok=True)
    (host.state / "tasks" / service).write_text("".join(f"{n}\n" for n in nodes))


@pytest.mark.parametrize("manager_addr_zero", ["0", "1"])
def test_host_mode_prints_the_nodes_that_run_each_published_service(host, manager_addr_zero):
    for service, nodes in {"func_gateway": ["node1"], "data_grafana": ["node2"],
                           "data_visualizer": ["node1"], "mqtt_mosquitto": ["node2"]}.items():
        _running_on(host, service, *nodes)
    out = _deploy_on_three_nodes(host, PUBLISH_MODE="host", GATEWAY_PORT="18080",
                                 FAKE_MANAGER_ADDR_ZERO=manager_addr_zero)
    assert "routing mesh" not in out
    assert re.search(r"OpenFaaS gateway +http://10\.0\.0\.1:18080 \(node node1\)", out)
    assert re.search(r"Grafana +http://10\.0\.0\.2:3000 \(node node2\)", out)
    assert re.search(r"MQTT broker +tcp://10\.0\.0\.2:1883 \(node node2\)", out)
    assert re.search(r"Prometheus +not running \(no task of func_prometheus\)", out)


def test_the_routing_mesh_answers_on_any_node(host):
    result = host.run(DEPLOY_SH, PUBLIC_HOST="swarm.example")
    assert "On any swarm node (routing mesh)" in result.stdout
    assert "tcp://swarm.example:1883" in result.stdout


# --- a new function task takes calls only once its Python server listens ---------------------------

def test_each_function_gets_a_healthcheck_on_its_own_server_once(host):
    result = host.run(DEPLOY_SH)
    assert result.returncode == 0, result.stdout + result.stderr
    for fn in ("nuevo", "listar", "detectar"):
        health = (host.state / "health" / fn).read_text()
        assert health.startswith("CMD-SHELL python -c ") and "'127.0.0.1', 5000" in health, fn
    calls = host.calls()
    assert _index(calls, r"^docker service update --detach --health-cmd .* nuevo$") > _index(
        calls, r"^faas-cli up ")
    update = next(c for c in calls if c.startswith("docker service update"))
    interval = int(re.search(r"--health-interval (\d+)s", update)[1])
    retries = int(re.search(r"--health-retries (\d+)", update)[1])
    assert interval * retries >= 60, "a working task on a starved host must not be killed"
    assert host.run(DEPLOY_SH).returncode == 0
    updates = [c for c in host.calls() if c.startswith("docker service update")]
    assert len(updates) == 3, "kept by faas-swarm across faas-cli up: set once"


def test_a_function_update_that_rolls_back_stops_the_deploy(host):
    result = host.run(DEPLOY_SH, FAKE_UPDATE_STATE="rollback_completed")
    assert result.returncode != 0
    assert "the update of nuevo did not go through (rollback_completed)" in result.stderr

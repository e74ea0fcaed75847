"""Reading the deployment files the way their tools do, without Docker or faas-cli.

`interpolate` expands `${VAR}`, `${VAR:-default}` and `${VAR-default}` and turns `$$` into `$`,
as `docker stack deploy` (compose) and faas-cli (envsubst) do, so the files can be checked
with their defaults offline.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from shared.config import REPO_ROOT

INFRA = REPO_ROOT / "infra"
SWARM_DIR = INFRA / "swarm"
GRAFANA_DIR = INFRA / "grafana"
STACK_YML = REPO_ROOT / "stack.yml"
DEPLOY_SH = INFRA / "deploy.sh"
DOWN_SH = INFRA / "down.sh"
COMMON_SH = INFRA / "common.sh"  # names both scripts share
FUNCTIONS = ("nuevo", "listar", "detectar")

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}")


def interpolate(text: str, env: Mapping[str, str] | None = None) -> str:
    env = env or {}

    def expand(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, default = match.group(1), match.group(2), match.group(3)
        value = env.get(name)
        if op == ":-" and not value:
            return default
        if op == "-" and value is None:
            return default
        return value or ""

    return _VAR.sub(expand, text)


def load_yaml(path: Path, env: Mapping[str, str] | None = None) -> Any:
    return yaml.safe_load(interpolate(path.read_text(), env))


def swarm_stack_files() -> list[Path]:
    """Every Docker Swarm stack file: the *.yml directly under infra/swarm/."""
    return sorted(SWARM_DIR.glob("*.yml"))


def docker_client() -> str | None:
    return shutil.which("docker")


def docker_stack_config(docker: str, path: Path) -> subprocess.CompletedProcess[str]:
    """`docker stack config -c FILE`: the client's own schema check and interpolation, offline."""
    return subprocess.run([docker, "stack", "config", "-c", str(path)],
                          capture_output=True, text=True, timeout=60)


def shell_array(script: Path, name: str) -> list[str]:
    """The words of a one-line bash array assignment `NAME=(a b c)` in a script."""
    match = re.search(rf"^{name}=\(([^)]*)\)", script.read_text(), re.MULTILINE)
    assert match, f"{script.name} defines no {name}=(...)"
    return match.group(1).split()


def image_tag(image: str) -> str | None:
    """The tag of an image reference (None when it has none); a digest counts as a tag."""
    if "@sha256:" in image:
        return image.split("@", 1)[1]
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())

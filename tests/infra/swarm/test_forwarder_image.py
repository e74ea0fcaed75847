"""The alert forwarder's image holds only the files its Dockerfile copies: they must be enough
to start it (a missing shared module fails only on the swarm, at deploy time)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from shared.config import REPO_ROOT

DOCKERFILE = REPO_ROOT / "infra" / "swarm" / "alert-forwarder" / "Dockerfile"


def copied_files() -> list[str]:
    """The repository files the Dockerfile's COPY lines put under /app (not requirements)."""
    files = []
    for line in DOCKERFILE.read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not words[1].startswith("requirements/"):
            files += words[1:-1]
    return files


def test_the_forwarder_starts_from_the_files_its_image_copies(tmp_path: Path) -> None:
    files = copied_files()
    assert "infra/alert_forwarder.py" in files
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    done = subprocess.run([sys.executable, "-E", "-s", "-c", "import infra.alert_forwarder"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_deploy_tags_the_image_by_every_file_it_copies() -> None:
    deploy = (REPO_ROOT / "infra" / "deploy.sh").read_text()
    for name in copied_files():
        if name.endswith("__init__.py"):
            continue
        assert f'"$ROOT/{name}"' in deploy, name

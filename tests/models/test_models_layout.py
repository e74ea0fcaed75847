"""What TF Serving reads from the bind-mounted models/: the config and a SavedModel version."""

from __future__ import annotations

import re

import pytest

from tests.infra.stackfiles import REPO_ROOT, STACK_YML, load_yaml

MODELS = REPO_ROOT / "models"
CONFIG = MODELS / "models_config" / "models.config"


def _config_entries() -> list[dict[str, str]]:
    if not CONFIG.is_file():
        pytest.skip(f"{CONFIG.relative_to(REPO_ROOT)} is not there yet (the model step writes it)")
    text = CONFIG.read_text()
    blocks = re.findall(r"config\s*\{(.*?)\}", text, re.DOTALL)
    entries = []
    for block in blocks:
        entries.append(dict(re.findall(r"(\w+)\s*:\s*['\"]([^'\"]*)['\"]", block)))
    return entries


def test_models_config_points_at_the_mounted_model():
    entries = _config_entries()
    modelo = [e for e in entries if e.get("name") == "modelo"]
    assert modelo, "models.config serves no model named 'modelo' (MODEL_NAME)"
    assert modelo[0]["base_path"] == "/models/modelo"  # models/ is mounted at /models
    assert modelo[0].get("model_platform", "tensorflow") == "tensorflow"


def test_a_version_folder_holds_a_saved_model():
    if not (MODELS / "modelo").is_dir():
        pytest.skip("models/modelo/ is not there yet (the model step writes it)")
    versions = [p for p in (MODELS / "modelo").iterdir() if p.is_dir() and p.name.isdigit()]
    if not versions:
        pytest.skip("models/modelo/ has no version folder yet")
    assert any((v / "saved_model.pb").is_file() for v in versions), \
        "no models/modelo/<version>/saved_model.pb: TF Serving would never be AVAILABLE"


def test_functions_find_the_model_description_where_it_is_copied():
    stack = load_yaml(STACK_YML)
    assert "models/modelo" in stack["configuration"]["copy"]
    for fn in stack["functions"].values():
        # faas-cli copies models/modelo to build/<fn>/function/models/modelo (it keeps the
        # path) -> /home/app/function/models/modelo
        assert fn["environment"]["MODEL_PATH"] == "/home/app/function/models/modelo"

"""The layout's one rule: imports run infra -> models -> shared <- functions, and nothing
outside tests/ imports tests/ (docs/architecture.md)."""

from __future__ import annotations

import ast

import pytest

from shared.config import REPO_ROOT

ALLOWED = {"shared": {"shared"}, "models": {"models", "shared"},
           "infra": {"infra", "models", "shared"}, "functions": {"shared"}}
LAYERS = set(ALLOWED) | {"tests"}


def imported_layers(package: str) -> list[tuple[str, str]]:
    found = []
    for path in sorted((REPO_ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found += [(str(path.relative_to(REPO_ROOT)), name) for name in names
                      if name.split(".")[0] in LAYERS]
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_run_one_way(package):
    against = [(where, name) for where, name in imported_layers(package)
               if name.split(".")[0] not in ALLOWED[package]]
    assert against == []

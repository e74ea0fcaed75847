"""The functions as stack.yml declares them, with their handlers loaded from disk.

The local gateway serves exactly what faas-cli would deploy: same names, same handler
files, same labels and annotations.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from shared.config import REPO_ROOT

STACK_FILE = REPO_ROOT / "stack.yml"
VARIABLE = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def expand(text: str) -> str:
    """`${VAR}` and `${VAR:-default}` from the environment, as faas-cli's envsubst does."""
    return VARIABLE.sub(lambda m: os.environ.get(m.group(1)) or m.group(2) or "", text)


def import_handler(name: str, handler_dir: Path) -> ModuleType:
    """A function's handler.py, imported under a module name of its own (every function has one)."""
    path = handler_dir / "handler.py"
    spec = importlib.util.spec_from_file_location(f"functions.{name}.handler", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Function:
    name: str
    image: str
    handler_dir: Path
    module: ModuleType  # its handler.py, imported
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    invocations: int = 0

    def summary(self) -> dict[str, Any]:
        """The shape of an entry of the gateway's GET /system/functions."""
        return {"name": self.name, "image": self.image, "invocationCount": self.invocations,
                "replicas": 1, "availableReplicas": 1, "envProcess": "python index.py",
                "labels": self.labels, "annotations": self.annotations}


def load_functions(stack_file: Path = STACK_FILE) -> dict[str, Function]:
    stack = yaml.safe_load(stack_file.read_text())
    functions = {}
    for name, spec in stack["functions"].items():
        handler_dir = (stack_file.parent / spec["handler"]).resolve()
        functions[name] = Function(
            name=name, image=expand(str(spec.get("image", name))), handler_dir=handler_dir,
            module=import_handler(name, handler_dir),
            labels={k: str(v) for k, v in (spec.get("labels") or {}).items()},
            annotations={k: str(v) for k, v in (spec.get("annotations") or {}).items()},
        )
    return functions

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


@dataclass
class Function:
    name: str
    image: str
    handler_dir: Path
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    module: ModuleType | None = None
    invocations: int = 0

    def load(self) -> Function:
        """Import handler.py under a module name of its own (every function has one)."""
        path = self.handler_dir / "handler.py"
        spec = importlib.util.spec_from_file_location(f"functions.{self.name}.handler", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"{path} cannot be imported as a Python module")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        self.module = module
        return self

    def summary(self) -> dict[str, Any]:
        """The shape of an entry of the gateway's GET /system/functions."""
        return {"name": self.name, "image": self.image, "invocationCount": self.invocations,
                "replicas": 1, "availableReplicas": 1, "envProcess": "python index.py",
                "labels": self.labels, "annotations": self.annotations}


def load_functions(stack_file: Path = STACK_FILE) -> dict[str, Function]:
    stack = yaml.safe_load(stack_file.read_text())
    functions = {}
    for name, spec in stack["functions"].items():
        functions[name] = Function(
            name=name, image=expand(str(spec.get("image", name))),
            handler_dir=(stack_file.parent / spec["handler"]).resolve(),
            labels={k: str(v) for k, v in (spec.get("labels") or {}).items()},
            annotations={k: str(v) for k, v in (spec.get("annotations") or {}).items()},
        ).load()
    return functions

"""The model's cost per call: the embedded engine alone, and the TF Serving REST client against
the local TF-Serving-compatible server (infra/bench/tfserving_standin.py)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np

from infra.local.redis_server import free_port
from models.locations import DEFAULT_MODEL, reference_model_dir
from shared.config import REPO_ROOT


def engine_figures() -> list[dict[str, Any]]:
    """µs per window of the embedded engine alone (batch of one, as detectar calls it)."""
    from shared.serving.description import load_description, resolve_version_dir
    from shared.serving.engine import EmbeddedModel

    figures = []
    for label, path in (("shipped (models/modelo)", DEFAULT_MODEL),
                        ("replaced system's (reference-model)", reference_model_dir())):
        if path is None:
            figures.append({"model": label, "missing": True})
            continue
        version = resolve_version_dir(path)
        description = load_description(version)
        model = EmbeddedModel.load(version, description)
        window = np.random.default_rng(1).normal(20, 2, (1, *model.input_shape)).astype(np.float32)
        for _ in range(200):
            model.predict(window)
        samples = []
        for _ in range(7):
            count = 2000
            started = time.perf_counter()
            for _ in range(count):
                model.predict(window)
            samples.append((time.perf_counter() - started) / count * 1e6)
        layers = ", ".join(f"{spec['type']}({spec.get('units', spec.get('n', ''))})"
                           for spec in description.layers)
        figures.append({"model": label, "path": str(path), "layers": layers,
                        "us_per_window": round(statistics.median(samples), 1),
                        "us_per_window_best": round(min(samples), 1)})
    return figures


def tfserving_figures(engine: list[dict[str, Any]]) -> dict[str, Any]:
    """The TF Serving REST client's cost per call against the local test server."""
    from shared.serving.tfserving import TFServingClient

    model_dir = DEFAULT_MODEL
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "infra.bench.tfserving_standin", "--model-dir", str(model_dir),
         "--port", str(port)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert server.stdout is not None  # stdout=PIPE
        server.stdout.readline()  # "serving ... at ..." once it listens
        client = TFServingClient(f"http://127.0.0.1:{port}", "modelo", 5.0)
        from shared.serving.description import load_description, resolve_version_dir
        window_size = load_description(resolve_version_dir(model_dir)).window
        window = np.random.default_rng(1).normal(20, 2, (1, window_size, 1)).astype(np.float32)
        for _ in range(100):
            client.predict(window)
        count = 2000
        cpu, started = time.process_time(), time.perf_counter()
        for _ in range(count):
            client.predict(window)
        wall = (time.perf_counter() - started) / count * 1e6
        cpu = (time.process_time() - cpu) / count * 1e6
        client.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    embedded = next((e["us_per_window"] for e in engine if e.get("us_per_window")), 0.0)
    return {"server": "infra/bench/tfserving_standin.py (models/modelo)", "calls": count,
            "us_per_call": round(wall, 1), "client_cpu_us_per_call": round(cpu, 1),
            "overhead_us_per_call": round(wall - embedded, 1)}

"""Drop-in compatibility: the replaced system's SavedModel, named in the settings, judges
exactly as that system did (TensorFlow computes the expected verdicts)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from tests.conftest import NAB_DATA_DIR, reference_model_dir
from tests.support.stack import LocalStack

THRESHOLD = 9.233296204297654  # the replaced system's rule: |dato - output[0,0,0]| > THRESHOLD
ROWS = slice(3900, 4100)  # around the second NAB window, where it raised alarms


def nab_values() -> list[float]:
    path = NAB_DATA_DIR / "machine_temperature_system_failure.csv"
    if not path.exists():
        pytest.skip(f"NAB data not at {path}")
    with path.open() as handle:
        return [float(row["value"]) for row in csv.DictReader(handle)]


def test_the_replaced_model_reproduces_its_verdicts(redis_server, redis_client, tmp_path):
    tf = pytest.importorskip("tensorflow")
    model_dir = reference_model_dir()
    values = nab_values()[ROWS]
    serve = tf.saved_model.load(str(model_dir / "1")).signatures["serving_default"]
    windows = np.array([values[i - 10:i][::-1] for i in range(10, len(values))], np.float32)
    predicted = serve(tf.constant(windows[:, :, None]))["output_0"].numpy()[:, 0, 0]
    expected = [bool(abs(v - p) > THRESHOLD) for v, p in zip(values[10:], predicted, strict=True)]
    assert 0 < sum(expected) < len(expected)  # the stretch holds both verdicts

    with LocalStack(redis_server, tmp_path, env={"MODEL_PATH": str(model_dir)}) as stack:
        verdicts = []
        for i, value in enumerate(values):
            answer = stack.json("detectar", dato=repr(value), sensor="nab",
                                timestamp=str(1_386_000_000_000 + i * 300_000)).json()
            verdicts.append(answer)
    assert all(v["anomaly"] is None for v in verdicts[:10])
    judged = verdicts[10:]
    assert [v["anomaly"] for v in judged] == expected
    assert [v["predicted"] for v in judged] == pytest.approx(predicted.tolist(), rel=1e-5)
    assert {v["threshold"] for v in judged} == {THRESHOLD}

"""`python -m infra.evaluate --corpus`: every file of a NAB corpus through detectar, scored
per file and in total beside the published detectors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from infra.evaluate import __main__ as cli
from models.evaluation import corpus
from tests.infra.evaluate.test_evaluate import WINDOW_ROWS, synthetic_values

FILES = ("realA/one.csv", "realB/two.csv")


def write_corpus(folder: Path) -> Path:
    """Two files in two categories, a labelled step in each, and one published detector."""
    start = np.datetime64("2020-01-01T00:00:00")  # five-minute readings
    stamps = [str(start + np.timedelta64(5 * i, "m")).replace("T", " ") for i in range(1200)]
    windows = {}
    for key, seed in zip(FILES, (7, 11), strict=True):
        path = folder / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("timestamp,value\n" + "".join(
            f"{s},{v:.4f}\n" for s, v in zip(stamps, synthetic_values(seed=seed), strict=True)))
        windows[key] = [[stamps[WINDOW_ROWS[0]], stamps[WINDOW_ROWS[1]]]]
    (folder / "windows.json").write_text(json.dumps(windows))
    (folder / "published_scores.json").write_text(json.dumps({"detectors": {"ARTime": {
        "normalized": 75.0, "raw_total": 1.0,
        "files": {key: {"raw": 0.5, "FP": 1} for key in FILES}}}}))
    return folder


def test_the_corpus_is_streamed_file_by_file_and_scored_in_total(tmp_path, capsys):
    folder = write_corpus(tmp_path / "corpus")
    code = cli.main(["--corpus", str(folder), "--out", str(tmp_path / "out"), "--no-progress",
                     "--jobs", "2", "--plot-files"])
    out = capsys.readouterr().out
    assert code == 0, out
    document = json.loads((tmp_path / "out" / "corpus.json").read_text())
    assert [f["file"] for f in document["files"]] == list(FILES)
    for entry in document["files"]:
        assert entry["rows"] == 1200 and entry["windows"] == 1
        # the step is caught inside its window, from the first judgements on
        assert entry["windows_found"] == 1 and WINDOW_ROWS[0] <= entry["first_detections"][0]
    assert len({f["sensor"] for f in document["files"]}) == 2  # a fresh sensor per file
    total = document["total"]
    assert total["windows"] == 2
    assert total["raw"] == sum(f["raw"] for f in document["files"])
    assert total["normalised"] == corpus.normalised(total["raw"], 2)
    assert set(document["categories"]) == {"realA", "realB"}
    assert "ARTime" in out and "+0.50" in out and "75.0" in out
    (normalised,) = [line for line in out.splitlines() if line.startswith("normalised score")]
    assert normalised.split()[-2:] == [f"{total['normalised']:.1f}", "75.0"]  # ours, ARTime's
    assert (tmp_path / "out" / "corpus" / "realA" / "one.png").stat().st_size > 10_000
    # the same files at 15 minutes and an hour, the profiles, leave-one-category-out
    report = document["generalisation"]
    assert list(report["cadences"]) == ["as recorded", "15 min", "1 h"]
    assert report["cadences"]["as recorded"]["normalised"] == total["normalised"]
    for name in ("15 min", "1 h"):
        assert report["cadences"][name]["windows"] == 2
        assert 0.9 < report["cadences"][name]["band_coverage"] <= 1.0
    assert set(report["profiles"]) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    assert report["leave_one_category_out"]["normalised"] == pytest.approx(total["normalised"])
    assert "leave-one-category-out" in out and "1 h" in out


def test_the_corpus_needs_in_process_streaming(tmp_path, capsys):
    for extra in (["--url", "http://127.0.0.1:1"], ["--csv", "x.csv", "--windows", "w.json"]):
        with pytest.raises(SystemExit) as refused:
            cli.parse_args(["--corpus", str(tmp_path), *extra])
        assert refused.value.code == 2, f"--corpus with {extra}"
    assert "not with --csv or --url" in capsys.readouterr().err

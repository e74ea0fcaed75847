"""Loading the NAB series (models/evaluation/nab.py): local copy, pinned checksum, download failures."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from models.evaluation import nab
from tests.conftest import NAB_DATA_DIR as DATA_DIR

needs_data = pytest.mark.skipif(not (DATA_DIR / nab.CSV_NAME).exists(),
                                reason=f"no NAB data at {DATA_DIR} (set NAB_DATA_DIR)")


@needs_data
def test_machine_temperature_series():
    series = nab.load_machine_temperature(DATA_DIR)
    assert len(series) == nab.N_ROWS == 22_695
    assert series.sha256 == nab.CSV_SHA256
    assert series.values.dtype == np.float64 and np.all(np.isfinite(series.values))
    assert series.windows == [(2126, 2692), (3703, 4269), (16057, 16623), (19232, 19798)]
    assert all(right - left + 1 == 567 for left, right in series.windows)
    assert len(set(series.timestamps)) == len(series) - 12   # one hour appears twice


@needs_data
def test_nab_data_dir_env_picks_the_local_copy(monkeypatch):
    monkeypatch.setenv("NAB_DATA_DIR", str(DATA_DIR))
    assert nab.data_dir() == DATA_DIR
    assert nab.load_machine_temperature().csv_path == DATA_DIR / nab.CSV_NAME


def _fake_folder(folder: Path, csv_text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / nab.CSV_NAME).write_text(csv_text)
    (folder / "combined_windows.json").write_text(
        json.dumps({nab.SERIES: [["2020-01-01 00:05:00.000000", "2020-01-01 00:10:00.000000"]]}))
    return folder


CSV = "timestamp,value\n2020-01-01 00:00:00,1.5\n2020-01-01 00:05:00,2\n2020-01-01 00:10:00,3\n"


def test_load_series_without_checksum(tmp_path):
    folder = _fake_folder(tmp_path, CSV)
    series = nab.load_series(folder / nab.CSV_NAME, folder / "combined_windows.json")
    assert series.values.tolist() == [1.5, 2.0, 3.0]
    assert series.windows == [(1, 2)]
    assert series.sha256 == hashlib.sha256(CSV.encode()).hexdigest()


def test_a_copy_that_is_not_the_pinned_file_fails_clearly(tmp_path):
    folder = _fake_folder(tmp_path, CSV)
    with pytest.raises(nab.NabDataError, match="sha256"):
        nab.load_machine_temperature(folder)


def test_missing_files_fail_clearly(tmp_path):
    with pytest.raises(nab.NabDataError, match=nab.CSV_NAME):
        nab.load_machine_temperature(tmp_path)
    (tmp_path / "bad.csv").write_text("time,val\n1,2\n")
    with pytest.raises(nab.NabDataError, match="header"):
        nab.load_csv(tmp_path / "bad.csv")


def test_download_checks_the_sha256(tmp_path, monkeypatch):
    class Response:
        def __init__(self, body):
            self.body = body

        def read(self):
            return self.body

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    fetched = []

    def urlopen(url, timeout):
        fetched.append(url)
        return Response(CSV.encode() if url.endswith(".csv") else b"{}")

    monkeypatch.setattr(nab.urllib.request, "urlopen", urlopen)
    with pytest.raises(nab.NabDataError, match="expected " + nab.CSV_SHA256):
        nab.download(tmp_path)
    assert fetched == [nab.CSV_URL, nab.WINDOWS_URL]
    assert nab.UPSTREAM_COMMIT in nab.CSV_URL and nab.CSV_URL.startswith("https://raw.githubusercontent.com/")


def test_download_failure_explains_the_offline_way(tmp_path, monkeypatch):
    def urlopen(url, timeout):
        raise OSError("no network")

    monkeypatch.setattr(nab.urllib.request, "urlopen", urlopen)
    with pytest.raises(nab.NabDataError, match="NAB_DATA_DIR"):
        nab.download(tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity"])
def test_non_finite_values_fail_with_their_line(tmp_path, value):
    path = tmp_path / "x.csv"
    path.write_text(CSV.replace(",2\n", f",{value}\n"))
    with pytest.raises(nab.NabDataError, match=f"{path}:3: value '{value}' is not a finite"):
        nab.load_csv(path)


def test_train_with_a_missing_data_dir_fails_in_one_line(tmp_path, capsys):
    from models import train

    missing = tmp_path / "nowhere"
    code = train.main(["--data-dir", str(missing), "--models-dir", str(tmp_path / "models")])
    err = capsys.readouterr().err
    assert code == 2
    assert err == f"train: {missing}: no {nab.CSV_NAME} (set --data-dir to the folder holding it)\n"


def test_the_windows_beside_a_csv_are_found_as_nab_lays_them_out(tmp_path):
    """Beside the CSV (`<name>.windows.json`), or a corpus's `windows.json` one folder up, keyed
    `<category>/<file>.csv`; the entry is the one named like the CSV."""
    category = tmp_path / "realKnownCause"
    category.mkdir()
    csv_path = category / "x.csv"
    csv_path.write_text(CSV)
    assert nab.windows_beside(csv_path) is None
    corpus = tmp_path / "windows.json"
    corpus.write_text(json.dumps({"realKnownCause/y.csv": [],
                                  "realKnownCause/x.csv": [["2020-01-01 00:05:00", "2020-01-01 00:05:00"]]}))
    assert nab.windows_beside(csv_path) == corpus
    series = nab.load_series(csv_path, corpus)
    assert series.name == "realKnownCause/x.csv" and series.windows == [(1, 1)]
    own = category / "x.windows.json"
    own.write_text(json.dumps({"x.csv": []}))
    assert nab.windows_beside(csv_path) == own

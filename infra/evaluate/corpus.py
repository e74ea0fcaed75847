"""Every file of a NAB corpus streamed through detectar, several files at once, each under a
fresh sensor at the file's own timestamps, and scored (models/evaluation/corpus.py)."""

from __future__ import annotations

import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from models.evaluation import corpus
from models.evaluation.cadence import resample
from models.evaluation.nab import NabSeries
from models.evaluation.report import ModelReport, Stream, model_description, report_of

from .detectar import new_sensor, run_in_process


def _stream_file(key: str, series: NabSeries, model_path: Path,
                 redis_env: dict[str, str]) -> tuple[str, str, Stream]:
    sensor = new_sensor(Path(key).stem)
    return key, sensor, run_in_process(model_path, series.values, series.stream_timestamps(),
                                       redis_env, sensor)


def evaluate_corpus(folder: Path, model_path: Path, redis_env: dict[str, str], jobs: int = 2,
                    progress: bool = True, cadence_s: int = 0
                    ) -> list[tuple[NabSeries, corpus.FileScore]]:
    """Each file's series and score, in the corpus's order, the files as they are or
    averaged per `cadence_s` seconds (models/evaluation/cadence.py). Every file is loaded
    (and its windows checked) before any reading is streamed."""
    keys = corpus.keys(folder)
    series = {key: corpus.load(folder, key) for key in keys}
    if cadence_s:
        series = {key: resample(s, cadence_s) for key, s in series.items()}
    rule = model_description(model_path).decision.get("rule")
    done: dict[str, tuple[str, Stream]] = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(len(s) for s in series.values()),
                   desc=f"corpus at {cadence_s} s" if cadence_s else "corpus", unit="reading",
                   mininterval=0.5, leave=False, file=sys.stderr)
    # fork: the workers inherit the loaded modules; each streams whole files
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork")) as pool:
        futures = [pool.submit(_stream_file, key, series[key], model_path, redis_env)
                   for key in keys]
        for future in as_completed(futures):
            key, sensor, stream = future.result()
            done[key] = (sensor, stream)
            if bar is not None:
                bar.update(len(series[key]))
                bar.set_postfix_str(Path(key).name)
    if bar is not None:
        bar.close()
    out = []
    for key in keys:
        sensor, stream = done[key]
        report: ModelReport = report_of(key, str(model_path), "in process: detectar's endpoint",
                                        rule, stream, series[key], sensor)
        out.append((series[key], corpus.FileScore.of(series[key], report, stream.inside_band)))
    return out

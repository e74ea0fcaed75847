"""Scoring a detector on NAB: the data (nab.py), the score (scoring.py), the report of a run
(report.py, plot.py) and the corpus as one benchmark (corpus.py). Streaming readings through
a running detectar is infra/evaluate's job; this package only judges what came back."""


class EvaluationError(RuntimeError):
    """detectar refused a reading, or the inputs cannot be evaluated."""

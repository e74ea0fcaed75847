"""Where the model's files are: the shipped model and the replaced system's, found once."""

from __future__ import annotations

import os
from pathlib import Path

from shared.config import REPO_ROOT

MODELS_DIR = REPO_ROOT / "models"
DEFAULT_MODEL = MODELS_DIR / "modelo"


def reference_model_dir() -> Path | None:
    """The replaced system's SavedModel folder (`modelo`), if it is where we are given it:
    under REFERENCE_MODEL_DIR, else under ../shared/reference-model beside the checkout."""
    base = os.environ.get("REFERENCE_MODEL_DIR") or REPO_ROOT.parent / "shared" / "reference-model"
    folder = Path(base) / "modelo"
    return folder if folder.is_dir() else None

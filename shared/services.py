"""The process-wide clients, built on first use and then shared by every request.

Nothing here runs at import time: a function whose Redis or model is missing still starts,
answers 503/500 with a clear message, and recovers by itself once the dependency is back.
Only detectar ever builds the detector, so nuevo and listar never load the model.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from functools import cached_property

from .config import ConfigError, Settings, load_settings
from .detection import Detector
from .errors import Misconfigured
from .redis_connection import RedisConnection, connect
from .serving import Predictor
from .serving.description import load_description, resolve_version_dir
from .serving.engine import EmbeddedModel
from .serving.tfserving import TFServingClient
from .store import readiness
from .store.reading_store import ReadingStore
from .store.replay_guard import ReplayGuard
from .store.sensor_views import SensorViews

log = logging.getLogger(__name__)


def build_detector(settings: Settings) -> Detector:
    """The model as the settings ask: TF Serving when configured, else the embedded engine."""
    try:
        version_dir = resolve_version_dir(settings.model_path)
        description = load_description(version_dir)
    except (OSError, ValueError) as exc:
        raise Misconfigured(f"cannot load the model at {settings.model_path}: {exc}") from exc
    if description.window != settings.window_size:
        raise Misconfigured(f"WINDOW_SIZE={settings.window_size} does not match the model, "
                            f"whose input window is {description.window}")
    # load_settings refuses MODEL_ENGINE=tfserving without a URL; "auto" uses one when set
    serving_url = None if settings.model_engine == "embedded" else settings.serving_url

    def embedded() -> Predictor:
        try:
            return EmbeddedModel.load(version_dir, description)
        except (OSError, ValueError) as exc:
            raise Misconfigured(f"cannot load the model at {version_dir}: {exc}") from exc

    if serving_url is None:
        return Detector(description, embedded(), threshold=settings.threshold)
    # TF Serving must compute the very version whose model.json this process applies
    version = version_dir.name if version_dir.name.isdigit() else None
    client = TFServingClient(serving_url, settings.model_name, settings.serving_timeout_s,
                             version=version, window=description.window)
    fallback = embedded() if settings.serving_fallback == "embedded" else None
    return Detector(description, client, fallback, threshold=settings.threshold)


class Services:
    def __init__(self, env: Mapping[str, str] | None = None):
        self._env = env
        self._lock = threading.Lock()  # the model is loaded once even under concurrency
        self._detector: Detector | None = None

    @cached_property
    def settings(self) -> Settings:
        try:
            return load_settings(os.environ if self._env is None else self._env)
        except ConfigError as exc:
            raise Misconfigured(f"invalid setting: {exc}") from exc

    @cached_property
    def redis(self) -> RedisConnection:
        return connect(self.settings)

    @cached_property
    def store(self) -> ReadingStore:
        return ReadingStore(self.redis)

    @cached_property
    def replay_guard(self) -> ReplayGuard:
        return ReplayGuard(self.redis)

    def problem(self) -> str | None:
        """What keeps the functions from working with Redis now (the readiness probe)."""
        return readiness.problem(self.redis)

    @cached_property
    def views(self) -> SensorViews:
        return SensorViews(self.store.connection)

    @property
    def detector(self) -> Detector:
        if self._detector is None:
            with self._lock:
                if self._detector is None:
                    self._detector = build_detector(self.settings)
                    log.info("model loaded from %s", self.settings.model_path)
        return self._detector


SERVICES = Services()

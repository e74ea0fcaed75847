"""listar: a sensor's readings, newest first, with the anomalies detectar found."""

from typing import Any

from shared.actions import LISTAR
from shared.endpoint import serve


def handle(event: Any, context: Any) -> dict[str, Any]:
    return serve(event, context, LISTAR)

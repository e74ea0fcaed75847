"""nuevo: store a reading, or a batch of readings, for a sensor."""

from typing import Any

from shared.actions import NUEVO
from shared.endpoint import serve


def handle(event: Any, context: Any) -> dict[str, Any]:
    return serve(event, context, NUEVO)

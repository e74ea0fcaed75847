"""detectar: store a reading and judge it against the readings before it."""

from typing import Any

from shared.actions import DETECTAR
from shared.endpoint import serve


def handle(event: Any, context: Any) -> dict[str, Any]:
    return serve(event, context, DETECTAR)

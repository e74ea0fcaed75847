"""detectar: store a reading and judge it against the readings before it."""

from shared.actions import DETECTAR
from shared.endpoint import serve


def handle(event, context):
    return serve(event, context, DETECTAR)

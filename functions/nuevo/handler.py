"""nuevo: store a reading, or a batch of readings, for a sensor."""

from shared.actions import NUEVO
from shared.endpoint import serve


def handle(event, context):
    return serve(event, context, NUEVO)

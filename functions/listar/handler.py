"""listar: a sensor's readings, newest first, with the anomalies detectar found."""

from shared.actions import LISTAR
from shared.endpoint import serve


def handle(event, context):
    return serve(event, context, LISTAR)

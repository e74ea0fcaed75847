"""Sensor simulator: readings with anomalies at known times, sent to the platform, and a
report of what detectar caught (`python -m infra.simulator`, `make simulate`)."""

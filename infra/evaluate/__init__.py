"""`make evaluate`: stream NAB series through detectar, in process or through a running
gateway, and score what it answered (models/evaluation)."""

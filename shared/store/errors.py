"""What the store raises: operations that did not happen, for a reason the caller can be told
(shared/errors.py turns each into its HTTP answer), and the translation of Redis failures."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis
from redis.exceptions import ClusterDownError, TryAgainError

from ..redis_connection import NotReplicated


class StoreError(Exception):
    """A store operation that did not happen, for a reason the caller can be told."""


class StoreUnavailable(StoreError):
    """Redis cannot be reached, or refused our credentials; trying again later may work."""


class TimestampTaken(StoreError):
    """The sensor already has a different reading at that explicit timestamp; nothing was
    overwritten."""


class NotATimeSeries(StoreError):
    """The sensor's key holds something other than a time series."""


class NoFreeMillisecond(StoreError):
    """Server-clock readings came faster than the sensor's milliseconds free up."""

    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s


@contextmanager
def store_errors(sensor: str, writing: bool = True) -> Iterator[None]:
    """Redis failures as store errors."""
    try:
        yield
    except redis.AuthenticationError as exc:  # a ConnectionError too: test it first
        raise StoreUnavailable("Redis refused our credentials") from exc
    except NotReplicated as exc:
        # On the master, not yet safe from its failure: unacknowledged, and maybe kept.
        raise StoreUnavailable(f"Redis is unavailable: {exc}; try again (a reading re-sent "
                               "with its timestamp is never stored twice)") from exc
    except (redis.ConnectionError, redis.TimeoutError, ClusterDownError, TryAgainError) as exc:
        # A write may have been applied just before the connection broke: say so honestly.
        raise StoreUnavailable("Redis is unavailable; try again" + (
            " (a reading re-sent with its timestamp is never stored twice)" if writing else "")
        ) from exc
    except redis.ResponseError as exc:
        if "not a TSDB key" in str(exc) or "WRONGTYPE" in str(exc):
            raise NotATimeSeries(f"sensor {sensor!r} names a Redis key that is not a time series") from exc
        raise

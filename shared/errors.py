"""The failures the functions answer deliberately, each with its HTTP status.

The layers below speak their own language (store errors, an unavailable model); `as_api_error`
is the one place that says what each is worth in HTTP. Anything else that escapes a handler is
a bug: endpoint.py answers it with a plain 500 and logs the traceback, which never reaches the
caller.
"""

from __future__ import annotations

from typing import Any

from .detection import ModelUnavailable
from .store import errors as store


class ApiError(Exception):
    """A failure with a message meant for the caller."""

    status = 500
    unexpected = False  # True: a bug behind it, whose traceback goes to the log

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def headers(self) -> dict[str, str]:
        """Response headers the caller needs to act on this failure."""
        return {}

    def fields(self) -> dict[str, Any]:
        """Fields the JSON answer carries beside `error`."""
        return {}


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class MethodNotAllowed(ApiError):
    status = 405

    def __init__(self, message: str, allowed: tuple[str, ...]):
        super().__init__(message)
        self.allowed = allowed

    def headers(self) -> dict[str, str]:
        return {"Allow": ", ".join(self.allowed)}  # required with a 405 (RFC 9110)


class Conflict(ApiError):
    """The request is valid but clashes with what is stored (e.g. a taken timestamp)."""

    status = 409


class PayloadTooLarge(ApiError):
    status = 413


class TooManyRequests(ApiError):
    """One sensor is sent server-clock readings faster than its milliseconds free up."""

    status = 429

    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class Unavailable(ApiError):
    """A dependency (Redis, TF Serving) cannot be reached; retrying later may work."""

    status = 503


class Misconfigured(ApiError):
    """The function's settings are invalid: an operator has to fix the deployment."""

    status = 500


class StoredButNotJudged(ApiError):
    """detectar stored the reading but could not judge it (e.g. the model server is down):
    the answer says so, so that nobody sends the reading again."""

    def __init__(self, stored: dict[str, Any], cause: Exception):
        known = as_api_error(cause)
        self.status = known.status if known else 500
        self.unexpected = known is None  # a bug: endpoint.py logs the cause's traceback
        reason = known.message if known else "internal error"
        super().__init__(f"reading stored at {stored['timestamp']} but not judged: {reason}; "
                         "do not send it again")
        self.stored = stored

    def fields(self) -> dict[str, Any]:
        return {**self.stored, "stored": True, "anomaly": None}


def as_api_error(exc: Exception) -> ApiError | None:
    """The answer a failure from any layer deserves; None for a bug."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, store.TimestampTaken | store.NotATimeSeries):
        return Conflict(str(exc))
    if isinstance(exc, store.NoFreeMillisecond):
        return TooManyRequests(str(exc), exc.retry_after_s)
    if isinstance(exc, store.StoreUnavailable | ModelUnavailable):
        return Unavailable(str(exc))
    return None

"""The failures the functions answer deliberately, each with its HTTP status.

Anything else that escapes a handler is a bug: endpoint.py answers it with a plain 500
and logs the traceback, which never reaches the caller.
"""

from __future__ import annotations


class ApiError(Exception):
    """A failure with a message meant for the caller."""

    status = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def headers(self) -> dict[str, str]:
        """Response headers the caller needs to act on this failure."""
        return {}


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class MethodNotAllowed(ApiError):
    status = 405


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

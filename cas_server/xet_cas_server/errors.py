"""Typed HTTP errors. Handlers raise these; the app turns them into JSON error responses.

Every error body has the same shape, ``{"error": <code>, "message": <text>, "request_id": <id>}``,
so a test (or a person reading a browser console) can tell *why* a request was refused.
"""

from __future__ import annotations


class CasError(Exception):
    """Base class: an HTTP status, a short machine-readable code and a human message."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})


class BadRequest(CasError):
    """The request is malformed (bad path, bad JSON, bad header)."""

    status = 400
    code = "bad_request"


class InvalidObject(BadRequest):
    """A xorb or shard failed validation; nothing of it was stored."""

    code = "invalid_object"


class Unauthorized(CasError):
    """Missing, malformed, tampered or expired bearer token."""

    status = 401
    code = "unauthorized"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer realm="xet-cas"'})


class Forbidden(CasError):
    """Valid credentials without the needed scope, or a bad/expired signed URL."""

    status = 403
    code = "forbidden"


class NotFound(CasError):
    status = 404
    code = "not_found"


class PreconditionFailed(CasError):
    """Grant upload of a xorb that is already stored (hf_xet treats 412 as success)."""

    status = 412
    code = "already_exists"


class PayloadTooLarge(CasError):
    status = 413
    code = "payload_too_large"


class TooManyRequests(CasError):
    """A per-token budget is used up for now (hf_xet retries 429 with backoff)."""

    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class RangeNotSatisfiable(CasError):
    status = 416
    code = "range_not_satisfiable"

    def __init__(self, message: str, *, size: int | None = None) -> None:
        super().__init__(
            message, headers={"Content-Range": f"bytes */{size}"} if size is not None else None
        )

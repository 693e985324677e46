"""Errors in the Hub's shape: ``{"error": "<message>"}`` with the status, plus the
``X-Error-Code`` / ``X-Error-Message`` headers the clients dispatch on (huggingface_hub turns
``RepoNotFound``, ``RevisionNotFound`` and ``EntryNotFound`` into typed exceptions;
@huggingface/hub treats ``EntryNotFound`` on a resolve as "no such file").

Every Hub handler converts *any* :class:`CasError` it meets (also the CAS helpers' 401/413)
into this shape; see :func:`hub_response`.
"""

from __future__ import annotations

from starlette.responses import JSONResponse

from ..errors import CasError


class HubError(CasError):
    """A refusal of the Hub API; ``error_code`` goes to ``X-Error-Code`` when set."""

    status = 400
    code = "bad_request"
    error_code: str | None = None

    def __init__(self, message: str, *, error_code: str | None = None) -> None:
        super().__init__(message)
        if error_code is not None:
            self.error_code = error_code


class BadHubRequest(HubError):
    """Malformed input: bad JSON, bad path, bad name."""


class Unprocessable(HubError):
    """Well-formed but impossible: e.g. an ``lfsFile`` whose content the server never received."""

    status = 422
    code = "unprocessable"


class RepoNotFound(HubError):
    """Unknown repository, or one the caller may not see (401 without a token, 404 with one:
    what the Hub answers, so a private repository's existence does not leak)."""

    status = 404
    code = "not_found"
    error_code = "RepoNotFound"

    def __init__(self, message: str, *, anonymous: bool = False) -> None:
        super().__init__(message)
        if anonymous:
            self.status = 401


class RevisionNotFound(HubError):
    status = 404
    code = "not_found"
    error_code = "RevisionNotFound"


class EntryNotFound(HubError):
    status = 404
    code = "not_found"
    error_code = "EntryNotFound"


class NoWriteAccess(HubError):
    status = 403
    code = "forbidden"


class HubUnauthorized(HubError):
    """A token was sent and is not valid (the Hub's exact message: huggingface_hub then does
    not mistake it for a missing repository)."""

    status = 401
    code = "unauthorized"

    def __init__(self, message: str = "Invalid credentials in Authorization header") -> None:
        super().__init__(message)
        self.headers["WWW-Authenticate"] = 'Bearer realm="hub"'


class Conflict(HubError):
    status = 409
    code = "conflict"


def hub_response(exc: CasError, request_id: str | None = None) -> JSONResponse:
    headers = dict(exc.headers)
    headers["X-Error-Message"] = _header_safe(exc.message)
    error_code = getattr(exc, "error_code", None)
    if error_code:
        headers["X-Error-Code"] = error_code
    body: dict[str, object] = {"error": exc.message}
    if request_id:
        body["request_id"] = request_id
    return JSONResponse(body, status_code=exc.status, headers=headers)


def _header_safe(text: str) -> str:
    """Header values are latin-1 on the wire; keep the message readable and one line."""
    one_line = " ".join(text.split())[:500]
    return one_line.encode("ascii", "backslashreplace").decode("ascii")

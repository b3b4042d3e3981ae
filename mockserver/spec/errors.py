"""One exception tree, one status table and one error body (the ``BifrostError`` envelope)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

# The challenge of every 401 the API sends. It names only Bearer, so browsers show no login dialog.
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="bifrost"'}


@dataclass
class ApiError(Exception):
    """An answer other than success. Subclasses fix the HTTP status and the machine-readable type."""

    message: str
    param: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    status: ClassVar[int] = 500
    type: ClassVar[str] = "internal"

    def __str__(self) -> str:
        where = f" [{self.param}]" if self.param else ""
        return f"{self.status} {self.type}{where}: {self.message}"

    def body(self) -> dict[str, Any]:
        """The envelope: what upstream's management handlers send, with a stable ``error.type``."""
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.param:
            error["param"] = self.param
        return {"is_bifrost_error": False, "status_code": self.status, "error": error, "extra_fields": {}}


class BadRequest(ApiError):
    status = 400
    type = "invalid_request"


class Unauthorized(ApiError):
    status = 401
    type = "unauthorized"


class Forbidden(ApiError):
    status = 403
    type = "forbidden"


class NotFound(ApiError):
    status = 404
    type = "not_found"


class MethodNotAllowed(ApiError):
    status = 405
    type = "method_not_allowed"


class Conflict(ApiError):
    status = 409
    type = "conflict"


class Gone(ApiError):
    status = 410
    type = "gone"


class PayloadTooLarge(ApiError):
    status = 413
    type = "payload_too_large"


class UnsupportedMediaType(ApiError):
    status = 415
    type = "unsupported_media_type"


class TooManyRequests(ApiError):
    status = 429
    type = "too_many_requests"


class InternalError(ApiError):
    status = 500
    type = "internal"


class StoreUnavailable(ApiError):
    """The shared state store (PostgreSQL, or the state file of ``--workers``) cannot be reached: nothing
    was read or changed, and the mock answers again once the store is back (issue 24)."""

    status = 503
    type = "state_store_unavailable"


STATUS_TABLE: dict[int, type[ApiError]] = {
    cls.status: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        Conflict,
        Gone,
        PayloadTooLarge,
        UnsupportedMediaType,
        TooManyRequests,
        InternalError,
        StoreUnavailable,
    )
}


def for_status(status: int, message: str, param: str | None = None) -> ApiError:
    """The error of a given HTTP status (unknown statuses fall back to 500)."""
    return STATUS_TABLE.get(status, InternalError)(message, param)

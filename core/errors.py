"""Domain exceptions. Each carries the contract's `error_code` and HTTP status; the API maps them in one place
and the client raises the same classes from error responses."""

from __future__ import annotations

from typing import Any


class Image2ModelError(Exception):
    """Base of every error image2model raises on purpose."""

    error_code = "INTERNAL_ERROR"
    status_code = 500

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_body(self) -> dict[str, Any]:
        """The contract's error envelope."""
        return {
            "error": True,
            "error_code": self.error_code,
            "message": self.message,
            "status_code": self.status_code,
            "details": self.details,
        }


class ValidationFailed(Image2ModelError):
    error_code = "VALIDATION_ERROR"
    status_code = 400


class MalformedRequest(Image2ModelError):
    error_code = "VALIDATION_ERROR"
    status_code = 422


class Unauthorized(Image2ModelError):
    error_code = "UNAUTHORIZED"
    status_code = 401


class JobNotFound(Image2ModelError):
    error_code = "JOB_NOT_FOUND"
    status_code = 404


class FileNotFound(Image2ModelError):
    error_code = "FILE_NOT_FOUND"
    status_code = 404


class JobFinished(Image2ModelError):
    error_code = "JOB_FINISHED"
    status_code = 409


class JobNotFinished(Image2ModelError):
    """The job is still queued or running (exports are made from finished jobs)."""

    error_code = "JOB_NOT_FINISHED"
    status_code = 409


class NotExportable(Image2ModelError):
    """The job or file has no stored model to export (nothing completed, or made before models were kept)."""

    error_code = "NOT_EXPORTABLE"
    status_code = 409


class ExportFailed(Image2ModelError):
    """An export could not be made from the stored model (e.g. a face budget too small to stay closed)."""

    error_code = "EXPORT_FAILED"
    status_code = 422


class FileTooLarge(Image2ModelError):
    error_code = "FILE_TOO_LARGE"
    status_code = 413


class TooManyFiles(Image2ModelError):
    error_code = "TOO_MANY_FILES"
    status_code = 413


class UnsupportedMediaType(Image2ModelError):
    error_code = "UNSUPPORTED_MEDIA_TYPE"
    status_code = 415


class RateLimited(Image2ModelError):
    error_code = "RATE_LIMITED"
    status_code = 429


class NotReady(Image2ModelError):
    error_code = "NOT_READY"
    status_code = 503


class GenerationError(Image2ModelError):
    """A generator could not turn an input into a model; the message is shown to the user as the file's error."""

    error_code = "GENERATION_FAILED"
    status_code = 500


class Cancelled(Image2ModelError):
    """Raised inside a generator's progress callback when the job was cancelled."""

    error_code = "CANCELLED"
    status_code = 409


class ServerUnavailable(Image2ModelError):
    """Client side: the server cannot be reached, or the connection broke and could not be resumed."""

    error_code = "SERVER_UNAVAILABLE"
    status_code = 503


class ServerError(Image2ModelError):
    """An unexpected server-side failure (client side: a 5xx without a known code)."""


_BY_CODE: dict[tuple[str, int], type[Image2ModelError]] = {
    (cls.error_code, cls.status_code): cls
    for cls in (
        ValidationFailed,
        MalformedRequest,
        Unauthorized,
        JobNotFound,
        FileNotFound,
        JobFinished,
        JobNotFinished,
        NotExportable,
        ExportFailed,
        FileTooLarge,
        TooManyFiles,
        UnsupportedMediaType,
        RateLimited,
        NotReady,
    )
}


# ---- job API v1.1: idempotent requests, conditional/ranged downloads, connection guard -------------------


class IdempotencyMismatch(Image2ModelError):
    """The Idempotency-Key was used before with a different request."""

    error_code = "IDEMPOTENCY_MISMATCH"
    status_code = 422


class IdempotencyInProgress(Image2ModelError):
    """The first request with this Idempotency-Key has not finished yet; retry in a moment."""

    error_code = "IDEMPOTENCY_IN_PROGRESS"
    status_code = 409


class RangeNotSatisfiable(Image2ModelError):
    """A Range request starts past the end of the file (`details.size` is the file's size)."""

    error_code = "RANGE_NOT_SATISFIABLE"
    status_code = 416


class RequestTimeout(Image2ModelError):
    """The client sent its request headers or body too slowly; the connection is closed."""

    error_code = "REQUEST_TIMEOUT"
    status_code = 408


class HeadersTooLarge(Image2ModelError):
    """The request's headers exceed the server's limit."""

    error_code = "HEADERS_TOO_LARGE"
    status_code = 431


class TooManyConnections(Image2ModelError):
    """This API process holds as many connections as it allows; retry shortly (see Retry-After)."""

    error_code = "TOO_MANY_CONNECTIONS"
    status_code = 503


_BY_CODE.update(
    {
        (cls.error_code, cls.status_code): cls
        for cls in (
            IdempotencyMismatch,
            IdempotencyInProgress,
            RangeNotSatisfiable,
            RequestTimeout,
            HeadersTooLarge,
            TooManyConnections,
        )
    }
)


def error_from_body(status_code: int, body: Any) -> Image2ModelError:
    """Rebuild the typed exception from an error response (used by the client)."""
    if isinstance(body, dict) and body.get("error") is True:
        code = str(body.get("error_code", ""))
        cls = _BY_CODE.get((code, status_code)) or next(
            (c for (c_code, _), c in _BY_CODE.items() if c_code == code), ServerError
        )
        err = cls(str(body.get("message", "")), body.get("details") or {})
        err.status_code = status_code
        err.error_code = code or err.error_code
        return err
    err = ServerError(f"HTTP {status_code}: {str(body)[:200]}")
    err.status_code = status_code
    return err

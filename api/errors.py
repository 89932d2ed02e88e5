"""The one place that turns exceptions into the contract's error envelope."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from image2model.core.errors import (
    HeadersTooLarge,
    IdempotencyInProgress,
    Image2ModelError,
    RangeNotSatisfiable,
    RateLimited,
    RequestTimeout,
    TooManyConnections,
    Unauthorized,
)

log = logging.getLogger("image2model.api")

_HTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 406: "NOT_ACCEPTABLE", 413: "FILE_TOO_LARGE"}


def error_response(exc: Image2ModelError) -> JSONResponse:
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.details.get("retry_after", 1))
    headers.update(_v11_headers(exc))
    return JSONResponse(exc.to_body(), status_code=exc.status_code, headers=headers)


def _v11_headers(exc: Image2ModelError) -> dict[str, str]:
    """The headers the job API v1.1 errors carry besides their body."""
    if isinstance(exc, RangeNotSatisfiable):
        return {"Content-Range": f"bytes */{exc.details.get('size', 0)}"}
    if isinstance(exc, (IdempotencyInProgress, TooManyConnections)):
        return {"Retry-After": str(exc.details.get("retry_after", 1))}
    if isinstance(exc, (RequestTimeout, HeadersTooLarge)):
        return {"Connection": "close"}
    return {}


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path (a 405's `Allow`; Starlette names only the first
    route's, and GET and HEAD are routes of their own here)."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes)
    ]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Image2ModelError)
    async def _domain(_: Request, exc: Image2ModelError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"), "message": e.get("msg", "")}
            for e in exc.errors()
        ]
        body = {
            "error": True,
            "error_code": "VALIDATION_ERROR",
            "message": "; ".join(f"{e['field']}: {e['message']}" for e in errors)
            or "The request is malformed.",
            "status_code": 422,
            "details": {"errors": errors},
        }
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, f"HTTP_{exc.status_code}")
        message = exc.detail if isinstance(exc.detail, str) else "Request failed."
        if exc.status_code == 404:
            message = "No such endpoint. See /docs for the API."
        body = {
            "error": True,
            "error_code": code,
            "message": message,
            "status_code": exc.status_code,
            "details": {},
        }
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("event=unhandled_error path=%s", request.url.path)
        body = {
            "error": True,
            "error_code": "INTERNAL_ERROR",
            "message": "The server hit an unexpected error; it has been logged.",
            "status_code": 500,
            "details": {},
        }
        return JSONResponse(body, status_code=500)

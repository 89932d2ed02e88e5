"""FastAPI dependencies: the app's wiring, who is calling, and how they may reach a job.

Dependencies that do not block are `async def`: FastAPI runs a plain `def` one in the threadpool, a thread hop
per dependency per request."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Depends, Header, Query, Request, Security
from fastapi.security import APIKeyHeader, HTTPBearer

from image2model.api.context import Services
from image2model.api.exports import ExportService
from image2model.api.hub import EventHub
from image2model.api.idempotency import Idempotency
from image2model.api.ratelimit import Limiter
from image2model.api.security import Caller, KeyRing
from image2model.api.service import Access, JobService
from image2model.core.errors import MalformedRequest, Unauthorized
from image2model.core.numbers import parse_decimal


@dataclass
class AppState:
    services: Services
    keys: KeyRing
    service: JobService
    hub: EventHub
    limiter: Limiter
    exports: ExportService
    idempotency: Idempotency


async def app_state(request: Request) -> AppState:
    return request.app.state.image2model


def presented_key(request: Request) -> str | None:
    """The key from `Authorization: Bearer <key>` or `X-API-Key: <key>`."""
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        raise Unauthorized("Send the key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'.")
    return request.headers.get("x-api-key") or None


# Declared for the OpenAPI schema (its securitySchemes and each operation's `security`); `presented_key` reads the
# headers itself, so a malformed Authorization header gets a clear 401 instead of being ignored.
_BEARER = HTTPBearer(
    auto_error=False, scheme_name="bearerAuth", description="`Authorization: Bearer <API key>`."
)
_API_KEY = APIKeyHeader(
    name="X-API-Key", auto_error=False, scheme_name="apiKeyHeader", description="`X-API-Key: <API key>`."
)


async def caller(
    request: Request,
    state: AppState = Depends(app_state),
    _bearer: object = Security(_BEARER),
    _api_key: object = Security(_API_KEY),
) -> Caller:
    return state.keys.caller(presented_key(request) if state.keys.enabled else None)


async def require_key(who: Caller = Depends(caller)) -> Caller:
    """For calls that a signed link cannot make (upload, cancel)."""
    if who.owner is None:
        raise Unauthorized("An API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key'.")
    return who


def rate_limited_uploader(
    request: Request, who: Caller = Depends(require_key), state: AppState = Depends(app_state)
) -> Caller:
    """An uploader within the upload rate limit."""
    client = request.client.host if request.client else "unknown"
    state.limiter.check(who.owner if state.keys.enabled and who.owner else f"addr:{client}")
    return who


async def access(
    who: Caller = Depends(caller),
    token: str | None = Query(
        None, max_length=200, description="Signed link token from an upload response or listing."
    ),
) -> Access:
    return Access(caller=who, token=token)


def base_url(request: Request) -> str:
    """Base URL for links: the configured public URL, else the one the request came in on."""
    configured = request.app.state.image2model.services.settings.public_url
    return configured or str(request.base_url)


# ---- job API v1.1: Prefer: wait ------------------------------------------------------------------------

MAX_WAIT_SECONDS = 60


async def prefer_wait(
    request: Request,
    prefer: str | None = Header(
        None,
        max_length=1000,
        description="RFC 7240 preferences; `wait=N` (1..60): answer once the job ended or after N seconds, "
        "whichever is first (`Preference-Applied: wait=N` says it was honoured). Other preferences are ignored.",
    ),
) -> int | None:
    """The seconds of a `Prefer: wait=N` (every Prefer header is read), or None when not asked for."""
    wait: int | None = None
    for header in request.headers.getlist("prefer"):
        for preference in header.split(","):
            name, _, value = preference.split(";", 1)[0].partition("=")
            if name.strip().lower() != "wait":
                continue
            seconds = parse_decimal(value.strip().strip('"'), maximum=MAX_WAIT_SECONDS)
            if seconds is None or seconds < 1:
                raise MalformedRequest(
                    f"Prefer: wait must be a whole number of seconds from 1 to {MAX_WAIT_SECONDS}, "
                    f"got {value.strip()[:20]!r}.",
                    {"errors": [{"field": "Prefer", "message": f"wait must be 1..{MAX_WAIT_SECONDS}"}]},
                )
            wait = seconds
    return wait

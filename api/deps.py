"""FastAPI dependencies: the app's wiring, who is calling, and how they may reach a job."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Depends, Query, Request

from image2model.api.context import Services
from image2model.api.exports import ExportService
from image2model.api.hub import EventHub
from image2model.api.ratelimit import Limiter
from image2model.api.security import Caller, KeyRing
from image2model.api.service import Access, JobService
from image2model.core.errors import Unauthorized


@dataclass
class AppState:
    services: Services
    keys: KeyRing
    service: JobService
    hub: EventHub
    limiter: Limiter
    exports: ExportService


def app_state(request: Request) -> AppState:
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


def caller(request: Request, state: AppState = Depends(app_state)) -> Caller:
    return state.keys.caller(presented_key(request) if state.keys.enabled else None)


def require_key(who: Caller = Depends(caller)) -> Caller:
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


def access(
    who: Caller = Depends(caller),
    token: str | None = Query(None, description="Signed link token from an upload response or listing."),
) -> Access:
    return Access(caller=who, token=token)


def base_url(request: Request) -> str:
    """Base URL for links: the configured public URL, else the one the request came in on."""
    configured = request.app.state.image2model.services.settings.public_url
    return configured or str(request.base_url)

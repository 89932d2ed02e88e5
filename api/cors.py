"""CORS with the contract's error envelope: Starlette answers a refused preflight in plain text."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from image2model.api.errors import error_response
from image2model.core.errors import ValidationFailed


class EnvelopeCORSMiddleware(CORSMiddleware):
    """Starlette's CORS middleware whose refused preflights (400) carry the JSON error envelope."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        refused = bytes(response.body).decode().removeprefix("Disallowed CORS ")
        answer = error_response(
            ValidationFailed(
                f"This cross-origin request is not allowed (its {refused}); the server's "
                "IMAGE2MODEL_CORS_ORIGINS lists the origins it accepts.",
                {"errors": [{"field": "cors", "message": f"disallowed {refused}"}]},
            )
        )
        for name, value in response.headers.items():
            if name.startswith("access-control-") or name == "vary":
                answer.headers[name] = value
        return answer

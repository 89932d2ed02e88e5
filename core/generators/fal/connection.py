"""Our own fal-client instance, the test-only host override (all FAL hosts under one base URL), and the sorting
of fal-client's errors into transient ones (retry later) and permanent ones (a sentence for the user).

fal-client is imported inside functions: importing the generator package stays cheap."""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import fal_client
    import httpx

HOST_GLOBALS = ("QUEUE_URL_FORMAT", "RUN_URL_FORMAT", "REST_URL", "CDN_URL")
"""fal-client 1.0.3 module globals holding FAL's hosts, read at call time (fal.md §4.3 A)."""

_FAL_DEFAULTS: dict[str, str] = {}
_LOCK = threading.Lock()

SUBMIT_TIMEOUT = 30.0
"""Seconds for the submit POST and uploads (fal-client's default is 120)."""


def point_fal_at(base_url: str) -> None:
    """Send every fal-client request of this process under `base_url` (`{base}/queue/`, `/run/`, `/rest`,
    `/cdn`), or back to FAL's own hosts when empty. Process-wide, since fal-client keeps its hosts in module
    globals; used by tests and benchmarks only.

    Also turns fal-client's own retry loop off (one attempt per call): it sleeps up to ~50 s inside the calling
    thread and ignores `Retry-After`, whereas our generator retries across short poll tasks."""
    import fal_client.client as fc

    with _LOCK:
        if not _FAL_DEFAULTS:
            _FAL_DEFAULTS.update({name: getattr(fc, name) for name in HOST_GLOBALS})
        if base_url:
            base = base_url.rstrip("/")
            hosts = {
                "QUEUE_URL_FORMAT": f"{base}/queue/",
                "RUN_URL_FORMAT": f"{base}/run/",
                "REST_URL": f"{base}/rest",
                "CDN_URL": f"{base}/cdn",
            }
        else:
            hosts = dict(_FAL_DEFAULTS)
        for name, value in hosts.items():
            setattr(fc, name, value)
        fc.MAX_ATTEMPTS = 1


def make_client(key: str, base_url: str) -> fal_client.SyncClient:
    """A fal-client of our own with this key (never the module-level helpers, which freeze FAL_KEY)."""
    import fal_client

    point_fal_at(base_url)
    return fal_client.SyncClient(key=key, default_timeout=SUBMIT_TIMEOUT)


class QuickHTTP:
    """The GETs a busy io worker sends most, on one keep-alive `http.client` connection per host and thread:
    FAL's status check and result fetch exactly as fal-client sends them (URL, Authorization and User-Agent
    headers, timeout, answer parsing and errors), and the downloads of result files (no key sent to file hosts).
    fal-client's call goes through two httpx client layers (its backup-domain fallback is a client inside the
    transport), and any httpx request costs about 1-2 ms of Python against 0.2-0.4 ms here; a worker making
    hundreds of these a second, or fetching 200 results at once, feels it.

    The methods raise httpx's exceptions, as fal-client would: `httpx.ConnectError` when no connection could be
    made (the caller then goes through fal-client, which tries FAL's backup domain, or httpx), `httpx.ReadTimeout`,
    `httpx.RemoteProtocolError`. They return None for an answer httpx would follow (a redirect): the caller then
    asks through httpx. No `QuickHTTP` is made where the environment names a proxy (httpx honours it, this does
    not)."""

    def __init__(self, fal: fal_client.SyncClient) -> None:
        wanted = ("authorization", "user-agent")
        self._headers = {k: v for k, v in fal._client.headers.items() if k.lower() in wanted}
        self._headers["Accept"] = "application/json"
        self._plain = {"User-Agent": "image2model", "Accept": "*/*"}
        self._local = threading.local()

    @staticmethod
    def usable() -> bool:
        import urllib.request

        return not urllib.request.getproxies()

    def _connection(self, scheme: str, netloc: str, connect_timeout: float) -> http.client.HTTPConnection:
        conns: dict[tuple[str, str], http.client.HTTPConnection] = vars(self._local).setdefault("conns", {})
        conn = conns.get((scheme, netloc))
        if conn is None:
            if scheme == "https":
                import httpx

                conn = http.client.HTTPSConnection(
                    netloc, timeout=connect_timeout, context=httpx.create_ssl_context()
                )
            else:
                conn = http.client.HTTPConnection(netloc, timeout=connect_timeout)
            conns[(scheme, netloc)] = conn
        return conn

    def _get(
        self, url: str, headers: dict[str, str], timeout: httpx.Timeout, limit: int | None = None
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """(status, headers, body) of one GET; a body over `limit` bytes raises `ResponseTooLarge`."""
        import httpx

        parts = urlsplit(url)
        path = f"{parts.path or '/'}{'?' + parts.query if parts.query else ''}"
        for fresh in (False, True):
            conn = self._connection(parts.scheme, parts.netloc, timeout.connect or 30.0)
            if fresh or conn.sock is None:
                conn.close()
                try:
                    conn.connect()
                except OSError as exc:
                    raise httpx.ConnectError(f"{type(exc).__name__}: {exc}") from exc
                fresh = True
            try:
                conn.sock.settimeout(timeout.read)
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                if limit is None:
                    return response.status, response.getheaders(), response.read()
                declared = response.getheader("content-length") or ""
                if declared.isdigit() and int(declared) > limit:
                    conn.close()
                    raise ResponseTooLarge(int(declared))
                body = response.read(limit + 1)
                if len(body) > limit:
                    conn.close()
                    raise ResponseTooLarge(None)
                if not response.isclosed():
                    response.read()  # the end of a chunked body, so the connection can be kept
                return response.status, response.getheaders(), body
            except TimeoutError as exc:
                conn.close()
                raise httpx.ReadTimeout(str(exc) or "timed out") from exc
            except (http.client.HTTPException, OSError) as exc:
                conn.close()
                if fresh:  # a kept-alive connection the server had closed gets one retry on a new one
                    raise httpx.RemoteProtocolError(f"{type(exc).__name__}: {exc}") from exc
        raise AssertionError("unreachable")

    def _fal_get(self, url: str) -> bytes | None:
        """A GET to FAL's queue with fal-client's headers, timeout and errors; None for a redirect."""
        import fal_client.client as fc
        import httpx

        status, headers, body = self._get(url, self._headers, fc.QUEUE_POLL_TIMEOUT)
        if 300 <= status < 400:
            return None
        if status >= 400:
            request = httpx.Request("GET", url)
            fc._raise_for_status(  # fal-client's own error, from a response as httpx would have made it
                httpx.Response(status, headers=headers, content=body, request=request)
            )
        return body

    def status(self, handle: fal_client.SyncRequestHandle) -> fal_client.Status | None:
        """`handle.status(with_logs=True)`."""
        parts = urlsplit(handle.status_url)
        body = self._fal_get(
            parts._replace(query=f"{parts.query + '&' if parts.query else ''}logs=true").geturl()
        )
        return None if body is None else handle._parse_status(json.loads(body))

    def result(self, handle: fal_client.SyncRequestHandle) -> Any:
        """The result of a completed request (see `fetch_result`); None for a redirect."""
        body = self._fal_get(handle.response_url)
        return None if body is None else json.loads(body)

    def download(self, url: str, limit: int, timeout: float) -> tuple[int, bytes] | None:
        """(status, body) of a result file, without FAL's key; None for a redirect."""
        import httpx

        status, _, body = self._get(url, self._plain, httpx.Timeout(timeout), limit)
        return None if 300 <= status < 400 else (status, body)


class ResponseTooLarge(Exception):
    """A downloaded body was over its limit (`declared`: the Content-Length, when the server sent one)."""

    def __init__(self, declared: int | None) -> None:
        super().__init__(declared)
        self.declared = declared


def fetch_result(handle: fal_client.SyncRequestHandle) -> Any:
    """The result of a request known to have completed: the GET `handle.get()` sends after polling the status
    until it completes, without that extra status check (we saw the completion already)."""
    import fal_client.client as fc

    response = fc._maybe_retry_request(
        handle.client, "GET", handle.response_url, timeout=fc.QUEUE_POLL_TIMEOUT
    )
    fc._raise_for_status(response)
    return response.json()


class TransientError(Exception):
    """A retryable failure outside fal-client (e.g. FAL's file host answering 503 to a download)."""


@dataclass
class FalFailure:
    """What went wrong talking to FAL, in words a user can act on."""

    message: str
    transient: bool
    status_code: int | None = None
    retry_after: float | None = None
    detail: Any = None


def retry_after_seconds(headers: Any) -> float | None:
    """`Retry-After` as seconds (delta or HTTP date), or None."""
    if not headers:
        return None
    raw = next((v for k, v in dict(headers).items() if k.lower() == "retry-after"), None)
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(str(raw)).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def describe_validation(detail: Any) -> str:
    """FAL's 422 `detail` (a list of `{loc, msg}`) as "image_url: field required; seed: ..."."""
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = [str(p) for p in item.get("loc", []) if p != "body"]
                parts.append(f"{'.'.join(loc) or 'input'}: {item.get('msg', 'invalid')}")
            else:
                parts.append(str(item))
        return "; ".join(parts) or "invalid input"
    return str(detail)[:300]


def classify(exc: BaseException, doing: str) -> FalFailure | None:
    """Sort an exception raised while `doing` something at FAL; None if it is not a FAL/transport error."""
    import httpx
    from fal_client import FalClientHTTPError

    if isinstance(exc, FalClientHTTPError):
        code = exc.status_code
        after = retry_after_seconds(exc.response_headers)
        if code in (401, 403):
            return FalFailure(
                f"FAL rejected the API key (HTTP {code}) while {doing}; check IMAGE2MODEL_FAL_KEY / FAL_KEY.",
                False,
                code,
            )
        if code == 422:
            return FalFailure(
                f"FAL refused the input while {doing}: {describe_validation(exc.message)}.",
                False,
                code,
                detail=exc.message,
            )
        if code in (408, 409, 425, 429) or code >= 500:
            reason = "rate-limited us" if code == 429 else f"answered HTTP {code}"
            return FalFailure(f"FAL {reason} while {doing}", True, code, after, exc.message)
        return FalFailure(
            f"FAL answered HTTP {code} while {doing}: {str(exc.message)[:300]}",
            False,
            code,
            detail=exc.message,
        )
    if isinstance(exc, httpx.TimeoutException):
        return FalFailure(f"FAL did not answer in time while {doing}", True)
    if isinstance(exc, httpx.TransportError):
        return FalFailure(f"could not reach FAL while {doing} ({type(exc).__name__})", True)
    if isinstance(exc, TransientError):
        return FalFailure(str(exc), True)
    if isinstance(exc, (ValueError, KeyError, TypeError)):
        # Non-JSON body, a status without its fields, or an unknown status such as FAILED.
        return FalFailure(
            f"FAL sent an answer we cannot read while {doing} ({type(exc).__name__}: {exc})", True
        )
    return None

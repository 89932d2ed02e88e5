"""Guards on the fal-client internals we rely on: if an upgrade renames them, these fail loudly."""

from __future__ import annotations

import inspect

import fal_client
import fal_client.client as fc

from image2model.core.generators.fal import connection


def test_fal_client_is_the_pinned_version() -> None:
    from fal_client._fal_client_version import version

    assert version == "1.0.3", "fal-client changed: re-check fal.md §4.3 A and this module's guards"


def test_host_globals_exist_and_are_read_at_call_time() -> None:
    for name in connection.HOST_GLOBALS:
        assert isinstance(getattr(fc, name), str), (
            f"fal_client.client.{name} is gone: the host override broke"
        )
    assert "QUEUE_URL_FORMAT" in inspect.getsource(fc.SyncClient.submit)
    assert "QUEUE_URL_FORMAT" in inspect.getsource(fc.SyncRequestHandle.from_request_id)
    assert "REST_URL" in inspect.getsource(fc.CDNTokenManager)
    assert "CDN_URL" in inspect.getsource(fc)
    assert isinstance(fc.MAX_ATTEMPTS, int) and "MAX_ATTEMPTS" in inspect.getsource(fc._maybe_retry_request)


def test_the_result_fetch_we_copy_from_handle_get_is_still_its_own() -> None:
    source = inspect.getsource(fc.SyncRequestHandle.get)
    assert (
        "_maybe_retry_request(" in source and "self.response_url" in source and "QUEUE_POLL_TIMEOUT" in source
    )
    assert "_raise_for_status(response)" in source
    assert "client" in fc.SyncRequestHandle.__dataclass_fields__


def test_point_fal_at_sets_and_restores_every_host() -> None:
    connection.point_fal_at("http://127.0.0.1:1234/")
    assert fc.QUEUE_URL_FORMAT == "http://127.0.0.1:1234/queue/"
    assert fc.RUN_URL_FORMAT == "http://127.0.0.1:1234/run/"
    assert fc.REST_URL == "http://127.0.0.1:1234/rest"
    assert fc.CDN_URL == "http://127.0.0.1:1234/cdn"
    assert fc.MAX_ATTEMPTS == 1
    connection.point_fal_at("")
    assert fc.QUEUE_URL_FORMAT.startswith("https://") and fc.REST_URL == "https://rest.fal.ai"


def test_public_api_we_call_is_there() -> None:
    client = fal_client.SyncClient(key="k")
    for method in ("submit", "get_handle", "cancel", "upload"):
        assert callable(getattr(client, method))
    for method in ("status", "get", "cancel"):
        assert callable(getattr(fal_client.SyncRequestHandle, method))
    assert {"status_code", "response_headers", "message"} <= set(
        fal_client.FalClientHTTPError.__dataclass_fields__
    )

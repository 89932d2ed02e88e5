"""The cheap status check: the same answers and errors as fal-client's own, a state that changes only when FAL's
answer does, and a wait between checks that stretches within its bounds."""

from __future__ import annotations

import time

import httpx
import pytest
from fal_client import Completed, FalClientHTTPError, InProgress, Queued

from image2model.core.generators.base import Pending
from image2model.core.generators.fal import connection
from image2model.core.generators.fal.generator import POLL_STRETCH
from tests.fakes.fal_server import FakeFal
from tests.unit.fal.conftest import KEY, no_progress

APP = "tripo3d/tripo/v2.5/image-to-3d"
IMAGE = "data:image/png;base64,iVBORw0KGgo="


def _handle(gen, fake: FakeFal):
    return gen.fal.get_handle(APP, gen.fal.submit(APP, {"image_url": IMAGE}).request_id)


def test_quick_status_answers_like_fal_client(fake: FakeFal, make_generator) -> None:
    fake.script({"queue_polls": 2, "progress_polls": 2, "logs": ["Loading", "Meshing"]})
    gen = make_generator()
    handle = _handle(gen, fake)
    quick = connection.QuickHTTP(gen.fal)
    seen = []
    for _ in range(6):  # each status request advances the fake: compare ours with fal-client's, alternately
        ours, theirs = quick.status(handle), handle.status(with_logs=True)
        seen += [type(ours), type(theirs)]
        if isinstance(ours, Queued):
            assert isinstance(theirs, Queued) and ours.position == theirs.position + 1
        if isinstance(theirs, InProgress) and isinstance(ours, InProgress):
            assert [entry["message"] for entry in ours.logs] == ["Loading", "Meshing"]
    assert seen[0] is Queued and seen[-1] is Completed and InProgress in seen
    ours, theirs = quick.status(handle), handle.status(with_logs=True)
    assert isinstance(ours, Completed) and ours.metrics == theirs.metrics == {"inference_time": 1.25}
    requests = fake.requests("status")
    assert {r["query"]["logs"] for r in requests} == {"true"}
    assert {r["auth"] for r in requests} == {f"Key {KEY}"}
    assert len({r["user_agent"] for r in requests}) == 1  # fal-client's User-Agent on both paths


@pytest.mark.parametrize(("code", "retry_after"), [(429, 7), (503, None), (500, None)])
def test_quick_status_raises_fal_clients_errors(fake: FakeFal, make_generator, code, retry_after) -> None:
    gen = make_generator()
    handle = _handle(gen, fake)
    quick = connection.QuickHTTP(gen.fal)
    errors = []
    for check in (quick.status, lambda h: h.status(with_logs=True)):
        fake.fault("status", "http", code=code, retry_after=retry_after)
        with pytest.raises(FalClientHTTPError) as caught:
            check(handle)
        errors.append(caught.value)
    ours, theirs = errors
    assert ours.status_code == theirs.status_code == code
    assert (ours.message, ours.error_type) == (theirs.message, theirs.error_type)
    after = connection.retry_after_seconds(ours.response_headers)
    assert after == connection.retry_after_seconds(theirs.response_headers) == retry_after


def test_quick_status_reconnects_when_a_kept_connection_died(fake: FakeFal, make_generator) -> None:
    fake.script({"stuck": True})
    gen = make_generator()
    handle = _handle(gen, fake)
    quick = connection.QuickHTTP(gen.fal)
    quick.status(handle)
    (conn,) = quick._local.conns.values()
    conn.sock.close()  # as if the server had dropped the idle keep-alive connection
    assert isinstance(quick.status(handle), (Queued, InProgress))


def test_refused_quick_status_raises_connect_error_and_the_generator_falls_back(make_generator) -> None:
    gen = make_generator(base_url="http://127.0.0.1:9")
    handle = gen.fal.get_handle(APP, "no-such-request")
    with pytest.raises(httpx.ConnectError):
        connection.QuickHTTP(gen.fal).status(handle)
    with pytest.raises(httpx.ConnectError):
        gen._status(handle)  # fal-client tried too, and failed the same way


def test_generator_checks_status_the_quick_way(fake: FakeFal, make_generator, request_for, images) -> None:
    gen = make_generator()
    gen.generate(request_for(gen, images[:1]), no_progress)
    assert gen._quick is not None and gen._quick._local.conns  # the polls went through it


def test_a_check_that_finds_nothing_new_returns_the_same_state(
    fake: FakeFal, make_generator, request_for, images
) -> None:
    fake.script({"stuck": True, "queue_polls": 1})
    gen = make_generator()
    request = request_for(gen, images[:1])
    state = gen.start(request)
    queued = gen.poll(request, state, no_progress)
    assert isinstance(queued, Pending) and queued.message == "queued at FAL, position 0"
    first = gen.poll(request, queued.state, no_progress)
    assert isinstance(first, Pending) and first.state != queued.state  # generating: started_at recorded
    time.sleep(0.05)
    second = gen.poll(request, first.state, no_progress)
    assert isinstance(second, Pending)
    assert second.state == first.state and second.message == first.message
    assert second.fraction > first.fraction  # progress still moves, derived from the start time


def test_the_wait_between_checks_stretches_within_its_bounds(
    fake: FakeFal, make_generator, request_for, images
) -> None:
    gen = make_generator(fal_poll_interval=0.01, fal_poll_interval_max=0.05)
    request = request_for(gen, images[:1])
    fake.script({"stuck": True, "queue_polls": 10})
    far_back = gen.poll(request, gen.start(request), no_progress)
    assert isinstance(far_back, Pending) and far_back.message == "queued at FAL, position 9"
    assert far_back.delay == 0.05  # 0.01 * (1 + 9), capped
    fake.script({"stuck": True, "queue_polls": 1})
    state = gen.start(request)
    near = gen.poll(request, state, no_progress)
    assert isinstance(near, Pending) and near.message == "queued at FAL, position 0" and near.delay == 0.01
    fresh = gen.poll(request, near.state, no_progress)
    assert isinstance(fresh, Pending) and fresh.message.startswith("generating") and fresh.delay == 0.01
    seconds = 0.03 / POLL_STRETCH  # generating this long asks for a 0.03 s wait
    long_running = {**fresh.state, "started_at": time.time() - seconds}
    assert gen.poll(request, long_running, no_progress).delay == pytest.approx(0.03, abs=0.003)
    very_long = {**fresh.state, "started_at": time.time() - 600}
    assert gen.poll(request, very_long, no_progress).delay == 0.05


def test_quick_result_is_the_result_fal_client_fetches(fake: FakeFal, make_generator) -> None:
    fake.script({"queue_polls": 0, "progress_polls": 0})
    gen = make_generator()
    handle = _handle(gen, fake)
    theirs = handle.get()
    ours = connection.QuickHTTP(gen.fal).result(handle)
    assert ours == theirs and ours["model_mesh"]["url"].startswith(fake.base_url)
    fetches = [r for r in fake.requests("result")]
    assert len(fetches) == 2 and {r["auth"] for r in fetches} == {f"Key {KEY}"}


def test_quick_result_raises_fal_clients_error_for_a_failed_request(fake: FakeFal, make_generator) -> None:
    fake.script({"queue_s": 0, "run_s": 0, "outcome": "error", "error_code": 422, "error_detail": "no"})
    gen = make_generator()
    handle = _handle(gen, fake)
    with pytest.raises(FalClientHTTPError) as caught:
        connection.QuickHTTP(gen.fal).result(handle)
    assert caught.value.status_code == 422 and caught.value.message == "no"


def test_quick_download_keeps_its_connection_refuses_oversized_files_and_sends_no_key(
    fake: FakeFal, make_generator
) -> None:
    fake.script({"queue_s": 0, "run_s": 0})
    gen = make_generator()
    url = connection.QuickHTTP(gen.fal).result(_handle(gen, fake))["model_mesh"]["url"]
    quick = connection.QuickHTTP(gen.fal)
    status, glb = quick.download(url, 10_000, 5.0)  # type: ignore[misc]
    assert status == 200 and glb[:4] == b"glTF"
    (conn,) = quick._local.conns.values()
    sock = conn.sock
    assert quick.download(url, 10_000, 5.0) == (200, glb) and conn.sock is sock  # kept alive
    with pytest.raises(connection.ResponseTooLarge) as caught:
        quick.download(url, 100, 5.0)
    assert caught.value.declared == len(glb)
    assert quick.download(f"{fake.base_url}/files/nope/x.glb", 10_000, 5.0)[0] == 404  # type: ignore[index]
    assert {r["auth"] for r in fake.requests("file")} == {None}


def test_the_generator_downloads_the_quick_way(fake: FakeFal, make_generator, request_for, images) -> None:
    gen = make_generator()
    gen.generate(request_for(gen, images[:1]), no_progress)
    hosts = {netloc for _, netloc in gen._quick._local.conns}  # type: ignore[union-attr]
    assert hosts == {fake.base_url.split("//")[1]}  # queue and file host: one fake, one kept connection
    assert gen._http is None  # httpx was never needed

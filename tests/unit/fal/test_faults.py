"""Every injected FAL fault ends in success after a retry or in a GenerationError a user can act on."""

from __future__ import annotations

import time

import httpx
import pytest

from image2model.core.errors import GenerationError
from image2model.core.generators.base import Pending, RemoteBusy
from tests.fakes.fal_server import FakeFal
from tests.unit.fal.conftest import no_progress


def run(gen, request):
    return gen.generate(request, no_progress)


@pytest.mark.parametrize(("kind", "code"), [("http", 500), ("http", 503), ("ingress", 502), ("http", 504)])
def test_submit_retries_transient_failures(
    fake: FakeFal, make_generator, request_for, images, kind, code
) -> None:
    fake.fault("submit", kind, code=code, times=2)
    gen = make_generator()
    result = run(gen, request_for(gen, images[:1]))
    assert result.files
    assert len(fake.requests("submit")) == 3 and len(fake.job_list()) == 1


def test_a_rate_limited_submission_is_handed_back_with_fals_retry_after(
    fake: FakeFal, make_generator, request_for, images
) -> None:
    fake.fault("submit", "http", code=429, times=1, retry_after=7)
    gen = make_generator()
    with pytest.raises(RemoteBusy, match="FAL rate-limited us while submitting") as refused:
        gen.start(request_for(gen, images[:1]))
    assert refused.value.retry_after == 7
    assert len(fake.requests("submit")) == 1 and fake.job_list() == []  # no sleeping retry inside start


def test_generate_waits_out_a_rate_limit_then_submits(
    fake: FakeFal, make_generator, request_for, images
) -> None:
    fake.fault("submit", "http", code=429, times=1, retry_after=1)
    gen = make_generator()
    began = time.monotonic()
    assert run(gen, request_for(gen, images[:1])).files
    assert time.monotonic() - began >= 0.95
    assert len(fake.requests("submit")) == 2 and len(fake.job_list()) == 1


def test_persistent_rate_limit_fails_generate_clearly(
    fake: FakeFal, make_generator, request_for, images
) -> None:
    fake.fault("submit", "http", code=429, times=10, retry_after=0)
    gen = make_generator()
    gen.busy_attempts = 3
    with pytest.raises(GenerationError, match=r"FAL rate-limited us while submitting.*gave up after 3 tries"):
        run(gen, request_for(gen, images[:1]))
    assert len(fake.requests("submit")) == 3


@pytest.mark.parametrize("code", [401, 403])
def test_rejected_key_fails_at_once(fake: FakeFal, make_generator, request_for, images, code) -> None:
    if code == 401:
        fake.accept_keys(["another-key"])
    else:
        fake.fault("submit", "http", code=403)
    gen = make_generator()
    with pytest.raises(GenerationError, match=f"FAL rejected the API key \\(HTTP {code}\\)"):
        gen.start(request_for(gen, images[:1]))
    assert len(fake.requests("submit")) == 1


def test_refused_input_names_the_field(fake: FakeFal, make_generator, request_for, images) -> None:
    detail = [{"loc": ["body", "image_url"], "msg": "image could not be decoded", "type": "image_load_error"}]
    fake.script({"outcome": "error", "error_code": 422, "error_detail": detail})
    gen = make_generator()
    with pytest.raises(
        GenerationError, match="FAL refused the input.*image_url: image could not be decoded"
    ) as info:
        run(gen, request_for(gen, images[:1]))
    assert info.value.details["fal_detail"] == detail


def test_refused_submission_names_the_field(fake: FakeFal, make_generator, request_for, images) -> None:
    fake.fault("submit", "http", code=422, detail=[{"loc": ["body", "face_limit"], "msg": "too large"}])
    gen = make_generator()
    with pytest.raises(GenerationError, match="face_limit: too large"):
        gen.start(request_for(gen, images[:1]))


def test_model_failure_at_fal_is_reported(fake: FakeFal, make_generator, request_for, images) -> None:
    fake.script({"outcome": "error", "error_code": 500, "error_detail": "CUDA out of memory"})
    gen = make_generator()
    with pytest.raises(GenerationError, match="FAL could not generate the model: CUDA out of memory"):
        run(gen, request_for(gen, images[:1]))


@pytest.mark.parametrize(("kind", "code"), [("http", 500), ("ingress", 502), ("http", 503)])
def test_status_failures_become_later_polls(
    fake: FakeFal, make_generator, request_for, images, kind, code
) -> None:
    fake.fault("status", kind, code=code, times=2)
    gen = make_generator()
    request = request_for(gen, images[:1])
    state = gen.start(request)
    first = gen.poll(request, state, no_progress)
    assert isinstance(first, Pending) and "retrying" in first.message and first.state["errors"] == 1
    assert run_polls(gen, request, first.state).files


def test_a_rate_limited_status_check_waits_as_told_without_counting_a_failure(
    fake: FakeFal, make_generator, request_for, images
) -> None:
    fake.fault("status", "http", code=429, times=20, retry_after=2)
    gen = make_generator()
    gen.retry_max_delay = 5.0
    request = request_for(gen, images[:1])
    state = gen.start(request)
    for _ in range(20):  # far more than poll_error_limit (3) consecutive 429s
        outcome = gen.poll(request, state, no_progress)
        assert isinstance(outcome, Pending) and outcome.message.endswith("; waiting")
        assert outcome.delay == 2 and outcome.state.get("errors", 0) == 0
        state = outcome.state
    assert run_polls(gen, request, state).files


def run_polls(gen, request, state):
    for _ in range(50):
        outcome = gen.poll(request, state, no_progress)
        if not isinstance(outcome, Pending):
            return outcome
        state = outcome.state
    raise AssertionError("never finished")


def test_status_failing_too_often_fails_the_item(fake: FakeFal, make_generator, request_for, images) -> None:
    fake.fault("status", "http", code=503, times=100)
    gen = make_generator()
    with pytest.raises(
        GenerationError, match="FAL answered HTTP 503 while checking the request; gave up after 4"
    ):
        run(gen, request_for(gen, images[:1]))


def test_status_hang_times_out_and_is_retried(
    fake: FakeFal, make_generator, request_for, images, monkeypatch
) -> None:
    import fal_client.client as fc

    monkeypatch.setattr(fc, "QUEUE_POLL_TIMEOUT", httpx.Timeout(0.3))
    fake.fault("status", "hang", seconds=1.0)
    gen = make_generator()
    request = request_for(gen, images[:1])
    state = gen.start(request)
    first = gen.poll(request, state, no_progress)
    assert isinstance(first, Pending) and "did not answer in time" in first.message
    assert run_polls(gen, request, first.state).files


def test_stuck_job_hits_the_deadline_and_is_cancelled(
    fake: FakeFal, make_generator, request_for, images
) -> None:
    fake.script({"stuck": True})
    gen = make_generator(fal_deadline_seconds=0.3)
    with pytest.raises(
        GenerationError, match="FAL did not finish within 0\\.[3-9] s, so the request was cancelled"
    ):
        run(gen, request_for(gen, images[:1]))
    (job,) = fake.job_list()
    assert job["cancelled"] is True and len(fake.requests("cancel")) == 1


def test_unknown_status_is_retried_then_fails(fake: FakeFal, make_generator, request_for, images) -> None:
    fake.script({"bad_status": "FAILED"})
    gen = make_generator()
    with pytest.raises(GenerationError, match="FAL sent an answer we cannot read.*Unknown status: FAILED"):
        run(gen, request_for(gen, images[:1]))


@pytest.mark.parametrize(
    ("outcome", "message"),
    [
        ("malformed", "FAL sent an answer we cannot read while fetching the result"),
        (
            "missing_mesh",
            r"FAL's result has no model mesh \(expected one of pbr_model, model_mesh, base_model",
        ),
        ("mesh_404", r"FAL's model file could not be downloaded \(HTTP 404\)"),
        ("mesh_garbage", "FAL's model file is not a GLB"),
    ],
)
def test_bad_results_fail_clearly(
    fake: FakeFal, make_generator, request_for, images, outcome, message
) -> None:
    fake.script({"outcome": outcome})
    gen = make_generator()
    with pytest.raises(GenerationError, match=message):
        run(gen, request_for(gen, images[:1]))


def test_mesh_host_hiccup_is_retried(fake: FakeFal, make_generator, request_for, images) -> None:
    fake.script({"outcome": "mesh_500", "mesh_failures": 1})
    gen = make_generator()
    assert run(gen, request_for(gen, images[:1])).files
    assert len(fake.requests("submit")) == 1


def test_oversized_mesh_is_refused(fake: FakeFal, make_generator, request_for, images) -> None:
    gen = make_generator()
    gen.max_mesh_bytes = 100
    with pytest.raises(GenerationError, match="more than our limit of 100"):
        run(gen, request_for(gen, images[:1]))


def test_refused_connection_fails_after_retries(make_generator, request_for, images) -> None:
    gen = make_generator(base_url="http://127.0.0.1:9")
    with pytest.raises(
        GenerationError, match=r"could not reach FAL while submitting.*\(ConnectError\).*gave up after 3"
    ):
        gen.start(request_for(gen, images[:1]))


def test_upload_fault_is_retried(fake: FakeFal, make_generator, request_for, images) -> None:
    fake.fault("upload", "http", code=500, times=1)
    fake.fault("initiate", "http", code=500, times=1)  # fal-client falls back to GCS; fail that too
    gen = make_generator()
    gen.data_uri_limit = 10
    assert run(gen, request_for(gen, images[:1])).files
    (job,) = fake.job_list()
    assert job["images"]["image_url"]["source"] == "upload"

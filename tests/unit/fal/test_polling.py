"""The worker side of FAL polling: a check that finds nothing new writes nothing, the lease is still renewed, the
wait never outlasts a third of the lease, and the tracker that runs each item's due checks, one at a time."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from image2model.api.context import Services, build_services
from image2model.api.store import ItemRecord, JobRecord
from image2model.api.worker import runner
from image2model.api.worker.tracker import Tracker
from tests.fakes.fal_server import FakeFal
from tests.unit.fal.conftest import fal_settings


class Recorder:
    """A runner scheduler that only records what it was asked to do."""

    def __init__(self) -> None:
        self.polls: list[tuple[str, int, int, float]] = []
        self.finishes: list[tuple[str, int, int]] = []
        self.watched: list[tuple[str, int, int]] = []

    def retry_start(self, job_id: str, index: int, delay: float) -> None:
        raise AssertionError("no slot cap in these tests")

    def poll(self, job_id: str, index: int, attempt: int, delay: float) -> None:
        self.polls.append((job_id, index, attempt, delay))

    def finish(self, job_id: str, index: int, attempt: int) -> None:
        self.finishes.append((job_id, index, attempt))

    def watch(self, job_id: str, index: int, attempt: int, gen, remote) -> None:
        self.watched.append((job_id, index, attempt))


@pytest.fixture
def services(fake: FakeFal, make_generator, tmp_path: Path, monkeypatch) -> Services:
    settings = fal_settings(
        fake.base_url, data_dir=tmp_path / "data", lease_seconds=30.0, fal_max_in_flight=0
    )
    gen = make_generator(fal_poll_interval=0.01, fal_poll_interval_max=5.0)
    monkeypatch.setitem(runner._instances, "fal", gen)
    return build_services(settings)


def submitted(services: Services, scheduler: Recorder) -> tuple[str, int]:
    """A one-photo FAL job, claimed and submitted; returns (job_id, attempt)."""
    photo = services.settings.data_dir / "photo.png"
    Image.new("RGB", (32, 32), (200, 40, 40)).save(photo)
    services.blobs.put_file("j1/in/photo.png", photo)
    now = time.time()
    job = JobRecord("j1", "", "fal", None, ["glb"], {}, 1, now, now)
    item = ItemRecord(0, "f1", "photo.png", "photo", ["j1/in/photo.png"], "image/png", photo.stat().st_size)
    services.store.create_job(job, [item])
    runner.run_item(services, "j1", 0, scheduler)
    attempt = services.store.load("j1").items[0].attempt  # type: ignore[union-attr]
    assert scheduler.polls == [("j1", 0, attempt, 0)]
    return "j1", attempt


def count_writes(services: Services, monkeypatch) -> list[str]:
    writes: list[str] = []
    for name in ("report_progress", "save_remote", "renew_lease"):
        original = getattr(services.store, name)

        def recorded(*args, _name=name, _original=original, **kwargs):
            writes.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(services.store, name, recorded)
    return writes


def test_a_check_that_finds_nothing_new_writes_nothing(services, fake: FakeFal, monkeypatch) -> None:
    fake.script({"stuck": True, "queue_polls": 1})
    scheduler = Recorder()
    job_id, attempt = submitted(services, scheduler)
    runner.poll_item(services, job_id, 0, attempt, scheduler)  # queued at FAL: a new message, written
    runner.poll_item(services, job_id, 0, attempt, scheduler)  # generating: a new message and state, written
    item = services.store.load(job_id).items[0]  # type: ignore[union-attr]
    assert item.message.startswith("generating") and "started_at" in item.remote
    events = len(services.store.events_after(job_id))
    writes = count_writes(services, monkeypatch)
    for _ in range(3):
        runner.poll_item(services, job_id, 0, attempt, scheduler)
    assert writes == []
    assert len(services.store.events_after(job_id)) == events
    assert len(scheduler.polls) == 1 + 5 and len(fake.requests("status")) == 5  # still checked and re-queued


def test_the_lease_is_renewed_once_a_third_of_it_has_passed(services, fake: FakeFal, monkeypatch) -> None:
    fake.script({"stuck": True, "queue_polls": 1})
    scheduler = Recorder()
    job_id, attempt = submitted(services, scheduler)
    for _ in range(3):
        runner.poll_item(services, job_id, 0, attempt, scheduler)
    writes = count_writes(services, monkeypatch)
    services.store.renew_lease(job_id, 0, attempt, 19.0)  # as if 11 of the 30 s had passed since the renewal
    writes.clear()
    runner.poll_item(services, job_id, 0, attempt, scheduler)
    assert writes == ["report_progress"]
    lease_until = services.store.load(job_id).items[0].lease_until  # type: ignore[union-attr]
    assert lease_until > time.time() + 29


def test_progress_is_written_once_it_gained_a_step(services, fake: FakeFal, monkeypatch) -> None:
    fake.script({"stuck": True, "queue_polls": 1})
    scheduler = Recorder()
    job_id, attempt = submitted(services, scheduler)
    for _ in range(2):
        runner.poll_item(services, job_id, 0, attempt, scheduler)
    item = services.store.load(job_id).items[0]  # type: ignore[union-attr]
    assert item.progress == pytest.approx(10, abs=1)
    earlier = {**item.remote, "started_at": time.time() - 60}  # one expected FAL run later: about 54 %
    services.store.save_remote(job_id, 0, attempt, earlier, 30.0)
    time.sleep(services.store.progress_min_interval)  # the store's own throttle of progress events
    writes = count_writes(services, monkeypatch)
    runner.poll_item(services, job_id, 0, attempt, scheduler)
    assert writes == ["report_progress"]
    assert services.store.load(job_id).items[0].progress == pytest.approx(54, abs=2)  # type: ignore[union-attr]


def test_a_check_never_waits_past_a_third_of_the_lease(services, fake: FakeFal) -> None:
    fake.script({"stuck": True, "queue_polls": 1})
    services.settings = services.settings.model_copy(update={"lease_seconds": 6.0})
    scheduler = Recorder()
    job_id, attempt = submitted(services, scheduler)
    for _ in range(2):
        runner.poll_item(services, job_id, 0, attempt, scheduler)
    item = services.store.load(job_id).items[0]  # type: ignore[union-attr]
    services.store.save_remote(job_id, 0, attempt, {**item.remote, "started_at": time.time() - 600}, 6.0)
    runner.poll_item(services, job_id, 0, attempt, scheduler)
    assert scheduler.polls[-1][3] == 2.0  # the generator asked for 5 s (fal_poll_interval_max)


def test_a_cancelled_job_is_cancelled_at_fal_at_the_next_check(services, fake: FakeFal) -> None:
    fake.script({"stuck": True, "queue_polls": 1})
    scheduler = Recorder()
    job_id, attempt = submitted(services, scheduler)
    runner.poll_item(services, job_id, 0, attempt, scheduler)
    services.store.cancel(job_id)
    runner.poll_item(services, job_id, 0, attempt, scheduler)
    assert len(fake.requests("cancel")) == 1
    assert services.store.load(job_id).items[0].status == "cancelled"  # type: ignore[union-attr]


# -- the tracker ----------------------------------------------------------------------------------------------


class Checks:
    """A check function recording what ran when; `hold` makes checks of one key block until released."""

    def __init__(self, again: float | None = None) -> None:
        self.runs: list[tuple[tuple[str, int, int], float]] = []
        self.again = again
        self.tracker: Tracker | None = None
        self.hold: dict[tuple[str, int, int], threading.Event] = {}
        self.running: set[tuple[str, int, int]] = set()
        self.overlaps = 0
        self.lock = threading.Lock()

    def __call__(self, key: tuple[str, int, int]) -> None:
        with self.lock:
            self.overlaps += key in self.running
            self.running.add(key)
            self.runs.append((key, time.monotonic()))
        if key in self.hold:
            self.hold[key].wait(5)
        with self.lock:
            self.running.discard(key)
        if self.again is not None and self.tracker is not None:
            self.tracker.add(key, self.again)


def wait_for(predicate, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_each_item_is_checked_when_due_and_a_later_add_replaces_its_due_time() -> None:
    checks = Checks()
    forgotten: list[tuple[str, int, int]] = []
    tracker = Tracker(checks, threads=2, forget=forgotten.append)
    started = time.monotonic()
    tracker.add(("a", 0, 1), 0.3)
    tracker.add(("b", 0, 1), 0.1)
    tracker.add(("a", 0, 1), 5.0)  # replaces a's 0.3 s
    wait_for(lambda: len(checks.runs) >= 1)
    time.sleep(0.4)
    assert [key for key, _ in checks.runs] == [("b", 0, 1)]
    assert 0.08 <= checks.runs[0][1] - started < 1.0
    wait_for(lambda: forgotten == [("b", 0, 1)])  # its check asked for no next one: no longer tracked
    assert len(tracker) == 1 and ("a", 0, 1) in tracker


def test_a_nudge_brings_a_check_forward_and_is_ignored_for_an_unknown_item() -> None:
    checks = Checks()
    tracker = Tracker(checks, threads=1)
    tracker.add(("a", 0, 1), 30.0)
    started = time.monotonic()
    assert tracker.nudge(("a", 0, 1), 0.05)
    assert not tracker.nudge(("nobody", 0, 1))
    wait_for(lambda: checks.runs)
    assert checks.runs[0][1] - started < 1.0 and [key for key, _ in checks.runs] == [("a", 0, 1)]
    assert tracker.nudge(("nobody", 0, 1)) is False and ("nobody", 0, 1) not in tracker


def test_checks_of_one_item_never_overlap_and_a_nudge_during_one_is_kept() -> None:
    checks = Checks(again=30.0)
    tracker = Tracker(checks, threads=4)
    checks.tracker = tracker
    key = ("a", 0, 1)
    checks.hold[key] = threading.Event()
    tracker.add(key, 0)
    wait_for(lambda: key in checks.running)
    for _ in range(5):
        tracker.nudge(key, 0)  # pushed news while the check runs
    time.sleep(0.2)
    assert len(checks.runs) == 1  # not a second check alongside the first
    checks.hold[key].set()
    wait_for(lambda: len(checks.runs) == 2)  # the nudge wins over the 30 s the check asked for
    assert checks.overlaps == 0


def test_a_nudge_during_a_check_that_ends_the_tracking_is_dropped() -> None:
    checks = Checks()
    forgotten: list[tuple[str, int, int]] = []
    tracker = Tracker(checks, threads=1, forget=forgotten.append)
    key = ("a", 0, 1)
    checks.hold[key] = threading.Event()
    tracker.add(key, 0)
    wait_for(lambda: key in checks.running)
    tracker.nudge(key, 0)
    checks.hold[key].set()
    wait_for(lambda: forgotten == [key])
    time.sleep(0.1)
    assert len(checks.runs) == 1 and len(tracker) == 0


def test_hand_back_schedules_every_tracked_check_and_later_ones() -> None:
    checks = Checks()
    tracker = Tracker(checks, threads=2)
    tracker.add(("a", 0, 1), 30.0)
    tracker.add(("b", 0, 2), 60.0)
    scheduled: list[tuple[tuple[str, int, int], float]] = []
    assert tracker.hand_back(lambda key, delay: scheduled.append((key, delay))) == 2
    assert [key for key, _ in scheduled] == [("a", 0, 1), ("b", 0, 2)]
    assert 29 < scheduled[0][1] <= 30 and 59 < scheduled[1][1] <= 60
    tracker.add(("c", 0, 1), 1.0)  # a check finishing after the stop goes to the queue too
    assert scheduled[-1] == (("c", 0, 1), 1.0) and len(tracker) == 0
    assert tracker.hand_back(lambda key, delay: scheduled.append((key, delay))) == 0
    assert not tracker.nudge(("a", 0, 1))
    time.sleep(0.2)
    assert checks.runs == []


def test_a_crashing_check_ends_the_tracking_and_the_others_carry_on() -> None:
    seen: list[tuple[str, int, int]] = []

    def check(key: tuple[str, int, int]) -> None:
        seen.append(key)
        if key[0] == "bad":
            raise OSError("store unavailable")

    forgotten: list[tuple[str, int, int]] = []
    tracker = Tracker(check, threads=1, forget=forgotten.append)
    tracker.add(("bad", 0, 1), 0)
    tracker.add(("good", 0, 1), 0.05)
    wait_for(lambda: len(forgotten) == 2)
    assert sorted(seen) == [("bad", 0, 1), ("good", 0, 1)]  # the lease of "bad" lapses; the reaper retries it

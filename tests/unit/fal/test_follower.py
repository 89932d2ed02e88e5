"""The io worker's side of pushed statuses: the follower nudges checks when news arrives and hands them the latest
status, falls back (and reopens) when a stream fails, holds CPU follow-ups while pushed results are downloaded;
and the adaptive in-flight limit lowered by a refusal and raised by accepted submissions."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest

from image2model.api.worker import follower as follower_module
from image2model.api.worker.concurrency import AdaptiveLimit
from image2model.api.worker.follower import Follower
from image2model.core.generators import RemoteGenerator, StreamUnavailable


@dataclass(frozen=True)
class Queued:
    position: int


@dataclass(frozen=True)
class Running:
    log: str = ""


@dataclass(frozen=True)
class Done:
    pass


class Scripted(RemoteGenerator):
    """A generator whose `watch` plays scripted streams: each a list of statuses, then "end", "fail" or "hang"."""

    spec = None  # type: ignore[assignment]

    def __init__(self, *streams: list[Any]) -> None:
        self.streams = list(streams)
        self.opened = 0

    def start(self, request):  # pragma: no cover - not used here
        raise NotImplementedError

    def poll(self, request, state, progress, seen=None):  # pragma: no cover - not used here
        raise NotImplementedError

    def watch(self, state):
        if not self.streams:
            return None
        return self._play()

    async def _play(self):
        script = self.streams[min(self.opened, len(self.streams) - 1)]
        self.opened += 1
        for step in script:
            if step == "fail":
                raise ConnectionError("stream dropped")
            if step == "unavailable":
                raise StreamUnavailable("HTTP 404")
            if step == "hang":
                await asyncio.sleep(3600)
            if isinstance(step, float):
                await asyncio.sleep(step)
                continue
            yield step


class Nudges:
    def __init__(self) -> None:
        self.seen: list[tuple[tuple[str, int, int], float]] = []
        self.lock = threading.Lock()

    def __call__(self, key, delay: float) -> bool:
        with self.lock:
            self.seen.append((key, delay))
        return True


def wait_for(predicate, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


KEY = ("job", 0, 1)


def test_a_new_kind_of_status_is_acted_on_at_once_and_news_of_the_same_kind_soon() -> None:
    nudges = Nudges()
    follower = Follower(nudges)
    gen = Scripted([Queued(3), Queued(2), Running(), Running("meshing"), Done()])
    assert follower.follow(KEY, gen, {})
    wait_for(lambda: len(nudges.seen) == 5)
    news = follower_module.NEWS_WITHIN
    assert [delay for _, delay in nudges.seen] == [0.0, news, 0.0, news, 0.0]
    wait_for(lambda: follower.pushed(KEY) == Done())  # the stream ended: its last status stands


def test_a_generator_without_a_stream_is_not_followed() -> None:
    follower = Follower(Nudges())
    assert follower.follow(KEY, Scripted(), {}) is False
    assert follower.pushed(KEY) is None


def test_a_failed_stream_asks_for_a_check_now_and_is_opened_again(monkeypatch) -> None:
    monkeypatch.setattr(follower_module, "RETRY_BASE_SECONDS", 0.05)
    nudges = Nudges()
    follower = Follower(nudges)
    gen = Scripted([Queued(1), "fail"], [Running(), "hang"])
    follower.follow(KEY, gen, {})
    wait_for(lambda: gen.opened == 2 and follower.pushed(KEY) == Running())
    assert (KEY, 0.0) in nudges.seen[1:]  # right after the failure: ask the remote service itself
    follower.unfollow(KEY)
    wait_for(lambda: follower.pushed(KEY) is None)


def test_a_stream_that_is_not_offered_is_not_tried_again() -> None:
    nudges = Nudges()
    follower = Follower(nudges)
    gen = Scripted(["unavailable"])
    follower.follow(KEY, gen, {})
    wait_for(lambda: nudges.seen == [(KEY, 0.0)])
    time.sleep(0.2)
    assert gen.opened == 1 and follower.pushed(KEY) is None  # the item is polled


def test_while_the_stream_is_live_checks_read_its_latest_status_and_not_after_it_stalls() -> None:
    follower = Follower(Nudges())
    gen = Scripted([Running("a"), 0.3, "fail"], ["hang"])
    follower.follow(KEY, gen, {})
    wait_for(lambda: follower.pushed(KEY) == Running("a"))
    wait_for(lambda: follower.pushed(KEY) is None)  # failed: until a new status arrives, ask instead


def test_cpu_follow_ups_wait_while_pushed_results_are_downloaded(monkeypatch) -> None:
    monkeypatch.setattr(follower_module, "SETTLE_SECONDS", 0.05)
    follower = Follower(Nudges())
    for n in range(3):
        follower.follow(("job", n, 1), Scripted([Done()]), {})
    wait_for(lambda: all(follower.pushed(("job", n, 1)) == Done() for n in range(3)))
    ran: list[int] = []
    follower.after_fetches(lambda: ran.append(0))  # two results still wait for their download
    follower.unfollow(("job", 0, 1))
    follower.after_fetches(lambda: ran.append(1))
    follower.unfollow(("job", 1, 1))
    time.sleep(0.2)
    assert ran == []
    follower.unfollow(("job", 2, 1))  # the last download is done
    wait_for(lambda: ran == [0, 1])
    follower.after_fetches(lambda: ran.append(2))  # nothing is being downloaded: at once
    assert ran == [0, 1, 2]


def test_held_follow_ups_go_after_the_longest_hold_even_if_downloads_go_on() -> None:
    follower = Follower(Nudges(), hold_max=0.3)
    follower.follow(KEY, Scripted([Done()]), {})
    wait_for(lambda: follower.pushed(KEY) == Done())
    ran = threading.Event()
    follower.after_fetches(ran.set)
    assert not ran.wait(0.1)
    assert ran.wait(2)


# -- the adaptive in-flight limit -------------------------------------------------------------------------------


def test_a_refusal_lowers_the_limit_to_what_was_accepted_and_pauses(monkeypatch) -> None:
    limits = AdaptiveLimit()
    assert limits.allowance("fal", 256) == (256, 0.0)
    pause = limits.refused("fal", 256, in_flight=11, retry_after=2.0)
    cap, wait = limits.allowance("fal", 256)
    assert pause == 2.0 and cap == 10 and 1.9 < wait <= 2.0


def test_accepted_submissions_raise_the_limit_up_to_the_ceiling() -> None:
    limits = AdaptiveLimit()
    limits.refused("fal", 12, in_flight=4, retry_after=0)
    for _ in range(20):
        limits.accepted("fal", 12)
    assert limits.allowance("fal", 12)[0] == 12  # the setting stays the hard ceiling
    limits.accepted("fal", 8)  # a lowered setting applies at once
    assert limits.allowance("fal", 8)[0] == 8


@pytest.mark.parametrize(("retry_after", "pause"), [(None, 1.0), (5000.0, 300.0)])
def test_a_refusal_without_or_with_an_absurd_retry_after_pauses_sensibly(retry_after, pause) -> None:
    assert AdaptiveLimit().refused("fal", 0, in_flight=1, retry_after=retry_after) == pause

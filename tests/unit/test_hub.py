"""Which queue positions a waiting job's stream is told."""

from __future__ import annotations

import pytest

from image2model.api.hub import worth_telling


@pytest.mark.parametrize(
    ("told", "position", "tell"),
    [
        (None, 250, True),  # the first place is always told
        (250, 250, False),  # nothing changed
        (250, 240, False),  # deep in the queue: 4 % closer is not worth a notice
        (250, 225, True),  # a tenth closer is
        (12, 11, False),
        (11, 10, True),  # within the first ten places, every step
        (3, 2, True),
    ],
)
def test_a_stream_hears_every_step_near_the_front_and_tenths_further_back(told, position, tell):
    assert worth_telling(told, position) is tell


class _CountingLog:
    """The part of a job store the hub reads, counting its reads; `add` appends an event."""

    blocking_tail = False

    def __init__(self) -> None:
        self.tails = 0
        self.rows: list = []

    def head(self) -> int:
        return 0

    def tail(self, cursor: int) -> tuple[int, list]:
        self.tails += 1
        return len(self.rows), self.rows[cursor:]

    def queue_positions(self) -> dict[str, int]:
        return {}


async def test_an_idle_hub_reads_the_log_rarely_and_a_new_stream_wakes_it() -> None:
    import asyncio

    from image2model.api import hub as hub_module
    from image2model.core.models import Event, EventType

    log = _CountingLog()
    hub = hub_module.EventHub(log, interval=0.001, position_interval=0.001)  # type: ignore[arg-type]
    await hub.start()
    try:
        await asyncio.sleep(0.3)
        assert log.tails <= 2, "with no stream open the hub polled at its streaming pace"
        sub = hub.subscribe("j")
        log.rows.append(("j", Event(seq=1, type=EventType.TASK_QUEUED, data={})))
        event = await asyncio.wait_for(sub.next(), hub_module.IDLE_POLL / 2)
        assert event is not None and event.seq == 1
        busy = log.tails
        await asyncio.sleep(0.1)
        assert log.tails > busy + 10, "with a stream open the hub polls at its interval"
    finally:
        await hub.stop()


async def test_what_was_written_before_the_hub_stopped_still_reaches_its_observers() -> None:
    from image2model.api import hub as hub_module
    from image2model.core.models import Event, EventType

    log = _CountingLog()
    seen: list[tuple[str, int]] = []
    hub = hub_module.EventHub(
        log, interval=0.001, observers=[lambda job, event: seen.append((job, event.seq))]
    )  # type: ignore[arg-type]
    await hub.start()
    log.rows.append(("j", Event(seq=1, type=EventType.TASK_COMPLETED, data={})))
    await hub.stop()  # idle (no stream open): the hub had not read the log again yet
    assert seen == [("j", 1)]

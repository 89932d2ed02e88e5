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

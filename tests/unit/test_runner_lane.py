"""A runner lane's limit counts items at work; items whose work is done and that are only
writing their results do not hold a slot, up to a second limit's worth of them."""

from __future__ import annotations

import asyncio
from typing import Any

from app.engine.runner import _Lane


def _items(lane: _Lane, working: int, finishing: int) -> None:
    loop = asyncio.new_event_loop()
    try:
        for i in range(working + finishing):
            item: Any = loop.create_future()  # stands in for the item's task
            lane.inflight.add(item)
            if i >= working:
                lane.finishing.add(item)
    finally:
        loop.close()


def test_items_at_work_and_reservations_take_slots() -> None:
    lane = _Lane(4)
    _items(lane, working=3, finishing=0)
    lane.reserved = 1
    assert lane.free() == 0


def test_items_writing_their_results_give_their_slots_back() -> None:
    lane = _Lane(4)
    _items(lane, working=1, finishing=3)
    assert lane.free() == 3


def test_items_writing_their_results_are_bounded_too() -> None:
    lane = _Lane(4)
    _items(lane, working=0, finishing=8)
    assert lane.free() == 0

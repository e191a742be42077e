"""The kernel's clock reader (pystack/kernel/ktime.py): what Network binds for its run."""

from __future__ import annotations

import trio
import trio.testing

import pystack
from pystack.kernel.ktime import kclock, ktime_get


async def test_inside_a_network_the_reader_follows_trio_s_clock():
    async with pystack.Network(seed=1):
        assert ktime_get() == trio.current_time()
        await trio.sleep(2.5)
        assert ktime_get() == trio.current_time()
        assert kclock.now() == trio.current_time()


async def test_networks_leaving_in_any_order_leave_trio_s_reader():
    # Two Networks in two tasks of one run: the first to enter is the first to leave.
    second_in, first_out = trio.Event(), trio.Event()

    async def first() -> None:
        async with pystack.Network(seed=1):
            await second_in.wait()
        first_out.set()

    async def second() -> None:
        async with pystack.Network(seed=2):
            second_in.set()
            await first_out.wait()
            await trio.sleep(1)
            assert ktime_get() == trio.current_time()  # still bound, still right

    async with trio.open_nursery() as nursery:
        nursery.start_soon(first)
        await trio.sleep(0.1)
        nursery.start_soon(second)
    assert kclock.now is trio.current_time


def test_each_run_reads_its_own_clock():
    seen = []

    async def main(offset: float) -> None:
        async with pystack.Network(seed=1):
            await trio.sleep(offset)
            seen.append((ktime_get(), trio.current_time()))

    for offset in (3.0, 7.0):
        clock = trio.testing.MockClock(autojump_threshold=0)
        clock.jump(100 * offset)
        trio.run(main, offset, clock=clock)
    assert seen == [(303.0, 303.0), (707.0, 707.0)]


def test_a_running_mock_clock_is_read_through_its_own_current_time():
    async def main() -> None:
        async with pystack.Network(seed=1):
            t0 = ktime_get()
            await trio.sleep(0.01)
            assert ktime_get() - t0 >= 0.01
            assert kclock.now == trio.lowlevel.current_clock().current_time

    trio.run(main, clock=trio.testing.MockClock(rate=1000))

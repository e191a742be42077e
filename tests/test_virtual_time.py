"""The suite's own guarantee: async tests run on an autojump MockClock."""

import trio
import trio.testing


async def test_async_tests_run_on_an_autojump_mock_clock():
    clock = trio.lowlevel.current_clock()
    assert isinstance(clock, trio.testing.MockClock)
    assert clock.autojump_threshold == 0
    start = trio.current_time()
    await trio.sleep(3600)
    assert trio.current_time() - start == 3600

"""Test configuration: every async test runs in virtual time.

pytest-trio runs a test with `trio.run`; the `trio` marker's `run=` names another runner. Every
async test gets `_virtual_time_run`, which supplies an autojump MockClock unless the test asked
for a clock fixture of its own. Nothing in the suite waits in real time.
"""

from __future__ import annotations

import inspect

import pytest
import trio
import trio.testing


def _virtual_time_run(fn, *args, clock=None, instruments=(), **kwargs):
    if clock is None:
        clock = trio.testing.MockClock(autojump_threshold=0)
    return trio.run(fn, *args, clock=clock, instruments=instruments, **kwargs)


def pytest_collection_modifyitems(config, items):
    for item in items:
        fn = getattr(item, "obj", None)
        if fn is not None and inspect.iscoroutinefunction(fn):
            item.add_marker(pytest.mark.trio(run=_virtual_time_run))

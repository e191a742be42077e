"""The pytest plugin: a `net` fixture (a started Network in virtual time), its seed, and the
artifacts of a failing test.

Read first: DESIGN.md §1 (tests) and §3 (time and determinism); pytest-trio's plugin.py
(`_trio_test_runner_factory`: how a test's runner and Clock are chosen).

Registered by entry point (`[project.entry-points.pytest11] pystack`), so installing pystack
is enough:

    async def test_echo(net):                  # net: a started pystack.Network
        a, b = net.add_host("a"), net.add_host("b")
        ...

- The seed: `@pytest.mark.pystack(seed=N)` on the test, else `--pystack-seed N`, else 0. A
  failing test's report has a "pystack" section naming its seed, so the failure replays.
- Virtual time: an async test that uses `net` is run by pytest-trio (the plugin marks it
  `trio` if nothing did) on an autojump `MockClock`, unless the test asked for a Clock fixture
  of its own (`autojump_clock`, `mock_clock`) or another runner was chosen.
- Artifacts: with `--pystack-artifacts DIR`, the network is captured to
  `DIR/<test>.pcapng` and its tracepoints recorded; a failing test leaves the pcapng and
  `DIR/<test>.trace.txt` (one event a line) and names both in its report; a passing test
  leaves nothing.
"""

from __future__ import annotations

import inspect
import pathlib
import re
from typing import Any

import pytest
import trio
import trio.testing

from .world import Network, network_fixture

__all__ = ["net", "virtual_time_run"]

_INFO = pytest.StashKey[dict]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pystack", "pystack: emulated networks in virtual time")
    group.addoption("--pystack-seed", type=int, default=None, metavar="N",
                    help="seed of the `net` fixture's Network (a pystack(seed=) marker wins)")
    group.addoption("--pystack-artifacts", default=None, metavar="DIR",
                    help="write a failing test's pcapng and trace to DIR")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "pystack(seed=N): the seed of the Network the `net` fixture gives")


def virtual_time_run(fn: Any, *args: Any, clock: Any = None, instruments: Any = (),
                     **kwargs: Any) -> Any:
    """trio.run on an autojump MockClock, unless the test brought its own clock."""
    if clock is None:
        clock = trio.testing.MockClock(autojump_threshold=0)
    return trio.run(fn, *args, clock=clock, instruments=instruments, **kwargs)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        fn = getattr(item, "obj", None)
        if "net" not in getattr(item, "fixturenames", ()) or \
                not inspect.iscoroutinefunction(fn):
            continue
        if not config.pluginmanager.has_plugin("trio"):
            raise pytest.UsageError(f"{item.nodeid}: the `net` fixture runs async tests with "
                                    "pytest-trio; install it (pip install pytest-trio)")
        if not any(m.kwargs.get("run") for m in item.iter_markers("trio")):
            item.add_marker(pytest.mark.trio(run=virtual_time_run))


def _seed(request: pytest.FixtureRequest) -> int:
    marker = request.node.get_closest_marker("pystack")
    if marker is not None and "seed" in marker.kwargs:
        seed = marker.kwargs["seed"]
    elif request.config.getoption("--pystack-seed") is not None:
        seed = request.config.getoption("--pystack-seed")
    else:
        seed = 0
    if not isinstance(seed, int):
        raise TypeError(f"pystack seed must be an int, got {seed!r}")
    return seed


def _stem(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")[:150]


def _make_network(request: pytest.FixtureRequest) -> Network:
    """A started pystack.Network, seeded from the pystack(seed=) marker or --pystack-seed."""
    seed = _seed(request)
    info: dict[str, Any] = {"seed": seed}
    request.node.stash[_INFO] = info
    network = Network(seed=seed)
    directory = request.config.getoption("--pystack-artifacts")
    if directory:
        d = pathlib.Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        stem = _stem(request.node.nodeid)
        info["pcap"] = (d / f"{stem}.pcapng").resolve()
        info["trace"] = (d / f"{stem}.trace.txt").resolve()
        events: list[Any] = []
        info["events"] = events
        network.capture(str(info["pcap"]))
        network.trace(events.append)
    return network


# An async generator fixture (pytest-trio runs it in the test's trio run); the async code is
# in world.py so that this module stays synchronous.
net = pytest.fixture(name="net")(network_fixture(_make_network))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    info = item.stash.get(_INFO, None)
    if info is None or report.when != "call":
        return report
    seed = info["seed"]
    if report.failed:
        lines = [f"seed: {seed}  (replay with --pystack-seed {seed} "
                 f"or @pytest.mark.pystack(seed={seed}))"]
        if "pcap" in info:
            trace_path: pathlib.Path = info["trace"]
            with open(trace_path, "w") as f:
                for event in info["events"]:
                    f.write(f"{event}\n")
            lines.append(f"pcap: {info['pcap']}")
            lines.append(f"trace: {trace_path}")
        report.sections.append(("pystack", "\n".join(lines)))
    elif "pcap" in info:
        info["pcap"].unlink(missing_ok=True)
    info.pop("events", None)
    return report

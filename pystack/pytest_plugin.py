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
  of its own (`autojump_clock`, `mock_clock`) or chose a runner other than trio.run
  (`trio_mode = true` marks tests with trio.run; they still get virtual time).
- Servers and clients: `net.server`, `net.run`, `net.run_clients` (pystack/programs.py) run
  programs on the hosts; a failing one raises ProgramError with its exit status and the end
  of its stderr, which pytest prints beside the seed.
- Artifacts: with `--pystack-artifacts DIR`, the network is captured to
  `DIR/<test>.pcapng` and its tracepoints recorded; a failing test leaves the pcapng and
  `DIR/<test>.trace.txt` (one event a line) and names both in its report; a passing test
  leaves nothing.
- Determinism: with `--pystack-check-determinism`, each test that uses `net` runs twice (its
  function-scoped fixtures set up afresh) and fails if the two runs' frames (every interface,
  as pcapng) or tracepoints differ, as madsim's check mode does. A failing first run is
  reported as is.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import pathlib
import re
from typing import Any

import pytest
import trio
import trio.testing
# pytest has no public way to run one item's setup/call/teardown again; pytest-rerunfailures
# uses the same function.
from _pytest.runner import runtestprotocol

from .world import Network, network_fixture

__all__ = ["net", "virtual_time_run"]

_INFO = pytest.StashKey[dict]()
_FIRST_DIGEST = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pystack", "pystack: emulated networks in virtual time")
    group.addoption("--pystack-seed", type=int, default=None, metavar="N",
                    help="seed of the `net` fixture's Network (a pystack(seed=) marker wins)")
    group.addoption("--pystack-artifacts", default=None, metavar="DIR",
                    help="write a failing test's pcapng and trace to DIR")
    group.addoption("--pystack-check-determinism", action="store_true", default=False,
                    help="run each test that uses `net` twice and fail it if the frames or "
                         "tracepoints of the two runs differ")


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
        runs = [m.kwargs["run"] for m in item.iter_markers("trio") if m.kwargs.get("run")]
        # pytest-trio's trio_mode marks every async test run=trio.run, its default rather
        # than a choice: that still gets virtual time. (pytest-trio takes the first marker
        # naming a runner, so ours goes in front.)
        if not runs or runs[0] is trio.run:
            item.add_marker(pytest.mark.trio(run=virtual_time_run), append=False)


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
    if request.config.getoption("--pystack-check-determinism"):
        frames = io.BytesIO()
        seen: list[str] = []
        info["frames"], info["seen"] = frames, seen
        network.capture(frames)
        network.trace(lambda event: seen.append(str(event)))
    return network


def _digest(info: dict[str, Any]) -> str:
    """What one run did: its frames (pcapng bytes) and its tracepoints, hashed."""
    h = hashlib.sha256(info["frames"].getvalue())
    for line in info["seen"]:
        h.update(line.encode())
        h.update(b"\n")
    return f"{h.hexdigest()[:16]} ({len(info['seen'])} tracepoints, " \
           f"{len(info['frames'].getvalue())} pcapng bytes)"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    if not item.config.getoption("--pystack-check-determinism") or \
            "net" not in getattr(item, "fixturenames", ()) or \
            not hasattr(item, "_initrequest"):
        return None
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    # Tear down the test's own fixtures but keep its parents' (a Node's listchain is all
    # teardown_exact reads of `nextitem`).
    first = runtestprotocol(item, nextitem=item.parent, log=False)  # type: ignore[arg-type]
    info = item.stash.get(_INFO, None)
    if any(r.failed for r in first) or info is None or "digest" not in info:
        for report in first:
            item.ihook.pytest_runtest_logreport(report=report)
    else:
        item.stash[_FIRST_DIGEST] = info["digest"]
        item._initrequest()  # function-scoped fixtures afresh for the second run
        runtestprotocol(item, nextitem=nextitem, log=True)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


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
    if "frames" in info:
        info["digest"] = _digest(info)
    first = item.stash.get(_FIRST_DIGEST, None)
    if first is not None and report.passed and "digest" in info:
        second = info["digest"]
        if second != first:
            report.outcome = "failed"
            report.longrepr = (f"pystack: the test is not deterministic: with seed {seed} its "
                               f"first run gave {first}, its second {second}")
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
    for key in ("events", "frames", "seen"):
        info.pop(key, None)
    return report

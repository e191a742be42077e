"""The pytest plugin (pystack/pytest_plugin.py), exercised in sub-runs of pytest (pytester):
the `net` fixture, its seed, virtual time, the artifacts of a failing test and the check that
a test is deterministic.

Read first: the docstring of pystack/pytest_plugin.py.
"""

from __future__ import annotations

import re

import pytest

from pystack.pcap import read_pcapng

pytest_plugins = ["pytester"]

FIXTURE_TESTS = """
import pytest, trio, trio.testing

async def test_default_seed_and_virtual_time(net):
    assert net.seed == {default}
    clock = trio.lowlevel.current_clock()
    assert isinstance(clock, trio.testing.MockClock) and clock.autojump_threshold == 0
    t0 = trio.current_time()
    await trio.sleep(3600)
    assert trio.current_time() - t0 == 3600
    a, b = net.add_host("a"), net.add_host("b")
    net.add_link(a, b)
    assert await a.ping("10.0.0.2") == 0.0

@pytest.mark.pystack(seed=11)
async def test_marker_seed(net):
    assert net.seed == 11

async def test_own_clock_is_kept(net, mock_clock):
    assert trio.lowlevel.current_clock() is mock_clock
    mock_clock.jump(5)
    assert trio.current_time() >= 5
"""

FAILING_TEST = """
import pytest

@pytest.mark.pystack(seed=4242)
async def test_ping_then_fail(net):
    a, b = net.add_host("a"), net.add_host("b")
    net.add_link(a, b)
    await a.ping("10.0.0.2")
    assert 1 + 1 == 3, "deliberate"

async def test_passes(net):
    a, b = net.add_host("a"), net.add_host("b")
    net.add_link(a, b)
    await a.ping("10.0.0.2")
"""


def test_plugin_is_registered_by_entry_point(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.has_plugin("pystack")


@pytest.mark.parametrize("args, default", [((), 0), (("--pystack-seed", "77"), 77)])
def test_net_fixture_seed_and_clock(pytester: pytest.Pytester, args, default) -> None:
    pytester.makepyfile(FIXTURE_TESTS.format(default=default))
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=3)


def test_net_fixture_keeps_virtual_time_under_trio_mode(pytester: pytest.Pytester) -> None:
    # trio_mode marks every async test trio(run=trio.run): a default, not a choice of runner.
    pytester.makeini("[pytest]\ntrio_mode = true\n")
    pytester.makepyfile(FIXTURE_TESTS.format(default=0))
    result = pytester.runpytest()
    result.assert_outcomes(passed=3)


def test_failing_test_leaves_pcap_and_trace_and_prints_its_seed(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(FAILING_TEST)
    artifacts = pytester.path / "artifacts"
    result = pytester.runpytest("--pystack-artifacts", str(artifacts))
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "seed: 4242" in out and "--pystack-seed 4242" in out
    pcap = re.search(r"pcap: (\S+)", out)
    trace = re.search(r"trace: (\S+)", out)
    assert pcap and trace
    files = sorted(p.name for p in artifacts.iterdir())
    assert files == ["test_failing_test_leaves_pcap_and_trace_and_prints_its_seed.py_"
                     "test_ping_then_fail.pcapng",
                     "test_failing_test_leaves_pcap_and_trace_and_prints_its_seed.py_"
                     "test_ping_then_fail.trace.txt"]  # the passing test left nothing
    packets = read_pcapng(pcap.group(1))
    names = {p.interface_name for p in packets}
    assert {"a:eth0", "b:eth0"} <= names
    assert len([p for p in packets if p.interface_name == "a:eth0"]) == 4  # ARP x2, ICMP x2
    with open(trace.group(1)) as f:
        lines = f.read().splitlines()
    assert any("neigh:neigh_update" in line for line in lines)
    assert any("napi:napi_poll" in line for line in lines)


def test_no_artifacts_without_the_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(FAILING_TEST)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "seed: 4242" in out and "pcap:" not in out
    assert not list(pytester.path.rglob("*.pcapng")) and not list(pytester.path.rglob("*.trace.txt"))


DETERMINISM_TESTS = """
import pytest, trio

RUNS = {"steady": 0, "drifting": 0, "plain": 0}

async def _ping(net, count):
    a, b = net.add_host("a"), net.add_host("b")
    net.add_link(a, b)
    for _ in range(count):
        await a.ping("10.0.0.2")

async def test_steady(net):
    RUNS["steady"] += 1
    await _ping(net, 2)

async def test_drifting(net):
    RUNS["drifting"] += 1
    await _ping(net, RUNS["drifting"])  # one ping the first run, two the second

async def test_fails_first(net):
    assert False, "fails on its own"

def test_plain():
    RUNS["plain"] += 1

def test_zz_counts():
    assert RUNS == {"steady": 2, "drifting": 2, "plain": 1}
"""


def test_check_determinism_runs_twice_and_fails_a_drifting_test(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(DETERMINISM_TESTS)
    result = pytester.runpytest("--pystack-check-determinism")
    result.assert_outcomes(passed=3, failed=2)
    out = result.stdout.str()
    assert re.search(r"test_drifting.*\n(.*\n)*.*not deterministic: with seed 0 its first run "
                     r"gave \w+ \(\d+ tracepoints, \d+ pcapng bytes\), its second \w+", out)
    assert "fails on its own" in out
    assert "test_steady" not in "".join(line for line in out.splitlines()
                                        if line.startswith("FAILED"))
    # Without the option each test runs once and nothing is compared.
    plain = pytester.runpytest("-k", "not zz")
    plain.assert_outcomes(passed=3, failed=1)

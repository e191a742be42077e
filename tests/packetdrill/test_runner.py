"""Tests of the packetdrill runner (pystack.packetdrill.runner/events/syscalls/commands) with
the project's own scripts, in tests/packetdrill/scripts/.

Every script there was written for this project (none comes from the GPLv2 corpus). A script
whose first line is `// Expect: STATUS: TEXT` must end with that status ("fail" or
"unsupported") and TEXT somewhere in its message; every other script must pass. The scripts use
UDP and ICMP only, so they test the runner, not pystack's TCP.
"""

from __future__ import annotations

import json
import pathlib

import pytest

from pystack.packetdrill.__main__ import main
from pystack.packetdrill.runner import run_script

SCRIPTS = pathlib.Path(__file__).parent / "scripts"
ALL = sorted(SCRIPTS.glob("*.pkt"))


def expectation(path: pathlib.Path) -> tuple[str, str]:
    first = path.read_text().splitlines()[0]
    if first.startswith("// Expect: "):
        status, _, text = first[len("// Expect: "):].partition(": ")
        return status, text
    return "pass", ""


def test_there_are_passing_and_failing_scripts():
    kinds = {expectation(p)[0] for p in ALL}
    assert kinds == {"pass", "fail", "unsupported"}


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_script(path: pathlib.Path):
    status, text = expectation(path)
    result = run_script(str(path))
    assert result.status == status, str(result)
    if status != "pass":
        assert text in result.reason + "\n" + result.details, str(result)


def test_failure_names_line_time_expected_and_actual():
    result = run_script(str(SCRIPTS / "fail-wrong-timing.pkt"))
    assert result.line == 5
    assert result.time == pytest.approx(0.0)
    assert result.expected == "> udp (10)"
    assert result.actual == "> udp (10)"
    assert "script packet:  0.100000 > udp (10)" in result.details
    assert "actual packet:  0.000000 > udp (10)" in result.details


def test_script_text_runs_like_a_file():
    text = (SCRIPTS / "udp-sendto-recvfrom.pkt").read_text()
    assert run_script(text).status == "pass"


def test_same_script_same_result():
    path = str(SCRIPTS / "fail-unexpected-packet.pkt")
    first, second = run_script(path), run_script(path)
    assert (first.reason, first.details) == (second.reason, second.details)


def test_missing_file_is_a_failure_not_a_crash():
    result = run_script("/nonexistent/dir/x.pkt")
    assert result.status == "fail"
    assert "cannot read script" in result.reason


def test_ipv6_only_scripts_are_unsupported(tmp_path):
    path = tmp_path / "thing-v6.pkt"
    path.write_text("0 socket(..., SOCK_DGRAM, IPPROTO_UDP) = 3\n")
    assert run_script(str(path)).status == "unsupported"


def test_unknown_option_is_unsupported():
    result = run_script("--mss=1000\n0 socket(..., SOCK_DGRAM, IPPROTO_UDP) = 3\n")
    assert result.status == "unsupported"
    assert "option --mss" in result.reason


def test_tolerance_option_widens_the_window():
    base = ("0 socket(..., SOCK_DGRAM, IPPROTO_UDP) = 3\n"
            "+0 sendto(3, ..., 10, 0, ..., ...) = 10\n"
            "+0.02 > udp (10)\n")
    assert run_script(base).status == "fail"
    assert run_script("--tolerance_usecs=25000\n" + base).status == "pass"


def test_code_blocks_run_after_the_script_and_fail_on_assert(monkeypatch):
    from pystack.packetdrill import events
    monkeypatch.setattr(events, "decode_tcp_info",
                        lambda value: {"tcpi_snd_cwnd": 10, "tcpi_state": 1})
    monkeypatch.setattr(events.syscalls, "sys_getsockopt", lambda *a: b"")
    ok = ("0 socket(..., SOCK_DGRAM, IPPROTO_UDP) = 3\n"
          "+0 %{ assert tcpi_snd_cwnd == 10\nassert tcpi_state == TCP_ESTABLISHED }%\n")
    assert run_script(ok).status == "pass"
    bad = ok.replace("== 10", "== 11")
    result = run_script(bad)
    assert result.status == "fail"
    assert "line 2: error in Python code at `assert tcpi_snd_cwnd == 11`" in result.reason


def test_cli_exit_status_and_json(capsys):
    ok = str(SCRIPTS / "udp-sendto-recvfrom.pkt")
    bad = str(SCRIPTS / "fail-missing-packet.pkt")
    assert main([ok]) == 0
    assert main([ok, bad, "--json"]) == 1
    out = capsys.readouterr().out
    data = json.loads(out[out.index("["):])
    assert [d["status"] for d in data] == ["pass", "fail"]


def test_cli_report_totals_per_tier(tmp_path, capsys):
    (tmp_path / "tcp").mkdir()
    for name in ("udp-sendto-recvfrom.pkt", "fail-missing-packet.pkt", "unsupported-tc.pkt"):
        (tmp_path / "tcp" / name).write_text((SCRIPTS / name).read_text())
    (tmp_path / "inventory.json").write_text(json.dumps({"files": {
        "tcp/udp-sendto-recvfrom.pkt": {"tier": "A"},
        "tcp/fail-missing-packet.pkt": {"tier": "A"},
        "tcp/unsupported-tc.pkt": {"tier": "C4"}}}))
    assert main(["--report", str(tmp_path)]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["A", "2", "1", "1", "0"] in rows
    assert ["C4", "1", "0", "0", "1"] in rows
    assert ["all", "3", "1", "1", "1"] in rows
    assert main(["--report", str(tmp_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {(r["path"], r["tier"], r["status"]) for r in rows} == {
        ("tcp/udp-sendto-recvfrom.pkt", "A", "pass"),
        ("tcp/fail-missing-packet.pkt", "A", "fail"),
        ("tcp/unsupported-tc.pkt", "C4", "unsupported")}


def test_wall_clock_guard_cancels_a_long_run():
    result = run_script(str(SCRIPTS / "udp-sendto-recvfrom.pkt"), wall_clock_limit=0.0)
    assert result.status == "fail"
    assert result.reason.startswith("wall-clock guard: the script ran for more than 0 s")


def test_wall_clock_guard_stops_code_that_never_yields(monkeypatch):
    from pystack.packetdrill import events, runner

    def spin(*args):
        while True:
            pass
    monkeypatch.setattr(events, "_inbound", spin)
    monkeypatch.setattr(runner, "HARD_STOP_GRACE", 0.1)
    result = run_script(str(SCRIPTS / "udp-sendto-recvfrom.pkt"), wall_clock_limit=0.1)
    assert result.status == "fail"
    assert "inside code that never returned to the event loop" in result.reason
    assert run_script(str(SCRIPTS / "udp-nonblocking.pkt")).status == "pass"  # trio still fine


async def test_run_script_async_runs_inside_a_trio_run():
    from pystack.packetdrill import run_script_async
    result = await run_script_async(str(SCRIPTS / "icmp-echo.pkt"))
    assert result.status == "pass"


def test_bad_option_value_is_a_failure_not_a_crash():
    result = run_script("0 < S 0:0(0) win 100 <mss NOPE,nop,nop>\n")
    assert result.status == "fail"
    assert "unknown name 'NOPE' in mss" in result.reason


def test_a_stack_without_tcp_fails_tcp_scripts_with_its_reason(monkeypatch):
    monkeypatch.setattr("pystack.host.tcp_init", lambda net: None)  # a host as before TCP
    result = run_script("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"
                        "+0 > S 0:0(0) <...>\n")
    assert result.status == "fail"
    assert result.reason == ("NotImplementedError: TCP (SOCK_STREAM) is not implemented yet "
                             "in pystack")

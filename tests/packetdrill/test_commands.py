"""Tests of back-quoted commands (pystack.packetdrill.commands): sysctl writes, the harness's
defaults.sh / set_sysctls.py, and what is refused as unsupported.

The harness file used here is a small one written for the test, in the shape of the corpus's.
"""

from __future__ import annotations

import pytest

import pystack
from pystack.packetdrill import commands
from pystack.packetdrill.commands import Shell
from pystack.packetdrill.expr import Unsupported


@pytest.fixture
def host():
    return pystack.Network(seed=1).add_host("h")


def test_sysctl_with_quotes_and_arithmetic(host):
    Shell(host, None).run('sysctl -q net.ipv4.tcp_rmem="4096 540000 $((15*1024*1024))"')
    assert host.sysctl.tcp_rmem == (4096, 540000, 15 * 1024 * 1024)


def test_sysctl_slash_names_hex_values_and_redirections(host):
    Shell(host, None).run("sysctl -q net/ipv4/ip_default_ttl=0x21 > /dev/null 2>&1")
    assert host.sysctl.ip_default_ttl == 33


def test_set_sysctls_py_maps_proc_paths(host):
    Shell(host, "/x").run("../common/set_sysctls.py /proc/sys/net/ipv4/tcp_syn_retries=2 \\\n"
                          "   /proc/sys/net/ipv4/tcp_wmem=\"4096 50000 4194304\"")
    assert host.sysctl.tcp_syn_retries == 2
    assert host.sysctl.tcp_wmem == (4096, 50000, 4194304)


def test_restore_script_is_a_no_op(host):
    Shell(host, None).run("/tmp/sysctl_restore_${PPID}.sh")


def test_unknown_sysctl_at_linux_default_is_ignored(host, monkeypatch):
    monkeypatch.setitem(commands.LINUX_SYSCTL_DEFAULTS, "net.ipv4.tcp_fake_knob", "3")
    shell = Shell(host, None)
    shell.run("sysctl -q net.ipv4.tcp_fake_knob=3")
    with pytest.raises(Unsupported, match=r"tcp_fake_knob=4 \(pystack has no such sysctl; "
                                          r"Linux's default is 3\)"):
        shell.run("sysctl -q net.ipv4.tcp_fake_knob=4")


def test_harness_file_is_read_and_its_unknowns_become_warnings(host, tmp_path):
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "defaults.sh").write_text(
        "#!/bin/bash\n# comment\nip tcp_metrics flush all > /dev/null 2>&1\n"
        "sysctl -q net.ipv4.tcp_syn_retries=4\n"
        "sysctl -q net.ipv4.tcp_fake_knob=1\n"
        "tc qdisc add dev tun0 root pfifo\n")
    (tmp_path / "t").mkdir()
    shell = Shell(host, str(tmp_path / "t"))
    shell.run("../common/defaults.sh\nsysctl -q net.ipv4.tcp_synack_retries=3")
    assert (host.sysctl.tcp_syn_retries, host.sysctl.tcp_synack_retries) == (4, 3)
    assert shell.warnings == ["sysctl net.ipv4.tcp_fake_knob=1 (pystack has no such sysctl)"]


def test_harness_link_stored_as_text_is_followed(host, tmp_path):
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "defaults.sh").write_text("sysctl -q net.ipv4.tcp_syn_retries=3\n")
    (tmp_path / "tcp" / "common").mkdir(parents=True)
    (tmp_path / "tcp" / "common" / "defaults.sh").write_text("../../common/defaults.sh")
    (tmp_path / "tcp" / "x").mkdir()
    Shell(host, str(tmp_path / "tcp" / "x")).run("../common/defaults.sh")
    assert host.sysctl.tcp_syn_retries == 3


def test_missing_harness_file_is_unsupported(host, tmp_path):
    with pytest.raises(Unsupported, match="harness file ../common/defaults.sh not found"):
        Shell(host, str(tmp_path)).run("../common/defaults.sh")


@pytest.mark.parametrize("command,reason", [
    ("tc qdisc replace dev tun0 root fq", "tc: command `tc qdisc replace dev tun0 root fq`"),
    ("ethtool -S tun0", "ethtool: command"),
    ("ip route change 192.0.2.1 via 192.168.0.2 dev tun0", "ip: command"),
    ("echo 3 > /sys/module/tcp_cubic/parameters/hystart_detect", "command `echo 3 > /sys/module"),
    ("nstat | grep TcpExtOutOfWindowIcmps > /dev/null", "command `nstat"),
])
def test_other_commands_are_unsupported(host, command, reason):
    with pytest.raises(Unsupported, match=reason.replace("(", r"\(")):
        Shell(host, None).run(command)


def test_ethtool_sets_the_device_offload_flags(host):
    Shell(host, None).run("ethtool -K lo tso off gso off")
    lo = host.net.dev_get_by_name("lo")
    assert (lo.tso, lo.gso) == (False, False)
    Shell(host, None).run("ethtool -K lo gso on")
    assert (lo.tso, lo.gso) == (False, True)
    with pytest.raises(Unsupported, match="ethtool: no device tun9"):
        Shell(host, None).run("ethtool -K tun9 tso off")


def test_or_skips_the_fallback_after_success(host):
    Shell(host, None).run("sysctl -q net.ipv4.tcp_syn_retries=1 || ip tcp_metrics flush")
    assert host.sysctl.tcp_syn_retries == 1

"""Real Linux and pystack exchange real Ethernet frames through a TAP interface.

Each test creates a network namespace of its own, moves the TAP interface into it, gives
Linux its address there, and removes the namespace at the end: no real interface outside it
ever gets an address. These tests run in real time (Linux does not follow virtual time), so
they are plain functions that call trio.run themselves with trio's real clock.
"""

from __future__ import annotations

import hashlib
import os
import random
import socket
import subprocess
import sys
import textwrap

import shutil

import pytest
import trio

import pystack
from pystack.tap import tap_available

REASON = tap_available()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"no TAP here: {REASON}")

LINUX = "10.99.0.1"
EMULATED = "10.99.0.2"
SIZE = 10 * 1024 * 1024

PING = textwrap.dedent("""
    import socket, struct, sys
    def csum(b):
        s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
        s = (s >> 16) + (s & 0xffff); s += s >> 16
        return ~s & 0xffff
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.settimeout(10)
    body = struct.pack("!BBHHH", 8, 0, 0, 0x5053, 1) + b"pystack!"
    body = body[:2] + struct.pack("!H", csum(body)) + body[4:]
    s.sendto(body, (sys.argv[1], 0))
    while True:
        data, addr = s.recvfrom(2048)
        ihl = (data[0] & 15) * 4
        if data[ihl] == 0 and data[ihl + 4:ihl + 6] == b"PS":
            print("reply from", addr[0]); break
""")

UDP_ECHO = textwrap.dedent("""
    import socket, sys
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((sys.argv[1], 7)); s.settimeout(20)
    print("ready", flush=True)
    for _ in range(int(sys.argv[2])):
        data, addr = s.recvfrom(65536)
        s.sendto(data, addr)
""")

TCP_PEER = textwrap.dedent("""
    import hashlib, random, socket, sys
    size = int(sys.argv[2])
    srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((sys.argv[1], 5001)); srv.listen(1); srv.settimeout(30)
    print("ready", flush=True)
    conn, _ = srv.accept(); conn.settimeout(30)
    h, got = hashlib.sha256(), 0
    while got < size:
        chunk = conn.recv(1 << 16)
        if not chunk: break
        h.update(chunk); got += len(chunk)
    print("received", got, h.hexdigest(), flush=True)
    conn.sendall(random.Random(2).randbytes(size))
    conn.shutdown(socket.SHUT_WR)
    conn.recv(1)
""")


def _sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


@pytest.fixture
def namespace():
    ns = f"pst-test-{os.getpid()}"
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    _sh("ip", "netns", "add", ns)
    try:
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


async def _network_with_tap(net: pystack.Network, ns: str):
    host = net.add_host("emu")
    ifname = f"pst{os.getpid() % 100000}"
    tap = net.add_tap(host, ifname, "10.99.0.0/24")
    _sh("ip", "link", "set", ifname, "netns", ns)
    _sh("ip", "-n", ns, "addr", "add", f"{LINUX}/24", "dev", ifname)
    _sh("ip", "-n", ns, "link", "set", ifname, "up")
    _sh("ip", "-n", ns, "link", "set", "lo", "up")
    return host, tap


async def _in_ns(ns: str, script: str, *args: str) -> trio.Process:
    return await trio.lowlevel.open_process(
        ["ip", "netns", "exec", ns, sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)


async def _readline(proc: trio.Process) -> str:
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = await proc.stdout.receive_some(1)
        if not chunk:
            break
        buf += chunk
    return buf.decode().strip()


def test_pings_both_ways_with_arp(namespace):
    async def main():
        net = pystack.Network(seed=1)
        async with net:
            host, _tap = await _network_with_tap(net, namespace)
            with trio.fail_after(20):
                rtt = await host.ping(LINUX, timeout=10)
                assert 0 <= rtt < 5
                assert host.neighbour_state(LINUX) == "REACHABLE"
                proc = await _in_ns(namespace, PING, EMULATED)
                assert await _readline(proc) == f"reply from {EMULATED}"
                await proc.wait()
            assert host.stats()["Icmp"]["InEchos"] >= 1
    trio.run(main)


def test_udp_echo_with_a_linux_process(namespace):
    async def main():
        net = pystack.Network(seed=2)
        async with net:
            host, _tap = await _network_with_tap(net, namespace)
            proc = await _in_ns(namespace, UDP_ECHO, LINUX, "5")
            with trio.fail_after(20):
                assert await _readline(proc) == "ready"
                sock = host.socket(socket.AF_INET, socket.SOCK_DGRAM)
                for i in range(5):
                    msg = f"datagram {i}".encode() * (i * 100 + 1)
                    await sock.sendto(msg, (LINUX, 7))
                    data, addr = await sock.recvfrom(65536)
                    assert data == msg and addr == (LINUX, 7)
                await proc.wait()
    trio.run(main)


def _linux_side_loss(ns: str, percent: int) -> None:
    """Drop `percent`% of what Linux sends, at random, as `tc qdisc ... netem loss` would.

    This machine's kernel is built without sch_netem (CONFIG_NET_SCH_NETEM is not set), so
    the drop is an nftables rule on the output hook: the same loss, made by Linux."""
    _sh("ip", "netns", "exec", ns, "nft", "add", "table", "inet", "lossy")
    _sh("ip", "netns", "exec", ns, "nft",
        "add chain inet lossy out { type filter hook output priority 0 ; }")
    _sh("ip", "netns", "exec", ns, "nft", "add", "rule", "inet", "lossy", "out",
        "numgen", "random", "mod", "100", "<", str(percent), "drop")


@pytest.mark.parametrize("linux_loss", [0, 5], ids=["lossless", "linux-drops-5pct"])
def test_tcp_ten_megabytes_each_way_with_a_linux_process(namespace, linux_loss):
    if linux_loss and shutil.which("nft") is None:
        pytest.skip("nft (Debian package nftables) is needed to make Linux drop packets")
    payload = random.Random(1).randbytes(SIZE)
    expected_back = random.Random(2).randbytes(SIZE)

    async def main():
        net = pystack.Network(seed=3)
        async with net:
            host, _tap = await _network_with_tap(net, namespace)
            if linux_loss:
                _linux_side_loss(namespace, linux_loss)
            proc = await _in_ns(namespace, TCP_PEER, LINUX, str(SIZE))
            with trio.fail_after(120):
                assert await _readline(proc) == "ready"
                sock = host.socket(socket.AF_INET, socket.SOCK_STREAM)
                await sock.connect((LINUX, 5001))
                view = memoryview(payload)
                sent = 0
                while sent < SIZE:
                    sent += await sock.send(view[sent:sent + 65536])
                line = await _readline(proc)
                assert line == f"received {SIZE} {hashlib.sha256(payload).hexdigest()}"
                got = bytearray()
                while chunk := await sock.recv(65536):
                    got += chunk
                assert bytes(got) == expected_back
                sock.close()
                await proc.wait()
    trio.run(main)

"""Topologies and taps the test modules share (importable as `nethelpers`: pytest puts tests/
on sys.path for the modules below it).

Read first: pystack/world.py (Network, add_host, add_link, add_switch).
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any, AsyncIterator

import pytest
from scapy.layers.l2 import Ether

import pystack
from pystack.lib.compiled import is_compiled
from pystack.net.socket import sockfd_lookup
from pystack.uapi.ethernet import mac_str

__all__ = ["two_hosts", "lan", "tcp", "udp", "mac", "sent_frames", "sk_of", "recv_until_eof",
           "connected_pair", "python_only", "send_all"]


def python_only(why: str) -> pytest.MarkDecorator:
    """Skip under the compiled build (make test-compiled), saying `why`: the test patches a
    kernel function or class, which compiled callers reach directly, or hands the kernel a
    stand-in object, which the compiled kernel's type checks refuse."""
    return pytest.mark.skipif(is_compiled(), reason=f"plain Python build only: {why}")


@contextlib.asynccontextmanager
async def two_hosts(seed: int = 7, **netem: Any) -> AsyncIterator[tuple]:
    """Hosts a (10.0.0.1) and b (10.0.0.2) on one Ethernet link, impaired by `netem`."""
    net = pystack.Network(seed=seed)
    a, b = net.add_host("a"), net.add_host("b")
    link = net.add_link(a, b, subnet="10.0.0.0/24")
    if netem:
        link.set(**netem)
    async with net:
        yield net, a, b, link


@contextlib.asynccontextmanager
async def lan(n: int = 3, seed: int = 7) -> AsyncIterator[tuple]:
    """`n` hosts a, b, c … on switch sw0, 10.0.0.1, .2, .3 …"""
    net = pystack.Network(seed=seed)
    hosts = [net.add_host(name) for name in "abcdefgh"[:n]]
    sw = net.add_switch("sw0")
    for h in hosts:
        net.add_link(h, sw, subnet="10.0.0.0/24")
    async with net:
        yield (net, *hosts)


def tcp(host: pystack.Host) -> Any:
    return host.socket(socket.AF_INET, socket.SOCK_STREAM)


def udp(host: pystack.Host) -> Any:
    return host.socket(socket.AF_INET, socket.SOCK_DGRAM)


def mac(host: pystack.Host) -> str:
    """The MAC address of the host's eth0, as scapy writes one."""
    return mac_str(host.interface("eth0").dev_addr)


def sent_frames(host: pystack.Host, dev: str = "eth0") -> list[Ether]:
    """A tap on `dev`'s transmit side: every frame it sends, parsed by scapy."""
    frames: list[Ether] = []

    def tap(skb, _dev, direction):
        if direction == "tx":
            frames.append(Ether(bytes(skb.buf[skb.data:skb.tail])))

    host.interface(dev).ptype_all.append(tap)
    return frames


def sk_of(s: Any) -> Any:
    """The kernel's struct sock behind an emulated socket."""
    return sockfd_lookup(s.task, s.fileno())[1].sk


async def send_all(s: Any, data: bytes | memoryview) -> None:
    """Send all of `data` on the trio-style socket `s` (which has no sendall)."""
    view = memoryview(data)
    while view:
        view = view[await s.send(view):]


async def recv_until_eof(s: Any, into: bytearray, chunk: int = 65536) -> None:
    """Read `s` to end of file, appending to `into`."""
    while True:
        data = await s.recv(chunk)
        if not data:
            return
        into += data


async def connected_pair(client: pystack.Host, server: pystack.Host, addr: str,
                         port: int = 80) -> tuple[Any, Any]:
    """A TCP connection from `client` to `server`, which listens on all its addresses:
    (the client's socket, the server's accepted one), connected to `addr`:`port`."""
    srv = tcp(server)
    await srv.bind(("0.0.0.0", port))
    srv.listen(1)
    cli = tcp(client)
    await cli.connect((addr, port))
    conn, _ = await srv.accept()
    return cli, conn

"""Wiring an emulated host to real Linux through a TAP interface: the wire side.

Read first: pystack/drivers/net/tap.py (the NIC and why this runs in real time),
Documentation/networking/tuntap.rst.

`add_tap(net, host, "pst0", subnet="10.99.0.0/24")` creates the TAP interface `pst0`, gives
the emulated host a NIC wired to it with the subnet's .2 address (.1 is for the Linux side),
and starts the task that reads frames Linux sends and DMAs them into that NIC's rx ring.
Put the TAP interface into a network namespace you create before giving Linux an address.
"""

from __future__ import annotations

import ipaddress
import os
from typing import TYPE_CHECKING

import trio

from .drivers.net.tap import TapNic, open_tap, tap_available
from .net.core.net_namespace import derive_rng
from .net.ipv4.devinet import inet_insert_ifa

if TYPE_CHECKING:
    from .host import Host
    from .world import Network

__all__ = ["add_tap", "tap_available"]


async def _carry_frames_in(nic: TapNic) -> None:
    """Frames Linux sends on the TAP interface land in the NIC's rx ring."""
    fd = nic.tap_fd
    try:
        while True:
            await trio.lowlevel.wait_readable(fd)
            while True:
                try:
                    frame = os.read(fd, 65536)
                except BlockingIOError:
                    break
                if not frame:
                    return
                nic.dma_rx(bytearray(frame))
    finally:
        try:
            trio.lowlevel.notify_closing(fd)
        except (RuntimeError, ValueError):
            pass
        nic.close()


def add_tap(net: "Network", host: "Host", ifname: str, subnet: str, *,
            host_index: int = 2) -> TapNic:
    """Wire `host` to a new Linux TAP interface `ifname`; the host takes .`host_index` of
    `subnet`. The network must be running: the frame reader is one of its tasks."""
    if net._nursery is None:
        raise RuntimeError("add_tap needs a running Network (inside `async with net:`)")
    network = ipaddress.IPv4Network(subnet)
    fd = open_tap(ifname)
    n = sum(1 for d in host.net.dev_base if d.startswith("eth"))
    name = f"eth{n}"
    rng = derive_rng(net.seed, "mac", host.name, name)
    mac = bytes([0x02] + [rng.randrange(256) for _ in range(5)])
    nic = TapNic(host.net, name, mac, host.cpus[0], fd, ifname)
    host._register(nic)
    with host._kernel():
        inet_insert_ifa(nic, int(network.network_address) + host_index, network.prefixlen)
    net._nursery.start_soon(_carry_frames_in, nic, name=f"{host.name}/{name}/tap:{ifname}")
    return nic

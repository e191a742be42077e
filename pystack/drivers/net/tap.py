"""A NIC whose cable is a real Linux TAP interface, so that real Linux and an emulated host
exchange real Ethernet frames (after drivers/net/tun.c's IFF_TAP mode, seen from the other
end).

Read first: Documentation/networking/tuntap.rst (TUNSETIFF, IFF_TAP, IFF_NO_PI),
drivers/net/nic.py (the emulated NIC this device extends: rings, IRQ, NAPI).

`add_tap(net, host, "pst0", subnet="10.99.0.0/24")` opens /dev/net/tun, creates the TAP
interface `pst0` on the machine and gives the emulated host a NIC wired to it, with the
subnet's .2 address (.1 is for the Linux side). Frames the emulated host sends are written to
the TAP file descriptor; a trio task reads frames Linux sends and "DMAs" them into the NIC's
rx ring, from where the usual IRQ/NAPI path takes them.

This runs in real time: Linux does not follow trio's virtual clock. Keep real traffic off the
machine's own networks: move the TAP interface into a network namespace the test creates
(`ip link set pst0 netns NS`) and give it its address there, never in the root namespace.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import os
import struct
from typing import TYPE_CHECKING, Any

import trio

from ...net.core.net_namespace import derive_rng
from ...net.ipv4.devinet import inet_insert_ifa
from .nic import EthernetNic

if TYPE_CHECKING:
    from ...host import Host
    from ...world import Network

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFNAMSIZ = 16


def tap_available() -> str | None:
    """None if a TAP interface can be made here, else the reason it cannot."""
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun is missing"
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR)
    except OSError as e:
        return f"cannot open /dev/net/tun: {e.strerror}"
    os.close(fd)
    if os.geteuid() != 0:
        return "creating TAP interfaces needs CAP_NET_ADMIN (run as root)"
    return None


def open_tap(ifname: str) -> int:
    """Create (or attach to) the TAP interface `ifname`; a non-blocking fd of its frames."""
    if not ifname or len(ifname.encode()) >= IFNAMSIZ:
        raise ValueError(f"an interface name has 1 to {IFNAMSIZ - 1} bytes, got {ifname!r}")
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", ifname.encode(), IFF_TAP | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


class TapNic(EthernetNic):
    """An emulated Ethernet NIC wired to a TAP file descriptor instead of an emulated link."""

    def __init__(self, net: Any, name: str, mac: bytes, irq_cpu: Any, fd: int, ifname: str):
        super().__init__(net, name, mac, irq_cpu)
        self.tap_fd = fd
        self.tap_ifname = ifname
        self.wire_tx = self._tap_write
        self.carrier = True

    def _tap_write(self, frame: bytearray, trace: Any = None) -> None:
        try:
            os.write(self.tap_fd, frame)
        except BlockingIOError:
            self.stats.tx_dropped += 1  # the TAP queue is full: the frame is lost, as on a wire
        except OSError as e:
            if e.errno in (errno.EIO, errno.EBADF, errno.ENODEV):
                self.stats.tx_errors += 1  # the Linux side is down or gone
            else:
                raise

    async def run(self) -> None:
        """Carry frames from Linux into the rx ring until the network stops."""
        fd = self.tap_fd
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
                    self.dma_rx(bytearray(frame))
        finally:
            self.close()

    def close(self) -> None:
        if self.tap_fd >= 0:
            fd, self.tap_fd = self.tap_fd, -1
            self.carrier = False
            try:
                trio.lowlevel.notify_closing(fd)
            except (RuntimeError, ValueError):
                pass
            os.close(fd)


def add_tap(net: "Network", host: "Host", ifname: str, subnet: str, *,
            host_index: int = 2) -> TapNic:
    """Wire `host` to a new Linux TAP interface `ifname`; the host takes .`host_index` of
    `subnet`. The network must be running (the frame reader is one of its tasks)."""
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
    net._nursery.start_soon(nic.run, name=f"{host.name}/{name}/tap:{ifname}")
    return nic

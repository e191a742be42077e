"""A NIC whose cable is a real Linux TAP interface, so that real Linux and an emulated host
exchange real Ethernet frames (after drivers/net/tun.c's IFF_TAP mode, seen from the other
end).

Read first: Documentation/networking/tuntap.rst (TUNSETIFF, IFF_TAP, IFF_NO_PI),
drivers/net/nic.py (the emulated NIC this device extends: rings, IRQ, NAPI).

This module is the driver side (synchronous, reachable from softirq): frames the emulated host
sends are written to the TAP file descriptor. The other direction — a trio task reading the
frames Linux sends and "DMAing" them into the rx ring — is the wire's job and lives with the
world, in pystack/tap.py (`net.add_tap`).

This runs in real time: Linux does not follow trio's virtual clock. Keep real traffic off the
machine's own networks: move the TAP interface into a network namespace the test creates
(`ip link set pst0 netns NS`) and give it its address there, never in the root namespace.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from typing import Any, Final

from .nic import EthernetNic, wire_bytes

TUNSETIFF: Final = 0x400454CA
IFF_TAP: Final = 0x0002
IFF_NO_PI: Final = 0x1000
IFNAMSIZ: Final = 16


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
            os.write(self.tap_fd, wire_bytes(frame))  # a real kernel reads every byte
        except BlockingIOError:
            self.stats.tx_dropped += 1  # the TAP queue is full: the frame is lost, as on a wire
        except OSError as e:
            if e.errno in (errno.EIO, errno.EBADF, errno.ENODEV):
                self.stats.tx_errors += 1  # the Linux side is down or gone
            else:
                raise

    def close(self) -> None:
        if self.tap_fd >= 0:
            fd, self.tap_fd = self.tap_fd, -1
            self.carrier = False
            os.close(fd)

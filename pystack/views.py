"""What `host.routes()`, `neighbours()`, `sockets()` and `stats()` return: frozen values that
print the way `ip route`, `ip neigh`, `ss` and /proc/net/snmp do (`stats().netstat()`: the way
`netstat -s` does).
"""

from __future__ import annotations

from typing import Any

import attrs

from .net.ipv4.inet_diag import format_ms_timer
from .net.ipv4.proc import netstat_text, snmp_text


@attrs.frozen
class NeighbourEntry:
    address: str
    lladdr: str | None
    dev: str
    state: str

    def __str__(self) -> str:
        ll = f" lladdr {self.lladdr}" if self.lladdr else ""
        return f"{self.address} dev {self.dev}{ll} {self.state}"


@attrs.frozen
class SocketEntry:
    netid: str  # "udp", "tcp"
    state: str
    recv_q: int
    send_q: int
    local: str
    peer: str
    pid: int | None
    fd: int | None
    drops: int = 0
    timer: str = "off"  # as `ss -o`: off, on, keepalive, timewait, persist
    timer_left: float = 0.0  # seconds until it fires
    retrans: int = 0  # retransmissions (or probes) so far

    @property
    def timer_text(self) -> str:
        """`ss -o`'s column, e.g. timer:(on,200ms,0)."""
        return f"timer:({self.timer},{format_ms_timer(self.timer_left)},{self.retrans})"

    def __str__(self) -> str:
        row = (f"{self.netid:<5} {self.state:<10} {self.recv_q:>7} {self.send_q:>7} "
               f"{self.local:<21} {self.peer:<21}")
        return row if self.timer == "off" else f"{row} {self.timer_text}"


class TextList(list):
    """A list of rows whose str() is one row per line, like the command's output."""

    header = ""

    def __str__(self) -> str:
        lines = [self.header] if self.header else []
        lines.extend(str(row) for row in self)
        return "\n".join(lines)


class RouteList(TextList):
    pass


@attrs.frozen
class CachedRoute:
    """A route as the kernel hands it out for one destination: `ip route get ADDR` (with the
    source and uid) or one entry of `ip route show cache` (a learned path MTU)."""
    dst: str
    dev: str
    gateway: str | None = None
    src: str | None = None
    uid: int | None = None
    type: str = "unicast"
    expires: int | None = None  # whole seconds left of a learned path MTU
    mtu: int | None = None  # the learned path MTU, or the route's mtu metric
    mtu_locked: bool = False  # learned below min_pmtu, and held at it

    def __str__(self) -> str:
        head = self.dst if self.type == "unicast" else f"{self.type} {self.dst}"
        parts = [head]
        if self.gateway:
            parts.append(f"via {self.gateway}")
        parts.append(f"dev {self.dev}")
        if self.src:
            parts.append(f"src {self.src}")
        if self.uid is not None:
            parts.append(f"uid {self.uid}")
        cache = ["cache"]
        if self.type in ("local", "broadcast"):
            cache.append("<local>" if self.type == "local" else "<local,brd>")
        if self.expires is not None:
            cache.append(f"expires {self.expires}sec")
        if self.mtu:
            cache.append(f"mtu lock {self.mtu}" if self.mtu_locked else f"mtu {self.mtu}")
        return " ".join(parts) + "\n    " + " ".join(cache)


@attrs.frozen
class TracerouteProbe:
    """One probe's answer: who answered, after how long, and traceroute's mark (!H, !N …)
    for an unreachable; `address` None when nothing came back in time."""
    address: str | None
    rtt: float | None = None
    annotation: str = ""


@attrs.frozen
class TracerouteHop:
    ttl: int
    probes: tuple[TracerouteProbe, ...]

    @property
    def address(self) -> str | None:
        """The first address that answered at this distance."""
        return next((p.address for p in self.probes if p.address is not None), None)

    def __str__(self) -> str:
        out = f"{self.ttl:2d} "
        last = None
        for p in self.probes:
            if p.address is None:
                out += " *"
                continue
            if p.address != last:
                out += f" {p.address}"
                last = p.address
            out += f"  {p.rtt * 1000:.3f} ms"
            if p.annotation:
                out += f" {p.annotation}"
        return out


class Traceroute(TextList):
    """The hops, printing as `traceroute -n` does."""

    def __init__(self, dst: str, max_hops: int, packetlen: int):
        super().__init__()
        self.header = f"traceroute to {dst} ({dst}), {max_hops} hops max, {packetlen} byte packets"


class NeighbourList(TextList):
    pass


class SocketList(TextList):
    header = (f"{'Netid':<5} {'State':<10} {'Recv-Q':>7} {'Send-Q':>7} "
              f"{'Local Address:Port':<21} {'Peer Address:Port':<21}")


@attrs.frozen
class Stats:
    """A snapshot of one host's counters: SNMP groups, softnet, devices and drop reasons."""
    snmp: dict[str, dict[str, int]]
    softnet: list[dict[str, int]]
    devices: dict[str, dict[str, int]]
    drops: dict[str, int]

    def __getitem__(self, group: str) -> dict[str, int]:
        return self.snmp[group]

    def netstat(self) -> str:
        """The SNMP groups as `netstat -s` prints them ("123 total packets received",
        "0 segments retransmitted" ...)."""
        return netstat_text(self.snmp)

    def __str__(self) -> str:
        out = [snmp_text(self.snmp).rstrip()]
        for i, row in enumerate(self.softnet):
            out.append(f"softnet cpu{i}: " + " ".join(f"{k}={v}" for k, v in row.items()))
        for name, counters in self.devices.items():
            nz = {k: v for k, v in counters.items() if v}
            out.append(f"dev {name}: " + " ".join(f"{k}={v}" for k, v in nz.items()))
        if self.drops:
            out.append("drops: " + " ".join(f"{k}={v}" for k, v in self.drops.items()))
        return "\n".join(out)


def as_dict(value: Any) -> Any:
    return attrs.asdict(value)

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

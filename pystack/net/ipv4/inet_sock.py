"""The IPv4 part of a socket (`struct inet_sock`), as include/net/inet_sock.h.

Addresses and ports are kept in host byte order (ints); the wire format is made at output.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from ..core.sock import Sock

if TYPE_CHECKING:
    from ..core.net_namespace import Net

# IP_MTU_DISCOVER values
IP_PMTUDISC_DONT: Final = 0
IP_PMTUDISC_WANT: Final = 1
IP_PMTUDISC_DO: Final = 2
IP_PMTUDISC_PROBE: Final = 3


class InetSock(Sock):
    __slots__ = ("inet_saddr", "inet_rcv_saddr", "inet_daddr", "inet_dport", "inet_sport",
                 "inet_num", "uc_ttl", "tos", "recverr", "pmtudisc", "inet_id", "freebind",
                 "mc_ttl", "mc_loop", "cmsg_flags")

    def __init__(self, net: "Net", family: int, type_: int, protocol: int, prot: Any):
        super().__init__(net, family, type_, protocol, prot)
        self.inet_saddr = 0  # source address for output
        self.inet_rcv_saddr = 0  # bound address (lookup key)
        self.inet_daddr = 0
        self.inet_dport = 0
        self.inet_sport = 0
        self.inet_num = 0  # local port (0: not bound)
        self.uc_ttl = -1  # -1: ip_default_ttl
        self.tos = 0
        self.recverr = False
        self.pmtudisc = IP_PMTUDISC_DONT if net.sysctl.ip_no_pmtu_disc else IP_PMTUDISC_WANT
        self.inet_id = 0
        self.freebind = False
        self.mc_ttl = 1
        self.mc_loop = 1
        self.cmsg_flags = 0  # IP_CMSG_*: which control messages recvmsg returns

    def ttl(self) -> int:
        return self.uc_ttl if self.uc_ttl >= 0 else self.sk_net.sysctl.ip_default_ttl

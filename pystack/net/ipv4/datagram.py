"""Connecting a datagram socket, as net/ipv4/datagram.c.

Read first: net/ipv4/datagram.c (__ip4_datagram_connect), net/ipv4/udp.c (udp_disconnect).
"""

from __future__ import annotations

import errno

from ...kernel.errors import KernelError
from ..core.sock import SOCK_BINDADDR_LOCK, SOCK_BROADCAST
from .fib import RTN_BROADCAST
from .inet_sock import InetSock
from .route import ip_route_output_sk
from .tcp_states import TCP_CLOSE, TCP_ESTABLISHED


def ip4_datagram_connect(sk: InetSock, daddr: int, dport: int) -> None:
    net = sk.sk_net
    sk.sk_dst_cache = None
    rt = ip_route_output_sk(sk, daddr)
    if rt.type == RTN_BROADCAST and not sk.sock_flag(SOCK_BROADCAST):
        raise KernelError(errno.EACCES)
    if not sk.inet_saddr:
        sk.inet_saddr = rt.saddr
    if not sk.inet_rcv_saddr:
        sk.inet_rcv_saddr = rt.saddr
    sk.inet_daddr = rt.daddr  # the route's: 0.0.0.0 means this host
    sk.inet_dport = dport
    sk.sk_state = TCP_ESTABLISHED
    sk.inet_id = net.ipv4.ip_id_rng.randrange(65536)
    sk.sk_dst_cache = rt


def ip4_datagram_disconnect(sk: InetSock) -> None:
    """udp_disconnect: forget the peer and the bound device; keep the local address only if
    bound explicitly."""
    sk.sk_state = TCP_CLOSE
    sk.inet_daddr = 0
    sk.inet_dport = 0
    sk.sk_bound_dev_if = 0  # __udp_disconnect forgets SO_BINDTODEVICE too (checked on 6.18)
    if not sk.sk_userlocks & SOCK_BINDADDR_LOCK:
        sk.inet_saddr = 0
        sk.inet_rcv_saddr = 0
    sk.sk_dst_cache = None

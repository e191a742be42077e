"""IPPROTO_IP socket options, as net/ipv4/ip_sockglue.c.

Read first: net/ipv4/ip_sockglue.c (do_ip_setsockopt, do_ip_getsockopt), man 7 ip.
Options Linux accepts that pystack does not model yet are stored and read back.
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.errors import KernelError
from ..core.sock import _int_val
from .inet_sock import InetSock
from .tcp_states import TCP_ESTABLISHED

SOCK_STREAM = 1
IPPROTO_IP = 0
IP_TOS = 1
IP_TTL = 2
IP_HDRINCL = 3
IP_OPTIONS = 4
IP_RECVOPTS = 6
IP_RETOPTS = 7
IP_PKTINFO = 8
IP_MTU_DISCOVER = 10
IP_RECVERR = 11
IP_RECVTTL = 12
IP_RECVTOS = 13
IP_MTU = 14
IP_FREEBIND = 15
IP_BIND_ADDRESS_NO_PORT = 24
IP_MULTICAST_IF = 32
IP_MULTICAST_TTL = 33
IP_MULTICAST_LOOP = 34
IP_ADD_MEMBERSHIP = 35
IP_DROP_MEMBERSHIP = 36

_INERT = {IP_RECVOPTS, IP_RETOPTS, IP_PKTINFO, IP_RECVTTL, IP_RECVTOS, IP_MULTICAST_IF,
          IP_BIND_ADDRESS_NO_PORT}


def ip_setsockopt(sk: InetSock, optname: int, optval: Any) -> None:
    if optname == IP_OPTIONS:
        raise NotImplementedError("IP options (IP_OPTIONS) are not implemented yet")
    if optname in (IP_ADD_MEMBERSHIP, IP_DROP_MEMBERSHIP):
        raise NotImplementedError("IPv4 multicast group membership is not implemented yet")
    if optname == IP_HDRINCL:
        raise KernelError(errno.ENOPROTOOPT)  # raw sockets only
    val = _int_val(optval)
    if optname == IP_TTL:
        if val != -1 and (val < 1 or val > 255):
            raise KernelError(errno.EINVAL)
        sk.uc_ttl = val
    elif optname == IP_TOS:
        # __ip_sock_set_tos: a stream socket keeps its own ECN bits; a datagram socket takes
        # the whole byte (checked on Linux 6.18: UDP reads back 0x13, TCP 0x10).
        if sk.sk_type == SOCK_STREAM:
            val = (val & 0xFC) | (sk.tos & 0x03)
        sk.tos = val & 0xFF
    elif optname == IP_RECVERR:
        sk.recverr = bool(val)
    elif optname == IP_MTU_DISCOVER:
        if val < 0 or val > 5:
            raise KernelError(errno.EINVAL)
        sk.pmtudisc = val
    elif optname == IP_FREEBIND:
        sk.freebind = bool(val)
    elif optname == IP_MULTICAST_TTL:
        if val == -1:
            val = 1
        if val < 0 or val > 255:
            raise KernelError(errno.EINVAL)
        sk.mc_ttl = val
    elif optname == IP_MULTICAST_LOOP:
        sk.mc_loop = 1 if val else 0
    elif optname in _INERT:
        if sk.sk_inert_opts is None:
            sk.sk_inert_opts = {}
        sk.sk_inert_opts[(IPPROTO_IP, optname)] = val
    else:
        raise KernelError(errno.ENOPROTOOPT)


def ip_getsockopt(sk: InetSock, optname: int) -> Any:
    if optname == IP_TTL:
        return sk.ttl()
    if optname == IP_TOS:
        return sk.tos
    if optname == IP_RECVERR:
        return int(sk.recverr)
    if optname == IP_MTU_DISCOVER:
        return sk.pmtudisc
    if optname == IP_FREEBIND:
        return int(sk.freebind)
    if optname == IP_MULTICAST_TTL:
        return sk.mc_ttl
    if optname == IP_MULTICAST_LOOP:
        return sk.mc_loop
    if optname == IP_MTU:
        rt = sk.sk_dst_cache
        if rt is None or sk.sk_state != TCP_ESTABLISHED:
            raise KernelError(errno.ENOTCONN)
        return rt.dst_mtu()
    if optname in _INERT:
        return (sk.sk_inert_opts or {}).get((IPPROTO_IP, optname), 0)
    raise KernelError(errno.ENOPROTOOPT)

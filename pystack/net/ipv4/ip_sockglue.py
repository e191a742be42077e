"""IPPROTO_IP socket options and the error queue, as net/ipv4/ip_sockglue.c.

Read first: net/ipv4/ip_sockglue.c (do_ip_setsockopt, do_ip_getsockopt, ip_icmp_error,
ip_local_error, ip_recv_error), include/uapi/linux/errqueue.h, man 7 ip (IP_RECVERR).
Options Linux accepts that pystack does not model yet are stored and read back.
IP_PKTINFO, IP_RECVTTL and IP_RECVTOS make a datagram's recvmsg return control messages
(`ip_cmsg_recv`).

The error queue: with IP_RECVERR on, a datagram socket keeps a record of each ICMP error about
what it sent (`ip_icmp_error`) and of local errors such as a datagram too big for the path
(`ip_local_error`). `recvmsg(MSG_ERRQUEUE)` takes the oldest (`ip_recv_error`): the data is
what the ICMP message quoted of the payload, the address is where the datagram was going, and
one (SOL_IP, IP_RECVERR) control message carries a `struct sock_extended_err` with the ICMP
sender as its offender. It never waits: an empty queue is EAGAIN.
"""

from __future__ import annotations

import errno
import struct
from typing import Any, Final

import attrs

from ...kernel.errors import KernelError
from ...uapi.errqueue import SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_LOCAL, SockExtendedErr
from ..core.drop_reason import consume_skb
from ..core.skbuff import alloc_skb
from ..core.sock import SockExterrSkb, _int_val, sock_dequeue_err_skb, sock_queue_err_skb
from .inet_sock import InetSock
from .tcp_states import TCP_ESTABLISHED

SOCK_STREAM: Final = 1
IPPROTO_IP: Final = 0
IP_TOS: Final = 1
IP_TTL: Final = 2
IP_HDRINCL: Final = 3
IP_OPTIONS: Final = 4
IP_RECVOPTS: Final = 6
IP_RETOPTS: Final = 7
IP_PKTINFO: Final = 8
IP_MTU_DISCOVER: Final = 10
IP_RECVERR: Final = 11
IP_RECVTTL: Final = 12
IP_RECVTOS: Final = 13
IP_MTU: Final = 14
IP_FREEBIND: Final = 15
IP_BIND_ADDRESS_NO_PORT: Final = 24
IP_MULTICAST_IF: Final = 32
IP_MULTICAST_TTL: Final = 33
IP_MULTICAST_LOOP: Final = 34
IP_ADD_MEMBERSHIP: Final = 35
IP_DROP_MEMBERSHIP: Final = 36

MSG_TRUNC: Final = 0x20
MSG_ERRQUEUE: Final = 0x2000

_INERT: Final = {IP_RECVOPTS, IP_RETOPTS, IP_MULTICAST_IF, IP_BIND_ADDRESS_NO_PORT}

# inet->cmsg_flags: the control messages a datagram's recvmsg returns, in this order
IP_CMSG_PKTINFO: Final = 1
IP_CMSG_TTL: Final = 2
IP_CMSG_TOS: Final = 4
_CMSG_OPTS: Final = {IP_PKTINFO: IP_CMSG_PKTINFO, IP_RECVTTL: IP_CMSG_TTL, IP_RECVTOS: IP_CMSG_TOS}
IN_PKTINFO = struct.Struct("=i4s4s")  # struct in_pktinfo: ifindex, spec_dst, addr
CMSG_INT = struct.Struct("=i")


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
    elif optname in _CMSG_OPTS:
        if val:
            sk.cmsg_flags |= _CMSG_OPTS[optname]
        else:
            sk.cmsg_flags &= ~_CMSG_OPTS[optname]
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
    if optname in _CMSG_OPTS:
        return int(bool(sk.cmsg_flags & _CMSG_OPTS[optname]))
    if optname in _INERT:
        return (sk.sk_inert_opts or {}).get((IPPROTO_IP, optname), 0)
    raise KernelError(errno.ENOPROTOOPT)


def ip_cmsg_recv(sk: InetSock, skb: Any, control: list, spec_dst: int) -> None:
    """ip_cmsg_recv_offset: the control messages the socket asked for (IP_PKTINFO,
    IP_RECVTTL, IP_RECVTOS), read from the IP header of `skb`."""
    flags = sk.cmsg_flags
    buf = skb.buf
    nh = skb.network_header
    if flags & IP_CMSG_PKTINFO:
        ifindex = skb.dev.ifindex if skb.dev is not None else 0
        control.append((IPPROTO_IP, IP_PKTINFO, IN_PKTINFO.pack(
            ifindex, spec_dst.to_bytes(4, "big"), bytes(buf[nh + 16:nh + 20]))))
    if flags & IP_CMSG_TTL:
        control.append((IPPROTO_IP, IP_TTL, CMSG_INT.pack(buf[nh + 8])))
    if flags & IP_CMSG_TOS:
        control.append((IPPROTO_IP, IP_TOS, bytes(buf[nh + 1:nh + 2])))


# -- the error queue ------------------------------------------------------------------------------

def ip_icmp_error(sk: InetSock, skb: Any, err: int, port: int, info: int, payload: int) -> None:
    """Queue a record of an ICMP error. `skb` is the ICMP message with `skb.data` at the
    quoted IP header; `payload` is where the quoted transport payload starts in its buffer."""
    if not sk.recverr:
        return
    buf = skb.buf
    inner = skb.data
    icmp = inner - 8
    daddr = int.from_bytes(buf[inner + 16:inner + 20], "big")
    rec = skb.clone()
    rec.data = min(payload, rec.tail)
    rec.transport_header = rec.data
    rec.cb = SockExterrSkb(SockExtendedErr(err, SO_EE_ORIGIN_ICMP, buf[icmp], buf[icmp + 1],
                                           info), daddr, port)
    if not sock_queue_err_skb(sk, rec):
        consume_skb(rec)


def ip_local_error(sk: InetSock, err: int, daddr: int, port: int, info: int) -> None:
    """Queue a record of an error found before sending (EMSGSIZE with the MTU as info)."""
    if not sk.recverr:
        return
    rec = alloc_skb(0, headroom=0)
    rec.cb = SockExterrSkb(SockExtendedErr(err, SO_EE_ORIGIN_LOCAL, 0, 0, info), daddr, port)
    if not sock_queue_err_skb(sk, rec):
        consume_skb(rec)


def ip_recv_error(sk: InetSock, size: int, control: list | None
                  ) -> tuple[bytes, tuple[int, int] | None, int, int]:
    """recvmsg(MSG_ERRQUEUE): (data, (address, port), msg_flags, bytes copied), with the
    (SOL_IP, IP_RECVERR, bytes) control message appended to `control`. EAGAIN if empty."""
    skb = sock_dequeue_err_skb(sk)
    if skb is None:
        raise KernelError(errno.EAGAIN)
    serr: SockExterrSkb = skb.cb
    length = skb.tail - skb.data
    copied = min(size, length)
    data = bytes(skb.buf[skb.data:skb.data + copied])
    msg_flags = MSG_ERRQUEUE | (MSG_TRUNC if copied < length else 0)
    ee = serr.ee
    if ee.ee_origin == SO_EE_ORIGIN_ICMP:
        # SO_EE_OFFENDER: the host that sent the ICMP message.
        nh = skb.network_header
        ee = attrs.evolve(ee, offender=int.from_bytes(skb.buf[nh + 12:nh + 16], "big"))
    if control is not None:
        if ee.ee_origin == SO_EE_ORIGIN_ICMP and sk.cmsg_flags:
            ip_cmsg_recv(sk, skb, control, 0)  # of the ICMP message; no spec_dst for it
        control.append((IPPROTO_IP, IP_RECVERR, ee.emit()))
    consume_skb(skb)
    return data, (serr.addr, serr.port), msg_flags, copied

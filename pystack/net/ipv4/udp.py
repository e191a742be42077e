"""UDP, as net/ipv4/udp.c.

Read first: RFC 768, RFC 1122 §4.1, net/ipv4/udp.c (udp_lib_get_port, udp_lib_lport_inuse,
__udp4_lib_lookup and compute_score, __udp4_lib_rcv, __udp_enqueue_schedule_skb,
udp_sendmsg, udp_recvmsg, __udp4_lib_err, udp_poll), man 7 udp.

The socket table is a dict from local port to the sockets bound there, in bind order: a
datagram costs one dict probe plus a scan of the (almost always one) sockets on its port,
whatever the number of sockets on the host. Lookup scoring is Linux's: a socket bound to the
exact destination beats a wildcard one, and a connected socket must match the source.

Receive-buffer accounting is Linux's: a datagram is dropped (RcvbufErrors, InErrors) when the
socket already holds more than its receive buffer; the check is made before adding, so one
datagram may overshoot. Checksums are verified on arrival (Linux defers that to recvmsg when
it can; the counters end up the same, only earlier).
"""

from __future__ import annotations

import errno
import hashlib
from typing import TYPE_CHECKING, Any, Final

from ...kernel.errors import KernelError
from ...lib.checksum import csum_ipv4_payload, csum_pseudo
from ...uapi.icmp import (ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, ICMP_PORT_UNREACH,
                          ICMP_TIME_EXCEEDED, NR_ICMP_UNREACH)
from ...uapi.ip import IP_ADDRS, IP_HDR, IPPROTO_UDP
from ...uapi.udp import UDP_HDR, UDP_HLEN
from ..core import drop_reason as dr
from ..core.dev import NET_XMIT_CN, NET_XMIT_SUCCESS
from ..core.drop_reason import consume_skb, kfree_skb
from ..core.skbuff import CHECKSUM_PARTIAL, CHECKSUM_UNNECESSARY, alloc_skb
from ..core.sock import (RCV_SHUTDOWN, SEND_SHUTDOWN, SHUTDOWN_MASK, SOCK_BINDPORT_LOCK,
                         SOCK_BROADCAST, Sock, skb_set_owner_r, skb_set_owner_w, sock_error,
                         sock_writeable)
from .datagram import ip4_datagram_connect, ip4_datagram_disconnect
from .devinet import RT_SCOPE_LINK, inet_select_addr
from .fib import RTN_BROADCAST, RTN_LOCAL, RTN_MULTICAST
from .icmp import icmp_send
from .inet_hashtables import ephemeral_ports
from .inet_sock import IP_PMTUDISC_DO, IP_PMTUDISC_PROBE, IP_PMTUDISC_WANT, InetSock
from .ip_output import ip_build_header, ip_local_out
from .ip_sockglue import ip_cmsg_recv, ip_icmp_error, ip_local_error, ip_recv_error
from .route import ip_route_output_sk, ipv4_sk_update_pmtu
from .tcp_states import TCP_CLOSE, TCP_ESTABLISHED

if TYPE_CHECKING:
    from ..core.dev import NetDevice
    from ..core.net_namespace import Net
    from ..core.skbuff import SkBuff

MSG_OOB: Final = 0x1
MSG_PEEK: Final = 0x2
MSG_DONTROUTE: Final = 0x4
MSG_CTRUNC: Final = 0x8
MSG_TRUNC: Final = 0x20
MSG_DONTWAIT: Final = 0x40
MSG_EOR: Final = 0x80
MSG_WAITALL: Final = 0x100
MSG_CONFIRM: Final = 0x800
MSG_ERRQUEUE: Final = 0x2000
MSG_NOSIGNAL: Final = 0x4000
MSG_MORE: Final = 0x8000

POLLIN: Final = 0x001
POLLPRI: Final = 0x002
POLLOUT: Final = 0x004
POLLERR: Final = 0x008
POLLHUP: Final = 0x010
POLLRDNORM: Final = 0x040
POLLWRNORM: Final = 0x100
POLLWRBAND: Final = 0x200
POLLRDHUP: Final = 0x2000

UDP_MAX_PAYLOAD: Final = 0xFFFF - 20 - UDP_HLEN  # 65507

_unpack_udp: Final = UDP_HDR.unpack_from
_pack_udp: Final = UDP_HDR.pack_into
_unpack_addrs: Final = IP_ADDRS.unpack_from

# icmp_err_convert: (errno, fatal) for each destination-unreachable code (net/ipv4/icmp.c)
ICMP_ERR_CONVERT = [
    (errno.ENETUNREACH, False), (errno.EHOSTUNREACH, False), (errno.ENOPROTOOPT, True),
    (errno.ECONNREFUSED, True), (errno.EMSGSIZE, False), (errno.EOPNOTSUPP, False),
    (errno.ENETUNREACH, True), (errno.EHOSTDOWN, True), (errno.ENONET, True),
    (errno.ENETUNREACH, True), (errno.EHOSTUNREACH, True), (errno.ENETUNREACH, False),
    (errno.EHOSTUNREACH, False), (errno.EHOSTUNREACH, True), (errno.EHOSTUNREACH, True),
    (errno.EHOSTUNREACH, True),
]


class UdpSock(InetSock):
    __slots__ = ()


class UdpTable:
    """The UDP socket hash: local port → sockets bound to it, in bind order."""

    def __init__(self) -> None:
        self.hash: dict[int, list[UdpSock]] = {}

    def sockets(self) -> list[UdpSock]:
        return [sk for port in sorted(self.hash) for sk in self.hash[port]]




# -- ports ----------------------------------------------------------------------------------------

def udp_lib_lport_inuse(sk: UdpSock, socks: list[UdpSock]) -> bool:
    for sk2 in socks:
        if sk2 is sk:
            continue
        if (sk2.sk_bound_dev_if and sk.sk_bound_dev_if
                and sk2.sk_bound_dev_if != sk.sk_bound_dev_if):
            continue
        if (sk2.inet_rcv_saddr and sk.inet_rcv_saddr
                and sk2.inet_rcv_saddr != sk.inet_rcv_saddr):
            continue
        if sk2.sk_reuse and sk.sk_reuse:
            continue
        if sk2.sk_reuseport and sk.sk_reuseport and sk2.sk_uid == sk.sk_uid:
            continue
        return True
    return False


def udp_lib_get_port(sk: UdpSock, snum: int) -> bool:
    """Bind `sk` to `snum`, or to a free ephemeral port if 0. False when none is free."""
    net = sk.sk_net
    table = net.ipv4.udp_table.hash
    if not snum:
        for port in ephemeral_ports(net):
            socks = table.get(port)
            if not socks or not udp_lib_lport_inuse(sk, socks):
                snum = port
                break
        else:
            return False
    else:
        socks = table.get(snum)
        if socks and udp_lib_lport_inuse(sk, socks):
            return False
    sk.inet_num = snum
    table.setdefault(snum, []).append(sk)
    return True


# -- lookup -----------------------------------------------------------------------------------------

def _compute_score(sk: UdpSock, saddr: int, sport: int, daddr: int, dif: int) -> int:
    rcv = sk.inet_rcv_saddr
    if rcv:
        if rcv != daddr:
            return -1
        score = 16  # an exact bind wins over a wildcard (Linux looks those up first)
    else:
        score = 0
    score += 2
    if sk.inet_daddr:
        if sk.inet_daddr != saddr:
            return -1
        score += 4
    if sk.inet_dport:
        if sk.inet_dport != sport:
            return -1
        score += 4
    if sk.sk_bound_dev_if:
        if sk.sk_bound_dev_if != dif:
            return -1
        score += 4
    return score


def udp4_lib_lookup(net: "Net", saddr: int, sport: int, daddr: int, dport: int,
                    dif: int) -> UdpSock | None:
    socks = net.ipv4.udp_table.hash.get(dport)
    if not socks:
        return None
    if len(socks) == 1:
        sk = socks[0]
        return sk if _compute_score(sk, saddr, sport, daddr, dif) >= 0 else None
    best = None
    best_score = -1
    group: list[UdpSock] = []
    for sk in socks:
        score = _compute_score(sk, saddr, sport, daddr, dif)
        if score > best_score:
            best, best_score = sk, score
            group = [sk] if sk.sk_reuseport else []
        elif score == best_score and score >= 0 and sk.sk_reuseport and best is not None \
                and best.sk_reuseport:
            group.append(sk)
    if len(group) > 1:
        # SO_REUSEPORT: spread flows over the group by a hash of the 4-tuple.
        h = hashlib.blake2s(f"{saddr}:{sport}:{daddr}:{dport}".encode(), digest_size=4)
        best = group[int.from_bytes(h.digest(), "big") % len(group)]
    return best


# -- receive -----------------------------------------------------------------------------------------

def udp_rcv(skb: "SkBuff") -> None:
    dev: NetDevice = skb.dev
    net = dev.nd_net
    mib = net.mib.udp
    if skb.trace is not None:
        skb.trace.hop(net, "udp_rcv")
    buf = skb.buf
    off = skb.data
    length = skb.tail - off
    if length < UDP_HLEN:
        mib["InErrors"] += 1
        kfree_skb(skb, dr.PKT_TOO_SMALL)
        return
    sport, dport, ulen, check = _unpack_udp(buf, off)
    if ulen > length or ulen < UDP_HLEN:
        mib["InErrors"] += 1
        kfree_skb(skb, dr.PKT_TOO_SMALL)
        return
    if ulen < length:  # skb_trim, inline
        skb.tail = off + ulen
    saddr, daddr = _unpack_addrs(buf, skb.network_header + 12)
    # udp4_csum_init: a checksum the hardware verified, or one never computed because the
    # datagram did not leave this machine or an offloading NIC carried it (CHECKSUM_PARTIAL),
    # needs no check (skb_csum_unnecessary).
    ip_summed = skb.ip_summed
    if check and ip_summed != CHECKSUM_UNNECESSARY and ip_summed != CHECKSUM_PARTIAL:
        if csum_ipv4_payload(saddr, daddr, IPPROTO_UDP, buf, off, ulen) != 0:
            mib["InCsumErrors"] += 1
            mib["InErrors"] += 1
            kfree_skb(skb, dr.UDP_CSUM)
            return
    rt = skb.dst
    if rt is not None and rt.type in (RTN_BROADCAST, RTN_MULTICAST):
        udp4_lib_mcast_deliver(net, skb, saddr, sport, daddr, dport)
        return
    sk = udp4_lib_lookup(net, saddr, sport, daddr, dport, dev.ifindex)
    if sk is None:
        mib["NoPorts"] += 1
        icmp_send(skb, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, 0)
        kfree_skb(skb, dr.NO_SOCKET)
        return
    udp_queue_rcv_skb(sk, skb)


def udp4_lib_mcast_deliver(net: "Net", skb: "SkBuff", saddr: int, sport: int, daddr: int,
                           dport: int) -> None:
    """A broadcast goes to every matching socket (each gets its own clone)."""
    dif = skb.dev.ifindex
    targets = []
    for sk in net.ipv4.udp_table.hash.get(dport, ()):
        if sk.inet_rcv_saddr and sk.inet_rcv_saddr != daddr:
            continue
        if sk.inet_daddr and sk.inet_daddr != saddr:
            continue
        if sk.inet_dport and sk.inet_dport != sport:
            continue
        if sk.sk_bound_dev_if and sk.sk_bound_dev_if != dif:
            continue
        targets.append(sk)
    if not targets:
        net.mib.udp["IgnoredMulti"] += 1
        consume_skb(skb)
        return
    for sk in targets[:-1]:
        udp_queue_rcv_skb(sk, skb.clone())
    udp_queue_rcv_skb(targets[-1], skb)


def udp_queue_rcv_skb(sk: UdpSock, skb: "SkBuff") -> None:
    """__udp_enqueue_schedule_skb: charge the receive buffer, queue, wake the reader."""
    net = sk.sk_net
    if sk.sk_rmem_alloc > sk.sk_rcvbuf:
        sk.sk_drops += 1
        net.mib.udp["RcvbufErrors"] += 1
        net.mib.udp["InErrors"] += 1
        kfree_skb(skb, dr.SOCKET_RCVBUFF)
        return
    if skb.trace is not None:
        skb.trace.hop(net, "udp_queue_rcv_skb")
    skb.data = skb.transport_header + UDP_HLEN  # the payload, for recvmsg
    skb_set_owner_r(skb, sk)
    sk.sk_receive_queue.append(skb)
    if skb.trace is not None:
        skb.trace.hop(net, "sk_data_ready")
    sk.sk_data_ready(sk)


def udp_err(skb: "SkBuff", type_: int, code: int, info: int) -> None:
    """__udp4_lib_err: an ICMP error about a datagram we sent."""
    net = skb.dev.nd_net
    buf = skb.buf
    inner = skb.data
    _v, _t, _l, _id, _f, _ttl, _p, _c, saddr, daddr = IP_HDR.unpack_from(buf, inner)
    ihl = (buf[inner] & 15) * 4
    sport, dport, _ulen, _ck = _unpack_udp(buf, inner + ihl)
    # The socket that sent it: local (saddr, sport), peer (daddr, dport).
    sk = udp4_lib_lookup(net, daddr, dport, saddr, sport, 0)
    if sk is None:
        return
    harderr = False
    if type_ == ICMP_DEST_UNREACH:
        if code == ICMP_FRAG_NEEDED:
            ipv4_sk_update_pmtu(sk, daddr, info)
            if sk.pmtudisc != 0:  # not IP_PMTUDISC_DONT
                err = errno.EMSGSIZE
                harderr = True
            else:
                return
        elif code <= NR_ICMP_UNREACH:
            err, harderr = ICMP_ERR_CONVERT[code]
        else:
            err = errno.EHOSTUNREACH
    elif type_ == ICMP_TIME_EXCEEDED:
        err = errno.EHOSTUNREACH
    else:
        err = errno.EPROTO  # parameter problem
        harderr = True
    if not sk.recverr:
        if not harderr or sk.sk_state != TCP_ESTABLISHED:
            return
    else:
        ip_icmp_error(sk, skb, err, dport, info, inner + ihl + UDP_HLEN)
    sk.sk_err = err
    sk.sk_error_report(sk)


# -- send -------------------------------------------------------------------------------------------

def udp_sendmsg(sk: UdpSock, data: Any, flags: int, addr: tuple[int, int] | None) -> int:
    """Send one datagram. Raises KernelError(EAGAIN) when the send buffer is full."""
    net = sk.sk_net
    length = len(data)
    if length > UDP_MAX_PAYLOAD:
        raise KernelError(errno.EMSGSIZE)
    if flags & MSG_OOB:
        raise KernelError(errno.EOPNOTSUPP)
    connected = False
    if addr is not None:
        daddr, dport = addr
        if not dport:
            raise KernelError(errno.EINVAL)
    else:
        if sk.sk_state != TCP_ESTABLISHED:
            raise KernelError(errno.EDESTADDRREQ)
        daddr, dport = sk.inet_daddr, sk.inet_dport
        connected = True
    rt = sk.sk_dst_cache if connected else None
    if rt is None or rt.genid != net.ipv4.fib.genid:
        rt = ip_route_output_sk(sk, daddr)
        if connected:
            sk.sk_dst_cache = rt
    if rt.type == RTN_BROADCAST and not sk.sock_flag(SOCK_BROADCAST):
        raise KernelError(errno.EACCES)
    saddr = sk.inet_saddr or rt.saddr
    daddr = rt.daddr  # as udp_sendmsg takes fl4->daddr: 0.0.0.0 becomes this host
    # sock_alloc_send_skb: pending error, shut down for writing, then memory.
    if sk.sk_err:
        raise KernelError(sock_error(sk))
    if sk.sk_shutdown & SEND_SHUTDOWN:
        raise KernelError(errno.EPIPE)
    if sk.sk_wmem_alloc >= sk.sk_sndbuf:
        raise KernelError(errno.EAGAIN)
    ulen = UDP_HLEN + length
    skb = alloc_skb(ulen)
    off = skb.tail  # skb_put, inline: alloc_skb made exactly this room
    skb.tail = off + ulen
    buf = skb.buf
    buf[off + UDP_HLEN:off + ulen] = data
    mtu = rt.dst_mtu() if rt.pmtu else (rt.mtu or rt.dev.mtu)
    if rt.dev.hw_csum and ulen + 20 <= mtu:
        # __ip_append_data leaves the checksum to a device with NETIF_F_HW_CSUM when the
        # datagram goes out whole (CHECKSUM_PARTIAL); udp4_hwcsum writes the pseudo-header's
        # sum, which the device (or skb_checksum_help, for a capture) completes.
        _pack_udp(buf, off, sk.inet_sport, dport, ulen,
                  csum_pseudo(saddr, daddr, IPPROTO_UDP, ulen))
        skb.ip_summed = CHECKSUM_PARTIAL
        skb.csum_start = off
        skb.csum_offset = 6
    else:
        _pack_udp(buf, off, sk.inet_sport, dport, ulen, 0)
        check = csum_ipv4_payload(saddr, daddr, IPPROTO_UDP, buf, off, ulen) or 0xFFFF
        buf[off + 6] = check >> 8
        buf[off + 7] = check & 0xFF
    skb.transport_header = off
    if net.follow_next is not None:
        skb.trace = net.follow_next
        net.follow_next = None
        skb.trace.hop(net, "udp_sendmsg")
    skb.dst = rt
    skb.priority = sk.sk_priority
    skb.mark = sk.sk_mark
    pmtu = sk.pmtudisc
    df = pmtu in (IP_PMTUDISC_DO, IP_PMTUDISC_PROBE) or (
        pmtu == IP_PMTUDISC_WANT and ulen + 20 <= mtu and not rt.mtu_locked)
    if pmtu == IP_PMTUDISC_DO and ulen + 20 > mtu:
        consume_skb(skb)
        ip_local_error(sk, errno.EMSGSIZE, daddr, dport, mtu)
        raise KernelError(errno.EMSGSIZE)
    if df:
        if connected:
            ip_id = sk.inet_id
            sk.inet_id = (sk.inet_id + 1) & 0xFFFF
        else:
            ip_id = 0
    else:
        v4 = net.ipv4
        ip_id = v4.ip_ident
        v4.ip_ident = (ip_id + 1) & 0xFFFF
    if daddr >> 28 != 0xE:
        ttl = sk.uc_ttl if sk.uc_ttl >= 0 else net.sysctl.ip_default_ttl  # sk.ttl(), inline
    else:
        ttl = sk.mc_ttl
    ip_build_header(skb, saddr, daddr, IPPROTO_UDP, ttl, sk.tos, df, ip_id)
    skb_set_owner_w(skb, sk)
    if net.tracer.active:
        net.tracer.emit(net, "udp:udp_sendmsg", len=length)
    rc = ip_local_out(net, skb)
    if rc not in (NET_XMIT_SUCCESS, NET_XMIT_CN, 0):
        # ENOBUFS from the qdisc: Linux reports it only with IP_RECVERR.
        net.mib.ip["OutDiscards"] += 1
        if sk.recverr:
            raise KernelError(errno.ENOBUFS)
        net.mib.udp["SndbufErrors"] += 1
        return length
    net.mib.udp["OutDatagrams"] += 1
    return length


# -- receive, process side ---------------------------------------------------------------------------

def udp_recvmsg(sk: UdpSock, size: int, flags: int, control: list | None = None
                ) -> tuple[bytes, tuple[int, int] | None, int, int]:
    """One attempt: (data, (saddr, sport), msg_flags, length to return).

    Raises KernelError(EAGAIN) when nothing is queued. A socket shut down for reading
    returns b"" at once, as Linux's datagram receive does, unless the call is non-blocking
    (MSG_DONTWAIT): __skb_recv_udp does not wait then, and reports EAGAIN. MSG_ERRQUEUE reads
    the error queue instead (ip_recv_error). Control messages (IP_PKTINFO, IP_RECVTTL,
    IP_RECVTOS, IP_RECVERR) are appended to `control` when it is given.
    """
    if flags & MSG_ERRQUEUE:
        return ip_recv_error(sk, size, control)
    if sk.sk_err:
        raise KernelError(sock_error(sk))
    q = sk.sk_receive_queue
    if not q:
        if sk.sk_shutdown & RCV_SHUTDOWN and not flags & MSG_DONTWAIT:
            return b"", None, 0, 0
        raise KernelError(errno.EAGAIN)
    skb = q[0]
    buf = skb.buf
    start = skb.data
    payload_len = skb.tail - start
    copied = size if size < payload_len else payload_len
    data = bytes(memoryview(buf)[start:start + copied])  # one copy, out of the queue
    saddr = _unpack_addrs(buf, skb.network_header + 12)[0]
    th = skb.transport_header
    sport = (buf[th] << 8) | buf[th + 1]
    msg_flags = MSG_TRUNC if copied < payload_len else 0
    if control is not None and sk.cmsg_flags:
        rt = skb.dst
        daddr = _unpack_addrs(buf, skb.network_header + 12)[1]
        # fib_compute_spec_dst: the address the datagram reached, or for a broadcast ours
        # on its subnet.
        spec_dst = daddr if rt is None or rt.type == RTN_LOCAL else inet_select_addr(
            skb.dev, saddr, RT_SCOPE_LINK)
        ip_cmsg_recv(sk, skb, control, spec_dst)
    if not flags & MSG_PEEK:
        q.popleft()
        sk.sk_net.mib.udp["InDatagrams"] += 1
        consume_skb(skb)
    if skb.trace is not None:
        skb.trace.hop(sk.sk_net, "udp_recvmsg")
    ret = payload_len if flags & MSG_TRUNC else copied
    return data, (saddr, sport), msg_flags, ret


def udp_poll(sk: UdpSock) -> int:
    """datagram_poll: what a select/poll on the socket would report."""
    mask = 0
    if sk.sk_err or sk.sk_error_queue:
        mask |= POLLERR
    if sk.sk_shutdown & RCV_SHUTDOWN:
        mask |= POLLRDHUP | POLLIN | POLLRDNORM
    if sk.sk_shutdown == SHUTDOWN_MASK:
        mask |= POLLHUP
    if sk.sk_receive_queue:
        mask |= POLLIN | POLLRDNORM
    if sock_writeable(sk):
        mask |= POLLOUT | POLLWRNORM | POLLWRBAND
    return mask


# -- struct proto ---------------------------------------------------------------------------------

class UdpProto:
    """`struct proto udp_prot` (defined last, as in udp.c, so that it can name the functions)."""

    name = "UDP"

    def sk_alloc(self, net: "Net", family: int, type_: int, protocol: int) -> UdpSock:
        return UdpSock(net, family, type_, protocol, self)

    def init(self, sk: Sock) -> None:
        pass

    def get_port(self, sk: UdpSock, snum: int) -> bool:
        return udp_lib_get_port(sk, snum)

    def unhash(self, sk: UdpSock) -> None:
        if sk.inet_num:
            socks = sk.sk_net.ipv4.udp_table.hash.get(sk.inet_num)
            if socks is not None and sk in socks:
                socks.remove(sk)
                if not socks:
                    del sk.sk_net.ipv4.udp_table.hash[sk.inet_num]
            sk.inet_num = 0

    def connect(self, sk: UdpSock, daddr: int, dport: int) -> None:
        ip4_datagram_connect(sk, daddr, dport)

    def disconnect(self, sk: UdpSock) -> None:
        ip4_datagram_disconnect(sk)
        if not sk.sk_userlocks & SOCK_BINDPORT_LOCK:
            self.unhash(sk)
            sk.inet_sport = 0

    def close(self, sk: UdpSock, timeout: int) -> None:
        """udp_lib_close → sk_common_release: unhash and free what is queued."""
        self.unhash(sk)
        sk.sk_state = TCP_CLOSE
        sk.sk_shutdown = SHUTDOWN_MASK
        for q in (sk.sk_receive_queue, sk.sk_error_queue):
            while q:
                consume_skb(q.popleft())
        sk.sk_state_change(sk)

    # The per-datagram entries are the functions themselves: no forwarding frame.
    sendmsg = staticmethod(udp_sendmsg)
    recvmsg = staticmethod(udp_recvmsg)
    poll = staticmethod(udp_poll)


udp_prot: Final = UdpProto()

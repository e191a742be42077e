"""The AF_INET family, as net/ipv4/af_inet.c.

Read first: net/ipv4/af_inet.c (inet_create, __inet_bind, inet_autobind, inet_sendmsg,
inet_dgram_connect, inet_getname, inet_shutdown, inet_init), man 7 ip.

`inet_init(net)` brings IPv4 up on a host: its tables, the ptype handlers for IP and ARP, and
the protocol handlers. Socket calls here are synchronous: an operation that would block raises
KernelError(EAGAIN), and the syscall layer (net/socket.py) waits and retries.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any, Final

from ...kernel.errors import KernelError
from ...lib.compiled import mypyc_attr
from ...uapi.ethernet import ETH_P_ARP, ETH_P_IP
from ...uapi.ip import IPPROTO_ICMP, IPPROTO_IP, IPPROTO_TCP, IPPROTO_UDP
from ..core.dev import dev_add_offload, dev_add_pack
from ..core.sock import (RCV_SHUTDOWN, SOCK_BINDADDR_LOCK, SOCK_BINDPORT_LOCK, SOL_SOCKET,
                         SS_CONNECTED, SS_CONNECTING, SS_DISCONNECTING, SS_UNCONNECTED, Socket,
                         sock_getsockopt, sock_graft, sock_setsockopt)
from .arp import arp_rcv, arp_tbl_create
from .fib import RTN_BROADCAST, RTN_LOCAL, RTN_MULTICAST, Fib, inet_addr_type
from .icmp import icmp_rcv
from .inet_sock import InetSock
from .ip_fragment import FragState
from .ip_input import ip_rcv
from .ip_sockglue import ip_getsockopt, ip_setsockopt
from .ping import ping_err
from .protocol import inet_add_protocol
from .tcp_offload import napi_gro_flush, skb_gso_segment, tcp_gro_receive
from .tcp_states import TCP_CLOSE, TCP_LISTEN, TCP_SYN_RECV, TCP_SYN_SENT
from .udp import UdpTable, udp_err, udp_prot, udp_rcv

if TYPE_CHECKING:
    from ..core.net_namespace import Net

AF_UNSPEC: Final = 0
AF_INET: Final = 2
AF_INET6: Final = 10
SOCK_STREAM: Final = 1
SOCK_DGRAM: Final = 2
SOCK_RAW: Final = 3
SOCK_NONBLOCK: Final = 0o4000
SOCK_CLOEXEC: Final = 0o2000000
SOCK_TYPE_MASK: Final = 0xF


class Ipv4State:
    """`net->ipv4`: the per-host IPv4 tables."""

    def __init__(self, net: "Net"):
        self.fib = Fib()
        self.rt_cache: dict = {}
        self.rt_cache_genid = -1
        self.arp_tbl = arp_tbl_create(net)
        self.udp_table = UdpTable()
        self.ping_table: dict[int, Any] = {}
        self.frags = FragState()
        self.icmp_global = (float(net.sysctl.icmp_msgs_burst), 0.0)
        self.icmp_peer: dict[int, tuple[float, float]] = {}
        self.port_rng = net.rng("ip_local_port_range")
        self.ip_id_rng = net.rng("ip_id")
        self.ip_ident = self.ip_id_rng.randrange(65536)
        self.tcp: Any = None  # TCP's tables and proto, once TCP is built


@mypyc_attr(native_class=False)
class ProtoOps:
    """`struct proto_ops`: the BSD-socket operations of one socket type."""

    def __init__(self, name: str, **ops: Any):
        self.name = name
        for key, fn in ops.items():
            setattr(self, key, fn)

    def __repr__(self) -> str:
        return f"<proto_ops {self.name}>"


def inet_create(net: "Net", sock: Socket, protocol: int) -> None:
    """Make the sock behind `sock` for its type and `protocol` (inetsw lookup)."""
    stype = sock.type
    if stype == SOCK_DGRAM:
        if protocol == IPPROTO_ICMP:
            raise NotImplementedError("ICMP datagram (ping) sockets are not implemented yet; "
                                      "use host.ping()")
        if protocol not in (0, IPPROTO_UDP):
            raise KernelError(errno.EPROTONOSUPPORT)
        protocol = IPPROTO_UDP
        prot: Any = udp_prot
        sock.ops = inet_dgram_ops
    elif stype == SOCK_STREAM:
        if protocol not in (0, IPPROTO_TCP):
            raise KernelError(errno.EPROTONOSUPPORT)
        if net.ipv4.tcp is None:
            raise NotImplementedError("TCP (SOCK_STREAM) is not implemented yet in pystack")
        protocol = IPPROTO_TCP
        prot = net.ipv4.tcp.prot
        sock.ops = net.ipv4.tcp.ops
    elif stype == SOCK_RAW:
        raise NotImplementedError("raw sockets (SOCK_RAW) are not implemented yet")
    else:
        raise KernelError(errno.ESOCKTNOSUPPORT)
    sk = prot.sk_alloc(net, AF_INET, stype, protocol)
    sock_graft(sk, sock)
    prot.init(sk)


def inet_release(sock: Socket) -> None:
    sk = sock.sk
    if sk is not None:
        sock.sk = None
        sk.sk_socket = None
        sk.sk_prot.close(sk, sk.sk_lingertime)


def inet_bind(sock: Socket, family: int, addr: int, port: int, capable_bind: bool) -> None:
    sk = sock.sk
    net = sk.sk_net
    if family != AF_INET:
        if not (family == AF_UNSPEC and addr == 0):
            raise KernelError(errno.EAFNOSUPPORT)
    addr_type = inet_addr_type(net, addr)
    if (not net.sysctl.ip_nonlocal_bind and not sk.freebind and addr != 0
            and addr_type not in (RTN_LOCAL, RTN_MULTICAST, RTN_BROADCAST)):
        raise KernelError(errno.EADDRNOTAVAIL)
    if port and port < 1024 and not capable_bind:
        raise KernelError(errno.EACCES)
    if sk.sk_state != TCP_CLOSE or sk.inet_num:
        raise KernelError(errno.EINVAL)
    sk.inet_rcv_saddr = sk.inet_saddr = addr
    if addr_type in (RTN_MULTICAST, RTN_BROADCAST):
        sk.inet_saddr = 0
    if not sk.sk_prot.get_port(sk, port):
        sk.inet_saddr = sk.inet_rcv_saddr = 0
        raise KernelError(errno.EADDRINUSE)
    if sk.inet_rcv_saddr:
        sk.sk_userlocks |= SOCK_BINDADDR_LOCK
    if port:
        sk.sk_userlocks |= SOCK_BINDPORT_LOCK
    sk.inet_sport = sk.inet_num
    sk.inet_daddr = 0
    sk.inet_dport = 0
    sk.sk_dst_cache = None


class NoPortError(KernelError):
    """inet_autobind's EAGAIN: no ephemeral port is free. Unlike a full buffer it does not
    clear by waiting, so the syscall layer reports it at once, as Linux does."""

    def __init__(self) -> None:
        super().__init__(errno.EAGAIN)


def inet_autobind(sk: InetSock) -> None:
    if not sk.inet_num:
        if not sk.sk_prot.get_port(sk, 0):
            raise NoPortError()
        sk.inet_sport = sk.inet_num


def inet_dgram_connect(sock: Socket, family: int, addr: int, port: int, nonblock: bool = False,
                       resume: bool = False) -> None:
    sk = sock.sk
    if family == AF_UNSPEC:
        sk.sk_prot.disconnect(sk)
        sock.state = SS_UNCONNECTED
        return
    if family != AF_INET:
        raise KernelError(errno.EAFNOSUPPORT)
    inet_autobind(sk)
    sk.sk_prot.connect(sk, addr, port)
    sock.state = SS_CONNECTED


def inet_sendmsg(sock: Socket, data: Any, flags: int, addr: tuple[int, int] | None) -> int:
    sk = sock.sk
    if not sk.inet_num:  # inet_send_prepare tests the port before calling inet_autobind
        inet_autobind(sk)
    return sk.sk_prot.sendmsg(sk, data, flags, addr)


def inet_recvmsg(sock: Socket, size: int, flags: int, acc: bytearray | None = None,
                 control: list | None = None) -> Any:
    """`control` collects (level, type, data) control messages, as msg_control does."""
    sk = sock.sk
    return sk.sk_prot.recvmsg(sk, size, flags, control)


def inet_poll(sock: Socket) -> int:
    sk = sock.sk
    return sk.sk_prot.poll(sk)


def inet_getname(sock: Socket, peer: bool) -> tuple[int, int]:
    sk = sock.sk
    if peer:
        if not sk.inet_dport or (sk.sk_type == SOCK_STREAM
                                 and sk.sk_state in (TCP_CLOSE, TCP_SYN_SENT)):
            raise KernelError(errno.ENOTCONN)
        return sk.inet_daddr, sk.inet_dport
    return sk.inet_rcv_saddr or sk.inet_saddr, sk.inet_sport


def inet_shutdown(sock: Socket, how: int) -> None:
    """how: SHUT_RD 0, SHUT_WR 1, SHUT_RDWR 2, turned into RCV/SEND_SHUTDOWN bits."""
    sk = sock.sk
    how += 1
    if how < 1 or how > 3:
        raise KernelError(errno.EINVAL)
    if sock.state == SS_CONNECTING:
        if sk.sk_state in (TCP_SYN_SENT, TCP_SYN_RECV, TCP_CLOSE):
            sock.state = SS_DISCONNECTING
        else:
            sock.state = SS_CONNECTED
    err = 0
    state = sk.sk_state
    if state == TCP_LISTEN and not how & RCV_SHUTDOWN:
        pass
    elif state in (TCP_LISTEN, TCP_SYN_SENT):
        sk.sk_prot.disconnect(sk)
        sock.state = SS_UNCONNECTED
    else:
        if state == TCP_CLOSE:
            err = errno.ENOTCONN  # and still mark it shut down, as Linux does
        sk.sk_shutdown |= how
        prot_shutdown = getattr(sk.sk_prot, "shutdown", None)
        if prot_shutdown is not None:
            prot_shutdown(sk, how)
    sk.sk_state_change(sk)
    if err:
        raise KernelError(err)


def inet_setsockopt(sock: Socket, level: int, optname: int, optval: Any,
                    capable_net_admin: bool) -> None:
    sk = sock.sk
    if level == SOL_SOCKET:
        sock_setsockopt(sk, optname, optval, capable_net_admin)
    elif level == IPPROTO_IP:
        ip_setsockopt(sk, optname, optval)
    else:
        prot_set = getattr(sk.sk_prot, "setsockopt", None)
        if prot_set is None or level != sk.sk_protocol:
            raise KernelError(errno.ENOPROTOOPT)
        prot_set(sk, optname, optval)


def inet_getsockopt(sock: Socket, level: int, optname: int) -> Any:
    sk = sock.sk
    if level == SOL_SOCKET:
        return sock_getsockopt(sk, optname)
    if level == IPPROTO_IP:
        return ip_getsockopt(sk, optname)
    if level != sk.sk_protocol:
        # udp_getsockopt/tcp_getsockopt hand other levels to ip_getsockopt, which answers
        # EOPNOTSUPP for a level that is not SOL_IP (setsockopt says ENOPROTOOPT).
        raise KernelError(errno.EOPNOTSUPP)
    prot_get = getattr(sk.sk_prot, "getsockopt", None)
    if prot_get is None:
        raise KernelError(errno.ENOPROTOOPT)
    return prot_get(sk, optname)


def sock_no_op(*args: Any) -> Any:
    raise KernelError(errno.EOPNOTSUPP)


inet_dgram_ops = ProtoOps(
    "inet_dgram_ops", family=AF_INET, release=inet_release, bind=inet_bind,
    connect=inet_dgram_connect, accept=sock_no_op, listen=sock_no_op, getname=inet_getname,
    poll=inet_poll, shutdown=inet_shutdown, setsockopt=inet_setsockopt,
    getsockopt=inet_getsockopt, sendmsg=inet_sendmsg, recvmsg=inet_recvmsg)


def inet_init(net: "Net") -> None:
    """Bring IPv4 up on a namespace (what inet_init and ip_init do at boot, per host)."""
    net.ipv4 = Ipv4State(net)
    dev_add_pack(ETH_P_IP, ip_rcv)
    dev_add_offload(ETH_P_IP, skb_gso_segment, tcp_gro_receive, napi_gro_flush)
    dev_add_pack(ETH_P_ARP, arp_rcv)
    inet_add_protocol(IPPROTO_ICMP, icmp_rcv, ping_err)
    inet_add_protocol(IPPROTO_UDP, udp_rcv, udp_err)


__all__ = ["inet_init", "inet_create", "ProtoOps", "NoPortError", "AF_INET", "AF_UNSPEC",
           "SOCK_DGRAM", "SOCK_STREAM", "SOCK_RAW", "SOCK_NONBLOCK", "SOCK_CLOEXEC",
           "inet_dgram_ops", "RTN_BROADCAST", "SS_CONNECTED", "SOCK_BINDPORT_LOCK"]

"""Connection-oriented sockets: TCP's `struct proto` and the stream `proto_ops`, as
net/ipv4/inet_connection_sock.c (inet_csk_accept), net/ipv4/af_inet.c (inet_stream_connect,
inet_listen, inet_accept) and tcp_ipv4.c (tcp_prot).

Read first: net/ipv4/af_inet.c (__inet_stream_connect: which errno in which socket state),
man 2 connect, man 2 listen, man 2 accept.

`tcp_init(net)` creates the TCP tables of a host and registers TCP with IPv4.

A connect that must wait raises KernelError(EAGAIN) on every call until the handshake is over;
the syscall layer waits and calls it again with `resume=True`, so a second blocking wait is not
mistaken for a second connect() (which is EALREADY).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any, Final

from ...kernel.errors import KernelError
from ...uapi.ip import IPPROTO_TCP
from ..core.sock import (SOCK_DEAD, SOCK_KEEPOPEN, SS_CONNECTED, SS_CONNECTING,
                         SS_DISCONNECTING, SS_UNCONNECTED, Socket, lock_sock, release_sock,
                         sock_error, sock_graft)
from .af_inet import (AF_INET, AF_UNSPEC, SOCK_STREAM, ProtoOps, inet_bind, inet_getname,
                      inet_getsockopt, inet_release, inet_setsockopt, inet_shutdown)
from .inet_hashtables import InetHashinfo, inet_csk_get_port
from .protocol import inet_add_protocol
from .tcp import (TcpSock, tcp_close, tcp_disconnect, tcp_ioctl, tcp_poll, tcp_recvmsg,
                  tcp_sendmsg, tcp_shutdown)
from .tcp_ipv4 import inet_csk_listen_start, tcp_v4_connect, tcp_v4_do_rcv, tcp_v4_err, tcp_v4_rcv
from .tcp_sockopt import tcp_getsockopt, tcp_setsockopt
from .tcp_states import TCP_CLOSE, TCP_LISTEN, TCP_SYN_RECV, TCP_SYN_SENT
from .tcp_timer import tcp_delete_keepalive_timer, tcp_reset_keepalive_timer

if TYPE_CHECKING:
    from ..core.net_namespace import Net


class TcpProto:
    """`struct proto tcp_prot`."""

    name = "TCP"

    def sk_alloc(self, net: "Net", family: int, type_: int, protocol: int) -> TcpSock:
        sk = TcpSock(net, family, type_, protocol, self)
        sk.sk_backlog_rcv = tcp_v4_do_rcv
        return sk

    def init(self, sk: TcpSock) -> None:
        sk.icsk_ca_ops.init(sk)

    def get_port(self, sk: TcpSock, snum: int) -> bool:
        ok = inet_csk_get_port(sk.sk_net, sk, snum)
        if ok:
            sk.bound_explicitly = True
        return ok

    def connect(self, sk: TcpSock, daddr: int, dport: int) -> None:
        tcp_v4_connect(sk, daddr, dport)

    def disconnect(self, sk: TcpSock) -> None:
        tcp_disconnect(sk)

    def close(self, sk: TcpSock, timeout: int) -> None:
        tcp_close(sk, timeout)
        if sk.sk_state == TCP_CLOSE and sk.inet_num:
            sk.sk_net.ipv4.tcp.hashinfo.bind_remove(sk.inet_num, sk)

    def shutdown(self, sk: TcpSock, how: int) -> None:
        lock_sock(sk)
        try:
            tcp_shutdown(sk, how)
        finally:
            release_sock(sk)

    def setsockopt(self, sk: TcpSock, optname: int, optval: Any) -> None:
        tcp_setsockopt(sk, optname, optval)

    def getsockopt(self, sk: TcpSock, optname: int) -> Any:
        return tcp_getsockopt(sk, optname)

    def keepalive(self, sk: TcpSock, on: bool) -> None:
        """SO_KEEPALIVE (tcp_set_keepalive)."""
        if sk.sk_state in (TCP_CLOSE, TCP_LISTEN):
            return
        if on and not sk.sock_flag(SOCK_KEEPOPEN):
            s = sk.sk_net.sysctl
            tcp_reset_keepalive_timer(sk, sk.keepalive_time or s.tcp_keepalive_time)
        elif not on:
            tcp_delete_keepalive_timer(sk)


class TcpState:
    """`net->ipv4.tcp_*`: the tables of one host's TCP."""

    def __init__(self, net: "Net"):
        self.hashinfo = InetHashinfo()
        self.prot = tcp_prot
        self.ops = inet_stream_ops
        self.isn_rng = net.rng("tcp_isn")
        self.ts_rng = net.rng("tcp_ts_off")

    def all_sockets(self) -> list[Any]:
        seen: dict[int, Any] = {}
        for socks in self.hashinfo.lhash.values():
            for sk in socks:
                seen.setdefault(id(sk), sk)
        for sk in self.hashinfo.ehash.values():
            if hasattr(sk, "sk_drops") and hasattr(sk, "inet_dport"):
                seen.setdefault(id(sk), sk)
        return list(seen.values())


# -- stream operations ---------------------------------------------------------------------------

def inet_stream_connect(sock: Socket, family: int, addr: int, port: int, nonblock: bool = False,
                        resume: bool = False) -> None:
    sk: TcpSock = sock.sk
    if family == AF_UNSPEC:
        lock_sock(sk)
        try:
            sk.sk_prot.disconnect(sk)
        finally:
            release_sock(sk)
        sock.state = SS_UNCONNECTED
        return
    lock_sock(sk)
    try:
        state = sock.state
        if state == SS_CONNECTED:
            raise KernelError(errno.EISCONN)
        if state == SS_CONNECTING:
            if sk.sk_state in (TCP_SYN_SENT, TCP_SYN_RECV):
                raise KernelError(errno.EAGAIN if resume and not nonblock else errno.EALREADY)
        elif state == SS_UNCONNECTED:
            if sk.sk_state != TCP_CLOSE:
                raise KernelError(errno.EISCONN)
            if family != AF_INET:
                raise KernelError(errno.EAFNOSUPPORT)
            sk.sk_prot.connect(sk, addr, port)
            sock.state = SS_CONNECTING
            if nonblock:
                raise KernelError(errno.EINPROGRESS)
            if sk.sk_state in (TCP_SYN_SENT, TCP_SYN_RECV):
                raise KernelError(errno.EAGAIN)
        else:
            raise KernelError(errno.EINVAL)
        if sk.sk_state == TCP_CLOSE:
            err = sock_error(sk) or errno.ECONNABORTED
            sock.state = SS_UNCONNECTED
            raise KernelError(err)
        sock.state = SS_CONNECTED
    finally:
        release_sock(sk)


def inet_listen(sock: Socket, backlog: int) -> None:
    sk: TcpSock = sock.sk
    lock_sock(sk)
    try:
        if sock.state != SS_UNCONNECTED or sock.type != SOCK_STREAM:
            raise KernelError(errno.EINVAL)
        old = sk.sk_state
        if old not in (TCP_CLOSE, TCP_LISTEN):
            raise KernelError(errno.EINVAL)
        somaxconn = sk.sk_net.sysctl.somaxconn
        if backlog < 0 or backlog > somaxconn:
            backlog = somaxconn
        sk.sk_max_ack_backlog = backlog
        if old != TCP_LISTEN:
            inet_csk_listen_start(sk)
    finally:
        release_sock(sk)


def inet_accept(sock: Socket, flags: int) -> Socket:
    """inet_csk_accept: the oldest completed connection, as a new socket."""
    sk: TcpSock = sock.sk
    lock_sock(sk)
    try:
        if sk.sk_state != TCP_LISTEN:
            raise KernelError(errno.EINVAL)
        if not sk.icsk_accept_queue:
            raise KernelError(errno.EAGAIN)
        child = sk.icsk_accept_queue.popleft()
    finally:
        release_sock(sk)
    child.parent = None
    newsock = Socket(SOCK_STREAM, inet_stream_ops)
    sock_graft(child, newsock)
    newsock.state = SS_CONNECTED
    if child.sock_flag(SOCK_DEAD):
        child.sock_set_flag(SOCK_DEAD, False)
    return newsock


def inet_stream_sendmsg(sock: Socket, data: Any, flags: int, addr: Any) -> int:
    return tcp_sendmsg(sock.sk, data, flags)


def inet_stream_recvmsg(sock: Socket, size: int, flags: int, acc: bytearray | None = None,
                        control: list | None = None):
    return tcp_recvmsg(sock.sk, size, flags, acc, control)


def inet_stream_poll(sock: Socket) -> int:
    return tcp_poll(sock.sk)


def inet_stream_ioctl(sock: Socket, cmd: int) -> int:
    return tcp_ioctl(sock.sk, cmd)


inet_stream_ops = ProtoOps(
    "inet_stream_ops", family=AF_INET, release=inet_release, bind=inet_bind,
    connect=inet_stream_connect, accept=inet_accept, listen=inet_listen, getname=inet_getname,
    poll=inet_stream_poll, ioctl=inet_stream_ioctl, shutdown=inet_shutdown,
    setsockopt=inet_setsockopt, getsockopt=inet_getsockopt, sendmsg=inet_stream_sendmsg,
    recvmsg=inet_stream_recvmsg)

tcp_prot: Final = TcpProto()


def tcp_init(net: "Net") -> None:
    """Bring TCP up on a host (tcp_init + tcp_v4_init)."""
    net.ipv4.tcp = TcpState(net)
    inet_add_protocol(IPPROTO_TCP, tcp_v4_rcv, tcp_v4_err)


__all__ = ["tcp_init", "tcp_prot", "inet_stream_ops", "SS_CONNECTING", "SS_DISCONNECTING"]

"""Sockets of the protocol layer (`struct sock`) and of the BSD layer (`struct socket`), as
net/core/sock.c and include/net/sock.h.

Read first: include/net/sock.h (struct sock, sk_wmem_alloc/sk_rmem_alloc, sock_error,
sk_wake_async, lock_sock/release_sock), net/core/sock.c (sock_setsockopt, sock_getsockopt,
sock_def_readable, sock_wfree, sock_rfree, __release_sock), man 7 socket.

Memory accounting is Linux's: a buffer owned by a socket charges its `truesize` to
`sk_wmem_alloc` (sending) or `sk_rmem_alloc` (receiving), and its destructor gives it back.
The socket lock: process context takes it with `lock_sock`; softirq that finds the socket
owned queues the skb on `sk_backlog`, and `release_sock` processes that backlog before
letting go, so protocol state is only ever changed by one context at a time.

Wake-ups: `sk_data_ready`, `sk_write_space`, `sk_state_change` and `sk_error_report` unpark
whoever waits on the socket (the waiting side is in wait.py; nothing here awaits).
"""

from __future__ import annotations

import errno
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Final

import trio

from ...kernel.errors import KernelError
from ...uapi.errqueue import SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6

if TYPE_CHECKING:
    from ..ipv4.route import Rtable
    from .net_namespace import Net
    from .skbuff import SkBuff

# socket levels and SOL_SOCKET options (include/uapi/asm-generic/socket.h)
SOL_SOCKET: Final = 1
SO_DEBUG: Final = 1
SO_REUSEADDR: Final = 2
SO_TYPE: Final = 3
SO_ERROR: Final = 4
SO_DONTROUTE: Final = 5
SO_BROADCAST: Final = 6
SO_SNDBUF: Final = 7
SO_RCVBUF: Final = 8
SO_KEEPALIVE: Final = 9
SO_OOBINLINE: Final = 10
SO_NO_CHECK: Final = 11
SO_PRIORITY: Final = 12
SO_LINGER: Final = 13
SO_BSDCOMPAT: Final = 14
SO_REUSEPORT: Final = 15
SO_PASSCRED: Final = 16
SO_PEERCRED: Final = 17
SO_RCVLOWAT: Final = 18
SO_SNDLOWAT: Final = 19
SO_RCVTIMEO: Final = 20
SO_SNDTIMEO: Final = 21
SO_BINDTODEVICE: Final = 25
SO_TIMESTAMP: Final = 29
SO_ACCEPTCONN: Final = 30
SO_SNDBUFFORCE: Final = 32
SO_RCVBUFFORCE: Final = 33
SO_MARK: Final = 36
SO_PROTOCOL: Final = 38
SO_DOMAIN: Final = 39
SO_RXQ_OVFL: Final = 40
SO_BUSY_POLL: Final = 46
SO_INCOMING_CPU: Final = 49
SO_ZEROCOPY: Final = 60

# socket states (enum socket_state)
SS_FREE: Final = 0
SS_UNCONNECTED: Final = 1
SS_CONNECTING: Final = 2
SS_CONNECTED: Final = 3
SS_DISCONNECTING: Final = 4

RCV_SHUTDOWN: Final = 1
SEND_SHUTDOWN: Final = 2
SHUTDOWN_MASK: Final = 3

# sk_flags bits
SOCK_DEAD: Final = 1
SOCK_DONE: Final = 2
SOCK_KEEPOPEN: Final = 3
SOCK_LINGER: Final = 4
SOCK_BROADCAST: Final = 5
SOCK_TIMESTAMP: Final = 6
SOCK_RXQ_OVFL: Final = 7

# sk_userlocks
SOCK_SNDBUF_LOCK: Final = 1
SOCK_RCVBUF_LOCK: Final = 2
SOCK_BINDADDR_LOCK: Final = 4
SOCK_BINDPORT_LOCK: Final = 8

# sizeof(struct sk_buff) rounded, and the minimum buffers (include/net/sock.h)
TCP_SKB_MIN_TRUESIZE: Final = 2048 + 256
SOCK_MIN_SNDBUF: Final = TCP_SKB_MIN_TRUESIZE * 2
SOCK_MIN_RCVBUF: Final = TCP_SKB_MIN_TRUESIZE

MAX_SCHEDULE_TIMEOUT: Final = float("inf")

# Options Linux accepts at SOL_SOCKET that change nothing pystack models yet: stored and
# read back, so programs that set them behave as on Linux.
_INERT_INT_OPTIONS: Final = {SO_DEBUG, SO_DONTROUTE, SO_OOBINLINE, SO_NO_CHECK, SO_BSDCOMPAT,
                      SO_PASSCRED, SO_SNDLOWAT, SO_TIMESTAMP, SO_RXQ_OVFL, SO_BUSY_POLL,
                      SO_ZEROCOPY, SO_INCOMING_CPU}


def _readable(sk: "Sock") -> None:
    # Count every wake-up: a waiter compares the count from before its attempt, so a wake-up
    # that happened while it held the socket (release_sock ran the backlog) is not lost.
    sk.sk_wakeups += 1
    wq = sk.sk_wq
    if wq is not None and wq:
        wq.unpark_all()
    funcs = sk.sk_wq_funcs
    if funcs:
        for func in tuple(funcs):
            func(sk)


def add_wait_queue(sk: "Sock", func: Callable[["Sock"], None]) -> None:
    """A wait-queue entry that does not sleep: `func(sk)` runs at every wake-up, in the
    waker's context, as epoll's ep_poll_callback does (kernel/sched/wait.c add_wait_queue,
    fs/eventpoll.c). It must be synchronous and quick: it may run in softirq."""
    if sk.sk_wq_funcs is None:
        sk.sk_wq_funcs = []
    sk.sk_wq_funcs.append(func)


def remove_wait_queue(sk: "Sock", func: Callable[["Sock"], None]) -> None:
    funcs = sk.sk_wq_funcs
    if funcs is not None and func in funcs:
        funcs.remove(func)


sock_def_readable = _readable
sock_def_write_space = _readable
sock_def_wakeup = _readable
sock_def_error_report = _readable


class Sock:
    """`struct sock`: the protocol side of a socket."""

    __slots__ = ("sk_net", "sk_family", "sk_type", "sk_protocol", "sk_prot", "sk_socket",
                 "sk_state", "sk_shutdown", "sk_err", "sk_err_soft", "sk_rcvbuf",
                 "sk_sndbuf", "sk_rmem_alloc", "sk_wmem_alloc", "sk_receive_queue",
                 "sk_reuse", "sk_reuseport", "sk_flags", "sk_lingertime", "sk_rcvtimeo",
                 "sk_sndtimeo", "sk_userlocks", "sk_bound_dev_if", "sk_drops", "sk_rcvlowat",
                 "sk_priority", "sk_mark", "sk_wq", "sk_lock_owned", "sk_backlog",
                 "sk_backlog_len", "sk_backlog_rcv", "sk_data_ready", "sk_write_space",
                 "sk_state_change", "sk_error_report", "sk_dst_cache", "sk_inert_opts",
                 "sk_uid", "sk_wakeups", "sk_error_queue", "sk_wq_funcs", "__weakref__")

    def __init__(self, net: "Net", family: int, type_: int, protocol: int, prot: Any):
        s = net.sysctl
        self.sk_net = net
        self.sk_family = family
        self.sk_type = type_
        self.sk_protocol = protocol
        self.sk_prot = prot
        self.sk_socket: Socket | None = None
        self.sk_state = 7  # TCP_CLOSE: every socket starts closed
        self.sk_shutdown = 0
        self.sk_err = 0
        self.sk_err_soft = 0
        self.sk_rcvbuf = s.rmem_default
        self.sk_sndbuf = s.wmem_default
        self.sk_rmem_alloc = 0
        self.sk_wmem_alloc = 0
        self.sk_receive_queue: deque[SkBuff] = deque()
        self.sk_reuse = 0
        self.sk_reuseport = 0
        self.sk_flags = 0
        self.sk_lingertime = 0
        self.sk_rcvtimeo = MAX_SCHEDULE_TIMEOUT
        self.sk_sndtimeo = MAX_SCHEDULE_TIMEOUT
        self.sk_userlocks = 0
        self.sk_bound_dev_if = 0
        self.sk_drops = 0
        self.sk_rcvlowat = 1
        self.sk_priority = 0
        self.sk_mark = 0
        self.sk_wq: trio.lowlevel.ParkingLot | None = None
        self.sk_lock_owned = False
        self.sk_backlog: list[SkBuff] = []
        self.sk_backlog_len = 0
        self.sk_backlog_rcv: Callable[["Sock", "SkBuff"], Any] | None = None
        self.sk_data_ready = sock_def_readable
        self.sk_write_space = sock_def_write_space
        self.sk_state_change = sock_def_wakeup
        self.sk_error_report = sock_def_error_report
        self.sk_dst_cache: Rtable | None = None
        self.sk_inert_opts: dict[tuple[int, int], Any] | None = None
        self.sk_uid = 0
        self.sk_wakeups = 0
        # IP_RECVERR's queue: skbs whose `cb` is a SockExterrSkb, read by MSG_ERRQUEUE.
        # Made on the first error queued (sock_queue_err_skb): most sockets never have one.
        self.sk_error_queue: deque[SkBuff] | tuple[()] = ()
        self.sk_wq_funcs: list[Callable[["Sock"], None]] | None = None  # add_wait_queue

    def sock_flag(self, flag: int) -> bool:
        return bool(self.sk_flags & (1 << flag))

    def sock_set_flag(self, flag: int, on: bool = True) -> None:
        if on:
            self.sk_flags |= 1 << flag
        else:
            self.sk_flags &= ~(1 << flag)

    def wait_queue(self) -> trio.lowlevel.ParkingLot:
        wq = self.sk_wq
        if wq is None:
            wq = self.sk_wq = trio.lowlevel.ParkingLot()
        return wq


def sock_error(sk: Sock) -> int:
    """Take the pending error, if any (it is reported once)."""
    err = sk.sk_err
    if err:
        sk.sk_err = 0
    return err


# -- memory accounting ----------------------------------------------------------------------

def sock_wfree(skb: "SkBuff") -> None:
    sk = skb.sk
    sk.sk_wmem_alloc -= skb.truesize
    if sk.sk_wmem_alloc < sk.sk_sndbuf:
        sk.sk_write_space(sk)


def skb_set_owner_w(skb: "SkBuff", sk: Sock) -> None:
    skb.sk = sk
    skb.destructor = sock_wfree
    sk.sk_wmem_alloc += skb.truesize


def sock_rfree(skb: "SkBuff") -> None:
    skb.sk.sk_rmem_alloc -= skb.truesize


def skb_set_owner_r(skb: "SkBuff", sk: Sock) -> None:
    d = skb.destructor  # skb_orphan, inline
    if d is not None:
        skb.destructor = None
        d(skb)
    skb.sk = sk
    skb.destructor = sock_rfree
    sk.sk_rmem_alloc += skb.truesize


def sock_wspace(sk: Sock) -> int:
    return sk.sk_sndbuf - sk.sk_wmem_alloc


def sock_writeable(sk: Sock) -> bool:
    return sk.sk_wmem_alloc < (sk.sk_sndbuf >> 1)


# -- the error queue (net/core/skbuff.c) ----------------------------------------------------------

_ICMP_ORIGINS: Final = (SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6)  # is_icmp_err_skb


class SockExterrSkb:
    """`struct sock_exterr_skb`, the control block of an skb on sk_error_queue: the error
    (a uapi SockExtendedErr without its offender) and the address and port it concerns."""

    __slots__ = ("ee", "addr", "port")

    def __init__(self, ee: Any, addr: int, port: int):
        self.ee = ee
        self.addr = addr
        self.port = port


def sock_queue_err_skb(sk: Sock, skb: "SkBuff") -> bool:
    """Queue an error record, charged to the receive buffer; False (the caller frees it)
    when the buffer is full."""
    if sk.sk_rmem_alloc + skb.truesize >= sk.sk_rcvbuf:
        return False
    skb_set_owner_r(skb, sk)
    if not isinstance(sk.sk_error_queue, deque):
        sk.sk_error_queue = deque()
    sk.sk_error_queue.append(skb)
    if not sk.sock_flag(SOCK_DEAD):
        sk.sk_error_report(sk)
    return True


def sock_dequeue_err_skb(sk: Sock) -> "SkBuff | None":
    """Take the oldest error record. sk_err follows the queue: the errno of the next ICMP
    record if there is one, else cleared once an ICMP record is taken."""
    q = sk.sk_error_queue
    if not q:
        return None
    skb = q.popleft()  # type: ignore[union-attr]
    icmp_next = False
    if q:
        nxt = q[0].cb.ee
        icmp_next = nxt.ee_origin in _ICMP_ORIGINS
        if icmp_next:
            sk.sk_err = nxt.ee_errno
    if skb.cb.ee.ee_origin in _ICMP_ORIGINS and not icmp_next:
        sk.sk_err = 0
    if q:
        sk.sk_error_report(sk)
    return skb


# -- the socket lock ---------------------------------------------------------------------------

def lock_sock(sk: Sock) -> None:
    sk.sk_lock_owned = True


def release_sock(sk: Sock) -> None:
    """Process what softirq queued while we held the socket, then let go."""
    while sk.sk_backlog:
        backlog = sk.sk_backlog
        sk.sk_backlog = []
        rcv = sk.sk_backlog_rcv
        for skb in backlog:
            rcv(sk, skb)
    sk.sk_backlog_len = 0
    sk.sk_lock_owned = False


def sock_owned_by_user(sk: Sock) -> bool:
    return sk.sk_lock_owned


def sk_add_backlog(sk: Sock, skb: "SkBuff", limit: int) -> bool:
    """Queue for release_sock; False (caller drops) past the limit."""
    qsize = sk.sk_backlog_len + sk.sk_rmem_alloc
    if qsize > limit:
        return False
    sk.sk_backlog.append(skb)
    sk.sk_backlog_len += skb.truesize
    return True


# -- struct socket ------------------------------------------------------------------------------

class Socket:
    """`struct socket`: the BSD-layer object a file points at."""

    __slots__ = ("state", "type", "flags", "file", "sk", "ops", "__weakref__")

    def __init__(self, type_: int, ops: Any):
        self.state = SS_UNCONNECTED
        self.type = type_
        self.flags = 0
        self.file: Any = None
        self.sk: Sock | None = None
        self.ops = ops


def sock_graft(sk: Sock, sock: Socket) -> None:
    sk.sk_socket = sock
    sock.sk = sk


# -- SOL_SOCKET options ---------------------------------------------------------------------------

def _int_val(optval: Any) -> int:
    if isinstance(optval, (bytes, bytearray, memoryview)):
        if len(optval) < 4:
            raise KernelError(errno.EINVAL)
        return int.from_bytes(bytes(optval[:4]), "little", signed=True)
    return int(optval)


def _timeval(optval: Any) -> float:
    if isinstance(optval, (bytes, bytearray, memoryview)):
        if len(optval) < 16:
            raise KernelError(errno.EINVAL)
        sec = int.from_bytes(bytes(optval[:8]), "little", signed=True)
        usec = int.from_bytes(bytes(optval[8:16]), "little", signed=True)
    else:
        sec, usec = int(optval), 0
    if sec < 0 or usec < 0 or usec >= 1_000_000:
        raise KernelError(errno.EDOM)
    if sec == 0 and usec == 0:
        return MAX_SCHEDULE_TIMEOUT
    return sec + usec / 1e6


def sock_setsockopt(sk: Sock, optname: int, optval: Any, capable_net_admin: bool) -> None:
    s = sk.sk_net.sysctl
    if optname in (SO_RCVTIMEO, SO_SNDTIMEO):
        t = _timeval(optval)
        if optname == SO_RCVTIMEO:
            sk.sk_rcvtimeo = t
        else:
            sk.sk_sndtimeo = t
        return
    if optname == SO_LINGER:
        if isinstance(optval, (bytes, bytearray, memoryview)):
            if len(optval) < 8:
                raise KernelError(errno.EINVAL)
            onoff = int.from_bytes(bytes(optval[:4]), "little", signed=True)
            linger = int.from_bytes(bytes(optval[4:8]), "little", signed=True)
        else:
            raise KernelError(errno.EINVAL)
        if not onoff:
            sk.sock_set_flag(SOCK_LINGER, False)
        else:
            sk.sk_lingertime = max(linger, 0)
            sk.sock_set_flag(SOCK_LINGER, True)
        return
    if optname == SO_BINDTODEVICE:
        name = bytes(optval).split(b"\0", 1)[0].decode() if not isinstance(optval, str) else optval
        if not name:
            sk.sk_bound_dev_if = 0
            return
        dev = sk.sk_net.dev_get_by_name(name)
        if dev is None:
            raise KernelError(errno.ENODEV)
        sk.sk_bound_dev_if = dev.ifindex
        return
    val = _int_val(optval)
    if optname == SO_REUSEADDR:
        sk.sk_reuse = 1 if val else 0
    elif optname == SO_REUSEPORT:
        sk.sk_reuseport = 1 if val else 0
    elif optname == SO_BROADCAST:
        sk.sock_set_flag(SOCK_BROADCAST, bool(val))
    elif optname == SO_KEEPALIVE:
        keepalive = getattr(sk.sk_prot, "keepalive", None)
        if keepalive is not None:
            keepalive(sk, bool(val))
        sk.sock_set_flag(SOCK_KEEPOPEN, bool(val))
    elif optname in (SO_SNDBUF, SO_SNDBUFFORCE):
        if optname == SO_SNDBUFFORCE and not capable_net_admin:
            raise KernelError(errno.EPERM)
        # SO_SNDBUF clamps as a u32: a negative value asks for the maximum
        val = min(val & 0xFFFFFFFF, s.wmem_max) if optname == SO_SNDBUF else val
        val = min(max(val, 0), 0x7FFFFFFF // 2)
        sk.sk_userlocks |= SOCK_SNDBUF_LOCK
        sk.sk_sndbuf = max(val * 2, SOCK_MIN_SNDBUF)
        sk.sk_write_space(sk)
    elif optname in (SO_RCVBUF, SO_RCVBUFFORCE):
        if optname == SO_RCVBUFFORCE and not capable_net_admin:
            raise KernelError(errno.EPERM)
        val = min(val & 0xFFFFFFFF, s.rmem_max) if optname == SO_RCVBUF else val
        val = min(max(val, 0), 0x7FFFFFFF // 2)
        sk.sk_userlocks |= SOCK_RCVBUF_LOCK
        sk.sk_rcvbuf = max(val * 2, SOCK_MIN_RCVBUF)
    elif optname == SO_PRIORITY:
        if (val < 0 or val > 6) and not capable_net_admin:
            raise KernelError(errno.EPERM)
        sk.sk_priority = val
    elif optname == SO_RCVLOWAT:
        sk.sk_rcvlowat = val if val > 0 else 1
    elif optname == SO_MARK:
        if not capable_net_admin:
            raise KernelError(errno.EPERM)
        sk.sk_mark = val
    elif optname in _INERT_INT_OPTIONS:
        if sk.sk_inert_opts is None:
            sk.sk_inert_opts = {}
        sk.sk_inert_opts[(SOL_SOCKET, optname)] = val
    elif optname in (SO_TYPE, SO_ERROR, SO_PROTOCOL, SO_DOMAIN, SO_ACCEPTCONN, SO_PEERCRED):
        raise KernelError(errno.ENOPROTOOPT)
    else:
        raise KernelError(errno.ENOPROTOOPT)


def sock_getsockopt(sk: Sock, optname: int) -> Any:
    """The value as an int (or bytes for struct options)."""
    if optname == SO_TYPE:
        return sk.sk_type
    if optname == SO_PROTOCOL:
        return sk.sk_protocol
    if optname == SO_DOMAIN:
        return sk.sk_family
    if optname == SO_ERROR:
        err = sock_error(sk)
        if not err:
            err = sk.sk_err_soft
            sk.sk_err_soft = 0
        return err
    if optname == SO_REUSEADDR:
        return sk.sk_reuse
    if optname == SO_REUSEPORT:
        return sk.sk_reuseport
    if optname == SO_BROADCAST:
        return int(sk.sock_flag(SOCK_BROADCAST))
    if optname == SO_KEEPALIVE:
        return int(sk.sock_flag(SOCK_KEEPOPEN))
    if optname == SO_SNDBUF:
        return sk.sk_sndbuf
    if optname == SO_RCVBUF:
        return sk.sk_rcvbuf
    if optname == SO_PRIORITY:
        return sk.sk_priority
    if optname == SO_RCVLOWAT:
        return sk.sk_rcvlowat
    if optname == SO_MARK:
        return sk.sk_mark
    if optname == SO_ACCEPTCONN:
        return int(sk.sk_state == 10)  # TCP_LISTEN
    if optname == SO_LINGER:
        onoff = int(sk.sock_flag(SOCK_LINGER))
        return onoff.to_bytes(4, "little") + sk.sk_lingertime.to_bytes(4, "little")
    if optname in (SO_RCVTIMEO, SO_SNDTIMEO):
        t = sk.sk_rcvtimeo if optname == SO_RCVTIMEO else sk.sk_sndtimeo
        if t == MAX_SCHEDULE_TIMEOUT:
            t = 0.0
        sec = int(t)
        usec = int(round((t - sec) * 1e6))
        return sec.to_bytes(8, "little", signed=True) + usec.to_bytes(8, "little", signed=True)
    if optname == SO_BINDTODEVICE:
        if not sk.sk_bound_dev_if:
            return b""
        return sk.sk_net.dev_index[sk.sk_bound_dev_if].name.encode() + b"\0"
    if optname in _INERT_INT_OPTIONS:
        return (sk.sk_inert_opts or {}).get((SOL_SOCKET, optname), 0)
    raise KernelError(errno.ENOPROTOOPT)

"""TCP, the process side: the socket, its states, send/receive, close, options, TCP_INFO,
as net/ipv4/tcp.c and net/ipv4/af_inet.c's stream operations.

Read first: RFC 9293 §3.3.2 (the state machine), net/ipv4/tcp.c (tcp_sendmsg_locked,
tcp_recvmsg_locked, tcp_close, tcp_shutdown, tcp_disconnect, do_tcp_setsockopt,
tcp_get_info, tcp_poll, tcp_set_state), net/ipv4/af_inet.c (inet_stream_connect, inet_listen,
inet_accept), man 7 tcp.

Only `tcp_set_state` writes `sk_state`. Every operation here is synchronous and takes the socket
lock (`lock_sock`), so segments arriving meanwhile from softirq wait on the backlog and are
processed by `release_sock`. An operation that must wait raises KernelError(EAGAIN); the
syscall layer waits on the socket and calls it again.
"""

from __future__ import annotations

import errno
import struct
import types
from collections import deque
from typing import TYPE_CHECKING, Any, Final, Mapping

from ...kernel.errors import KernelError
from ...kernel.ktime import kclock
from ..core.drop_reason import consume_skb
from ..core.skbuff import SKB_TRUESIZE, SkBuff
from ..core.sock import (RCV_SHUTDOWN, SEND_SHUTDOWN, SHUTDOWN_MASK, SOCK_DEAD, SOCK_DONE,
                         SOCK_LINGER, lock_sock, release_sock, sock_error)
from .inet_sock import InetSock
from .ip_sockglue import ip_recv_error
from .tcp_cong import TCP_INIT_CWND, tcp_ca_find
from .tcp_states import (TCP_CLOSE, TCP_CLOSE_WAIT, TCP_CLOSING, TCP_ESTABLISHED,
                         TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_LAST_ACK, TCP_LISTEN, TCP_SYN_RECV,
                         TCP_SYN_SENT, TCP_TIME_WAIT)

if TYPE_CHECKING:
    from ...kernel.timer import Timer
    from ...uapi.tcp import TcpOptions
    from ..core.net_namespace import Net

# TCP socket options (include/uapi/linux/tcp.h)
TCP_NODELAY: Final = 1
TCP_MAXSEG: Final = 2
TCP_CORK: Final = 3
TCP_KEEPIDLE: Final = 4
TCP_KEEPINTVL: Final = 5
TCP_KEEPCNT: Final = 6
TCP_SYNCNT: Final = 7
TCP_LINGER2: Final = 8
TCP_DEFER_ACCEPT: Final = 9
TCP_WINDOW_CLAMP: Final = 10
TCP_INFO: Final = 11
TCP_QUICKACK: Final = 12
TCP_CONGESTION: Final = 13
TCP_USER_TIMEOUT: Final = 18
TCP_NOTSENT_LOWAT: Final = 25

# recvmsg flags tcp_recvmsg reads (include/linux/socket.h)
MSG_OOB: Final = 0x1
MSG_PEEK: Final = 0x2
MSG_WAITALL: Final = 0x100
MSG_ERRQUEUE: Final = 0x2000

# tp->nonagle
TCP_NAGLE_OFF: Final = 1
TCP_NAGLE_CORK: Final = 2
TCP_NAGLE_PUSH: Final = 4

# icsk_ca_state
TCP_CA_Open = 0
TCP_CA_Disorder = 1
TCP_CA_CWR: Final = 2
TCP_CA_Recovery = 3
TCP_CA_Loss = 4

# TCP_SKB_CB(skb)->sacked
TCPCB_SACKED_ACKED: Final = 0x01
TCPCB_SACKED_RETRANS: Final = 0x02
TCPCB_LOST: Final = 0x04
TCPCB_EVER_RETRANS: Final = 0x80

TCP_RTO_MIN: Final = 0.2
TCP_RTO_MAX: Final = 120.0
TCP_TIMEOUT_INIT: Final = 1.0
TCP_DELACK_MIN = 0.04
TCP_DELACK_MAX: Final = 0.2
TCP_ATO_MIN: Final = 0.04
TCP_MAX_QUICKACKS: Final = 16
TCP_TIMEWAIT_LEN: Final = 60.0
TCP_FIN_TIMEOUT = 60.0
MAX_TCP_HEADER: Final = 320
TCP_MSS_DEFAULT: Final = 536
TCP_MIN_MSS: Final = 88
MAX_TCP_KEEPIDLE: Final = 32767
MAX_TCP_KEEPINTVL: Final = 32767
MAX_TCP_KEEPCNT: Final = 127

# SIOCINQ / SIOCOUTQ
SIOCINQ: Final = 0x541B
SIOCOUTQ: Final = 0x5411

_TCP_INFO: Final = struct.Struct("@8B24I4Q6I4Q2I2Q4I")

__all__ = ["TcpSock", "TcpSkbCb", "tcp_set_state", "tcp_done"]


class TcpSkbCb:
    """TCP_SKB_CB: where a queued segment sits in sequence space, and its history."""

    __slots__ = ("seq", "end_seq", "tcp_flags", "sacked", "when", "ack_seq", "eor",
                 "first_tx", "window", "opts", "tw_isn", "gso_unit")

    def __init__(self, seq: int, end_seq: int, tcp_flags: int):
        self.seq = seq
        self.end_seq = end_seq
        self.tcp_flags = tcp_flags
        self.sacked = 0
        self.when = 0.0  # last transmission time
        self.first_tx: float | None = None  # first transmission (None: not sent yet)
        self.ack_seq = 0
        self.eor = False
        self.window = 0  # the raw window field of a received segment
        self.opts: TcpOptions | None = None  # its parsed options
        self.tw_isn = 0  # ISN for a SYN that reuses a TIME_WAIT 4-tuple (0: none)
        # Sent segments of one TSO skb share a number (see tcp_output.tcp_event_new_data_sent)
        self.gso_unit = 0


def tcp_segment_addrs(skb: SkBuff) -> tuple[int, int, int, int]:
    """(saddr, daddr, sport, dport) of a received segment, read from its headers."""
    buf = skb.buf
    nh = skb.network_header
    th = skb.transport_header
    return (int.from_bytes(buf[nh + 12:nh + 16], "big"),
            int.from_bytes(buf[nh + 16:nh + 20], "big"),
            (buf[th] << 8) | buf[th + 1], (buf[th + 2] << 8) | buf[th + 3])


def before(a: int, b: int) -> bool:
    return ((a - b) & 0xFFFFFFFF) >= 0x80000000


def after(a: int, b: int) -> bool:
    return ((b - a) & 0xFFFFFFFF) >= 0x80000000


_NO_REQUESTS: Final = types.MappingProxyType({})


class TcpSock(InetSock):
    """`struct tcp_sock` with its `inet_connection_sock` part."""

    __slots__ = (
        # inet_connection_sock
        "icsk_rto", "icsk_backoff", "icsk_retransmits", "icsk_ca_state", "icsk_ca_ops",
        "icsk_pending", "icsk_probes_out", "icsk_user_timeout", "icsk_syn_retries",
        "icsk_ack_pending", "icsk_ack_quick", "icsk_ack_pingpong", "icsk_ack_ato",
        "icsk_ack_rcv_mss", "icsk_ack_lrcvtime", "icsk_accept_queue", "icsk_syn_queue",
        "retransmit_timer", "delack_timer", "keepalive_timer", "sk_max_ack_backlog",
        "parent", "bound_explicitly", "retrans_stamp", "lingering",
        # tcp_sock: sequence space
        "snd_una", "snd_nxt", "snd_wnd", "max_window", "snd_wl1", "snd_sml", "write_seq",
        "pushed_seq", "rcv_nxt", "copied_seq", "rcv_wup", "rcv_wnd", "rcv_ssthresh",
        "window_clamp", "iss", "irs", "urg_data",
        # segment sizes and options
        "mss_cache", "advmss", "user_mss", "mss_clamp", "tstamp_ok", "sack_ok", "wscale_ok",
        "sndbuf_nr_segs", "sndbuf_mss", "sndbuf_set",  # tcp_sndbuf_expand's last sizes
        "snd_wscale", "rcv_wscale", "ts_recent", "ts_recent_stamp", "tsoffset", "nonagle",
        "dsack", "duplicate_sack", "selective_acks", "rx_opt_saw_tstamp", "rcv_tsecr",
        # RTT, congestion
        "srtt_us", "mdev_us", "mdev_max_us", "rttvar_us", "rtt_seq", "min_rtt_us",
        "snd_cwnd", "snd_ssthresh", "snd_cwnd_cnt", "snd_cwnd_clamp", "prior_cwnd",
        "prior_ssthresh", "packets_out", "retrans_out", "sacked_out", "lost_out",
        "high_seq", "undo_marker", "undo_retrans", "total_retrans", "reordering",
        "dup_acks", "max_packets_out", "cwnd_limited", "ca_priv", "lsndtime", "rcv_tstamp",
        "last_oow_ack_time", "snd_cwnd_stamp", "sk_pacing_rate", "tcp_wstamp", "gso_units",
        "rack_mstamp", "rack_end_seq", "rack_rtt_us", "rack_advanced", "reord_seen",
        "chrono_type", "chrono_start", "chrono_stat", "sk_nospace",
        "icsk_probes_tstamp",
        # queues
        "write_queue", "rtx_queue", "out_of_order_queue", "sk_wmem_queued",
        # options
        "keepalive_time", "keepalive_intvl", "keepalive_probes", "linger2", "notsent_lowat",
        "defer_accept",
        # counters
        "bytes_acked", "bytes_received", "bytes_sent", "bytes_retrans", "segs_in",
        "segs_out", "data_segs_in", "data_segs_out", "delivered", "rcv_ooopack",
        "dsack_dups", "rcv_space", "prr_delivered", "prr_out", "rcvq_seq", "rcvq_time",
    )

    def __init__(self, net: "Net", family: int, type_: int, protocol: int, prot: Any):
        super().__init__(net, family, type_, protocol, prot)
        s = net.sysctl
        self.icsk_rto = TCP_TIMEOUT_INIT
        self.icsk_backoff = 0
        self.icsk_retransmits = 0
        self.icsk_ca_state = TCP_CA_Open
        self.icsk_ca_ops = tcp_ca_find(s.tcp_congestion_control) or tcp_ca_find("cubic")
        self.icsk_pending = 0
        self.icsk_probes_out = 0
        self.icsk_user_timeout = 0
        self.icsk_syn_retries = 0
        self.icsk_ack_pending = 0
        self.icsk_ack_quick = 0
        self.icsk_ack_pingpong = 0
        self.icsk_ack_ato = 0.0  # 0 until the first data arrives (quick-ack start)
        self.icsk_ack_rcv_mss = TCP_MSS_DEFAULT
        self.icsk_ack_lrcvtime = 0.0
        # A listener's queues, made by listen() (inet_csk_listen_start); empty and read-only
        # on every other socket.
        self.icsk_accept_queue: deque[TcpSock] | tuple[()] = ()
        # A read-only empty mapping until the first SYN (a dict from then on).
        self.icsk_syn_queue: Mapping[tuple[int, int], Any] = _NO_REQUESTS
        self.retransmit_timer: Timer | None = None
        self.delack_timer: Timer | None = None
        self.keepalive_timer: Timer | None = None
        self.sk_max_ack_backlog = 0
        self.parent: TcpSock | None = None
        self.bound_explicitly = False
        self.retrans_stamp = 0.0
        self.lingering = False
        self.snd_una = self.snd_nxt = self.snd_wl1 = self.snd_sml = 0
        self.write_seq = self.pushed_seq = 0
        self.snd_wnd = self.max_window = 0
        self.rcv_nxt = self.copied_seq = self.rcv_wup = 0
        self.rcv_wnd = self.rcv_ssthresh = 0
        self.window_clamp = 0
        self.iss = self.irs = 0
        self.urg_data = 0
        self.mss_cache = TCP_MSS_DEFAULT
        self.advmss = TCP_MSS_DEFAULT
        self.user_mss = 0
        self.mss_clamp = 0xFFFF
        self.sndbuf_nr_segs = self.sndbuf_mss = self.sndbuf_set = 0
        self.tstamp_ok = bool(s.tcp_timestamps)
        self.sack_ok = bool(s.tcp_sack)
        self.wscale_ok = bool(s.tcp_window_scaling)
        self.snd_wscale = 0
        self.rcv_wscale = 0
        self.ts_recent = 0
        self.ts_recent_stamp = -1.0  # when ts_recent was taken; -1: never (time starts at 0)
        self.tsoffset = 0
        self.nonagle = 0
        self.dsack = False
        self.duplicate_sack: tuple[int, int] | None = None
        self.selective_acks: list[tuple[int, int]] = []
        self.rx_opt_saw_tstamp = False
        self.rcv_tsecr = 0
        self.srtt_us = 0
        self.mdev_us = 0
        self.mdev_max_us = 0
        self.rttvar_us = 0
        self.rtt_seq = 0
        self.min_rtt_us = 0
        self.snd_cwnd = TCP_INIT_CWND
        self.snd_ssthresh = 0x7FFFFFFF
        self.snd_cwnd_cnt = 0
        self.snd_cwnd_clamp = 0xFFFFFFFF
        self.prior_cwnd = 0
        self.prior_ssthresh = 0
        self.packets_out = self.retrans_out = self.sacked_out = self.lost_out = 0
        self.high_seq = 0
        self.undo_marker = 0
        self.undo_retrans = -1
        self.total_retrans = 0
        self.reordering = 3
        self.dup_acks = 0
        self.max_packets_out = 0
        self.cwnd_limited = False
        self.ca_priv: Any = None
        self.lsndtime = 0.0
        self.rcv_tstamp = 0.0
        self.last_oow_ack_time = -1.0
        self.snd_cwnd_stamp = 0.0
        self.sk_pacing_rate = -1  # bytes per second; -1: unlimited (~0UL) until an RTT is known
        self.tcp_wstamp = -1.0  # when the last segment (of any kind) was sent
        self.gso_units = 0  # numbers the TSO skbs sent, for their segments in rtx_queue
        # RACK (RFC 8985): the most recently sent segment known delivered, and its RTT.
        self.rack_mstamp = -1.0
        self.rack_end_seq = 0
        self.rack_rtt_us = 0
        self.rack_advanced = False
        self.reord_seen = 0  # reorderings seen (a SACK below the highest SACKed)
        # TCP_INFO's chronographs: busy, limited by the peer's window, by the send buffer.
        self.chrono_type = 0  # TCP_CHRONO_UNSPEC
        self.chrono_start = 0.0
        self.chrono_stat = [0.0, 0.0, 0.0]
        self.sk_nospace = False  # SOCK_NOSPACE: a writer found the send buffer full
        self.icsk_probes_tstamp = -1.0  # when zero-window probing began (-1: not probing)
        self.write_queue: deque[SkBuff] = deque()  # not yet sent
        self.rtx_queue: deque[SkBuff] = deque()  # sent, not yet acked
        self.out_of_order_queue: list[SkBuff] = []
        self.sk_wmem_queued = 0
        self.keepalive_time = 0
        self.keepalive_intvl = 0
        self.keepalive_probes = 0
        self.linger2 = 0
        self.notsent_lowat = 0
        self.defer_accept = 0
        self.bytes_acked = self.bytes_received = self.bytes_sent = self.bytes_retrans = 0
        self.segs_in = self.segs_out = self.data_segs_in = self.data_segs_out = 0
        self.delivered = 0
        self.rcv_ooopack = 0
        self.dsack_dups = 0
        self.rcv_space = 0
        self.rcvq_seq = 0  # receive-buffer auto-tuning: where the current measure began
        self.rcvq_time = 0.0
        self.prr_delivered = 0  # PRR (RFC 6937): delivered and sent during this recovery
        self.prr_out = 0
        self.sk_sndbuf = s.tcp_wmem[1]
        self.sk_rcvbuf = s.tcp_rmem[1]

    def now(self) -> float:
        return kclock.now()

    def is_cwnd_limited(self) -> bool:
        """tcp_is_cwnd_limited: only grow cwnd when it is what limits sending."""
        if self.snd_cwnd < self.snd_ssthresh:
            return self.snd_cwnd < 2 * self.max_packets_out
        return self.cwnd_limited

    def packets_in_flight(self) -> int:
        return self.packets_out - (self.sacked_out + self.lost_out) + self.retrans_out

    def recv_q(self) -> int:
        if self.sk_state == TCP_LISTEN:
            return len(self.icsk_accept_queue)
        return (self.rcv_nxt - self.copied_seq) & 0xFFFFFFFF

    def send_q(self) -> int:
        if self.sk_state == TCP_LISTEN:
            return self.sk_max_ack_backlog
        return (self.write_seq - self.snd_una) & 0xFFFFFFFF

    def __repr__(self) -> str:
        from .tcp_states import TCP_STATE_NAMES
        return f"<TcpSock {TCP_STATE_NAMES.get(self.sk_state)} :{self.inet_num}>"


# -- state ----------------------------------------------------------------------------------

# enum tcp_chrono
TCP_CHRONO_UNSPEC: Final = 0
TCP_CHRONO_BUSY: Final = 1
TCP_CHRONO_RWND_LIMITED: Final = 2
TCP_CHRONO_SNDBUF_LIMITED: Final = 3


def tcp_chrono_set(sk: TcpSock, new: int) -> None:
    now = kclock.now()
    old = sk.chrono_type
    if old > TCP_CHRONO_UNSPEC:
        sk.chrono_stat[old - 1] += now - sk.chrono_start
    sk.chrono_start = now
    sk.chrono_type = new


def tcp_chrono_start(sk: TcpSock, kind: int) -> None:
    """The more interesting condition wins: sndbuf-limited over rwnd-limited over busy."""
    if kind > sk.chrono_type:
        tcp_chrono_set(sk, kind)


def tcp_chrono_stop(sk: TcpSock, kind: int) -> None:
    if not sk.write_queue and not sk.rtx_queue:
        if sk.chrono_type:
            tcp_chrono_set(sk, TCP_CHRONO_UNSPEC)
    elif kind == sk.chrono_type:
        tcp_chrono_set(sk, TCP_CHRONO_BUSY)


def tcp_chrono_stats(sk: TcpSock) -> tuple[int, int, int]:
    """(busy, rwnd_limited, sndbuf_limited) in µs, as tcp_get_info_chrono_stats: busy is
    the sum of all three."""
    stats = list(sk.chrono_stat)
    if sk.chrono_type:
        stats[sk.chrono_type - 1] += kclock.now() - sk.chrono_start
    us = [int(round(x * 1e6)) for x in stats]
    return sum(us), us[1], us[2]


def tcp_set_state(sk: TcpSock, state: int) -> None:
    """The only writer of sk_state; keeps CurrEstab and the tracepoint."""
    old = sk.sk_state
    if old == state:
        return
    net = sk.sk_net
    mib = net.mib.tcp
    if state == TCP_CLOSE and old in (TCP_ESTABLISHED, TCP_CLOSE_WAIT):
        mib["EstabResets"] += 1
    if state == TCP_ESTABLISHED:
        mib["CurrEstab"] += 1
    elif old == TCP_ESTABLISHED:
        if state == TCP_CLOSE_WAIT:
            pass  # still counted: CurrEstab covers ESTABLISHED and CLOSE_WAIT
        else:
            mib["CurrEstab"] -= 1
    if old == TCP_CLOSE_WAIT and state != TCP_ESTABLISHED:
        mib["CurrEstab"] -= 1
    if state == TCP_CLOSE:
        tcp_ipv4.tcp_unhash(sk)
    sk.sk_state = state
    if net.tracer.active:
        from .tcp_states import TCP_STATE_SYMBOLS
        net.tracer.emit(net, "sock:inet_sock_set_state", sport=sk.inet_num, dport=sk.inet_dport,
                        oldstate=TCP_STATE_SYMBOLS.get(old), newstate=TCP_STATE_SYMBOLS.get(state))


def tcp_done(sk: TcpSock) -> None:
    """The connection is over: timers off, state CLOSE, wake everyone."""
    if sk.sk_state in (TCP_SYN_SENT, TCP_SYN_RECV):
        sk.sk_net.mib.tcp["AttemptFails"] += 1
    tcp_set_state(sk, TCP_CLOSE)
    tcp_timer.tcp_clear_xmit_timers(sk)
    sk.sk_shutdown = SHUTDOWN_MASK
    if not sk.sock_flag(SOCK_DEAD):
        sk.sk_state_change(sk)
    else:
        tcp_destroy(sk)


def tcp_destroy(sk: TcpSock) -> None:
    """inet_csk_destroy_sock + tcp_v4_destroy_sock: free every queued buffer of a closed
    orphan and give back its port (inet_put_port), even one bound explicitly."""
    tcp_purge_queues(sk)
    tcp_timer.tcp_clear_xmit_timers(sk)
    # The socket and its timers point at each other: cut the timers' side, so that the
    # freed socket goes with its last reference, not at the garbage collector's next pass.
    for timer in (sk.retransmit_timer, sk.delack_timer, sk.keepalive_timer):
        if timer is not None:
            timer.data = None
    if sk.inet_num:
        sk.sk_net.ipv4.tcp.hashinfo.bind_remove(sk.inet_num, sk)


def tcp_purge_queues(sk: TcpSock) -> None:
    for q in (sk.write_queue, sk.rtx_queue):
        while q:
            skb = q.popleft()
            sk.sk_wmem_queued -= skb.truesize
            consume_skb(skb)
    for skb in sk.out_of_order_queue:
        consume_skb(skb)
    sk.out_of_order_queue.clear()
    while sk.sk_receive_queue:
        consume_skb(sk.sk_receive_queue.popleft())
    sk.packets_out = sk.sacked_out = sk.lost_out = sk.retrans_out = 0


# -- send ---------------------------------------------------------------------------------------

def sk_stream_memory_free(sk: TcpSock) -> bool:
    return sk.sk_wmem_queued < sk.sk_sndbuf


def sk_stream_is_writeable(sk: TcpSock) -> bool:
    return sk.sk_sndbuf - sk.sk_wmem_queued >= sk.sk_wmem_queued // 2 and (
        not sk.notsent_lowat or (sk.write_seq - sk.snd_nxt) & 0xFFFFFFFF < sk.notsent_lowat)


def tcp_sendmsg(sk: TcpSock, data: Any, flags: int) -> int:
    """Queue as much of `data` as the send buffer takes; return how much (never 0: EAGAIN).

    As tcp_sendmsg_locked: the bytes go into skbs of up to `size_goal` (many segments when
    the route can do TSO/GSO); a full skb at the head of the queue is sent at once
    (tcp_push_one), and PSH marks the end of what this call wrote (tcp_push)."""
    MSG_OOB, MSG_MORE, MSG_EOR = 0x1, 0x8000, 0x80
    lock_sock(sk)
    try:
        if flags & MSG_OOB:
            raise NotImplementedError("TCP urgent data (MSG_OOB) is not implemented yet")
        state = sk.sk_state
        if state not in (TCP_ESTABLISHED, TCP_CLOSE_WAIT):
            err = sock_error(sk)
            if err:
                raise KernelError(err)
            if state not in (TCP_SYN_SENT, TCP_SYN_RECV):
                raise KernelError(errno.EPIPE)
            raise KernelError(errno.EAGAIN)  # sk_stream_wait_connect
        err = sock_error(sk)
        if err:
            raise KernelError(err)
        if sk.sk_shutdown & SEND_SHUTDOWN:
            raise KernelError(errno.EPIPE)
        # (The restart after idle is tcp_write_xmit's: every write reaches it.)
        mss_now, size_goal = tcp_tso.tcp_send_mss(sk)
        view = memoryview(data).cast("B") if not isinstance(data, memoryview) else data.cast("B")
        total = len(view)
        copied = 0
        q = sk.write_queue
        while copied < total:
            skb = q[-1] if q else None
            copy = size_goal - (skb.tail - skb.data) if skb is not None else 0
            if copy <= 0 or skb.cb.eor or skb.cb.tcp_flags & 0x03:  # tcp_skb_can_collapse_to
                if not sk_stream_memory_free(sk):
                    sk.sk_nospace = True
                    break  # wait_for_space
                skb = tcp_stream_alloc_skb(sk)
                copy = size_goal
            copy = min(copy, total - copied)
            tcp_skb_append(sk, skb, view[copied:copied + copy])
            if not copied:
                skb.cb.tcp_flags &= ~0x08  # PSH belongs to the end of this write, not before
            sk.write_seq = (sk.write_seq + copy) & 0xFFFFFFFF
            copied += copy
            if copied == total:
                if flags & MSG_EOR:
                    skb.cb.eor = True
                break
            if skb.tail - skb.data < size_goal:
                continue
            if tcp_output.forced_push(sk):
                tcp_output.tcp_mark_push(sk, skb)
                tcp_output.__tcp_push_pending_frames(sk, mss_now, TCP_NAGLE_PUSH)
            elif skb is q[0]:
                tcp_output.tcp_push_one(sk, mss_now)
        if not copied:
            if total == 0:
                return 0
            raise KernelError(errno.EAGAIN)
        if copied < total:
            # Out of send buffer (wait_for_space): push what we have, without MSG_MORE.
            tcp_output.tcp_push(sk, flags & ~MSG_MORE, mss_now, TCP_NAGLE_PUSH)
        else:
            tcp_output.tcp_push(sk, flags, mss_now, sk.nonagle)
        if sk.sk_net.tracer.active:
            sk.sk_net.tracer.emit(sk.sk_net, "TCP_SENDMSG", len=copied)
        return copied
    finally:
        release_sock(sk)


def tcp_slow_start_after_idle_check(sk: TcpSock) -> None:
    """RFC 5681 §4.1 / RFC 7661: after an idle period longer than the RTO the congestion
    window no longer reflects the path: restart from the initial window (tcp_cwnd_restart)."""
    if not sk.sk_net.sysctl.tcp_slow_start_after_idle or sk.packets_out:
        return
    delta = kclock.now() - sk.lsndtime
    rto = sk.icsk_rto
    if delta <= rto:
        return
    restart_cwnd = min(TCP_INIT_CWND, sk.snd_cwnd)
    # tcp_current_ssthresh: at least three quarters of the window we had.
    sk.snd_ssthresh = max(sk.snd_ssthresh, (sk.snd_cwnd >> 1) + (sk.snd_cwnd >> 2))
    cwnd = sk.snd_cwnd
    delta -= rto
    while delta > 0 and cwnd > restart_cwnd:
        cwnd >>= 1
        delta -= rto
    sk.snd_cwnd = max(cwnd, restart_cwnd)
    sk.snd_cwnd_stamp = kclock.now()


def tcp_stream_alloc_skb(sk: TcpSock) -> SkBuff:
    """A new, empty skb at the tail of the write queue; tcp_skb_append fills it."""
    skb = SkBuff(bytearray(), 0, 0, SKB_TRUESIZE(MAX_TCP_HEADER))
    skb.sk = sk
    skb.cb = TcpSkbCb(sk.write_seq, sk.write_seq, 0x10)  # ACK
    if not sk.write_queue:
        tcp_chrono_start(sk, TCP_CHRONO_BUSY)
    sk.write_queue.append(skb)
    sk.sk_wmem_queued += skb.truesize
    return skb


def tcp_skb_append(sk: TcpSock, skb: SkBuff, data: memoryview) -> None:
    """Copy user bytes onto the end of a queued skb (its buffer grows; the charge grows with
    it, as page fragments are charged in Linux)."""
    n = len(data)
    buf = skb.buf
    if skb.tail != len(buf):  # the buffer is shared with segments already sent: copy first
        buf = skb.buf = bytearray(memoryview(buf)[skb.data:skb.tail])
        skb.data, skb.tail = 0, len(buf)
    buf += data
    skb.tail = skb.end = len(buf)
    skb.cb.end_seq = (skb.cb.end_seq + n) & 0xFFFFFFFF
    skb.truesize += n
    sk.sk_wmem_queued += n


# -- receive ------------------------------------------------------------------------------------

_SOCK_DONE_BIT: Final = 1 << SOCK_DONE


def tcp_recvmsg(sk: TcpSock, size: int, flags: int, acc: bytearray | None = None,
                control: list | None = None) -> tuple[bytes, Any, int, int]:
    """Copy received bytes. With MSG_WAITALL the bytes gather in `acc` across waits.
    MSG_ERRQUEUE reads the socket's error queue (inet_recv_error)."""
    if flags & MSG_ERRQUEUE:
        return ip_recv_error(sk, size, control)
    lock_sock(sk)
    try:
        if flags & MSG_OOB:
            raise KernelError(errno.EINVAL)
        if sk.sk_state == TCP_LISTEN:
            raise KernelError(errno.ENOTCONN)
        want = size - len(acc) if acc else size
        if flags & MSG_WAITALL:
            target = want
        else:
            target = sk.sk_rcvlowat if sk.sk_rcvlowat > 1 else 1
            if want < target:
                target = want
        avail = (sk.rcv_nxt - sk.copied_seq) & 0xFFFFFFFF  # tcp_inq, inline
        if avail and sk.sk_flags & _SOCK_DONE_BIT:
            avail -= 1  # the FIN is not data
        if avail == 0 or avail < target:
            done = (sk.sk_flags & _SOCK_DONE_BIT or sk.sk_shutdown & RCV_SHUTDOWN
                    or sk.sk_state == TCP_CLOSE)
        if avail == 0 or (avail < target and not done):
            if avail and flags & MSG_WAITALL and acc is not None and not flags & MSG_PEEK:
                acc.extend(_copy_out(sk, min(avail, want), False))
                tcp_output.tcp_cleanup_rbuf(sk, avail)
            if size == 0:
                return b"", None, 0, 0
            if avail == 0:
                err = sock_error(sk)
                if err:
                    if acc:
                        return bytes(acc), None, 0, len(acc)
                    raise KernelError(err)
                if done:
                    if sk.sk_state == TCP_CLOSE and not sk.sock_flag(SOCK_DONE) \
                            and not sk.sk_shutdown & RCV_SHUTDOWN:
                        raise KernelError(errno.ENOTCONN)
                    if sk.sock_flag(SOCK_DONE) and not flags & MSG_PEEK:
                        sk.copied_seq = sk.rcv_nxt  # the reader has seen the FIN
                    got = bytes(acc) if acc else b""
                    return got, None, 0, len(got)
            raise KernelError(errno.EAGAIN)
        n = min(avail, want)
        data = _copy_out(sk, n, bool(flags & MSG_PEEK))
        if acc:
            acc.extend(data)
            data = bytes(acc)
        if not flags & MSG_PEEK:
            tcp_rcv_space_adjust(sk)
            tcp_output.tcp_cleanup_rbuf(sk, n)
        return data, None, 0, len(data)
    finally:
        release_sock(sk)


def tcp_rcv_space_adjust(sk: TcpSock) -> None:
    """Receive-buffer auto-tuning (tcp_moderate_rcvbuf): once per RTT, size the receive
    buffer for twice what the reader consumed in that RTT, plus room for growth, up to
    tcp_rmem[2]; the window clamp follows."""
    now = kclock.now()
    rtt = (sk.srtt_us >> 3) / 1e6
    if not sk.srtt_us or now - sk.rcvq_time < rtt:
        return
    copied = (sk.copied_seq - sk.rcvq_seq) & 0xFFFFFFFF
    if copied > sk.rcv_space:
        if not sk.sk_userlocks & 2:  # SOCK_RCVBUF_LOCK: the application chose its size
            rcvwin = (copied << 1) + 16 * sk.advmss
            space = max(sk.rcv_space, 1)
            rcvwin += (rcvwin * (copied - space) // space) << 1
            rcvbuf = min(rcvwin * 2, sk.sk_net.sysctl.tcp_rmem[2])  # tcp_space_from_win
            if rcvbuf > sk.sk_rcvbuf:
                sk.sk_rcvbuf = rcvbuf
                sk.window_clamp = max(sk.window_clamp, tcp_output.tcp_win_from_space(rcvbuf))
        sk.rcv_space = copied
    sk.rcvq_seq = sk.copied_seq
    sk.rcvq_time = now


def tcp_inq(sk: TcpSock) -> int:
    """Bytes of data a read would return now (the FIN, if received, is not data)."""
    avail = (sk.rcv_nxt - sk.copied_seq) & 0xFFFFFFFF
    if avail and sk.sock_flag(SOCK_DONE):
        avail -= 1
    return avail


def _copy_out(sk: TcpSock, n: int, peek: bool) -> bytes:
    """Up to `n` bytes from the receive queue, copied once (views of the queued buffers,
    joined into the bytes returned)."""
    q = sk.sk_receive_queue
    seq = sk.copied_seq
    if q:
        # The common read: all of it from the first queued skb.
        skb = q[0]
        start = skb.data + ((seq - skb.cb.seq) & 0xFFFFFFFF)
        if start + n <= skb.tail:
            data = bytes(memoryview(skb.buf)[start:start + n])
            if not peek:
                sk.copied_seq = (seq + n) & 0xFFFFFFFF
                if start + n == skb.tail:
                    q.popleft()
                    consume_skb(skb)
            return data
    pieces: list[memoryview] = []
    got = 0
    i = 0
    while got < n and i < len(q):
        skb = q[i]
        payload = skb.tail - skb.data
        offset = (seq - skb.cb.seq) & 0xFFFFFFFF
        if offset < payload:
            take = min(payload - offset, n - got)
            start = skb.data + offset
            pieces.append(memoryview(skb.buf)[start:start + take])
            got += take
            seq = (seq + take) & 0xFFFFFFFF
            offset += take
        if offset < payload:
            break
        if peek:
            i += 1
        else:
            q.popleft()
            consume_skb(skb)
    if not peek:
        sk.copied_seq = seq
    return b"".join(pieces)


# -- poll and ioctl -------------------------------------------------------------------------------

def tcp_poll(sk: TcpSock) -> int:
    POLLIN, POLLOUT, POLLERR, POLLHUP, POLLRDNORM, POLLWRNORM, POLLRDHUP = (
        0x1, 0x4, 0x8, 0x10, 0x40, 0x100, 0x2000)
    state = sk.sk_state
    mask = 0
    if state == TCP_LISTEN:
        return POLLIN | POLLRDNORM if sk.icsk_accept_queue else 0
    if sk.sk_shutdown == SHUTDOWN_MASK or state == TCP_CLOSE:
        mask |= POLLHUP
    if sk.sk_shutdown & RCV_SHUTDOWN:
        mask |= POLLIN | POLLRDNORM | POLLRDHUP
    if state not in (TCP_SYN_SENT, TCP_SYN_RECV):
        if tcp_inq(sk) >= max(sk.sk_rcvlowat, 1):
            mask |= POLLIN | POLLRDNORM
        if not sk.sk_shutdown & SEND_SHUTDOWN:
            if sk_stream_is_writeable(sk):
                mask |= POLLOUT | POLLWRNORM
        else:
            mask |= POLLOUT | POLLWRNORM
    if sk.sk_err or sk.sk_error_queue:
        mask |= POLLERR
    return mask


def tcp_ioctl(sk: TcpSock, cmd: int) -> int:
    if cmd == SIOCINQ:
        if sk.sk_state == TCP_LISTEN:
            raise KernelError(errno.EINVAL)
        return tcp_inq(sk)
    if cmd == SIOCOUTQ:
        if sk.sk_state == TCP_LISTEN:
            raise KernelError(errno.EINVAL)
        return (sk.write_seq - sk.snd_una) & 0xFFFFFFFF
    raise KernelError(errno.ENOIOCTLCMD if hasattr(errno, "ENOIOCTLCMD") else errno.ENOTTY)


# -- close ----------------------------------------------------------------------------------------

# tcp_close_state: where close/shutdown(SHUT_WR) leads, and whether a FIN goes
_NEXT_STATE: Final = {
    TCP_ESTABLISHED: (TCP_FIN_WAIT1, True), TCP_SYN_SENT: (TCP_CLOSE, False),
    TCP_SYN_RECV: (TCP_FIN_WAIT1, True), TCP_FIN_WAIT1: (TCP_FIN_WAIT1, False),
    TCP_FIN_WAIT2: (TCP_FIN_WAIT2, False), TCP_CLOSING: (TCP_CLOSING, False),
    TCP_TIME_WAIT: (TCP_CLOSE, False), TCP_CLOSE: (TCP_CLOSE, False),
    TCP_CLOSE_WAIT: (TCP_LAST_ACK, True), TCP_LAST_ACK: (TCP_LAST_ACK, False),
    TCP_LISTEN: (TCP_CLOSE, False),
}


def tcp_close_state(sk: TcpSock) -> bool:
    new, send_fin = _NEXT_STATE[sk.sk_state]
    tcp_set_state(sk, new)
    return send_fin


def tcp_shutdown(sk: TcpSock, how: int) -> None:
    if not how & SEND_SHUTDOWN:
        return
    if sk.sk_state in (TCP_ESTABLISHED, TCP_SYN_SENT, TCP_SYN_RECV, TCP_CLOSE_WAIT):
        if tcp_close_state(sk):
            tcp_output.tcp_send_fin(sk)


def tcp_close(sk: TcpSock, timeout: int) -> None:
    """close(2): FIN (or RST when data would be lost), then the socket lives on as an orphan
    until the connection has finished closing."""
    lock_sock(sk)
    try:
        sk.sk_shutdown = SHUTDOWN_MASK
        net = sk.sk_net
        if sk.sk_state == TCP_LISTEN:
            tcp_set_state(sk, TCP_CLOSE)
            tcp_ipv4.inet_csk_listen_stop(sk)
            sk.sock_set_flag(SOCK_DEAD)
            return
        unread = tcp_inq(sk)
        while sk.sk_receive_queue:
            consume_skb(sk.sk_receive_queue.popleft())
        sk.sock_set_flag(SOCK_DEAD)
        if sk.sk_state == TCP_CLOSE:
            tcp_destroy(sk)
            return
        if unread > 0:
            # RFC 2525 2.17: unread data is lost, so the peer must know: reset.
            net.mib.tcpext_inc("TCPAbortOnClose")
            tcp_set_state(sk, TCP_CLOSE)
            tcp_output.tcp_send_active_reset(sk)
            tcp_done(sk)
        elif sk.sock_flag(SOCK_LINGER) and not sk.sk_lingertime:
            sk.sk_prot.disconnect(sk)
            net.mib.tcpext_inc("TCPAbortOnData")
            tcp_done(sk)
        elif tcp_close_state(sk):
            tcp_output.tcp_send_fin(sk)
        if sk.sk_state == TCP_FIN_WAIT2:
            tcp_timer.tcp_reset_keepalive_timer(sk, tcp_fin_time(sk))
        if sk.sk_state == TCP_CLOSE:
            tcp_destroy(sk)
    finally:
        release_sock(sk)


def tcp_fin_time(sk: TcpSock) -> float:
    return float(sk.linger2 or sk.sk_net.sysctl.tcp_fin_timeout)


def tcp_disconnect(sk: TcpSock) -> None:
    """Abort the connection (connect(AF_UNSPEC), SO_LINGER 0, listen_stop of children)."""
    old = sk.sk_state
    if old != TCP_CLOSE:
        tcp_set_state(sk, TCP_CLOSE)
    if old in (TCP_ESTABLISHED, TCP_CLOSE_WAIT, TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_SYN_RECV,
               TCP_CLOSING, TCP_LAST_ACK):
        tcp_output.tcp_send_active_reset(sk)
    elif old == TCP_SYN_SENT:
        sk.sk_err = errno.ECONNRESET
    tcp_timer.tcp_clear_xmit_timers(sk)
    tcp_purge_queues(sk)
    sk.inet_dport = 0
    sk.sk_shutdown = 0
    sk.sock_set_flag(SOCK_DONE, False)
    sk.sk_error_report(sk)


# These modules import this one: bound at the end, used as modules, so that either import
# order works and no call pays for an import statement.
from . import tcp_ipv4, tcp_output, tcp_timer, tcp_tso  # noqa: E402

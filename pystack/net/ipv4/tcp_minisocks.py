"""The small TCP sockets: request socks (SYN received) and TIME_WAIT socks, as
net/ipv4/tcp_minisocks.c and include/net/request_sock.h, inet_timewait_sock.h.

Read first: RFC 9293 §3.5 (the handshake), §3.6 (TIME-WAIT, 2*MSL), RFC 1337 (TIME-WAIT
assassination), net/ipv4/tcp_minisocks.c (tcp_check_req, tcp_create_openreq_child,
tcp_time_wait, tcp_timewait_state_process), net/ipv4/inet_connection_sock.c
(reqsk_timer_handler).

A request sock stands in the established hash for a connection whose SYN we answered; the
final ACK turns it into a full socket queued for accept(). A TIME_WAIT sock keeps the 4-tuple
for 60 s after a connection closed, re-ACKing a retransmitted FIN and holding the port.
"""

from __future__ import annotations

from typing import Final

from ...kernel.ktime import kclock
from ...kernel.timer import Timer
from ...uapi.tcp import TCPHDR_ACK, TCPHDR_FIN, TCPHDR_RST, TCPHDR_SYN
from ..core import drop_reason as dr
from ..core.drop_reason import consume_skb, kfree_skb
from ..core.skbuff import SkBuff
from .tcp import (TCP_RTO_MAX, TCP_TIMEWAIT_LEN, TcpSkbCb, TcpSock, after, before, tcp_done,
                  tcp_set_state)
from .tcp_states import (TCP_CLOSE, TCP_NEW_SYN_RECV, TCP_STATE_SYMBOLS, TCP_SYN_RECV,
                         TCP_TIME_WAIT)

MASK: Final = 0xFFFFFFFF

# what tcp_timewait_state_process decides
TCP_TW_SUCCESS: Final = 0
TCP_TW_RST: Final = 1
TCP_TW_ACK: Final = 2
TCP_TW_SYN: Final = 3


class RequestSock:
    """`struct tcp_request_sock`: a connection whose SYN we answered."""

    __slots__ = ("listener", "laddr", "lport", "raddr", "rport", "snt_isn", "rcv_isn", "mss",
                 "wscale_ok", "snd_wscale", "rcv_wscale", "sack_ok", "tstamp_ok", "ts_recent",
                 "tsoffset", "rcv_wnd", "window_clamp", "num_retrans", "timer", "acked",
                 "sk_state", "snt_synack", "dev_ifindex", "peer_mss", "cookie")

    def __init__(self, listener: TcpSock, laddr: int, lport: int, raddr: int, rport: int):
        self.listener = listener
        self.laddr = laddr
        self.lport = lport
        self.raddr = raddr
        self.rport = rport
        self.snt_isn = 0
        self.rcv_isn = 0
        self.mss = 536
        self.wscale_ok = False
        self.snd_wscale = 0
        self.rcv_wscale = 0
        self.sack_ok = False
        self.tstamp_ok = False
        self.ts_recent = 0
        self.tsoffset = 0
        self.rcv_wnd = 0
        self.window_clamp = 0
        self.num_retrans = 0
        self.timer = Timer(reqsk_timer_handler, self)
        self.acked = False
        self.sk_state = TCP_NEW_SYN_RECV
        self.snt_synack: float | None = None  # virtual time starts at 0.0: None is 'never'
        self.dev_ifindex = 0
        self.peer_mss = 536
        self.cookie = False  # answered with a SYN cookie: no state kept

    @property
    def key(self) -> tuple[int, int, int, int]:
        return (self.laddr, self.lport, self.raddr, self.rport)


def reqsk_queue_drop(req: RequestSock) -> None:
    listener = req.listener
    net = listener.sk_net
    listener.icsk_syn_queue.pop((req.raddr, req.rport), None)
    net.ipv4.tcp.hashinfo.ehash_remove(req.key, req)
    net.host.cpus[0].timers.del_timer(req.timer)


def reqsk_timer_handler(timer: Timer) -> None:
    """Retransmit the SYN-ACK with backoff, up to tcp_synack_retries, then give up."""
    req: RequestSock = timer.data
    listener = req.listener
    net = listener.sk_net
    if listener.sk_state != 10:  # TCP_LISTEN
        reqsk_queue_drop(req)
        return
    defer = listener.defer_accept
    max_retries = max(net.sysctl.tcp_synack_retries, defer)
    # syn_ack_recalc: while deferring after a bare ACK, wait without resending, and resend
    # once at the end of the deferring period as a last chance for data.
    if defer:
        expire = req.num_retrans >= max_retries and (not req.acked
                                                     or req.num_retrans >= defer)
        resend = not req.acked or req.num_retrans >= defer - 1
    else:
        expire = req.num_retrans >= max_retries
        resend = True
    if expire:
        reqsk_queue_drop(req)
        return
    req.num_retrans += 1
    if resend:
        net.mib.tcp["RetransSegs"] += 1
        net.mib.tcpext_inc("TCPSynRetrans")
        tcp_ipv4.tcp_v4_send_synack(listener, req)
    timeout = min(1.0 * (1 << req.num_retrans), TCP_RTO_MAX)
    net.host.cpus[0].timers.mod_timer(req.timer, kclock.now() + timeout)


def tcp_check_req(req: RequestSock, skb: SkBuff) -> TcpSock | None | bool:
    """A segment for a request sock. Returns the new child socket, None (consumed), or True
    (the caller must answer with a RST)."""
    cb: TcpSkbCb = skb.cb
    flags = cb.tcp_flags
    listener = req.listener
    net = listener.sk_net
    if cb.seq == req.rcv_isn and flags & TCPHDR_SYN and not flags & TCPHDR_RST:
        # A retransmitted SYN: the SYN-ACK was lost; send it again.
        tcp_ipv4.tcp_v4_send_synack(listener, req)
        consume_skb(skb)
        return None
    if flags & TCPHDR_ACK and cb.ack_seq != (req.snt_isn + 1) & MASK:
        return True  # an ACK for a SYN-ACK we never sent: embryonic reset
    if flags & TCPHDR_RST:
        reqsk_queue_drop(req)
        consume_skb(skb)
        return None
    if flags & TCPHDR_SYN:
        reqsk_queue_drop(req)
        return True
    if not flags & TCPHDR_ACK:
        consume_skb(skb)
        return None
    if before(cb.seq, (req.rcv_isn + 1) & MASK) or after(cb.seq, (req.rcv_isn + 1 + req.rcv_wnd)
                                                        & MASK):
        kfree_skb(skb, "TCP_INVALID_SEQUENCE")
        return None
    if req.num_retrans < listener.defer_accept and cb.end_seq == (req.rcv_isn + 1) & MASK:
        # TCP_DEFER_ACCEPT: a bare ACK completes nothing; the connection waits for data.
        req.acked = True
        net.mib.tcpext_inc("TCPDeferAcceptDrop")
        consume_skb(skb)
        return None
    child = tcp_ipv4.tcp_v4_syn_recv_sock(listener, req, skb)
    if child is None:
        if net.sysctl.tcp_abort_on_overflow:
            reqsk_queue_drop(req)
            return True
        req.acked = True  # the accept queue is full: keep the request, drop this ACK
        net.mib.tcpext_inc("ListenOverflows")
        net.mib.tcpext_inc("ListenDrops")
        kfree_skb(skb, "TCP_LISTEN_OVERFLOW")
        return None
    return child


# -- TIME_WAIT ----------------------------------------------------------------------------------

class TimeWaitSock:
    """`struct tcp_timewait_sock`: what is left of a closed connection for 2*MSL."""

    __slots__ = ("net", "key", "inet_num", "inet_rcv_saddr", "sk_bound_dev_if", "sk_reuse",
                 "sk_reuseport", "sk_uid", "sk_state", "substate", "snd_nxt", "rcv_nxt",
                 "rcv_wnd", "ts_recent", "ts_recent_stamp", "tsoffset", "tstamp_ok", "timer",
                 "inet_saddr", "inet_daddr", "inet_sport", "inet_dport", "rcv_wscale",
                 "sk_drops", "sk_rmem_alloc", "sk_wmem_alloc", "ttl_", "tos")

    def __init__(self, sk: TcpSock, substate: int):
        self.net = sk.sk_net
        self.key = (sk.inet_saddr, sk.inet_num, sk.inet_daddr, sk.inet_dport)
        self.inet_num = sk.inet_num
        self.inet_rcv_saddr = sk.inet_rcv_saddr
        self.inet_saddr = sk.inet_saddr
        self.inet_daddr = sk.inet_daddr
        self.inet_sport = sk.inet_sport
        self.inet_dport = sk.inet_dport
        self.sk_bound_dev_if = sk.sk_bound_dev_if
        self.sk_reuse = sk.sk_reuse
        self.sk_reuseport = sk.sk_reuseport
        self.sk_uid = sk.sk_uid
        self.sk_state = TCP_TIME_WAIT
        self.substate = substate
        self.snd_nxt = sk.snd_nxt
        self.rcv_nxt = sk.rcv_nxt
        self.rcv_wnd = sk.rcv_wnd >> sk.rcv_wscale
        self.rcv_wscale = sk.rcv_wscale
        self.ts_recent = sk.ts_recent
        self.ts_recent_stamp = sk.ts_recent_stamp
        self.tsoffset = sk.tsoffset
        self.tstamp_ok = sk.tstamp_ok
        self.sk_drops = 0
        self.sk_rmem_alloc = 0
        self.sk_wmem_alloc = 0
        self.ttl_ = sk.ttl()
        self.tos = sk.tos
        self.timer = Timer(_tw_timer_handler, self)

    def kill(self) -> None:
        hashinfo = self.net.ipv4.tcp.hashinfo
        hashinfo.ehash_remove(self.key, self)
        hashinfo.bind_remove(self.inet_num, self)
        self.net.host.cpus[0].timers.del_timer(self.timer)
        self.sk_state = TCP_CLOSE

    def schedule(self, timeo: float) -> None:
        self.net.host.cpus[0].timers.mod_timer(self.timer, kclock.now() + timeo)


def _tw_timer_handler(timer: Timer) -> None:
    tw: TimeWaitSock = timer.data
    tw.net.mib.tcpext_inc("TW")
    tw.kill()


def tcp_time_wait(sk: TcpSock, state: int, timeo: float) -> None:
    """Replace the socket by a TIME_WAIT sock for the rest of 2*MSL and close it."""
    net = sk.sk_net
    hashinfo = net.ipv4.tcp.hashinfo
    tw = TimeWaitSock(sk, state)
    key = tw.key
    if hashinfo.ehash.get(key) is sk:
        hashinfo.ehash[key] = tw
    hashinfo.bind_add(tw.inet_num, tw)
    tw.schedule(max(timeo, TCP_TIMEWAIT_LEN))
    if net.tracer.active:
        # Linux traces only the full socket's move to CLOSE (tcp_done, below); pystack also
        # shows the connection living on as a TIME-WAIT socket.
        net.tracer.emit(net, "sock:inet_sock_set_state", sport=sk.inet_num, dport=sk.inet_dport,
                        oldstate=TCP_STATE_SYMBOLS.get(sk.sk_state), newstate="TCP_TIME_WAIT")
    tcp_done(sk)


def tcp_timewait_state_process(tw: TimeWaitSock, skb: SkBuff) -> int:
    """What a segment for a TIME_WAIT connection does (RFC 9293 §3.10.7.4 for TIME-WAIT)."""
    cb: TcpSkbCb = skb.cb
    flags = cb.tcp_flags
    if flags & TCPHDR_RST:
        # TIME_WAIT assassination (RFC 1337): Linux (tcp_rfc1337 = 0) lets a RST at exactly
        # rcv_nxt end TIME_WAIT, and ignores any other.
        if cb.seq == tw.rcv_nxt:
            tw.kill()
        return TCP_TW_SUCCESS
    newer_ts = (tw.tstamp_ok and cb.opts is not None and cb.opts.saw_tstamp
                and ((tw.ts_recent - cb.opts.rcv_tsval) & MASK) >= 0x80000000)
    if flags & TCPHDR_SYN and not flags & TCPHDR_ACK and (after(cb.seq, tw.rcv_nxt) or newer_ts):
        # A new incarnation: the listener may take it, with an ISN above the old one's.
        cb.tw_isn = (tw.snd_nxt + 65535 + 2) & MASK or 1
        return TCP_TW_SYN
    if flags & TCPHDR_FIN or cb.end_seq != cb.seq:
        tw.schedule(TCP_TIMEWAIT_LEN)  # a retransmitted FIN: our last ACK was lost
        return TCP_TW_ACK
    if flags & TCPHDR_ACK:
        if cb.seq == tw.rcv_nxt or not after(cb.seq, tw.rcv_nxt):
            return TCP_TW_SUCCESS
        return TCP_TW_ACK
    return TCP_TW_SUCCESS


__all__ = ["RequestSock", "TimeWaitSock", "tcp_check_req", "tcp_time_wait",
           "tcp_timewait_state_process", "TCP_SYN_RECV", "TCPHDR_FIN", "tcp_set_state",
           "dr"]


# These modules import this one: bound at the end, used as modules, so that either import
# order works and no call pays for an import statement.
from . import tcp_ipv4  # noqa: E402

"""TCP's timers, as net/ipv4/tcp_timer.c and include/net/inet_connection_sock.h.

Read first: RFC 6298 (RTO and backoff), RFC 9293 §3.8.3 (retransmission limits), RFC 1122
§4.2.3.5/§4.2.3.6 (giving up; keep-alives), net/ipv4/tcp_timer.c (tcp_write_timeout,
retransmits_timed_out, tcp_model_timeout, tcp_retransmit_timer, tcp_probe_timer,
tcp_delack_timer_handler, tcp_keepalive_timer).

A timer is a deadline and a handler on the host's timer base; handlers run in TIMER_SOFTIRQ.
The retransmit timer multiplexes RTO and zero-window probe (`icsk_pending`), as in Linux.
"""

from __future__ import annotations

from typing import Final

import errno

from ...kernel.ktime import kclock
from ...kernel.timer import Timer
from ..core.sock import SOCK_DEAD, SOCK_KEEPOPEN
from .tcp import (TCP_ATO_MIN, TCP_CA_Loss, TCP_CA_Open, TCP_RTO_MAX, TCP_RTO_MIN,
                  TCP_TIMEOUT_INIT, TCPCB_LOST, TCPCB_SACKED_ACKED, TCPCB_SACKED_RETRANS,
                  TcpSock, after, tcp_done)
from .tcp_states import (TCP_CLOSE, TCP_ESTABLISHED, TCP_FIN_WAIT2, TCP_LISTEN, TCP_SYN_RECV,
                         TCP_SYN_SENT, TCP_CLOSE_WAIT)

ICSK_TIME_RETRANS: Final = 1
ICSK_TIME_DACK: Final = 2
ICSK_TIME_PROBE0: Final = 3
ICSK_TIME_REO_TIMEOUT: Final = 4
ICSK_TIME_LOSS_PROBE: Final = 5
TCP_TIMEOUT_MIN: Final = 0.002  # two jiffies

ICSK_ACK_SCHED: Final = 1
ICSK_ACK_TIMER: Final = 2
ICSK_ACK_PUSHED: Final = 4
ICSK_ACK_PUSHED2: Final = 8
ICSK_ACK_NOW: Final = 16

TCP_ORPHAN_RETRIES: Final = 8


def _base(sk: TcpSock):
    return sk.sk_net.host.cpus[0].timers


def inet_csk_reset_xmit_timer(sk: TcpSock, what: int, when: float) -> None:
    timer = sk.retransmit_timer
    if timer is None:
        timer = sk.retransmit_timer = Timer(tcp_write_timer, sk, _base(sk))
    sk.icsk_pending = what
    timer.mod(kclock.now() + (when if when < TCP_RTO_MAX else TCP_RTO_MAX))


def inet_csk_clear_xmit_timer(sk: TcpSock) -> None:
    sk.icsk_pending = 0
    if sk.retransmit_timer is not None:
        sk.retransmit_timer.delete()


def inet_csk_reset_delack(sk: TcpSock, at: float) -> None:
    timer = sk.delack_timer
    if timer is None:
        timer = sk.delack_timer = Timer(tcp_delack_timer, sk, _base(sk))
    sk.icsk_ack_pending |= ICSK_ACK_SCHED | ICSK_ACK_TIMER
    timer.mod(at)


def inet_csk_clear_delack(sk: TcpSock) -> None:
    sk.icsk_ack_pending = 0
    if sk.delack_timer is not None:
        sk.delack_timer.delete()


def tcp_reset_keepalive_timer(sk: TcpSock, delta: float) -> None:
    timer = sk.keepalive_timer
    if timer is None:
        timer = sk.keepalive_timer = Timer(tcp_keepalive_timer, sk, _base(sk))
    timer.mod(kclock.now() + delta)


def tcp_delete_keepalive_timer(sk: TcpSock) -> None:
    if sk.keepalive_timer is not None:
        sk.keepalive_timer.delete()


def tcp_clear_xmit_timers(sk: TcpSock) -> None:
    inet_csk_clear_xmit_timer(sk)
    inet_csk_clear_delack(sk)
    tcp_delete_keepalive_timer(sk)


def tcp_rto_delta(sk: TcpSock) -> float:
    """How far in the future the RTO of the oldest outstanding segment lies."""
    if not sk.rtx_queue:
        return sk.icsk_rto
    return sk.rtx_queue[0].cb.when + sk.icsk_rto - kclock.now()


def tcp_rearm_rto(sk: TcpSock, only_if_idle: bool = False) -> None:
    """Restart the RTO from now, or stop it when nothing is in flight."""
    if not sk.packets_out:
        if sk.icsk_pending in (ICSK_TIME_RETRANS, ICSK_TIME_LOSS_PROBE, ICSK_TIME_REO_TIMEOUT):
            inet_csk_clear_xmit_timer(sk)
        return
    if only_if_idle and sk.icsk_pending == ICSK_TIME_RETRANS and sk.retransmit_timer.pending():
        return
    rto = sk.icsk_rto
    if sk.icsk_pending in (ICSK_TIME_LOSS_PROBE, ICSK_TIME_REO_TIMEOUT):
        rto = max(tcp_rto_delta(sk), 0.000001)  # a probe or RACK replaced it: keep its deadline
    inet_csk_reset_xmit_timer(sk, ICSK_TIME_RETRANS, rto)


def tcp_schedule_loss_probe(sk: TcpSock, advancing_rto: bool) -> bool:
    """RFC 8985 §7 (TLP): probe the tail after about two RTTs, before the RTO would fire,
    for SACK connections in the Open state that are cwnd- or application-limited."""
    timeout = tcp_loss_probe_timeout(sk, advancing_rto)
    if timeout is None:
        return False
    inet_csk_reset_xmit_timer(sk, ICSK_TIME_LOSS_PROBE, timeout)
    return True


def tcp_loss_probe_timeout(sk: TcpSock, advancing_rto: bool) -> float | None:
    """When tcp_schedule_loss_probe would fire the probe (None: it would not schedule one)."""
    if (not sk.packets_out or not sk.sack_ok or sk.icsk_ca_state != TCP_CA_Open
            or sk.sk_net.sysctl.tcp_early_retrans not in (3, 4)):
        return None
    if sk.snd_cwnd > sk.packets_in_flight() and sk.write_queue:
        return None
    if sk.srtt_us:
        timeout = (sk.srtt_us >> 2) / 1e6  # 2 * SRTT
        timeout += TCP_RTO_MIN if sk.packets_out == 1 else TCP_TIMEOUT_MIN
    else:
        timeout = TCP_TIMEOUT_INIT
    rto_delta = sk.icsk_rto if advancing_rto else tcp_rto_delta(sk)
    if rto_delta > 0:
        timeout = min(timeout, rto_delta)
    return timeout


def tcp_set_xmit_timer(sk: TcpSock) -> None:
    if not tcp_schedule_loss_probe(sk, True):
        tcp_rearm_rto(sk)


def tcp_send_loss_probe(sk: TcpSock) -> None:
    """The probe: new data if the window allows, else the last segment sent again."""
    mss = tcp_tso.tcp_current_mss(sk)
    sent = False
    if sk.write_queue and tcp_tso.tcp_snd_wnd_test(sk, sk.write_queue[0].cb.end_seq):
        before_out = sk.packets_out
        tcp_output.tcp_write_xmit(sk, mss, 1, push_one=2)  # TCP_NAGLE_OFF; past cwnd
        sent = sk.packets_out > before_out
    elif sk.rtx_queue:
        skb = sk.rtx_queue[-1]
        sent = tcp_output.tcp_retransmit_skb(sk, skb, count_out=False) == 0
    if sent:
        sk.sk_net.mib.tcpext_inc("TCPLossProbes")
        sk.icsk_pending = 0  # the RTO restarts from now
    tcp_rearm_rto(sk)


def tcp_check_probe_timer(sk: TcpSock) -> None:
    if not sk.packets_out and not sk.icsk_pending:
        inet_csk_reset_xmit_timer(sk, ICSK_TIME_PROBE0, _probe0_when(sk))


def _probe0_when(sk: TcpSock) -> float:
    return min(max(sk.icsk_rto, TCP_RTO_MIN) * (1 << min(sk.icsk_backoff, 16)), TCP_RTO_MAX)


# -- giving up -----------------------------------------------------------------------------------

def tcp_model_timeout(boundary: int, rto_base: float) -> float:
    """How long `boundary` retransmissions take with exponential backoff from rto_base."""
    thresh = int(TCP_RTO_MAX / rto_base).bit_length() - 1
    if boundary <= thresh:
        return ((2 << boundary) - 1) * rto_base
    return ((2 << thresh) - 1) * rto_base + (boundary - thresh) * TCP_RTO_MAX


def retransmits_timed_out(sk: TcpSock, boundary: int, rto_base: float) -> bool:
    if not sk.icsk_retransmits:
        return False
    start = sk.retrans_stamp or kclock.now()
    return kclock.now() - start >= tcp_model_timeout(boundary, rto_base) - 1e-9


def tcp_write_err(sk: TcpSock) -> None:
    sk.sk_err = sk.sk_err_soft or errno.ETIMEDOUT
    sk.sk_error_report(sk)
    sk.sk_net.mib.tcpext_inc("TCPAbortOnTimeout")
    tcp_done(sk)


def tcp_write_timeout(sk: TcpSock) -> bool:
    """True (and the connection is closed with ETIMEDOUT) if retransmission must stop."""
    s = sk.sk_net.sysctl
    now = kclock.now()
    if sk.sk_state in (TCP_SYN_SENT, TCP_SYN_RECV):
        retry_until = sk.icsk_syn_retries or s.tcp_syn_retries
        expired = sk.icsk_retransmits >= retry_until
    else:
        retry_until = s.tcp_retries2
        if sk.sock_flag(SOCK_DEAD):
            retry_until = TCP_ORPHAN_RETRIES
        if sk.icsk_user_timeout:
            # retransmits_timed_out: a user timeout replaces the tcp_retries2 model.
            expired = bool(sk.icsk_retransmits and sk.retrans_stamp and
                           now - sk.retrans_stamp >= sk.icsk_user_timeout / 1000.0 - 1e-9)
        else:
            expired = retransmits_timed_out(sk, retry_until, TCP_RTO_MIN)
    if expired:
        tcp_write_err(sk)
        return True
    return False


# -- handlers ------------------------------------------------------------------------------------

def tcp_write_timer(timer: Timer) -> None:
    sk: TcpSock = timer.data  # None: the socket was destroyed (tcp_destroy)
    if sk is None or sk.sk_state in (TCP_CLOSE, TCP_LISTEN) or not sk.icsk_pending:
        return
    what = sk.icsk_pending
    sk.icsk_pending = 0
    if what == ICSK_TIME_RETRANS:
        tcp_retransmit_timer(sk)
    elif what == ICSK_TIME_LOSS_PROBE:
        tcp_send_loss_probe(sk)
    elif what == ICSK_TIME_PROBE0:
        tcp_probe_timer(sk)
    elif what == ICSK_TIME_REO_TIMEOUT:
        tcp_recovery.tcp_rack_reo_timeout(sk)


def tcp_enter_loss(sk: TcpSock) -> None:
    """RTO expired: everything in flight is presumed lost; cwnd drops to one segment."""
    ca = sk.icsk_ca_ops
    if sk.icsk_ca_state < TCP_CA_Loss or not after(sk.high_seq, sk.snd_una) or (
            sk.icsk_ca_state == TCP_CA_Loss and not sk.icsk_retransmits):
        sk.prior_ssthresh = sk.snd_ssthresh
        sk.prior_cwnd = sk.snd_cwnd
        sk.snd_ssthresh = ca.ssthresh(sk)
        ca.on_loss(sk)
        sk.undo_marker = sk.snd_una
    sk.snd_cwnd_cnt = 0
    sk.retrans_out = 0
    sk.lost_out = 0
    for skb in sk.rtx_queue:
        cb = skb.cb
        cb.sacked &= ~TCPCB_SACKED_RETRANS
        if not cb.sacked & TCPCB_SACKED_ACKED:
            cb.sacked |= TCPCB_LOST
            sk.lost_out += 1
    if not sk.sack_ok:
        sk.sacked_out = 0  # duplicate ACKs counted without SACK tell nothing more
    sk.snd_cwnd = sk.packets_in_flight() + 1
    sk.icsk_ca_state = TCP_CA_Loss
    sk.high_seq = sk.snd_nxt
    sk.dup_acks = 0


def tcp_retransmit_timer(sk: TcpSock) -> None:
    net = sk.sk_net
    if not sk.packets_out or not sk.rtx_queue:
        return
    if tcp_write_timeout(sk):
        return
    if not sk.icsk_retransmits:
        net.mib.tcpext_inc("TCPTimeouts")
    if sk.sk_state not in (TCP_SYN_SENT, TCP_SYN_RECV):
        tcp_enter_loss(sk)
    sk.icsk_retransmits += 1
    head = sk.rtx_queue[0]
    tcp_output.tcp_retransmit_skb(sk, head)
    sk.icsk_backoff += 1
    sk.icsk_rto = min(sk.icsk_rto * 2, TCP_RTO_MAX)
    rto = sk.icsk_rto
    if sk.icsk_user_timeout and sk.retrans_stamp:
        left = sk.icsk_user_timeout / 1000.0 - (kclock.now() - sk.retrans_stamp)
        rto = max(min(rto, left), 0.001)
    inet_csk_reset_xmit_timer(sk, ICSK_TIME_RETRANS, rto)


def tcp_probe_timer(sk: TcpSock) -> None:
    """The persist timer: probe a closed window. TCP_USER_TIMEOUT bounds how long the window
    may stay shut (icsk_probes_tstamp), even while the peer answers every probe."""
    if sk.packets_out or not sk.write_queue:
        sk.icsk_probes_out = 0
        sk.icsk_probes_tstamp = -1.0
        return
    now = kclock.now()
    if sk.icsk_probes_tstamp < 0:
        sk.icsk_probes_tstamp = now
    elif sk.icsk_user_timeout and now - sk.icsk_probes_tstamp >= sk.icsk_user_timeout / 1000.0:
        tcp_write_err(sk)
        return
    max_probes = sk.sk_net.sysctl.tcp_retries2
    if sk.sock_flag(SOCK_DEAD):
        max_probes = TCP_ORPHAN_RETRIES
    if sk.icsk_probes_out >= max_probes:
        tcp_write_err(sk)
        return
    tcp_output.tcp_send_probe0(sk)


def tcp_clamp_probe0_to_user_timeout(sk: TcpSock, when: float) -> float:
    """A probe timer never runs past what TCP_USER_TIMEOUT leaves."""
    if not sk.icsk_user_timeout or sk.icsk_probes_tstamp < 0:
        return when
    remaining = sk.icsk_user_timeout / 1000.0 - (kclock.now() - sk.icsk_probes_tstamp)
    return min(max(remaining, TCP_TIMEOUT_MIN), when)


def tcp_delack_timer(timer: Timer) -> None:
    sk: TcpSock = timer.data
    if sk is None or sk.sk_state in (TCP_CLOSE, TCP_LISTEN) or not \
            sk.icsk_ack_pending & ICSK_ACK_TIMER:
        return
    sk.icsk_ack_pending &= ~ICSK_ACK_TIMER
    if sk.icsk_ack_pending & ICSK_ACK_SCHED:
        if not sk.icsk_ack_pingpong:
            # The delayed ACK was not piggybacked: back off ato, leave interactive mode.
            sk.icsk_ack_ato = min(sk.icsk_ack_ato * 2, sk.icsk_rto)
        else:
            sk.icsk_ack_pingpong = 0
            sk.icsk_ack_ato = TCP_ATO_MIN
        sk.sk_net.mib.tcpext_inc("DelayedACKs")
        tcp_output.tcp_send_ack(sk)


def tcp_keepalive_timer(timer: Timer) -> None:
    """Keep-alive probes for idle connections; the FIN_WAIT2 timeout of orphans."""
    sk: TcpSock = timer.data
    if sk is None:
        return  # the socket was destroyed (tcp_destroy)
    state = sk.sk_state
    if state in (TCP_LISTEN, TCP_CLOSE):
        return
    if state == TCP_FIN_WAIT2 and sk.sock_flag(SOCK_DEAD):
        tcp_done(sk)
        return
    if not sk.sock_flag(SOCK_KEEPOPEN) or state not in (TCP_ESTABLISHED, TCP_CLOSE_WAIT,
                                                         TCP_FIN_WAIT2):
        return
    s = sk.sk_net.sysctl
    ktime = sk.keepalive_time or s.tcp_keepalive_time
    kintvl = sk.keepalive_intvl or s.tcp_keepalive_intvl
    kprobes = sk.keepalive_probes or s.tcp_keepalive_probes
    if sk.packets_out or sk.write_queue:
        tcp_reset_keepalive_timer(sk, ktime)
        return
    now = kclock.now()
    idle = now - max(sk.rcv_tstamp, sk.icsk_ack_lrcvtime)
    if idle >= ktime - 1e-9:
        if (sk.icsk_user_timeout and idle >= sk.icsk_user_timeout / 1000.0
                and sk.icsk_probes_out > 0) or (
                not sk.icsk_user_timeout and sk.icsk_probes_out >= kprobes):
            tcp_output.tcp_send_active_reset(sk)
            tcp_write_err(sk)
            return
        tcp_output.tcp_write_wakeup(sk)
        sk.icsk_probes_out += 1
        tcp_reset_keepalive_timer(sk, kintvl)
        return
    tcp_reset_keepalive_timer(sk, ktime - idle)


__all__ = ["tcp_rearm_rto", "inet_csk_reset_xmit_timer", "tcp_clear_xmit_timers",
           "TCP_TIMEOUT_INIT", "TCP_CA_Open"]


# These modules import this one: bound at the end, used as modules, so that either import
# order works and no call pays for an import statement.
from . import tcp_output, tcp_recovery, tcp_tso  # noqa: E402

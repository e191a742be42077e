"""TCP loss detection and recovery, the part of net/ipv4/tcp_input.c that runs after an ACK.

Read first: RFC 2018 + RFC 6675 (SACK and SACK-based loss detection), RFC 2883 (D-SACK),
RFC 5681 + RFC 6582 (fast retransmit, NewReno partial ACKs), RFC 6937 (Proportional Rate
Reduction), net/ipv4/tcp_input.c (tcp_sacktag_write_queue, tcp_check_dsack,
tcp_mark_head_lost, tcp_enter_recovery, tcp_fastretrans_alert, tcp_cwnd_reduction).

tcp_input.tcp_ack calls in here; the FLAG_* bits it accumulates live here because both
halves read them. RACK (RFC 8985, net/ipv4/tcp_recovery.c; on with net.ipv4.tcp_recovery=1,
Linux's default) marks losses on SACK connections by time: a segment sent before one the
peer has since received is lost once an RTT and a reordering window have passed, and a
timer (ICSK_TIME_REO_TIMEOUT) waits for the rest. Without SACK, NewReno's duplicate-ACK rule
marks the head lost. Not built yet: undo and F-RTO.
"""

from __future__ import annotations

from typing import Final

from ...kernel.ktime import kclock
from .tcp import (TCP_CA_Disorder, TCP_CA_Loss, TCP_CA_Open, TCP_CA_Recovery,
                  TCPCB_EVER_RETRANS, TCPCB_LOST, TCPCB_SACKED_ACKED, TCPCB_SACKED_RETRANS,
                  TcpSkbCb, TcpSock, after, before)
from .tcp_output import tcp_xmit_retransmit_queue
from .tcp_timer import (ICSK_TIME_REO_TIMEOUT, ICSK_TIME_RETRANS, TCP_TIMEOUT_MIN,
                        inet_csk_reset_xmit_timer, tcp_rearm_rto)

# tcp_ack flags
FLAG_DATA: Final = 0x01
FLAG_WIN_UPDATE: Final = 0x02
FLAG_DATA_ACKED: Final = 0x04
FLAG_RETRANS_DATA_ACKED: Final = 0x08
FLAG_SYN_ACKED: Final = 0x10
FLAG_DATA_SACKED: Final = 0x20
FLAG_ECE: Final = 0x40
FLAG_SLOWPATH: Final = 0x100
FLAG_SND_UNA_ADVANCED: Final = 0x400
FLAG_DSACKING_ACK: Final = 0x800
FLAG_ACKED: Final = FLAG_DATA_ACKED | FLAG_SYN_ACKED


def tcp_check_dsack(sacks: list[tuple[int, int]], ack: int) -> bool:
    """RFC 2883: the first block is a D-SACK if it lies below the ACK or inside the second."""
    start0, end0 = sacks[0]
    if before(start0, ack):
        return True
    if len(sacks) > 1:
        start1, end1 = sacks[1]
        return not after(end0, end1) and not before(start0, start1)
    return False


def tcp_sacktag_write_queue(sk: TcpSock, sacks: list[tuple[int, int]], ack: int) -> int:
    """Mark segments the peer SACKed (and count a D-SACK)."""
    flag = 0
    if tcp_check_dsack(sacks, ack):
        flag |= FLAG_DSACKING_ACK
        sk.dsack_dups += 1
        sk.sk_net.mib.tcpext_inc("TCPDSACKRecv")
        sacks = sacks[1:]
    fack = _highest_sacked(sk)
    low = None
    for start, end in sacks:
        if not after(end, start) or not after(end, sk.snd_una) or after(end, sk.snd_nxt):
            continue
        for skb in sk.rtx_queue:
            cb: TcpSkbCb = skb.cb
            if before(cb.seq, start) or after(cb.end_seq, end):
                continue
            if not cb.sacked & TCPCB_SACKED_ACKED:
                sacked = cb.sacked
                if sacked & TCPCB_SACKED_RETRANS:
                    cb.sacked &= ~TCPCB_SACKED_RETRANS
                    sk.retrans_out -= 1
                if sacked & TCPCB_LOST:
                    cb.sacked &= ~TCPCB_LOST
                    sk.lost_out -= 1
                cb.sacked |= TCPCB_SACKED_ACKED
                sk.sacked_out += 1
                flag |= FLAG_DATA_SACKED
                tcp_rack_advance(sk, sacked, cb.end_seq, cb.when)
                if not sacked & TCPCB_EVER_RETRANS and (low is None or before(cb.seq, low)):
                    low = cb.seq
    if low is not None and fack is not None:
        tcp_check_sack_reordering(sk, low, fack)
    return flag


def _highest_sacked(sk: TcpSock) -> int | None:
    for skb in reversed(sk.rtx_queue):
        if skb.cb.sacked & TCPCB_SACKED_ACKED:
            return skb.cb.end_seq
    return None


def tcp_check_sack_reordering(sk: TcpSock, low_seq: int, fack: int) -> None:
    """A segment below the highest SACKed one arrived late: reordering. The dupthresh
    (`reordering`) grows to how far it was overtaken, in segments."""
    if not before(low_seq, fack):
        return
    mss = sk.mss_cache
    metric = (fack - low_seq) & 0xFFFFFFFF
    if mss and metric > sk.reordering * mss:
        sk.reordering = min(-(-metric // mss), sk.sk_net.sysctl.tcp_max_reordering)
    sk.reord_seen += 1
    sk.sk_net.mib.tcpext_inc("TCPSACKReorder")


# -- RACK -------------------------------------------------------------------------------------

def tcp_is_rack(sk: TcpSock) -> bool:
    return bool(sk.sk_net.sysctl.tcp_recovery & 1) and sk.sack_ok


def _sent_after(t1: float, t2: float, seq1: int, seq2: int) -> bool:
    return t1 > t2 or (t1 == t2 and after(seq1, seq2))


def tcp_rack_advance(sk: TcpSock, sacked: int, end_seq: int, xmit_time: float,
                     now: float | None = None) -> None:
    """A segment was delivered (ACKed or SACKed): remember it if it was sent the latest.
    `now`, when the caller has read the clock already."""
    rtt_us = int(((kclock.now() if now is None else now) - xmit_time) * 1e6)
    if sacked & TCPCB_EVER_RETRANS and sk.min_rtt_us and rtt_us < sk.min_rtt_us:
        return  # too quick for the retransmission: the original arrived (ambiguous)
    sk.rack_advanced = True
    sk.rack_rtt_us = rtt_us
    rack_mstamp = sk.rack_mstamp
    if xmit_time > rack_mstamp or (xmit_time == rack_mstamp  # _sent_after, inline
                                   and after(end_seq, sk.rack_end_seq)):
        sk.rack_mstamp = xmit_time
        sk.rack_end_seq = end_seq


def tcp_rack_reo_wnd(sk: TcpSock) -> int:
    """The reordering window (µs): none while recovering or past dupthresh SACKs, until
    reordering has been seen; then a quarter of min_rtt, at most the smoothed RTT."""
    if not sk.reord_seen:
        if sk.icsk_ca_state >= TCP_CA_Recovery:
            return 0
        if sk.sacked_out >= sk.reordering:
            return 0
    return min((sk.min_rtt_us >> 2), sk.srtt_us >> 3)


def tcp_rack_detect_loss(sk: TcpSock) -> int:
    """Mark lost every segment sent before the RACK segment whose RTT plus the reordering
    window has passed; return how long (µs) until the next one would be (0: none)."""
    reo_wnd = tcp_rack_reo_wnd(sk)
    now = kclock.now()
    timeout = 0
    for skb in sk.rtx_queue:
        cb: TcpSkbCb = skb.cb
        sacked = cb.sacked
        if sacked & TCPCB_SACKED_ACKED or (sacked & TCPCB_LOST
                                           and not sacked & TCPCB_SACKED_RETRANS):
            continue
        if not _sent_after(sk.rack_mstamp, cb.when, sk.rack_end_seq, cb.end_seq):
            continue
        remaining = sk.rack_rtt_us + reo_wnd - int((now - cb.when) * 1e6)
        if remaining <= 0:
            tcp_mark_skb_lost(sk, skb)
        else:
            timeout = max(timeout, remaining)
    return timeout


def tcp_mark_skb_lost(sk: TcpSock, skb) -> None:
    cb: TcpSkbCb = skb.cb
    if cb.sacked & TCPCB_SACKED_ACKED:
        return
    if cb.sacked & TCPCB_LOST:
        if cb.sacked & TCPCB_SACKED_RETRANS:
            cb.sacked &= ~TCPCB_SACKED_RETRANS  # a retransmission lost again
            sk.retrans_out -= 1
            sk.sk_net.mib.tcpext_inc("TCPLostRetransmit")
    else:
        cb.sacked |= TCPCB_LOST
        sk.lost_out += 1


def _arm_reo_timer(sk: TcpSock, timeout_us: int) -> None:
    inet_csk_reset_xmit_timer(sk, ICSK_TIME_REO_TIMEOUT, timeout_us / 1e6 + TCP_TIMEOUT_MIN)


def tcp_rack_mark_lost(sk: TcpSock) -> bool:
    """After an ACK that delivered something: mark what RACK deems lost, and arm the
    reordering timer for what it will deem lost later. True if that timer was armed."""
    if not sk.rack_advanced:
        return False
    sk.rack_advanced = False
    timeout = tcp_rack_detect_loss(sk)
    if timeout:
        _arm_reo_timer(sk, timeout)
    return bool(timeout)


def tcp_rack_reo_timeout(sk: TcpSock) -> None:
    """The reordering timer: what it waited for is lost now; recover and retransmit."""
    prior_inflight = sk.packets_in_flight()
    timeout = tcp_rack_detect_loss(sk)
    if prior_inflight != sk.packets_in_flight():
        if sk.icsk_ca_state != TCP_CA_Recovery:
            tcp_enter_recovery(sk)
            tcp_cwnd_reduction(sk, 1, 0)
        tcp_xmit_retransmit_queue(sk)
    if timeout:
        _arm_reo_timer(sk, timeout)
    elif sk.icsk_pending != ICSK_TIME_RETRANS:
        tcp_rearm_rto(sk)


def tcp_mark_head_lost(sk: TcpSock) -> None:
    """The first unacknowledged segment is lost (unless the peer already SACKed it)."""
    head = sk.rtx_queue[0] if sk.rtx_queue else None
    if head is not None and not head.cb.sacked & (TCPCB_LOST | TCPCB_SACKED_ACKED):
        head.cb.sacked |= TCPCB_LOST
        sk.lost_out += 1


def tcp_mark_lost(sk: TcpSock) -> None:
    """RFC 6675 IsLost: a segment with `reordering` SACKed segments above it is lost; with
    no SACK (NewReno), the first unacked segment is."""
    if not sk.sack_ok or not sk.sacked_out:
        tcp_mark_head_lost(sk)
        return
    sacked_above = 0
    for skb in reversed(sk.rtx_queue):
        cb: TcpSkbCb = skb.cb
        if cb.sacked & TCPCB_SACKED_ACKED:
            sacked_above += 1
        elif sacked_above >= sk.reordering and not cb.sacked & TCPCB_LOST:
            cb.sacked |= TCPCB_LOST
            sk.lost_out += 1


# -- NewReno's stand-in for SACK: each duplicate ACK counts as one segment delivered ---------

def tcp_limit_reno_sacked(sk: TcpSock) -> None:
    holes = min(max(sk.lost_out, 1), sk.packets_out)
    if sk.sacked_out + holes > sk.packets_out:
        sk.sacked_out = max(sk.packets_out - holes, 0)


def tcp_add_reno_sack(sk: TcpSock) -> None:
    """A duplicate ACK without SACK: one more segment has left the network (so limited
    transmit, RFC 3042, may send a new one: packets_in_flight fell)."""
    sk.sacked_out += 1
    tcp_limit_reno_sacked(sk)


def tcp_remove_reno_sacks(sk: TcpSock, acked: int) -> int:
    """A cumulative ACK: one segment filled the hole, the rest were counted by duplicate
    ACKs already. Returns how many it newly delivered."""
    delivered = max(acked - sk.sacked_out, 1)
    sk.sacked_out = 0 if acked - 1 >= sk.sacked_out else sk.sacked_out - (acked - 1)
    tcp_limit_reno_sacked(sk)
    return delivered


def tcp_enter_recovery(sk: TcpSock) -> None:
    ca = sk.icsk_ca_ops
    sk.prior_ssthresh = sk.snd_ssthresh
    sk.prior_cwnd = sk.snd_cwnd  # tcp_init_cwnd_reduction
    sk.prr_delivered = 0
    sk.prr_out = 0
    sk.snd_ssthresh = ca.ssthresh(sk)
    sk.undo_marker = sk.snd_una
    sk.high_seq = sk.snd_nxt
    sk.icsk_ca_state = TCP_CA_Recovery
    sk.sk_net.mib.tcpext_inc("TCPSackRecovery" if sk.sack_ok and sk.sacked_out
                             else "TCPRenoRecovery")


def tcp_fastretrans_alert(sk: TcpSock, ack: int, flag: int, is_dupack: bool) -> None:
    """Loss recovery on duplicate ACKs: fast retransmit and NewReno/SACK recovery."""
    state = sk.icsk_ca_state
    if state == TCP_CA_Recovery:
        if not before(ack, sk.high_seq):
            # Full ACK: recovery is over; cwnd settles at ssthresh (tcp_end_cwnd_reduction).
            if sk.snd_ssthresh < 0x7FFFFFFF:
                sk.snd_cwnd = sk.snd_ssthresh
            sk.icsk_ca_state = TCP_CA_Open
            sk.dup_acks = 0
            return
        if tcp_is_rack(sk):
            tcp_rack_mark_lost(sk)
        elif flag & FLAG_SND_UNA_ADVANCED:
            # Partial ACK (RFC 6582): the next hole is lost too; deflate by what was acked.
            tcp_mark_lost(sk)
            tcp_mark_head_lost(sk)
        elif is_dupack:
            if not sk.sack_ok:
                tcp_add_reno_sack(sk)
            tcp_mark_lost(sk)
        return  # PRR sets cwnd (tcp_cwnd_reduction) and tcp_ack sends
    if state == TCP_CA_Loss:
        if not before(ack, sk.high_seq):
            sk.icsk_ca_state = TCP_CA_Open
        else:
            tcp_xmit_retransmit_queue(sk)
        return
    if is_dupack:
        sk.dup_acks += 1
    elif flag & FLAG_SND_UNA_ADVANCED:
        sk.dup_acks = 0
    if not sk.sack_ok:
        if flag & FLAG_SND_UNA_ADVANCED:
            sk.sacked_out = 0  # tcp_reset_reno_sack
        if is_dupack:
            tcp_add_reno_sack(sk)
    dupthresh = sk.reordering
    if tcp_is_rack(sk):
        tcp_rack_mark_lost(sk)
        lost = bool(sk.lost_out)  # tcp_time_to_recover: RACK decides, not dupthresh
    else:
        lost = sk.dup_acks >= dupthresh or sk.sacked_out >= dupthresh
    if not lost:
        # tcp_try_to_open: something is odd (dup ACKs, SACKed holes) but not yet a loss.
        sk.icsk_ca_state = TCP_CA_Disorder if (sk.dup_acks or sk.sacked_out) else TCP_CA_Open
        return
    tcp_enter_recovery(sk)
    if not tcp_is_rack(sk):
        tcp_mark_lost(sk)
        tcp_mark_head_lost(sk)
    # From here PRR (tcp_cwnd_reduction) sizes cwnd on every ACK of the recovery.


def tcp_cwnd_reduction(sk: TcpSock, newly_acked_sacked: int, flag: int) -> None:
    """PRR (RFC 6937): send in proportion to what was delivered, down to ssthresh."""
    if newly_acked_sacked <= 0 or not sk.prior_cwnd:
        return
    sk.prr_delivered += newly_acked_sacked
    in_flight = sk.packets_in_flight()
    delta = sk.snd_ssthresh - in_flight
    if delta < 0:
        sndcnt = (sk.snd_ssthresh * sk.prr_delivered + sk.prior_cwnd - 1) // sk.prior_cwnd \
            - sk.prr_out
    else:
        sndcnt = max(sk.prr_delivered - sk.prr_out, newly_acked_sacked)
        if flag & FLAG_SND_UNA_ADVANCED:
            sndcnt += 1
        sndcnt = min(delta, sndcnt)
    sndcnt = max(sndcnt, 0 if sk.prr_out else 1)  # the fast retransmit always goes out
    sk.snd_cwnd = in_flight + sndcnt

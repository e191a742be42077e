"""TCP loss detection and recovery, the part of net/ipv4/tcp_input.c that runs after an ACK.

Read first: RFC 2018 + RFC 6675 (SACK and SACK-based loss detection), RFC 2883 (D-SACK),
RFC 5681 + RFC 6582 (fast retransmit, NewReno partial ACKs), RFC 6937 (Proportional Rate
Reduction), net/ipv4/tcp_input.c (tcp_sacktag_write_queue, tcp_check_dsack,
tcp_mark_head_lost, tcp_enter_recovery, tcp_fastretrans_alert, tcp_cwnd_reduction).

tcp_input.tcp_ack calls in here; the FLAG_* bits it accumulates live here because both
halves read them. Not built yet: RACK-TLP (net/ipv4/tcp_recovery.c), undo and F-RTO.
"""

from __future__ import annotations

from .tcp import (TCP_CA_Disorder, TCP_CA_Loss, TCP_CA_Open, TCP_CA_Recovery, TCPCB_LOST,
                  TCPCB_SACKED_ACKED, TCPCB_SACKED_RETRANS, TcpSock, after, before)
from .tcp_output import tcp_xmit_retransmit_queue

# tcp_ack flags
FLAG_DATA = 0x01
FLAG_WIN_UPDATE = 0x02
FLAG_DATA_ACKED = 0x04
FLAG_RETRANS_DATA_ACKED = 0x08
FLAG_SYN_ACKED = 0x10
FLAG_DATA_SACKED = 0x20
FLAG_ECE = 0x40
FLAG_SLOWPATH = 0x100
FLAG_SND_UNA_ADVANCED = 0x400
FLAG_DSACKING_ACK = 0x800
FLAG_ACKED = FLAG_DATA_ACKED | FLAG_SYN_ACKED


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
    for start, end in sacks:
        if not after(end, start) or not after(end, sk.snd_una) or after(end, sk.snd_nxt):
            continue
        for skb in sk.rtx_queue:
            cb = skb.cb
            if before(cb.seq, start) or after(cb.end_seq, end):
                continue
            if not cb.sacked & TCPCB_SACKED_ACKED:
                if cb.sacked & TCPCB_SACKED_RETRANS:
                    cb.sacked &= ~TCPCB_SACKED_RETRANS
                    sk.retrans_out -= 1
                if cb.sacked & TCPCB_LOST:
                    cb.sacked &= ~TCPCB_LOST
                    sk.lost_out -= 1
                cb.sacked |= TCPCB_SACKED_ACKED
                sk.sacked_out += 1
                flag |= FLAG_DATA_SACKED
    return flag


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
        cb = skb.cb
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
        if flag & FLAG_SND_UNA_ADVANCED:
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
    lost = sk.dup_acks >= dupthresh or sk.sacked_out >= dupthresh
    if not lost:
        # tcp_try_to_open: something is odd (dup ACKs, SACKed holes) but not yet a loss.
        sk.icsk_ca_state = TCP_CA_Disorder if (sk.dup_acks or sk.sacked_out) else TCP_CA_Open
        return
    tcp_enter_recovery(sk)
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

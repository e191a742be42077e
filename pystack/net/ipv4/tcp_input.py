"""TCP input, as net/ipv4/tcp_input.c.

Read first: RFC 9293 §3.10.7 (segment arrives), RFC 5961 (blind RST/SYN/data), RFC 7323 §5
(PAWS), RFC 6298 (RTT estimation), RFC 1122 §4.2.3.2 (delayed ACKs), net/ipv4/tcp_input.c
(tcp_ack, tcp_clean_rtx_queue, tcp_rtt_estimator, tcp_data_queue, tcp_ofo_queue, tcp_fin,
tcp_validate_incoming, tcp_rcv_established, tcp_rcv_synsent_state_process,
tcp_rcv_state_process, __tcp_ack_snd_check, tcp_event_data_recv, tcp_grow_window).
SACK processing and loss recovery, which tcp_ack hands over to, are in tcp_recovery.py.

Everything here runs in softirq (or from release_sock's backlog) and never waits.
"""

from __future__ import annotations

from typing import Final

import errno

from ...kernel.ktime import kclock
from ...uapi.tcp import TCPHDR_ACK, TCPHDR_FIN, TCPHDR_PSH, TCPHDR_RST, TCPHDR_SYN
from ..core import drop_reason as dr
from ..core.drop_reason import consume_skb, kfree_skb
from ..core.skbuff import SkBuff
from ..core.sock import (RCV_SHUTDOWN, SEND_SHUTDOWN, SOCK_DEAD, SOCK_DONE, SOCK_KEEPOPEN,
                         skb_set_owner_r)
from .tcp import (TCPCB_EVER_RETRANS, TCPCB_LOST, TCPCB_SACKED_ACKED, TCPCB_SACKED_RETRANS,
                  TCP_ATO_MIN, TCP_CA_Loss, TCP_CA_Open, TCP_CA_Recovery, TCP_CHRONO_BUSY,
                  TCP_MAX_QUICKACKS, TCP_MIN_MSS, TCP_MSS_DEFAULT, TCP_RTO_MAX, TCP_RTO_MIN,
                  TcpSkbCb, TcpSock, after, before, tcp_chrono_stop, tcp_done, tcp_fin_time,
                  tcp_set_state)
from .tcp_cong import TCP_INIT_CWND
from .tcp_recovery import (FLAG_ACKED, FLAG_DATA_ACKED, FLAG_DATA_SACKED, FLAG_RETRANS_DATA_ACKED,
                           FLAG_SLOWPATH, FLAG_SND_UNA_ADVANCED, FLAG_SYN_ACKED,
                           FLAG_WIN_UPDATE, tcp_cwnd_reduction, tcp_fastretrans_alert,
                           tcp_rack_advance, tcp_remove_reno_sacks, tcp_sacktag_write_queue)
from .tcp_minisocks import tcp_time_wait
from .tcp_output import (__tcp_select_window, tcp_data_snd_check, tcp_receive_window,
                         tcp_retransmit_skb, tcp_send_ack, tcp_send_delayed_ack,
                         tcp_sndbuf_expand, tcp_syn_options, tcp_time_stamp,
                         tcp_transmit_skb, tcp_win_from_space, tcp_xmit_retransmit_queue)
from .tcp_states import (TCP_CLOSE, TCP_CLOSE_WAIT, TCP_CLOSING, TCP_ESTABLISHED,
                         TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_LAST_ACK, TCP_LISTEN, TCP_SYN_RECV,
                         TCP_SYN_SENT, TCP_TIME_WAIT)
from .tcp_timer import (ICSK_ACK_NOW, ICSK_ACK_PUSHED, ICSK_ACK_PUSHED2, ICSK_ACK_SCHED,
                        ICSK_TIME_PROBE0, _probe0_when, inet_csk_clear_xmit_timer,
                        inet_csk_reset_xmit_timer, tcp_clamp_probe0_to_user_timeout,
                        tcp_reset_keepalive_timer, tcp_set_xmit_timer)
from .tcp_tso import tcp_current_mss, tcp_sync_mss, tcp_update_pacing_rate

MASK: Final = 0xFFFFFFFF
TCP_PAWS_24DAYS: Final = 60 * 60 * 24 * 24
TCP_OOW_RATE: Final = 0.5  # tcp_invalid_ratelimit: 500 ms between out-of-window ACKs



def _mib(sk: TcpSock, name: str) -> None:
    sk.sk_net.mib.tcpext_inc(name)


# -- RTT ------------------------------------------------------------------------------------------

_RTO_MIN_US: Final = int(TCP_RTO_MIN * 1e6)


def tcp_rtt_estimator(sk: TcpSock, mrtt_us: int) -> None:
    """RFC 6298 with Linux's refinements (rttvar never below the RTO floor)."""
    m = mrtt_us
    srtt = sk.srtt_us
    rto_min_us = _RTO_MIN_US
    if srtt:
        m -= srtt >> 3
        srtt += m
        if m < 0:
            m = -m
            m -= sk.mdev_us >> 2
            if m > 0:
                m >>= 3
        else:
            m -= sk.mdev_us >> 2
        sk.mdev_us += m
        if sk.mdev_us > sk.mdev_max_us:
            sk.mdev_max_us = sk.mdev_us
            if sk.mdev_max_us > sk.rttvar_us:
                sk.rttvar_us = sk.mdev_max_us
        if after(sk.snd_una, sk.rtt_seq):
            if sk.mdev_max_us < sk.rttvar_us:
                sk.rttvar_us -= (sk.rttvar_us - sk.mdev_max_us) >> 2
            sk.rtt_seq = sk.snd_nxt
            sk.mdev_max_us = rto_min_us
    else:
        srtt = m << 3
        sk.mdev_us = m << 1
        sk.rttvar_us = max(sk.mdev_us, rto_min_us)
        sk.mdev_max_us = sk.rttvar_us
        sk.rtt_seq = sk.snd_nxt
    sk.srtt_us = max(1, srtt)
    if not sk.min_rtt_us or mrtt_us < sk.min_rtt_us:
        sk.min_rtt_us = max(mrtt_us, 1)


def tcp_set_rto(sk: TcpSock) -> None:
    sk.icsk_rto = min(((sk.srtt_us >> 3) + sk.rttvar_us) / 1e6, TCP_RTO_MAX)


def tcp_ack_update_rtt(sk: TcpSock, seq_rtt: float | None, opts) -> None:
    if seq_rtt is None and opts is not None and opts.saw_tstamp and opts.rcv_tsecr:
        delta_ms = (tcp_time_stamp(sk) - opts.rcv_tsecr) & MASK
        if delta_ms < 0x80000000:
            seq_rtt = delta_ms / 1000.0
    if seq_rtt is None or seq_rtt < 0:
        return
    tcp_rtt_estimator(sk, int(seq_rtt * 1e6))
    rto = ((sk.srtt_us >> 3) + sk.rttvar_us) / 1e6  # tcp_set_rto
    sk.icsk_rto = rto if rto < TCP_RTO_MAX else TCP_RTO_MAX
    sk.icsk_backoff = 0


# -- ACK processing --------------------------------------------------------------------------------

def tcp_ack_update_window(sk: TcpSock, ack: int, ack_seq: int, window: int, syn: bool) -> int:
    nwin = window if syn else window << sk.snd_wscale  # a SYN's window is never scaled
    if (after(ack, sk.snd_una) or after(ack_seq, sk.snd_wl1)
            or (ack_seq == sk.snd_wl1 and nwin > sk.snd_wnd)):
        flag = FLAG_WIN_UPDATE if sk.snd_wnd != nwin else 0
        sk.snd_wl1 = ack_seq
        if sk.snd_wnd != nwin:
            sk.snd_wnd = nwin
            if nwin > sk.max_window:
                sk.max_window = nwin
        return flag
    return 0


def tcp_clean_rtx_queue(sk: TcpSock, ack: int) -> tuple[int, float | None, int]:
    """Free what the ACK covers; return (flags, RTT sample or None, packets acked)."""
    now = kclock.now()
    flag = 0
    first_ackt: float | None = None
    acked = 0
    q = sk.rtx_queue
    sack_ok = sk.sack_ok
    # RACK advances once per TSO skb in Linux (one skb, one send time); here the segments of
    # one skb come one by one, so a run of them sent at one time advances RACK once, with
    # the last (tcp_rack_advance keeps the latest sent; its state is the same).
    rack_when = -1.0
    rack_end = 0
    while q:
        skb = q[0]
        cb: TcpSkbCb = skb.cb
        if ((ack - cb.end_seq) & 0xFFFFFFFF) >= 0x80000000:  # after(end_seq, ack)
            break
        q.popleft()
        acked += 1
        sacked = cb.sacked
        if sacked:
            if sacked & TCPCB_SACKED_RETRANS:
                sk.retrans_out -= 1
            if sacked & TCPCB_EVER_RETRANS:
                flag |= FLAG_RETRANS_DATA_ACKED
            elif not sacked & TCPCB_SACKED_ACKED and first_ackt is None:
                first_ackt = cb.when
            if sacked & TCPCB_SACKED_ACKED:
                sk.sacked_out -= 1
            elif sack_ok:
                if rack_when >= 0.0:
                    tcp_rack_advance(sk, 0, rack_end, rack_when, now)
                    rack_when = -1.0
                tcp_rack_advance(sk, sacked, cb.end_seq, cb.when, now)
            if sacked & TCPCB_LOST:
                sk.lost_out -= 1
        else:
            if first_ackt is None:
                first_ackt = cb.when
            if sack_ok:
                when = cb.when
                if rack_when >= 0.0 and when != rack_when:
                    tcp_rack_advance(sk, 0, rack_end, rack_when, now)
                rack_when = when
                rack_end = cb.end_seq
        sk.packets_out -= 1
        if cb.tcp_flags & TCPHDR_SYN:
            flag |= FLAG_SYN_ACKED
        else:
            flag |= FLAG_DATA_ACKED
        sk.sk_wmem_queued -= skb.truesize
        sk.delivered += 1
        if skb.destructor is not None:
            consume_skb(skb)
    if rack_when >= 0.0:
        tcp_rack_advance(sk, 0, rack_end, rack_when, now)
    # Karn's rule: no sample when the ACK covers retransmitted data.
    seq_rtt = (now - first_ackt if first_ackt is not None and not flag & FLAG_RETRANS_DATA_ACKED
               else None)
    return flag, seq_rtt, acked


def tcp_ack(sk: TcpSock, skb: SkBuff, flag: int) -> int:
    """Process the ACK field. Returns >0 if acceptable, 0 for an old ACK, <0 if invalid."""
    cb: TcpSkbCb = skb.cb
    ack = cb.ack_seq
    prior_snd_una = sk.snd_una
    opts = cb.opts
    if before(ack, prior_snd_una):
        if before(ack, (prior_snd_una - sk.max_window) & MASK):
            if not flag & 0x4000:
                tcp_send_challenge_ack(sk)
            return -1
        if opts is not None and opts.sacks:
            # An old ACK still brings SACK news: what it SACKs counts for loss detection and
            # PRR, and recovery may retransmit on it (tcp_ack's old_ack path).
            sacked_before = sk.sacked_out
            flag |= tcp_sacktag_write_queue(sk, opts.sacks, ack)
            if flag & FLAG_DATA_SACKED:
                tcp_fastretrans_alert(sk, prior_snd_una, flag, False)
                if sk.icsk_ca_state == TCP_CA_Recovery:
                    tcp_cwnd_reduction(sk, max(sk.sacked_out - sacked_before, 0), flag)
                    tcp_xmit_retransmit_queue(sk)
        return 0
    if after(ack, sk.snd_nxt):
        return -2  # ACKs something never sent: discard (RFC 9293 §3.10.7.4)
    # The segment is in window and its ACK is valid: now its timestamp may be remembered.
    tcp_replace_ts_recent(sk, skb)
    prior_packets = sk.packets_out
    is_dupack = (ack == prior_snd_una and not (cb.end_seq != cb.seq)
                 and (cb.window << sk.snd_wscale) == sk.snd_wnd and bool(prior_packets))
    flag |= tcp_ack_update_window(sk, ack, cb.seq, cb.window, bool(cb.tcp_flags & TCPHDR_SYN))
    if after(ack, prior_snd_una):
        flag |= FLAG_SND_UNA_ADVANCED
        sk.bytes_acked += (ack - prior_snd_una) & MASK
        sk.snd_una = ack
        sk.icsk_retransmits = 0
        sk.retrans_stamp = 0.0
    sacked_before = sk.sacked_out
    if opts is not None and opts.sacks:
        flag |= tcp_sacktag_write_queue(sk, opts.sacks, ack)
        if flag & FLAG_DATA_SACKED:
            is_dupack = bool(prior_packets) and ack == prior_snd_una
    # Something worked: forget soft errors and unanswered probes (keepalive, zero window).
    sk.sk_err_soft = 0
    sk.icsk_probes_out = 0
    sk.rcv_tstamp = kclock.now()
    if not prior_packets:
        tcp_ack_probe(sk)
        return 1
    newly_sacked = max(sk.sacked_out - sacked_before, 0)
    sacked_before = sk.sacked_out
    acked_flag, seq_rtt, acked_pkts = tcp_clean_rtx_queue(sk, ack)
    flag |= acked_flag
    # tcp_newly_delivered: segments that reached the peer with this ACK, each counted once
    # (acked now, not SACKed before; or SACKed now). Without SACK a cumulative ACK stands
    # for one segment plus those the duplicate ACKs already counted.
    if sk.sack_ok:
        delivered = acked_pkts - (sacked_before - sk.sacked_out) + newly_sacked
    else:
        delivered = tcp_remove_reno_sacks(sk, acked_pkts) if acked_pkts else 0
    if flag & FLAG_ACKED:
        tcp_ack_update_rtt(sk, seq_rtt, opts)
        tcp_set_xmit_timer(sk)
    # tcp_may_raise_cwnd: not while reducing it (Recovery); in Loss it slow-starts again.
    if sk.icsk_ca_state != TCP_CA_Recovery and not is_dupack and flag & FLAG_ACKED:
        if delivered:
            sk.icsk_ca_ops.cong_avoid(sk, ack, delivered)
            tcp_sndbuf_expand(sk)
    prior_sacked = sk.sacked_out
    if sk.icsk_ca_state != TCP_CA_Open or is_dupack or sk.dup_acks or (
            flag & FLAG_DATA_SACKED):
        tcp_fastretrans_alert(sk, ack, flag, is_dupack)
    if sk.icsk_ca_state == TCP_CA_Recovery:
        newly_acked_sacked = delivered + max(sk.sacked_out - prior_sacked, 0)
        if not newly_acked_sacked and is_dupack:
            newly_acked_sacked = 1  # a duplicate ACK: one segment has left the network
        tcp_cwnd_reduction(sk, newly_acked_sacked, flag)
        tcp_xmit_retransmit_queue(sk)
    tcp_update_pacing_rate(sk)
    if not sk.packets_out:
        sk.icsk_backoff = 0
        if not sk.write_queue:
            tcp_chrono_stop(sk, TCP_CHRONO_BUSY)
    return 1


def tcp_ack_probe(sk: TcpSock) -> None:
    """An ACK while nothing is in flight: if it opened the window for the next segment, stop
    probing (tcp_data_snd_check sends it); else probe again after the backed-off interval,
    counted from this ACK."""
    q = sk.write_queue
    if not q:
        return
    head = q[0]
    end = min((head.cb.end_seq - head.cb.seq) & MASK, tcp_current_mss(sk))
    if not after((head.cb.seq + end) & MASK, (sk.snd_una + sk.snd_wnd) & MASK):
        sk.icsk_backoff = 0
        sk.icsk_probes_tstamp = -1.0
        if sk.icsk_pending == ICSK_TIME_PROBE0:
            inet_csk_clear_xmit_timer(sk)
    else:
        when = tcp_clamp_probe0_to_user_timeout(sk, _probe0_when(sk))
        inet_csk_reset_xmit_timer(sk, ICSK_TIME_PROBE0, when)


def tcp_send_challenge_ack(sk: TcpSock) -> None:
    """RFC 5961 §3.2/4.2/5.2: answer a suspicious segment with an ACK, rate-limited."""
    now = kclock.now()
    if sk.last_oow_ack_time >= 0 and now - sk.last_oow_ack_time < TCP_OOW_RATE:
        _mib(sk, "TCPACKSkippedChallenge")
        return
    sk.last_oow_ack_time = now
    _mib(sk, "TCPChallengeACK")
    tcp_send_ack(sk)


def tcp_send_dupack(sk: TcpSock, skb: SkBuff) -> None:
    cb: TcpSkbCb = skb.cb
    if cb.end_seq != cb.seq and before(cb.seq, sk.rcv_nxt):
        _mib(sk, "DelayedACKLost")
        tcp_enter_quickack_mode(sk)
        if sk.sack_ok and sk.sk_net.sysctl.tcp_dsack:
            end = cb.end_seq if not after(cb.end_seq, sk.rcv_nxt) else sk.rcv_nxt
            sk.duplicate_sack = (cb.seq, end)
    now = kclock.now()
    if sk.last_oow_ack_time >= 0 and now - sk.last_oow_ack_time < TCP_OOW_RATE \
            and not before(cb.seq, sk.rcv_nxt):
        return
    sk.last_oow_ack_time = now
    tcp_send_ack(sk)


# -- incoming data --------------------------------------------------------------------------------

def tcp_incr_quickack(sk: TcpSock, max_quickacks: int) -> None:
    quickacks = sk.rcv_wnd // (2 * max(sk.icsk_ack_rcv_mss, 1)) or 2
    quickacks = min(quickacks, max_quickacks)
    if quickacks > sk.icsk_ack_quick:
        sk.icsk_ack_quick = quickacks


def tcp_enter_quickack_mode(sk: TcpSock, max_quickacks: int = TCP_MAX_QUICKACKS) -> None:
    tcp_incr_quickack(sk, max_quickacks)
    sk.icsk_ack_pingpong = 0
    sk.icsk_ack_ato = TCP_ATO_MIN


def tcp_measure_rcv_mss(sk: TcpSock, skb: SkBuff) -> None:
    """Learn the peer's segment size; note pushed segments, which want a quick ACK. A GRO
    skb counts by its segments' size."""
    length = skb.gso_size or skb.tail - skb.data
    if length >= sk.icsk_ack_rcv_mss:
        sk.icsk_ack_rcv_mss = min(length, sk.advmss)
        # A full segment with PSH likely ends a write: the sender may wait for our ACK.
        if skb.cb.tcp_flags & 0x08:
            sk.icsk_ack_pending |= ICSK_ACK_PUSHED
    else:
        if sk.icsk_ack_pending & ICSK_ACK_PUSHED:
            sk.icsk_ack_pending |= ICSK_ACK_PUSHED2
        sk.icsk_ack_pending |= ICSK_ACK_PUSHED


def tcp_event_data_recv(sk: TcpSock, skb: SkBuff) -> None:
    now = kclock.now()
    tcp_measure_rcv_mss(sk, skb)
    sk.icsk_ack_pending |= ICSK_ACK_SCHED
    if not sk.icsk_ack_ato:
        # The first data segment: start the delayed-ACK engine in quick-ack mode.
        tcp_incr_quickack(sk, TCP_MAX_QUICKACKS)
        sk.icsk_ack_ato = TCP_ATO_MIN
    else:
        m = now - sk.icsk_ack_lrcvtime
        if m <= TCP_ATO_MIN / 2:
            sk.icsk_ack_ato = (sk.icsk_ack_ato / 2) + TCP_ATO_MIN / 2
        elif m < sk.icsk_ack_ato:
            sk.icsk_ack_ato = (sk.icsk_ack_ato / 2) + m
            sk.icsk_ack_ato = min(sk.icsk_ack_ato, sk.icsk_rto)
        elif m > sk.icsk_rto:
            # Idle for more than an RTO: start again in quick-ack mode.
            tcp_enter_quickack_mode(sk)
    sk.icsk_ack_lrcvtime = now
    tcp_grow_window(sk, skb)


def tcp_grow_window(sk: TcpSock, skb: SkBuff) -> None:
    space = sk.sk_rcvbuf - sk.sk_rmem_alloc
    if sk.rcv_ssthresh < sk.window_clamp and sk.rcv_ssthresh < (  # tcp_space
            space - (space >> 1) if space > 0 else 0):
        length = skb.tail - skb.data
        if tcp_win_from_space(skb.truesize) <= length:
            incr = 2 * sk.advmss
        else:
            incr = 2 * sk.advmss if tcp_win_from_space(skb.truesize) <= 4 * length else 0
        if incr:
            incr = max(incr, 2 * length)
            sk.rcv_ssthresh += min(sk.window_clamp - sk.rcv_ssthresh, incr)


def tcp_update_sack_blocks(sk: TcpSock, seq: int, end_seq: int) -> None:
    """Keep the SACK blocks we report: the newest block first (RFC 2018 §4)."""
    blocks = [(seq, end_seq)]
    for s, e in sk.selective_acks:
        ns, ne = blocks[0]
        if not after(s, ne) and not before(e, ns):
            blocks[0] = (s if before(s, ns) else ns, e if after(e, ne) else ne)
        else:
            blocks.append((s, e))
    sk.selective_acks = blocks[:4]


def _sack_remove(sk: TcpSock) -> None:
    sk.selective_acks = [(s, e) for s, e in sk.selective_acks if after(e, sk.rcv_nxt)]


def tcp_ofo_queue(sk: TcpSock) -> None:
    """Move out-of-order segments that are now in order to the receive queue."""
    ofo = sk.out_of_order_queue
    while ofo:
        skb = ofo[0]
        cb: TcpSkbCb = skb.cb
        if after(cb.seq, sk.rcv_nxt):
            break
        ofo.pop(0)
        if not after(cb.end_seq, sk.rcv_nxt):
            consume_skb(skb)  # entirely duplicate
            continue
        _queue_in_order(sk, skb)
    if sk.selective_acks:
        _sack_remove(sk)


def _queue_in_order(sk: TcpSock, skb: SkBuff) -> None:
    cb: TcpSkbCb = skb.cb
    trim = (sk.rcv_nxt - cb.seq) & MASK
    if trim and trim < 0x80000000:
        skb.data += min(trim, skb.tail - skb.data)
        cb.seq = sk.rcv_nxt
    sk.rcv_nxt = cb.end_seq
    if skb.tail > skb.data:
        skb_set_owner_r(skb, sk)
        sk.sk_receive_queue.append(skb)
        sk.bytes_received += skb.tail - skb.data
    if cb.tcp_flags & TCPHDR_FIN:
        tcp_fin(sk)
    if skb.tail <= skb.data:
        consume_skb(skb)


def tcp_data_queue(sk: TcpSock, skb: SkBuff) -> None:
    cb: TcpSkbCb = skb.cb
    net = sk.sk_net
    if cb.seq == cb.end_seq:
        consume_skb(skb)
        return
    if skb.trace is not None:
        skb.trace.hop(net, "tcp_data_queue")
    if net.tracer.active:
        net.tracer.emit(net, "TCP_DATA_QUEUE", seq=cb.seq, len=(cb.end_seq - cb.seq) & MASK,
                        rcv_nxt=sk.rcv_nxt, sport=sk.inet_sport, dport=sk.inet_dport)
    if cb.seq == sk.rcv_nxt:
        if tcp_receive_window(sk) == 0 and skb.tail > skb.data:
            _mib(sk, "TCPZeroWindowDrop")
            tcp_enter_quickack_mode(sk)
            tcp_send_ack(sk)
            kfree_skb(skb, "TCP_ZEROWINDOW")
            return
        if sk.sk_rmem_alloc > sk.sk_rcvbuf + (sk.sk_rcvbuf >> 1):
            _mib(sk, "TCPRcvQDrop")
            kfree_skb(skb, dr.PROTO_MEM)
            return
        if skb.tail > skb.data:
            tcp_event_data_recv(sk, skb)
        _queue_in_order(sk, skb)
        if sk.out_of_order_queue:
            tcp_ofo_queue(sk)
            if not sk.out_of_order_queue:
                sk.icsk_ack_pending |= ICSK_ACK_NOW  # the hole filled (RFC 5681 4.2)
        if sk.selective_acks:
            _sack_remove(sk)
        if not sk.sock_flag(SOCK_DEAD):
            if skb.trace is not None:
                skb.trace.hop(net, "sk_data_ready")
            sk.sk_data_ready(sk)
        return
    if not after(cb.end_seq, sk.rcv_nxt):
        # A retransmission of what we already have: D-SACK it and ACK at once.
        _mib(sk, "DelayedACKLost")
        tcp_enter_quickack_mode(sk)
        if sk.sack_ok and net.sysctl.tcp_dsack:
            sk.duplicate_sack = (cb.seq, cb.end_seq)
        tcp_send_ack(sk)
        kfree_skb(skb, "TCP_OLD_DATA")
        return
    if not before(cb.seq, (sk.rcv_nxt + tcp_receive_window(sk)) & MASK):
        _mib(sk, "TCPZeroWindowDrop")
        tcp_enter_quickack_mode(sk)
        tcp_send_ack(sk)
        kfree_skb(skb, "TCP_OVERWINDOW")
        return
    if before(cb.seq, sk.rcv_nxt):
        # Partly new: keep the new part.
        tcp_event_data_recv(sk, skb)
        _queue_in_order(sk, skb)
        tcp_ofo_queue(sk)
        if not sk.sock_flag(SOCK_DEAD):
            sk.sk_data_ready(sk)
        return
    tcp_data_queue_ofo(sk, skb)


def tcp_data_queue_ofo(sk: TcpSock, skb: SkBuff) -> None:
    """A segment beyond a hole: keep it in sequence order and ACK at once (dup ACK)."""
    cb: TcpSkbCb = skb.cb
    sk.rcv_ooopack += 1
    _mib(sk, "TCPOFOQueue")
    ofo = sk.out_of_order_queue
    i = 0
    while i < len(ofo) and before(ofo[i].cb.seq, cb.seq):
        i += 1
    if i > 0 and not after(cb.end_seq, ofo[i - 1].cb.end_seq):
        # Covered by the segment before it: a duplicate.
        if sk.sack_ok and sk.sk_net.sysctl.tcp_dsack:
            sk.duplicate_sack = (cb.seq, cb.end_seq)
        _mib(sk, "TCPOFOMerge")
        consume_skb(skb)
    else:
        while i < len(ofo) and not after(ofo[i].cb.end_seq, cb.end_seq):
            consume_skb(ofo.pop(i))  # entirely covered by the new one
        skb_set_owner_r(skb, sk)
        ofo.insert(i, skb)
    if sk.sack_ok:
        tcp_update_sack_blocks(sk, cb.seq, cb.end_seq)
    tcp_send_ack(sk)


def tcp_fin(sk: TcpSock) -> None:
    """The peer closed its half (RFC 9293 §3.10.7.4, eighth step)."""
    sk.icsk_ack_pending |= ICSK_ACK_SCHED
    sk.sk_shutdown |= RCV_SHUTDOWN
    sk.sock_set_flag(SOCK_DONE)
    state = sk.sk_state
    if state in (TCP_SYN_RECV, TCP_ESTABLISHED):
        tcp_set_state(sk, TCP_CLOSE_WAIT)
        sk.icsk_ack_pingpong = 1
    elif state == TCP_FIN_WAIT1:
        tcp_send_ack(sk)
        tcp_set_state(sk, TCP_CLOSING)
    elif state == TCP_FIN_WAIT2:
        tcp_send_ack(sk)
        tcp_time_wait(sk, TCP_TIME_WAIT, 0.0)
    for skb in sk.out_of_order_queue:
        consume_skb(skb)
    sk.out_of_order_queue.clear()
    sk.selective_acks = []
    if not sk.sock_flag(SOCK_DEAD):
        sk.sk_state_change(sk)


def __tcp_ack_snd_check(sk: TcpSock, ofo_possible: bool) -> None:
    if ((((sk.rcv_nxt - sk.rcv_wup) & MASK) > sk.icsk_ack_rcv_mss
         and __tcp_select_window(sk) >= sk.rcv_wnd)
            or (sk.icsk_ack_quick and not sk.icsk_ack_pingpong)
            or sk.icsk_ack_pending & ICSK_ACK_NOW
            or (ofo_possible and sk.out_of_order_queue)):
        sk.icsk_ack_pending &= ~ICSK_ACK_NOW
        tcp_send_ack(sk)
        return
    tcp_send_delayed_ack(sk)


def tcp_ack_snd_check(sk: TcpSock) -> None:
    if not sk.icsk_ack_pending & ICSK_ACK_SCHED:
        return
    __tcp_ack_snd_check(sk, True)


# -- validation -------------------------------------------------------------------------------------

def tcp_paws_discard(sk: TcpSock, opts) -> bool:
    """RFC 7323 §5: a timestamp older than the last in-window one means an old duplicate."""
    if not opts.saw_tstamp or sk.ts_recent_stamp < 0:
        return False
    if ((sk.ts_recent - opts.rcv_tsval) & MASK) < 0x80000000 and sk.ts_recent != \
            opts.rcv_tsval:
        if kclock.now() - sk.ts_recent_stamp <= TCP_PAWS_24DAYS:
            return True
    return False


def tcp_sequence(sk: TcpSock, seq: int, end_seq: int) -> bool:
    return not before(end_seq, sk.rcv_wup) and not after(
        seq, (sk.rcv_nxt + tcp_receive_window(sk)) & MASK)


def tcp_validate_incoming(sk: TcpSock, skb: SkBuff) -> bool:
    cb: TcpSkbCb = skb.cb
    flags = cb.tcp_flags
    opts = cb.opts
    if opts is not None and opts.saw_tstamp and tcp_paws_discard(sk, opts) and not \
            flags & TCPHDR_RST:
        _mib(sk, "PAWSEstabRejected")
        tcp_send_dupack(sk, skb)
        kfree_skb(skb, "TCP_RFC7323_PAWS")
        return False
    if not tcp_sequence(sk, cb.seq, cb.end_seq):
        if not flags & TCPHDR_RST:
            if flags & TCPHDR_SYN:
                tcp_send_challenge_ack(sk)
            else:
                tcp_send_dupack(sk, skb)
        kfree_skb(skb, "TCP_INVALID_SEQUENCE")
        return False
    if flags & TCPHDR_RST:
        if cb.seq == sk.rcv_nxt:
            tcp_reset(sk)
        else:
            tcp_send_challenge_ack(sk)
        consume_skb(skb)
        return False
    if flags & TCPHDR_SYN:
        sk.sk_net.mib.tcp["InErrs"] += 1
        _mib(sk, "TCPSYNChallenge")
        tcp_send_challenge_ack(sk)
        kfree_skb(skb, "TCP_INVALID_SYN")
        return False
    return True


def tcp_replace_ts_recent(sk: TcpSock, skb: SkBuff) -> None:
    """RFC 7323 §4.3: remember the peer's timestamp from an in-window segment at or before
    the last ACK we sent, never going backwards (PAWS)."""
    opts = skb.cb.opts
    if opts is not None and opts.saw_tstamp and not after(skb.cb.seq, sk.rcv_wup):
        if ((sk.ts_recent - opts.rcv_tsval) & MASK) >= 0x80000000 or sk.ts_recent == \
                opts.rcv_tsval or sk.ts_recent_stamp < 0:
            sk.ts_recent = opts.rcv_tsval
            sk.ts_recent_stamp = kclock.now()


def tcp_reset(sk: TcpSock) -> None:
    """A valid RST: report the error that fits the state and close."""
    state = sk.sk_state
    if state == TCP_SYN_SENT:
        sk.sk_err = errno.ECONNREFUSED
    elif state == TCP_CLOSE_WAIT:
        sk.sk_err = errno.EPIPE
    elif state == TCP_CLOSE:
        return
    else:
        sk.sk_err = errno.ECONNRESET
    sk.sk_error_report(sk)
    tcp_done(sk)


# -- the state machine --------------------------------------------------------------------------

def tcp_rcv_established(sk: TcpSock, skb: SkBuff) -> None:
    """An established connection's segment. Header prediction (Van Jacobson's, Linux's fast
    path): the next segment in sequence, flags ACK (PSH aside), no SACK blocks, and, when
    timestamps are on, one not older than ts_recent. For such a segment every check of
    tcp_validate_incoming (PAWS, the window, RST, SYN) passes by construction, so it goes
    straight to ACK and data processing; every other segment takes the full path."""
    net = sk.sk_net
    cb: TcpSkbCb = skb.cb
    if net.tracer.active:
        net.tracer.emit(net, "tcp:tcp_probe", sport=sk.inet_sport, dport=sk.inet_dport,
                        data_len=(cb.end_seq - cb.seq) & MASK, snd_nxt=sk.snd_nxt,
                        snd_una=sk.snd_una, snd_cwnd=sk.snd_cwnd, ssthresh=sk.snd_ssthresh,
                        snd_wnd=sk.snd_wnd, srtt=sk.srtt_us >> 3, rcv_wnd=sk.rcv_wnd)
    opts = cb.opts
    if ((cb.tcp_flags & ~TCPHDR_PSH) == TCPHDR_ACK and cb.seq == sk.rcv_nxt
            and not opts.sacks
            and (opts.saw_tstamp and ((opts.rcv_tsval - sk.ts_recent) & MASK) < 0x80000000
                 if sk.tstamp_ok else not opts.saw_tstamp)):
        tcp_rcv_ack_and_data(sk, skb, TCP_ESTABLISHED)
        return
    tcp_rcv_state_process(sk, skb)


def tcp_initialize_rcv_mss(sk: TcpSock) -> None:
    hint = min(sk.advmss, sk.mss_cache, sk.rcv_wnd // 2 or sk.advmss, TCP_MSS_DEFAULT)
    sk.icsk_ack_rcv_mss = max(hint, TCP_MIN_MSS)


def tcp_init_transfer(sk: TcpSock) -> None:
    """The connection is up: buffers, congestion window, keep-alive."""
    tcp_initialize_rcv_mss(sk)
    sk.icsk_ca_ops.init(sk)
    sk.snd_cwnd = TCP_INIT_CWND if sk.total_retrans <= 1 and not sk.icsk_retransmits else 1
    if sk.total_retrans > 1:
        sk.snd_cwnd = 1  # RFC 6298 5.7: the SYN was lost, start from one segment
    sk.snd_cwnd_stamp = kclock.now()
    tcp_sndbuf_expand(sk)
    tcp_update_pacing_rate(sk)
    # tcp_init_buffer_space: the first measure of what the reader consumes per RTT.
    sk.rcv_space = min(sk.rcv_ssthresh, sk.rcv_wnd, TCP_INIT_CWND * sk.advmss) or sk.advmss
    sk.rcvq_seq = sk.copied_seq
    sk.rcvq_time = kclock.now()
    sk.icsk_retransmits = 0
    if sk.sock_flag(SOCK_KEEPOPEN):
        s = sk.sk_net.sysctl
        tcp_reset_keepalive_timer(sk, sk.keepalive_time or s.tcp_keepalive_time)


def tcp_take_syn(sk: TcpSock, cb, opts) -> None:
    """What a received SYN (or SYN-ACK) teaches: the peer's ISN, window (never scaled in a
    SYN), and which options both ends use (window scale, SACK, timestamps, MSS)."""
    sk.irs = cb.seq
    sk.rcv_nxt = (cb.seq + 1) & MASK
    sk.rcv_wup = sk.rcv_nxt
    sk.copied_seq = sk.rcv_nxt
    sk.snd_wl1 = cb.seq
    sk.snd_wnd = cb.window
    sk.max_window = sk.snd_wnd
    if opts.wscale < 0:
        sk.wscale_ok = False
        sk.snd_wscale = sk.rcv_wscale = 0
        sk.window_clamp = min(sk.window_clamp, 65535)
    else:
        sk.snd_wscale = opts.wscale
    if not opts.sack_ok:
        sk.sack_ok = False
    if opts.saw_tstamp and sk.tstamp_ok:
        sk.ts_recent = opts.rcv_tsval
        sk.ts_recent_stamp = kclock.now()
    else:
        sk.tstamp_ok = False
    sk.mss_clamp = min(opts.mss or TCP_MSS_DEFAULT, sk.user_mss or 0xFFFF)


def tcp_rcv_synsent_state_process(sk: TcpSock, skb: SkBuff) -> bool:
    """SYN_SENT. Returns True if the caller must send a RST."""
    cb: TcpSkbCb = skb.cb
    flags = cb.tcp_flags
    opts = cb.opts
    if flags & TCPHDR_ACK:
        if not after(cb.ack_seq, sk.iss) or after(cb.ack_seq, sk.snd_nxt):
            if flags & TCPHDR_RST:
                consume_skb(skb)
                return False
            return True
        if flags & TCPHDR_RST:
            tcp_reset(sk)
            consume_skb(skb)
            return False
        if not flags & TCPHDR_SYN:
            consume_skb(skb)
            return False
        # SYN-ACK: the connection is established.
        tcp_take_syn(sk, cb, opts)
        rt = sk.sk_dst_cache
        tcp_sync_mss(sk, rt.dst_mtu() if rt is not None else 1500)
        sk.rcv_tstamp = kclock.now()
        sk.icsk_ack_lrcvtime = sk.rcv_tstamp  # tcp_finish_connect
        tcp_ack(sk, skb, FLAG_SLOWPATH)
        inet_csk_clear_xmit_timer(sk)
        tcp_set_state(sk, TCP_ESTABLISHED)
        tcp_init_transfer(sk)
        if not sk.sock_flag(SOCK_DEAD):
            sk.sk_state_change(sk)
            sk.sk_write_space(sk)
        tcp_send_ack(sk)
        consume_skb(skb)
        return False
    if flags & TCPHDR_RST:
        consume_skb(skb)
        return False
    if flags & TCPHDR_SYN:
        # Simultaneous open (RFC 9293 §3.5): answer with SYN-ACK, go to SYN_RECV.
        tcp_take_syn(sk, cb, opts)
        tcp_set_state(sk, TCP_SYN_RECV)
        tcp_transmit_skb(sk, None, TCPHDR_SYN | TCPHDR_ACK, sk.iss,
                         syn_options=tcp_syn_options(sk))
    consume_skb(skb)
    return False


def _carries_new_data(sk: TcpSock, cb: TcpSkbCb) -> bool:
    """The segment holds data beyond what was received (a closed reader must reset)."""
    fin = 1 if cb.tcp_flags & TCPHDR_FIN else 0
    return cb.end_seq != cb.seq and after((cb.end_seq - fin) & MASK, sk.rcv_nxt)


def tcp_rcv_state_process(sk: TcpSock, skb: SkBuff) -> bool:
    """Every state but LISTEN (handled by tcp_ipv4). True means: answer with a RST."""
    cb: TcpSkbCb = skb.cb
    flags = cb.tcp_flags
    state = sk.sk_state
    if state == TCP_CLOSE:
        kfree_skb(skb, "TCP_CLOSE")
        return False
    if state == TCP_SYN_SENT:
        return tcp_rcv_synsent_state_process(sk, skb)
    if not flags & (TCPHDR_ACK | TCPHDR_RST | TCPHDR_SYN):
        kfree_skb(skb, "TCP_FLAGS")
        return False
    if not tcp_validate_incoming(sk, skb):
        return False
    if not flags & TCPHDR_ACK:
        kfree_skb(skb, "TCP_FLAGS")
        return False
    return tcp_rcv_ack_and_data(sk, skb, state)


def tcp_rcv_ack_and_data(sk: TcpSock, skb: SkBuff, state: int) -> bool:
    """A validated segment with ACK: its ACK, the state changes it makes, its text (RFC 9293
    §3.10.7.4 from the fifth check on). True means: answer with a RST."""
    cb: TcpSkbCb = skb.cb
    ret = tcp_ack(sk, skb, FLAG_SLOWPATH)
    acceptable = ret > 0
    if not acceptable and (ret < 0 or state == TCP_SYN_RECV):
        # A bad ACK: tcp_rcv_established drops it quietly, the other states answer it. An
        # old ACK goes on being processed ("accept old ack during closing").
        if state == TCP_SYN_RECV:
            return True
        if state != TCP_ESTABLISHED:
            tcp_send_challenge_ack(sk)
        kfree_skb(skb, "TCP_ACK_UNSENT_DATA")
        return False
    state = sk.sk_state
    if state == TCP_SYN_RECV and acceptable:
        sk.snd_una = cb.ack_seq
        sk.snd_wnd = cb.window << sk.snd_wscale
        sk.snd_wl1 = cb.seq
        tcp_set_state(sk, TCP_ESTABLISHED)
        tcp_init_transfer(sk)
        sk.sk_state_change(sk)
    elif state == TCP_FIN_WAIT1 and sk.snd_una == sk.write_seq:
        tcp_set_state(sk, TCP_FIN_WAIT2)
        sk.sk_shutdown |= SEND_SHUTDOWN
        if not sk.sock_flag(SOCK_DEAD):
            sk.sk_state_change(sk)
        else:
            if _carries_new_data(sk, cb):
                _mib(sk, "TCPAbortOnData")
                tcp_done(sk)
                return True
            tcp_reset_keepalive_timer(sk, tcp_fin_time(sk))
    elif state == TCP_CLOSING and sk.snd_una == sk.write_seq:
        tcp_time_wait(sk, TCP_TIME_WAIT, 0.0)
        consume_skb(skb)
        return False
    elif state == TCP_LAST_ACK and sk.snd_una == sk.write_seq:
        tcp_done(sk)
        consume_skb(skb)
        return False
    state = sk.sk_state
    # Step 7: the segment text.
    if state in (TCP_CLOSE_WAIT, TCP_CLOSING, TCP_LAST_ACK) and not before(cb.seq, sk.rcv_nxt):
        consume_skb(skb)  # data after the peer's FIN: ignore
    else:
        if state in (TCP_FIN_WAIT1, TCP_FIN_WAIT2) and sk.sk_shutdown & RCV_SHUTDOWN:
            if _carries_new_data(sk, cb):
                _mib(sk, "TCPAbortOnData")
                tcp_reset(sk)
                return True
        if state in (TCP_ESTABLISHED, TCP_FIN_WAIT1, TCP_FIN_WAIT2):
            tcp_data_queue(sk, skb)
        else:
            consume_skb(skb)
    if sk.sk_state != TCP_CLOSE:
        tcp_data_snd_check(sk)
        tcp_ack_snd_check(sk)
    return False


def tcp_schedule_ack(sk: TcpSock) -> None:
    sk.icsk_ack_pending |= ICSK_ACK_SCHED


__all__ = ["tcp_rcv_established", "tcp_rcv_state_process", "tcp_ack", "tcp_data_queue",
           "tcp_reset", "tcp_init_transfer", "TCP_LISTEN", "TCP_CA_Loss", "TCP_CA_Open",
           "TCP_TIME_WAIT", "TCPHDR_FIN", "TCPCB_SACKED_RETRANS", "TCPCB_EVER_RETRANS",
           "tcp_current_mss", "tcp_retransmit_skb"]

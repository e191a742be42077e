"""How big TCP's segments and skbs are, and how much goes at once: the MSS, TSO sizing and
the send tests, as in net/ipv4/tcp_output.c (split from tcp_output.py for size).

Read first: net/ipv4/tcp_output.c (tcp_mtu_to_mss, tcp_current_mss, tcp_xmit_size_goal,
tcp_tso_autosize, tcp_cwnd_test, tcp_mss_split_point, tcp_tso_should_defer, tso_fragment,
tcp_nagle_check), net/ipv4/tcp_input.c (tcp_update_pacing_rate), docs/design.md (TCP: TSO).

tcp_output.tcp_write_xmit asks these how much of the head of the write queue may leave now;
tcp_sendmsg asks `tcp_send_mss` how big to make each skb.
"""

from __future__ import annotations

from typing import Final

from ...kernel.ktime import kclock
from ...uapi.tcp import TCPHDR_FIN, TCPHDR_PSH, TCPOLEN_SACK_BASE, TCPOLEN_SACK_PERBLOCK
from ..core.skbuff import SKB_TRUESIZE, SkBuff
from .tcp import TCP_MSS_DEFAULT, TCP_NAGLE_CORK, TcpSkbCb, TcpSock, after

TCPOLEN_TSTAMP_ALIGNED: Final = 12
MASK: Final = 0xFFFFFFFF
# What tcp_tso_should_defer answers: send now (0), wait, or wait because of the peer's window.
DEFER: Final = 1
DEFER_RWND_LIMITED: Final = 2

__all__ = ["tcp_mtu_to_mss", "tcp_sync_mss", "tcp_current_mss", "tcp_send_mss",
           "tcp_update_pacing_rate", "tcp_tso_segs", "tcp_skb_pcount", "tcp_cwnd_test",
           "tcp_mss_split_point", "tcp_tso_should_defer", "tcp_nagle_check",
           "tcp_snd_wnd_test", "tso_fragment", "sk_can_gso", "DEFER", "DEFER_RWND_LIMITED"]


def tcp_mtu_to_mss(sk: TcpSock, pmtu: int) -> int:
    mss = pmtu - 20 - 20
    mss = min(mss, sk.mss_clamp)
    mss = max(mss, 48)
    if sk.tstamp_ok:
        mss -= TCPOLEN_TSTAMP_ALIGNED
    return max(mss, 8)


def tcp_sync_mss(sk: TcpSock, pmtu: int) -> int:
    sk.mss_cache = tcp_mtu_to_mss(sk, pmtu)
    return sk.mss_cache


def tcp_current_mss(sk: TcpSock) -> int:
    mss = sk.mss_cache
    rt = sk.sk_dst_cache
    if rt is not None:
        pmtu = rt.dst_mtu()
        if tcp_mtu_to_mss(sk, pmtu) != mss:
            mss = tcp_sync_mss(sk, pmtu)
    if sk.selective_acks or sk.duplicate_sack:
        # SACK blocks take room in every segment while they are being sent.
        blocks = len(sk.selective_acks) + (1 if sk.duplicate_sack else 0)
        mss -= TCPOLEN_SACK_BASE + 2 + blocks * TCPOLEN_SACK_PERBLOCK
    return max(mss, 8)


def sk_can_gso(sk: TcpSock) -> bool:
    """Always, for TCP: sk_setup_caps gives a TCP socket NETIF_F_GSO_SOFTWARE whatever the
    device offers, so `ethtool -K DEV tso off gso off` moves the segmenting into software
    (skb_gso_segment) but leaves TCP's skbs as big (nagle/https_client.pkt shows it)."""
    return True


def tcp_bound_to_half_wnd(sk: TcpSock, pktsize: int) -> int:
    """Never build an skb bigger than half the largest window the peer offered."""
    mw = sk.max_window
    cutoff = mw >> 1 if mw > TCP_MSS_DEFAULT else mw
    if cutoff and pktsize > cutoff:
        return max(cutoff, 68 - 20 - (TCPOLEN_TSTAMP_ALIGNED if sk.tstamp_ok else 0))
    return pktsize


def _gso_limits(sk: TcpSock) -> tuple[int, int]:
    """The route's device's gso_max_size and gso_max_segs (Linux's defaults unrouted)."""
    rt = sk.sk_dst_cache
    if rt is None:
        return 65536, 65535
    dev = rt.dev
    return dev.gso_max_size, dev.gso_max_segs


def tcp_send_mss(sk: TcpSock) -> tuple[int, int]:
    """(mss_now, size_goal): the segment size, and how big tcp_sendmsg makes each skb
    (sk_can_gso always holds for TCP)."""
    mss_now = tcp_current_mss(sk)
    max_size, max_segs = _gso_limits(sk)
    new_size_goal = tcp_bound_to_half_wnd(sk, max_size)
    gso_segs = new_size_goal // mss_now
    if gso_segs > max_segs:
        gso_segs = max_segs
    size_goal = gso_segs * mss_now
    return mss_now, size_goal if size_goal > mss_now else mss_now


def tcp_update_pacing_rate(sk: TcpSock) -> None:
    """sk_pacing_rate: 200% of cwnd/srtt in slow start, 120% after; here it only sizes TSO
    skbs (tcp_tso_autosize), as no qdisc paces."""
    if not sk.srtt_us:
        return
    s = sk.sk_net.sysctl
    ratio = s.tcp_pacing_ss_ratio if sk.snd_cwnd < sk.snd_ssthresh // 2 else \
        s.tcp_pacing_ca_ratio
    rate = sk.mss_cache * (1_000_000 // 100 << 3) * ratio * max(sk.snd_cwnd, sk.packets_out)
    sk.sk_pacing_rate = rate // sk.srtt_us


def tcp_tso_segs(sk: TcpSock, mss_now: int) -> int:
    """tcp_tso_autosize: about 1 ms of the pacing rate per TSO skb, more for close peers."""
    s = sk.sk_net.sysctl
    max_size, max_segs = _gso_limits(sk)
    rate = sk.sk_pacing_rate
    nbytes = max_size if rate < 0 else rate >> 10
    if sk.min_rtt_us:
        r = sk.min_rtt_us >> s.tcp_tso_rtt_log
        if r < 32:
            nbytes += max_size >> r
    nbytes = min(nbytes, max_size)
    return min(max(nbytes // mss_now, s.tcp_min_tso_segs), max_segs)


def tcp_skb_pcount(skb: SkBuff, mss: int) -> int:
    n = skb.tail - skb.data
    return 1 if n <= mss else -(-n // mss)


def tcp_cwnd_test(sk: TcpSock, skb: SkBuff, mss: int) -> int:
    """How many segments the congestion window lets out now: at most half of it at once,
    so that at least two TSO packets are in flight."""
    if skb.cb.tcp_flags & TCPHDR_FIN and skb.tail - skb.data <= mss:
        return 1  # the final FIN is not held by cwnd
    in_flight = sk.packets_in_flight()
    cwnd = sk.snd_cwnd
    if in_flight >= cwnd:
        return 0
    return min(max(cwnd >> 1, 1), cwnd - in_flight)


def tcp_mss_split_point(sk: TcpSock, skb: SkBuff, mss_now: int, max_segs: int,
                        nonagle: int) -> int:
    """How much of a TSO skb to send now: the quota, the window, and Nagle for a tail."""
    window = (sk.snd_una + sk.snd_wnd - skb.cb.seq) & MASK
    max_len = mss_now * max_segs
    is_tail = skb is sk.write_queue[-1]
    if max_len <= window and not is_tail:
        return max_len
    needed = min(skb.tail - skb.data, window)
    if max_len <= needed:
        return max_len
    partial = needed % mss_now
    if tcp_nagle_check(partial != 0, sk, nonagle):
        return needed - partial
    return needed


def tcp_tso_should_defer(sk: TcpSock, skb: SkBuff, max_segs: int) -> int:
    """Wait for a bigger TSO skb when only a little of the window is free (John Heffner's
    TSO Nagle): unless the last send was over 1 ms ago, a full skb fits, a third of the
    window is free, or the next ACK would come too late."""
    if sk.icsk_ca_state >= 3:  # TCP_CA_Recovery
        return 0
    now = kclock.now()
    if now - sk.tcp_wstamp > 0.001:
        return 0
    in_flight = sk.packets_in_flight()
    send_win = (sk.snd_una + sk.snd_wnd - skb.cb.seq) & MASK
    cong_win = (sk.snd_cwnd - in_flight) * sk.mss_cache
    limit = min(send_win, cong_win)
    length = skb.tail - skb.data
    if limit >= max_segs * sk.mss_cache:
        return 0
    if skb is not sk.write_queue[-1] and limit >= length:
        return 0
    divisor = sk.sk_net.sysctl.tcp_tso_win_divisor
    if divisor:
        chunk = min(sk.snd_wnd, sk.snd_cwnd * sk.mss_cache) // divisor
        if limit >= chunk:
            return 0
    elif limit > 3 * sk.mss_cache:
        return 0
    if not sk.rtx_queue:
        return 0
    if now - sk.rtx_queue[0].cb.when < (sk.srtt_us >> 4) / 1e6:
        return 0
    if cong_win < send_win:
        if cong_win <= length:
            sk.cwnd_limited = True
            return DEFER
    elif send_win <= length:
        return DEFER_RWND_LIMITED
    if skb.cb.tcp_flags & TCPHDR_FIN or skb.cb.eor:
        return 0
    return DEFER


def tcp_nagle_check(partial: bool, sk: TcpSock, nonagle: int) -> bool:
    """True if Nagle holds the partial segment back (tcp_nagle_check + minshall)."""
    if not partial:
        return False
    if nonagle & TCP_NAGLE_CORK:
        return True
    if nonagle:
        return False
    return bool(sk.packets_out) and after(sk.snd_sml, sk.snd_una) and not after(sk.snd_sml,
                                                                                 sk.snd_nxt)


def tcp_snd_wnd_test(sk: TcpSock, end_seq: int) -> bool:
    return not after(end_seq, (sk.snd_una + sk.snd_wnd) & MASK)


def tso_fragment(sk: TcpSock, skb: SkBuff, length: int) -> None:
    """Split a queued, unsent skb after `length` bytes; the rest (with PSH, FIN and EOR)
    follows it in the write queue, sharing its buffer."""
    cb = skb.cb
    rest = SkBuff(skb.buf, skb.data + length, skb.tail, SKB_TRUESIZE(0))
    rest.sk = sk
    rest.cb = TcpSkbCb((cb.seq + length) & MASK, cb.end_seq, cb.tcp_flags)
    rest.cb.eor = cb.eor
    cb.eor = False
    moved = skb.tail - skb.data - length
    rest.truesize += moved
    skb.truesize -= moved
    sk.sk_wmem_queued += SKB_TRUESIZE(0)
    cb.end_seq = (cb.seq + length) & MASK
    cb.tcp_flags &= ~(TCPHDR_FIN | TCPHDR_PSH)
    skb.tail = skb.data + length
    q = sk.write_queue
    q.insert(q.index(skb) + 1, rest)  # the head, in practice: found at once


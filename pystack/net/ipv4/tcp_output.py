"""TCP output, as net/ipv4/tcp_output.c (and ip_queue_xmit of net/ipv4/ip_output.c).

Read first: RFC 9293 §3.8 (windows, Nagle RFC 896, silly window avoidance), RFC 1122
§4.2.3.4, RFC 7323 §2-3, net/ipv4/tcp_output.c (tcp_transmit_skb, tcp_options_write,
tcp_syn_options, tcp_established_options, tcp_select_initial_window, __tcp_select_window,
tcp_write_xmit, tcp_nagle_test, tcp_send_ack, tcp_send_delayed_ack, tcp_send_fin,
tcp_send_active_reset, tcp_connect, tcp_retransmit_skb, tcp_sndbuf_expand); tcp_tso.py holds
the sizing (MSS, TSO skbs, the cwnd/window/Nagle tests) that tcp_write_xmit asks.

Queued segments keep only their payload; every transmission builds a fresh skb with the
headers in front (the one copy per transmission that Linux avoids with clones: here a
retransmission must never write headers into a buffer a receiver may still hold).
"""

from __future__ import annotations

from typing import Final

import errno
import struct

from ...kernel.ktime import kclock
from ...lib.checksum import csum_pseudo
from ...uapi.ip import IPPROTO_TCP
from ...uapi.tcp import (TCP_HDR, TCPHDR_ACK, TCPHDR_FIN, TCPHDR_PSH, TCPHDR_RST,
                         TCPHDR_SYN, TCPOLEN_SACK_BASE, TCPOLEN_SACK_PERBLOCK, TCPOPT_NOP,
                         TCPOPT_SACK, flags_str)
from ..core.dev import NET_XMIT_CN, NET_XMIT_SUCCESS
from ..core.skbuff import CHECKSUM_PARTIAL, SKB_TRUESIZE, SkBuff, alloc_skb
from ..core.sock import SOCK_DEAD
from .inet_sock import IP_PMTUDISC_DO, IP_PMTUDISC_PROBE, IP_PMTUDISC_WANT
from .ip_output import ip_build_header, ip_local_out
from .route import RouteError, ip_route_output
from .tcp import (MAX_TCP_HEADER, TCP_ATO_MIN, TCP_DELACK_MAX, TCP_NAGLE_CORK, TCP_NAGLE_OFF,
                  TCP_NAGLE_PUSH, TCPCB_EVER_RETRANS, TCPCB_LOST, TCPCB_SACKED_ACKED,
                  TCP_CHRONO_RWND_LIMITED, TCP_CHRONO_SNDBUF_LIMITED, TCPCB_SACKED_RETRANS,
                  TcpSkbCb, TcpSock, after, before, sk_stream_is_writeable, tcp_chrono_start,
                  tcp_chrono_stop, tcp_slow_start_after_idle_check)
from .tcp_states import TCP_CLOSE_WAIT, TCP_ESTABLISHED, TCP_SYN_SENT
from .tcp_timer import (ICSK_ACK_PUSHED, ICSK_ACK_PUSHED2, ICSK_ACK_SCHED, ICSK_ACK_TIMER,
                        ICSK_TIME_LOSS_PROBE, ICSK_TIME_PROBE0, ICSK_TIME_RETRANS, _probe0_when,
                        inet_csk_clear_delack, inet_csk_reset_delack, inet_csk_reset_xmit_timer,
                        tcp_check_probe_timer, tcp_clamp_probe0_to_user_timeout,
                        tcp_loss_probe_timeout, tcp_rearm_rto)
from .tcp_tso import (DEFER_RWND_LIMITED, tcp_current_mss, tcp_cwnd_test,
                      tcp_mss_split_point, tcp_nagle_check, tcp_skb_pcount, tcp_snd_wnd_test,
                      tcp_sync_mss, tcp_tso_segs, tcp_tso_should_defer, tso_fragment)

_pack_tcp: Final = TCP_HDR.pack_into
_pack_tcp_ts: Final = struct.Struct(TCP_HDR.format + "III").pack_into  # header + NOP,NOP,timestamp
TCPOLEN_TSTAMP_ALIGNED: Final = 12
TCP_MAX_WINDOW: Final = 65535
JIFFY = 0.001  # HZ=1000
MASK: Final = 0xFFFFFFFF


def tcp_time_stamp(sk: TcpSock) -> int:
    """The TS clock: milliseconds, plus the connection's random offset."""
    return (int(kclock.now() * 1000) + sk.tsoffset) & MASK


# -- sizes ------------------------------------------------------------------------------------

def ipv4_default_advmss(mtu: int) -> int:
    return min(max(mtu - 40, 256), 65535 - 40)


def tcp_win_from_space(space: int) -> int:
    """With tcp_adv_win_scale = 1: half of the buffer is for the window."""
    return space - (space >> 1) if space > 0 else 0


def tcp_space(sk: TcpSock) -> int:
    return tcp_win_from_space(sk.sk_rcvbuf - sk.sk_rmem_alloc)


def tcp_full_space(sk: TcpSock) -> int:
    return tcp_win_from_space(sk.sk_rcvbuf)


def tcp_select_initial_window(sk: TcpSock, space: int, mss: int, wscale_ok: bool
                              ) -> tuple[int, int, int]:
    """(rcv_wnd, window_clamp, rcv_wscale) for a SYN or SYN-ACK."""
    window_clamp = sk.window_clamp or (0xFFFF << 14)
    space = min(window_clamp, space)
    if space > mss:
        space -= space % mss
    rcv_wnd = min(space, 0xFFFF)
    rcv_wscale = 0
    if wscale_ok:
        s = sk.sk_net.sysctl
        space = max(space, s.tcp_rmem[2], s.rmem_max)
        space = min(space, window_clamp)
        rcv_wscale = max(0, min(space.bit_length() - 1 - 15, 14))
    window_clamp = min(0xFFFF << rcv_wscale, window_clamp)
    return rcv_wnd, window_clamp, rcv_wscale


def __tcp_select_window(sk: TcpSock) -> int:
    mss = sk.icsk_ack_rcv_mss
    rcvbuf = sk.sk_rcvbuf
    space = rcvbuf - sk.sk_rmem_alloc
    free_space = space - (space >> 1) if space > 0 else 0  # tcp_space
    allowed_space = rcvbuf - (rcvbuf >> 1) if rcvbuf > 0 else 0  # tcp_full_space
    full_space = sk.window_clamp
    if allowed_space < full_space:
        full_space = allowed_space
    if mss > full_space:
        mss = full_space
        if mss <= 0:
            return 0
    if free_space < (full_space >> 1):
        sk.icsk_ack_quick = 0
        free_space -= free_space % (1 << sk.rcv_wscale)
        if free_space < (allowed_space >> 4) or free_space < mss:
            return 0
    if free_space > sk.rcv_ssthresh:
        free_space = sk.rcv_ssthresh
    window = sk.rcv_wnd
    if sk.rcv_wscale:
        unit = 1 << sk.rcv_wscale
        window = (free_space + unit - 1) // unit * unit
    else:
        if window <= free_space - mss or window > free_space:
            window = free_space - free_space % mss if mss else free_space
        elif mss == full_space and free_space > window + (full_space >> 1):
            window = free_space
    return window


def tcp_receive_window(sk: TcpSock) -> int:
    win = (sk.rcv_wup + sk.rcv_wnd - sk.rcv_nxt) & MASK
    return 0 if win >= 0x80000000 else win


def tcp_select_window(sk: TcpSock) -> int:
    """The window for the next segment's header, never shrinking what was offered."""
    cur_win = (sk.rcv_wup + sk.rcv_wnd - sk.rcv_nxt) & MASK  # tcp_receive_window
    if cur_win >= 0x80000000:
        cur_win = 0
    new_win = __tcp_select_window(sk)
    if new_win < cur_win:
        unit = 1 << sk.rcv_wscale
        new_win = (cur_win + unit - 1) // unit * unit
    sk.rcv_wnd = new_win
    sk.rcv_wup = sk.rcv_nxt
    if not sk.wscale_ok:
        new_win = min(new_win, TCP_MAX_WINDOW)
    else:
        new_win = min(new_win, 0xFFFF << sk.rcv_wscale)
    new_win >>= sk.rcv_wscale
    if new_win == 0:
        sk.sk_net.mib.tcpext_inc("TCPToZeroWindowAdv")
    return new_win


def tcp_sndbuf_expand(sk: TcpSock) -> None:
    """Size the send buffer for the congestion window (what gives Linux its 87040 bytes)."""
    if sk.sk_userlocks & 1:  # SOCK_SNDBUF_LOCK
        return
    nr_segs = max(10, sk.snd_cwnd, sk.reordering + 1)
    mss = max(sk.mss_clamp if sk.mss_clamp < 0xFFFF else 0, sk.mss_cache)
    if nr_segs == sk.sndbuf_nr_segs and mss == sk.sndbuf_mss and sk.sk_sndbuf >= sk.sndbuf_set:
        return  # the same sizes as last time, and the buffer has not shrunk since
    per_mss = mss + MAX_TCP_HEADER + 320
    per_mss = (1 << (per_mss - 1).bit_length()) + 256
    sndmem = 2 * nr_segs * per_mss
    if sk.sk_sndbuf < sndmem:
        sk.sk_sndbuf = min(sndmem, sk.sk_net.sysctl.tcp_wmem[2])
    sk.sndbuf_nr_segs, sk.sndbuf_mss, sk.sndbuf_set = nr_segs, mss, sk.sk_sndbuf


# -- options --------------------------------------------------------------------------------------

# MSS, SACK-permitted with the timestamp, NOP + window scale: what nearly every SYN carries.
_SYN_FULL: Final = struct.Struct("!BBHBBBBIIBBBB").pack


def _syn_options(sk: TcpSock, mss: int, tsval: int, tsecr: int, synack: bool,
                 sack: bool, ts: bool, wscale: int) -> bytes:
    if ts and sack and wscale >= 0:
        return _SYN_FULL(2, 4, mss, 4, 2, 8, 10, tsval, tsecr, 1, 3, 3, wscale)
    out = bytearray(struct.pack("!BBH", 2, 4, mss))
    if ts:
        if sack:
            out += bytes((4, 2, 8, 10))
        else:
            out += bytes((1, 1, 8, 10))
        out += struct.pack("!II", tsval, tsecr)
    elif sack:
        out += bytes((1, 1, 4, 2))
    if wscale >= 0:
        out += bytes((1, 3, 3, wscale))
    return bytes(out)


_TS_ALIGNED: Final = struct.Struct("!III").pack
_TS_HEAD: Final = 0x0101080A  # NOP, NOP, kind 8, length 10


def _established_options(sk: TcpSock) -> bytes:
    """The options of a segment that is not a SYN (tcp_established_options). The common case,
    the timestamp alone, tcp_transmit_skb writes itself, with the header."""
    out = bytearray()
    if sk.tstamp_ok:
        out += _TS_ALIGNED(_TS_HEAD, tcp_time_stamp(sk), sk.ts_recent)
    if not (sk.sack_ok and (sk.duplicate_sack or sk.selective_acks)):
        return bytes(out)
    blocks = ([sk.duplicate_sack] if sk.duplicate_sack else []) + sk.selective_acks
    room = (40 - len(out) - 4) // 8
    blocks = blocks[:room]
    out += bytes((TCPOPT_NOP, TCPOPT_NOP, TCPOPT_SACK,
                  TCPOLEN_SACK_BASE + len(blocks) * TCPOLEN_SACK_PERBLOCK))
    for start, end in blocks:
        out += struct.pack("!II", start, end)
    if sk.duplicate_sack:
        sk.duplicate_sack = None  # a D-SACK is reported once
    return bytes(out)


# -- transmission --------------------------------------------------------------------------------

def ip_queue_xmit(sk: TcpSock, skb: SkBuff) -> int:
    """Route (through the socket's cached dst), add the IP header, send."""
    net = sk.sk_net
    rt = sk.sk_dst_cache
    if rt is None or rt.genid != net.ipv4.fib.genid:
        oif = net.dev_index.get(sk.sk_bound_dev_if) if sk.sk_bound_dev_if else None
        try:
            rt = ip_route_output(net, sk.inet_daddr, sk.inet_saddr, oif)
        except RouteError as e:
            net.mib.ip["OutNoRoutes"] += 1
            sk.sk_err_soft = e.errno
            return -e.errno
        sk.sk_dst_cache = rt
    skb.dst = rt
    pmtu = sk.pmtudisc
    # ip_dont_fragment: no DF once the path MTU is held at min_pmtu (routers fragment)
    df = pmtu in (IP_PMTUDISC_DO, IP_PMTUDISC_PROBE) or (
        pmtu == IP_PMTUDISC_WANT and not rt.mtu_locked)
    if df:
        ip_id = sk.inet_id
        sk.inet_id = (ip_id + skb.gso_segs) & 0xFFFF  # ip_select_ident_segs
    else:
        ip_id = net.ipv4.ip_ident
        net.ipv4.ip_ident = (ip_id + 1) & 0xFFFF
    ip_build_header(skb, sk.inet_saddr, sk.inet_daddr, IPPROTO_TCP, sk.ttl(), sk.tos, df,
                    ip_id)
    skb.priority = sk.sk_priority
    skb.mark = sk.sk_mark
    return ip_local_out(net, skb)


def tcp_transmit_skb(sk: TcpSock, skb: SkBuff | None, flags: int, seq: int,
                     payload: memoryview | bytes = b"", *, syn_options: bytes | None = None,
                     window: int | None = None, gso_size: int = 0) -> int:
    """Build one segment (header, options, payload) and hand it to IP. `syn_options`, when
    given, are the options to write (a SYN's). With `gso_size` smaller than the payload it
    is a TSO skb of several segments (cut by GSO, in tcp_offload, where the device cannot).
    The checksum is left CHECKSUM_PARTIAL, as Linux's TCP always leaves it."""
    net = sk.sk_net
    # Nearly every segment carries the timestamp option alone: header and option are then
    # written in one pack (the same bytes _established_options would give).
    ts_only = (syn_options is None and sk.tstamp_ok
               and not (sk.sack_ok and (sk.duplicate_sack or sk.selective_acks)))
    if ts_only:
        opts = b""
        hlen = 20 + TCPOLEN_TSTAMP_ALIGNED
    else:
        opts = syn_options if syn_options is not None else _established_options(sk)
        hlen = 20 + len(opts)
    plen = len(payload)
    out = alloc_skb(hlen + plen, headroom=MAX_TCP_HEADER - 60 + 64)
    off = out.put(hlen + plen)
    buf = out.buf
    if window is None:
        window = tcp_select_window(sk) if not flags & TCPHDR_SYN else min(sk.rcv_wnd, 0xFFFF)
    ack_seq = sk.rcv_nxt if flags & TCPHDR_ACK else 0
    if ts_only:
        _pack_tcp_ts(buf, off, sk.inet_sport, sk.inet_dport, seq & MASK, ack_seq, 0x80, flags,
                     window, 0, 0, _TS_HEAD, tcp_time_stamp(sk), sk.ts_recent)
    else:
        _pack_tcp(buf, off, sk.inet_sport, sk.inet_dport, seq & MASK, ack_seq,
                  (hlen // 4) << 4, flags, window, 0, 0)
        buf[off + 20:off + hlen] = opts
    if plen:
        buf[off + hlen:off + hlen + plen] = payload
    segs = 1
    if gso_size and plen > gso_size:
        segs = -(-plen // gso_size)
        out.gso_size = gso_size
        out.gso_segs = segs
    # __tcp_v4_send_check: only the pseudo-header's sum goes in; the device (or
    # skb_checksum_help, or GSO) completes the checksum (see skbuff.py, CHECKSUM_PARTIAL).
    pseudo = csum_pseudo(sk.inet_saddr, sk.inet_daddr, IPPROTO_TCP, hlen + plen)
    buf[off + 16] = pseudo >> 8
    buf[off + 17] = pseudo & 0xFF
    out.ip_summed = CHECKSUM_PARTIAL
    out.csum_start = off
    out.csum_offset = 16
    out.transport_header = off
    out.sk = sk
    if skb is not None and skb.trace is not None:
        out.trace = skb.trace
    elif net.follow_next is not None and plen:
        out.trace = net.follow_next
        net.follow_next = None
    if out.trace is not None:
        out.trace.hop(net, "tcp_transmit_skb")
    if flags & TCPHDR_ACK:
        tcp_event_ack_sent(sk, segs)
    now = kclock.now()
    sk.tcp_wstamp = now
    if plen:
        sk.data_segs_out += segs
        sk.lsndtime = now
        if sk.icsk_ack_ato and now - sk.icsk_ack_lrcvtime < sk.icsk_ack_ato:
            sk.icsk_ack_pingpong = 1  # we answer quickly: an interactive exchange
    sk.segs_out += segs
    net.mib.tcp["OutSegs"] += segs
    if flags & TCPHDR_RST:
        net.mib.tcp["OutRsts"] += 1
    if net.tracer.active:
        net.tracer.emit(net, "TCP_TRANSKB", flags=flags_str(flags), seq=seq, len=plen,
                        sport=sk.inet_sport, dport=sk.inet_dport)
    rc = ip_queue_xmit(sk, out)
    if rc < 0:
        return rc
    return 0 if rc in (NET_XMIT_SUCCESS, NET_XMIT_CN) else -errno.ENOBUFS


def tcp_event_ack_sent(sk: TcpSock, pkts: int = 1) -> None:
    if sk.icsk_ack_quick:
        sk.icsk_ack_quick = max(sk.icsk_ack_quick - pkts, 0)  # tcp_dec_quickack_mode
    inet_csk_clear_delack(sk)


def _send_data_skb(sk: TcpSock, skb: SkBuff, mss: int = 0,
                   parts: list[SkBuff] | None = None) -> int:
    """__tcp_transmit_skb for a queued skb. An skb longer than `mss` is a TSO skb: it leaves
    as one GSO packet of `mss`-sized segments (cut before a device without TSO, FIN and PSH
    on the last only), with PSH forced, as Linux does for every GSO packet "to expedite GRO
    flush at the receiver". `parts`, when given, are segments of the retransmit queue
    (`skb` first) sent again as one TSO skb."""
    cb: TcpSkbCb = skb.cb
    flags = cb.tcp_flags
    now = kclock.now()
    if flags & TCPHDR_SYN:
        cb.when = now
        if cb.first_tx is None:
            cb.first_tx = now
        payload: memoryview | bytes = memoryview(skb.buf)[skb.data:skb.tail]
        return tcp_transmit_skb(sk, skb, flags, cb.seq, payload, syn_options=tcp_syn_options(sk))
    length = skb.tail - skb.data
    if parts is None and (not mss or length <= mss):
        cb.when = now
        if cb.first_tx is None:
            cb.first_tx = now
        return tcp_transmit_skb(sk, skb, flags, cb.seq, memoryview(skb.buf)[skb.data:skb.tail])
    # One TSO skb. GSO gives FIN and PSH to its last segment only.
    if parts is not None:
        flags = parts[-1].cb.tcp_flags
    for p in parts if parts is not None else (skb,):
        p.cb.when = now
        if p.cb.first_tx is None:
            p.cb.first_tx = now
    if parts is not None:
        payload = b"".join(memoryview(p.buf)[p.data:p.tail] for p in parts)
        seg_size = max(p.tail - p.data for p in parts)
        seq = cb.seq
    else:
        payload = memoryview(skb.buf)[skb.data:skb.tail]
        seg_size = mss
        seq = cb.seq
    return tcp_transmit_skb(sk, skb, flags | TCPHDR_PSH, seq, payload, gso_size=seg_size)


def tcp_syn_options(sk: TcpSock) -> bytes:
    return _syn_options(sk, sk.advmss, tcp_time_stamp(sk), sk.ts_recent, False, sk.sack_ok,
                        sk.tstamp_ok, sk.rcv_wscale if sk.wscale_ok else -1)


def tcp_write_xmit(sk: TcpSock, mss_now: int, nonagle: int, push_one: int = 0) -> bool:
    """Send queued data as the congestion window, the peer's window, Nagle and TSO sizing
    allow. push_one=1 sends one skb; 2 also ignores cwnd (a loss probe). Returns True if
    something is queued but nothing is in flight (a probe is needed)."""
    sent = 0
    rwnd_limited = False  # held back by the peer's window (TCP_INFO's chrono)
    q = sk.write_queue
    sk.cwnd_limited = False
    if not sk.packets_out and q:
        # The first data after an idle spell (a long zero window too) restarts from the
        # initial window (RFC 5681 4.1), whether a write or an ACK sends it.
        tcp_slow_start_after_idle_check(sk)
    max_segs = 0  # tcp_tso_segs (sk_can_gso holds for TCP), asked for a TSO skb only
    while q:
        skb = q[0]
        cb: TcpSkbCb = skb.cb
        tso_segs = tcp_skb_pcount(skb, mss_now)
        quota = tcp_cwnd_test(sk, skb, mss_now)
        if not quota:
            if push_one != 2:
                sk.cwnd_limited = True
                break
            quota = 1
        first_end = cb.end_seq if tso_segs == 1 else (cb.seq + mss_now) & MASK
        if not tcp_snd_wnd_test(sk, first_end):
            rwnd_limited = True
            break
        if tso_segs == 1:
            # tcp_nagle_test: only the last skb of the queue can be held back.
            test_nonagle = nonagle if skb is q[-1] else TCP_NAGLE_PUSH
            if (not test_nonagle & TCP_NAGLE_PUSH and not cb.tcp_flags & TCPHDR_FIN
                    and tcp_nagle_check(skb.tail - skb.data < mss_now, sk, test_nonagle)):
                break
        elif not push_one:
            if not max_segs:
                max_segs = tcp_tso_segs(sk, mss_now)
            defer = tcp_tso_should_defer(sk, skb, max_segs)
            if defer:
                rwnd_limited = defer == DEFER_RWND_LIMITED
                break
        limit = mss_now
        if tso_segs > 1:
            if not max_segs:
                max_segs = tcp_tso_segs(sk, mss_now)
            limit = tcp_mss_split_point(sk, skb, mss_now, min(quota, max_segs), nonagle)
        if skb.tail - skb.data > limit:
            tso_fragment(sk, skb, limit)
        if cb.end_seq == cb.seq:
            break  # an empty skb: a writer is still filling it
        if _send_data_skb(sk, skb, mss_now) < 0:
            break
        q.popleft()
        pcount = 1 if tso_segs == 1 else tcp_skb_pcount(skb, mss_now)
        length = skb.tail - skb.data
        tcp_event_new_data_sent(sk, skb, mss_now)
        if sk.icsk_ca_state == 3:  # TCP_CA_Recovery
            sk.prr_out += pcount
        if length < pcount * mss_now:
            sk.snd_sml = cb.end_seq  # tcp_minshall_update
        sent += pcount
        if push_one:
            break
    if rwnd_limited:
        tcp_chrono_start(sk, TCP_CHRONO_RWND_LIMITED)
    else:
        tcp_chrono_stop(sk, TCP_CHRONO_RWND_LIMITED)
    if sent:
        sk.max_packets_out = max(sk.max_packets_out, sk.packets_out)
        if sk.packets_in_flight() >= sk.snd_cwnd:
            sk.cwnd_limited = True
        if (not sk.cwnd_limited and not q and sk.sk_nospace
                and sk.sk_state in (TCP_ESTABLISHED, TCP_CLOSE_WAIT)):
            # tcp_cwnd_validate: all sent, not held by cwnd, and a writer waits for room:
            # the send buffer is what limits this connection.
            tcp_chrono_start(sk, TCP_CHRONO_SNDBUF_LIMITED)
        # Re-arm the RTO, then schedule a tail loss probe in its place (one probe per
        # tail-loss episode): when the probe will be scheduled, the timer is armed once.
        tlp = tcp_loss_probe_timeout(sk, False) if push_one != 2 else None
        if tlp is not None:
            inet_csk_reset_xmit_timer(sk, ICSK_TIME_LOSS_PROBE, tlp)
        elif sk.icsk_pending == ICSK_TIME_LOSS_PROBE:
            tcp_rearm_rto(sk)
        else:
            tcp_rearm_rto(sk, only_if_idle=True)
    return not sk.packets_out and bool(q)


def tcp_event_new_data_sent(sk: TcpSock, skb: SkBuff, mss: int = 0) -> None:
    """The skb was sent: it moves to the retransmit queue, one skb per segment there (the
    segments of one TSO skb keep a common `gso_unit`, and share its buffer)."""
    cb: TcpSkbCb = skb.cb
    prior = sk.packets_out
    sk.snd_nxt = cb.end_seq if after(cb.end_seq, sk.snd_nxt) or sk.snd_nxt == cb.seq \
        else sk.snd_nxt
    sk.gso_units += 1
    unit = sk.gso_units
    length = skb.tail - skb.data
    sk.bytes_sent += length
    if not mss or length <= mss:
        cb.gso_unit = unit
        sk.rtx_queue.append(skb)
        sk.packets_out += 1
    else:
        # Every segment but the last: full-sized, without FIN and PSH, charged its length;
        # the last keeps the flags, EOR and the rest of the truesize.
        flags = cb.tcp_flags
        mid_flags = flags & ~(TCPHDR_FIN | TCPHDR_PSH)
        rtx = sk.rtx_queue
        buf = skb.buf
        data = skb.data
        seq0 = cb.seq
        when = cb.when
        first_tx = cb.first_tx
        end = (length - 1) // mss * mss  # where the last segment starts
        for off in range(0, end, mss):
            part = SkBuff(buf, data + off, data + off + mss, mss)
            part.sk = sk
            seq = (seq0 + off) & MASK
            pcb = part.cb = TcpSkbCb(seq, (seq + mss) & MASK, mid_flags)
            pcb.when = when
            pcb.first_tx = first_tx
            pcb.gso_unit = unit
            rtx.append(part)
        part = SkBuff(buf, data + end, data + length, skb.truesize - end)
        part.sk = sk
        pcb = part.cb = TcpSkbCb((seq0 + end) & MASK, cb.end_seq, flags)
        pcb.when = when
        pcb.first_tx = first_tx
        pcb.eor = cb.eor
        pcb.gso_unit = unit
        rtx.append(part)
        if skb.trace is not None:
            rtx[len(rtx) - 1 - end // mss].trace = skb.trace  # the first segment's
        sk.packets_out += end // mss + 1
    if not prior:
        sk.retrans_stamp = 0.0


def forced_push(sk: TcpSock) -> bool:
    return after(sk.write_seq, (sk.pushed_seq + (sk.max_window >> 1)) & MASK)


def tcp_mark_push(sk: TcpSock, skb: SkBuff) -> None:
    skb.cb.tcp_flags |= TCPHDR_PSH
    sk.pushed_seq = sk.write_seq


def __tcp_push_pending_frames(sk: TcpSock, mss_now: int, nonagle: int) -> None:
    if sk.sk_state == 7:  # TCP_CLOSE
        return
    if tcp_write_xmit(sk, mss_now, nonagle):
        tcp_check_probe_timer(sk)


def tcp_push_pending_frames(sk: TcpSock) -> None:
    if sk.write_queue:
        __tcp_push_pending_frames(sk, tcp_current_mss(sk), sk.nonagle)


def tcp_push_one(sk: TcpSock, mss_now: int) -> None:
    """Send the one full skb at the head of the queue (from tcp_sendmsg)."""
    tcp_write_xmit(sk, mss_now, TCP_NAGLE_PUSH, push_one=1)


def tcp_push(sk: TcpSock, flags: int, mss_now: int, nonagle: int) -> None:
    """The end of a write: PSH on the last queued byte unless MSG_MORE says more is coming
    (TCP_CORK still marks it: the cork only holds it back), then send what may go."""
    MSG_MORE = 0x8000
    q = sk.write_queue
    if not q:
        return
    if not flags & MSG_MORE or forced_push(sk):
        tcp_mark_push(sk, q[-1])
    if flags & MSG_MORE:
        nonagle = TCP_NAGLE_CORK
    __tcp_push_pending_frames(sk, mss_now, nonagle)


def tcp_data_snd_check(sk: TcpSock) -> None:
    """After an ACK: send what the new window allows."""
    if sk.write_queue:
        if tcp_write_xmit(sk, tcp_current_mss(sk), sk.nonagle):
            tcp_check_probe_timer(sk)
    if not sk.sock_flag(SOCK_DEAD):
        if sk_stream_is_writeable(sk):
            if sk.sk_nospace:
                sk.sk_nospace = False
                tcp_chrono_stop(sk, TCP_CHRONO_SNDBUF_LIMITED)
            sk.sk_write_space(sk)


# -- control segments -----------------------------------------------------------------------------

def tcp_acceptable_seq(sk: TcpSock) -> int:
    if not before((sk.snd_una + sk.snd_wnd) & MASK, sk.snd_nxt) or not sk.snd_wnd:
        return sk.snd_nxt
    return (sk.snd_una + sk.snd_wnd) & MASK


def tcp_send_ack(sk: TcpSock) -> None:
    if sk.sk_state == 7:  # TCP_CLOSE
        return
    tcp_transmit_skb(sk, None, TCPHDR_ACK, tcp_acceptable_seq(sk))


def tcp_send_delayed_ack(sk: TcpSock) -> None:
    """Arm the delayed-ACK timer (40 ms, up to 200 ms), or send now if one is overdue."""
    ato = sk.icsk_ack_ato  # 0 before any data arrived: the ACK goes out on the next tick
    if ato > TCP_ATO_MIN:
        max_ato = TCP_DELACK_MAX if sk.icsk_ack_pingpong else 0.5
        if sk.srtt_us:
            max_ato = min(max_ato, max((sk.srtt_us >> 3) / 1e6, TCP_ATO_MIN))
        ato = min(ato, max_ato)
    ato = min(ato, TCP_DELACK_MAX)
    now = kclock.now()
    # A timer set for `jiffies + 0` fires at the next tick: with HZ=1000 a millisecond on
    # (time in which a FIN or data from the application may take the ACK along).
    timeout = now + max(ato, JIFFY)
    if sk.icsk_ack_pending & ICSK_ACK_TIMER and sk.delack_timer is not None \
            and sk.delack_timer.pending():
        if sk.delack_timer.expires <= now + ato / 2:
            tcp_send_ack(sk)
            return
        timeout = min(timeout, sk.delack_timer.expires)
    inet_csk_reset_delack(sk, timeout)


def tcp_send_fin(sk: TcpSock) -> None:
    q = sk.write_queue
    if q and not q[-1].cb.tcp_flags & TCPHDR_FIN:
        tail = q[-1]
        tail.cb.tcp_flags |= TCPHDR_FIN
        tail.cb.end_seq = (tail.cb.end_seq + 1) & MASK
    else:
        skb = SkBuff(bytearray(0), 0, 0, SKB_TRUESIZE(MAX_TCP_HEADER))
        skb.sk = sk
        skb.cb = TcpSkbCb(sk.write_seq, (sk.write_seq + 1) & MASK, TCPHDR_FIN | TCPHDR_ACK)
        q.append(skb)
        sk.sk_wmem_queued += skb.truesize
    sk.write_seq = (sk.write_seq + 1) & MASK
    # __tcp_push_pending_frames: the FIN goes out now, without marking PSH.
    if tcp_write_xmit(sk, tcp_current_mss(sk), TCP_NAGLE_OFF):
        tcp_check_probe_timer(sk)


def tcp_send_active_reset(sk: TcpSock) -> None:
    tcp_transmit_skb(sk, None, TCPHDR_RST | TCPHDR_ACK, tcp_acceptable_seq(sk))


def tcp_connect(sk: TcpSock) -> None:
    """Send the SYN of an active open."""
    rt = sk.sk_dst_cache
    mtu = rt.dst_mtu() if rt is not None else 1500
    sk.advmss = min(ipv4_default_advmss(mtu), sk.user_mss or 0xFFFF)
    if sk.user_mss:
        sk.mss_clamp = sk.user_mss
    tcp_sync_mss(sk, mtu)
    sk.icsk_ack_rcv_mss = 536  # TCP_MSS_DEFAULT until tcp_initialize_rcv_mss
    rcv_wnd, clamp, wscale = tcp_select_initial_window(
        sk, tcp_full_space(sk), sk.advmss - (TCPOLEN_TSTAMP_ALIGNED if sk.ts_recent_stamp >= 0
                                             else 0), sk.wscale_ok)
    sk.rcv_wnd = rcv_wnd
    sk.window_clamp = clamp
    sk.rcv_wscale = wscale
    sk.rcv_ssthresh = rcv_wnd
    sk.snd_una = sk.iss
    sk.snd_nxt = sk.iss
    sk.snd_sml = sk.iss
    sk.write_seq = (sk.iss + 1) & MASK
    sk.pushed_seq = sk.write_seq
    sk.rcv_nxt = 0
    sk.rcv_wup = 0
    sk.copied_seq = 0
    sk.snd_wnd = 0
    sk.lsndtime = kclock.now()
    skb = SkBuff(bytearray(0), 0, 0, SKB_TRUESIZE(MAX_TCP_HEADER))
    skb.sk = sk
    skb.cb = TcpSkbCb(sk.iss, (sk.iss + 1) & MASK, TCPHDR_SYN)
    sk.sk_wmem_queued += skb.truesize
    _send_data_skb(sk, skb)
    sk.retrans_stamp = skb.cb.when
    tcp_event_new_data_sent(sk, skb)
    sk.snd_nxt = (sk.iss + 1) & MASK
    sk.sk_net.mib.tcp["ActiveOpens"] += 1
    inet_csk_reset_xmit_timer(sk, ICSK_TIME_RETRANS, sk.icsk_rto)


def tcp_retransmit_skb(sk: TcpSock, skb: SkBuff, count_out: bool = True, segs: int = 1,
                       following: list[SkBuff] | None = None) -> int:
    """Send a segment of the retransmit queue again (a loss probe does not count it as
    being in flight again: count_out=False, as __tcp_retransmit_skb). With `segs` > 1 the
    segments after it in `following` that were sent in the same TSO skb, and are in the same
    state, go again with it as one TSO skb, up to `segs` and the peer's window."""
    net = sk.sk_net
    cb: TcpSkbCb = skb.cb
    if before(cb.end_seq, sk.snd_una) or cb.end_seq == sk.snd_una:
        return -1
    if not sk.retrans_stamp:
        sk.retrans_stamp = kclock.now()  # the first (attempted) retransmission
    if before(cb.seq, sk.snd_una):
        # Partly acked: send only what is still outstanding.
        trim = (sk.snd_una - cb.seq) & MASK
        skb.data += min(trim, skb.tail - skb.data)
        cb.seq = sk.snd_una
    mss = tcp_current_mss(sk)
    if skb.tail - skb.data > mss:
        _split_rtx(sk, skb, mss)
    run = [skb]
    if segs > 1 and following:
        wnd_end = (sk.snd_una + sk.snd_wnd) & MASK
        state = cb.sacked & (TCPCB_LOST | TCPCB_SACKED_ACKED | TCPCB_SACKED_RETRANS)
        for nxt in following:
            ncb = nxt.cb
            if (len(run) >= segs or ncb.gso_unit != cb.gso_unit
                    or ncb.sacked & (TCPCB_LOST | TCPCB_SACKED_ACKED
                                     | TCPCB_SACKED_RETRANS) != state
                    or nxt.tail - nxt.data > mss or after(ncb.end_seq, wnd_end)
                    or ncb.seq != run[-1].cb.end_seq):
                break
            run.append(nxt)
    if net.tracer.active:
        net.tracer.emit(net, "tcp:tcp_retransmit_skb", sport=sk.inet_sport,
                        dport=sk.inet_dport, seq=cb.seq)
    rc = _send_data_skb(sk, skb, parts=run if len(run) > 1 else None)
    if rc < 0:
        return rc
    for part in run:
        pcb = part.cb
        if sk.icsk_ca_state == 3:  # TCP_CA_Recovery: PRR counts what recovery sends
            sk.prr_out += 1
        if count_out:
            if not pcb.sacked & TCPCB_SACKED_RETRANS:
                sk.retrans_out += 1
            pcb.sacked |= TCPCB_SACKED_RETRANS
        pcb.sacked |= TCPCB_EVER_RETRANS
        sk.total_retrans += 1
        sk.bytes_retrans += part.tail - part.data
        net.mib.tcp["RetransSegs"] += 1
    return 0


def _split_rtx(sk: TcpSock, skb: SkBuff, mss: int) -> None:
    """tcp_fragment in the retransmit queue: the MSS shrank (path MTU)."""
    cb: TcpSkbCb = skb.cb
    rest = SkBuff(skb.buf, skb.data + mss, skb.tail, SKB_TRUESIZE(0))
    rest.sk = sk
    rest.cb = TcpSkbCb((cb.seq + mss) & MASK, cb.end_seq, cb.tcp_flags)
    rest.cb.sacked = cb.sacked & ~TCPCB_SACKED_RETRANS
    rest.cb.when = cb.when
    rest.cb.first_tx = cb.first_tx
    rest.cb.gso_unit = cb.gso_unit
    cb.end_seq = (cb.seq + mss) & MASK
    cb.tcp_flags &= ~(TCPHDR_FIN | TCPHDR_PSH)
    skb.tail = skb.data + mss
    sk.sk_wmem_queued += rest.truesize
    idx = sk.rtx_queue.index(skb)
    sk.rtx_queue.insert(idx + 1, rest)
    sk.packets_out += 1
    if cb.sacked & TCPCB_LOST:
        rest.cb.sacked |= TCPCB_LOST
        sk.lost_out += 1


def tcp_xmit_retransmit_queue(sk: TcpSock) -> None:
    """Retransmit the segments marked lost, as the congestion window allows; the lost
    segments of one TSO skb go again together."""
    q = list(sk.rtx_queue)
    max_segs = tcp_tso_segs(sk, tcp_current_mss(sk))
    for i, skb in enumerate(q):
        cb: TcpSkbCb = skb.cb
        room = sk.snd_cwnd - sk.packets_in_flight()
        if room <= 0 or sk.retrans_out >= sk.lost_out:
            break
        if cb.sacked & TCPCB_LOST and not cb.sacked & (TCPCB_SACKED_RETRANS
                                                       | TCPCB_SACKED_ACKED):
            segs = min(room, max_segs)
            if tcp_retransmit_skb(sk, skb, segs=segs, following=q[i + 1:i + segs]) < 0:
                break


def tcp_write_wakeup(sk: TcpSock) -> int:
    """If the window has room, send what fits of the next segment (with PSH); else a segment
    with an old sequence number, to make the peer ACK. <0 if nothing could be sent."""
    q = sk.write_queue
    wnd_end = (sk.snd_una + sk.snd_wnd) & MASK
    if q and before(q[0].cb.seq, wnd_end):
        skb = q[0]
        mss = tcp_current_mss(sk)
        seg_size = min((wnd_end - skb.cb.seq) & MASK, mss)
        if seg_size < skb.tail - skb.data:
            tso_fragment(sk, skb, seg_size)
        skb.cb.tcp_flags |= TCPHDR_PSH
        rc = _send_data_skb(sk, skb)
        if rc < 0:
            return rc
        q.popleft()
        prior = sk.packets_out
        tcp_event_new_data_sent(sk, skb)
        if not prior:
            tcp_rearm_rto(sk)  # the data is the RTO's to look after now
        return 0
    return tcp_transmit_skb(sk, None, TCPHDR_ACK, (sk.snd_una - 1) & MASK)


def tcp_send_probe0(sk: TcpSock) -> None:
    """A window probe; then either stop probing (data went out: the RTO covers it) or probe
    again later, backing off as the RTO does."""
    err = tcp_write_wakeup(sk)
    if sk.packets_out or not sk.write_queue:
        sk.icsk_probes_out = 0
        sk.icsk_backoff = 0
        sk.icsk_probes_tstamp = -1.0
        return
    sk.icsk_probes_out += 1
    if err >= 0:
        if sk.icsk_backoff < sk.sk_net.sysctl.tcp_retries2:
            sk.icsk_backoff += 1
        when = _probe0_when(sk)
    else:
        when = 0.5  # TCP_RESOURCE_PROBE_INTERVAL: not sent for lack of local resources
    inet_csk_reset_xmit_timer(sk, ICSK_TIME_PROBE0, tcp_clamp_probe0_to_user_timeout(sk, when))


def tcp_cleanup_rbuf(sk: TcpSock, copied: int) -> None:
    """After the reader took data: send a window update if it opened the window enough."""
    time_to_ack = False
    pending = sk.icsk_ack_pending
    if pending & ICSK_ACK_SCHED:
        # Once-per-two-segments ACK not sent yet; or this read emptied the queue after a
        # small pushed segment, on a connection that is not interactive (__tcp_cleanup_rbuf).
        if (((sk.rcv_nxt - sk.rcv_wup) & MASK) > sk.icsk_ack_rcv_mss
                or (copied > 0 and (pending & ICSK_ACK_PUSHED2 or (
                    pending & ICSK_ACK_PUSHED and not sk.icsk_ack_pingpong))
                    and not sk.sk_rmem_alloc)):
            time_to_ack = True
    if copied > 0 and not time_to_ack and not sk.sk_shutdown & 1:
        rcv_window_now = tcp_receive_window(sk)
        if 2 * rcv_window_now <= sk.window_clamp:
            new_window = __tcp_select_window(sk)
            if new_window and new_window >= 2 * rcv_window_now:
                time_to_ack = True
    if time_to_ack:
        tcp_send_ack(sk)


def tcp_make_synack(listener: TcpSock, req, tsval: int) -> bytes:
    return _syn_options(listener, req.mss, tsval, req.ts_recent, True, req.sack_ok,
                        req.tstamp_ok, req.rcv_wscale if req.wscale_ok else -1)


__all__ = ["tcp_transmit_skb", "tcp_write_xmit", "tcp_push", "tcp_send_ack",
           "tcp_send_delayed_ack", "tcp_send_fin", "tcp_send_active_reset", "tcp_connect",
           "tcp_retransmit_skb", "tcp_current_mss", "tcp_select_initial_window",
           "TCP_SYN_SENT", "TCPHDR_ACK"]

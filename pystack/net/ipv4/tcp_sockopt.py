"""IPPROTO_TCP socket options and TCP_INFO, as net/ipv4/tcp.c (do_tcp_setsockopt,
do_tcp_getsockopt, tcp_get_info).

Read first: man 7 tcp, include/uapi/linux/tcp.h (struct tcp_info), net/ipv4/tcp.c.
"""

from __future__ import annotations

import errno
import struct
from typing import Any, Final

from ...kernel.errors import KernelError
from ...kernel.ktime import kclock
from ..core.sock import SOCK_KEEPOPEN, _int_val, lock_sock, release_sock
from .tcp import (MAX_TCP_KEEPCNT, MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL, TCP_CONGESTION, TCP_CORK,
                  TCP_DEFER_ACCEPT, TCP_INFO, TCP_KEEPCNT, TCP_KEEPIDLE, TCP_KEEPINTVL,
                  TCP_LINGER2, TCP_MAXSEG, TCP_MIN_MSS, TCP_NAGLE_CORK, TCP_NAGLE_OFF,
                  TCP_NAGLE_PUSH, TCP_NODELAY, TCP_NOTSENT_LOWAT, TCP_QUICKACK, TCP_SYNCNT,
                  TCP_USER_TIMEOUT, TCP_WINDOW_CLAMP, TcpSock, tcp_chrono_stats)
from .tcp_cong import tcp_ca_find
from .tcp_states import TCP_CLOSE, TCP_ESTABLISHED, TCP_LISTEN
from .tcp_timer import tcp_reset_keepalive_timer

TCPI_OPT_TIMESTAMPS: Final = 1
TCPI_OPT_SACK: Final = 2
TCPI_OPT_WSCALE: Final = 4

_TCP_INFO: Final = struct.Struct("@8B24I4Q6I4Q2I2Q4I")



def secs_to_retrans(seconds: int, timeout: int, rto_max: int) -> int:
    """How many retransmissions, the first after `timeout` s and doubling up to `rto_max`,
    it takes to cover `seconds` (net/ipv4/tcp.c)."""
    if seconds <= 0:
        return 0
    period, res = timeout, 1
    while seconds > period and res < 255:
        res += 1
        timeout = min(timeout << 1, rto_max)
        period += timeout
    return res


def retrans_to_secs(retrans: int, timeout: int, rto_max: int) -> int:
    """The seconds `retrans` backed-off retransmissions cover (net/ipv4/tcp.c)."""
    if retrans <= 0:
        return 0
    period = timeout
    while retrans > 1:
        retrans -= 1
        timeout = min(timeout << 1, rto_max)
        period += timeout
    return period

def tcp_setsockopt(sk: TcpSock, optname: int, optval: Any) -> None:
    from .tcp_output import tcp_push_pending_frames
    if optname == TCP_CONGESTION:
        name = optval.decode() if isinstance(optval, (bytes, bytearray)) else str(optval)
        ops = tcp_ca_find(name.split("\0", 1)[0])
        if ops is None:
            raise KernelError(errno.ENOENT)
        sk.icsk_ca_ops = ops
        ops.init(sk)
        return
    val = _int_val(optval)
    lock_sock(sk)
    try:
        if optname == TCP_NODELAY:
            if val:
                sk.nonagle |= TCP_NAGLE_OFF | TCP_NAGLE_PUSH
                if sk.sk_state in (TCP_ESTABLISHED,) and sk.write_queue:
                    tcp_push_pending_frames(sk)
            else:
                sk.nonagle &= ~TCP_NAGLE_OFF
        elif optname == TCP_CORK:
            if val:
                sk.nonagle |= TCP_NAGLE_CORK
            else:
                sk.nonagle &= ~TCP_NAGLE_CORK
                if sk.nonagle & TCP_NAGLE_OFF:
                    sk.nonagle |= TCP_NAGLE_PUSH
                tcp_push_pending_frames(sk)
        elif optname == TCP_MAXSEG:
            if val and (val < TCP_MIN_MSS or val > 32767):
                raise KernelError(errno.EINVAL)
            sk.user_mss = val
        elif optname == TCP_KEEPIDLE:
            if val < 1 or val > MAX_TCP_KEEPIDLE:
                raise KernelError(errno.EINVAL)
            sk.keepalive_time = val
            if sk.sock_flag(SOCK_KEEPOPEN) and sk.sk_state not in (TCP_CLOSE, TCP_LISTEN):
                # tcp_sock_set_keepidle_locked: the running timer follows the new idle time.
                idle = kclock.now() - max(sk.rcv_tstamp, sk.icsk_ack_lrcvtime)
                tcp_reset_keepalive_timer(sk, max(val - idle, 0.0))
        elif optname == TCP_KEEPINTVL:
            if val < 1 or val > MAX_TCP_KEEPINTVL:
                raise KernelError(errno.EINVAL)
            sk.keepalive_intvl = val
        elif optname == TCP_KEEPCNT:
            if val < 1 or val > MAX_TCP_KEEPCNT:
                raise KernelError(errno.EINVAL)
            sk.keepalive_probes = val
        elif optname == TCP_SYNCNT:
            if val < 1 or val > 127:
                raise KernelError(errno.EINVAL)
            sk.icsk_syn_retries = val
        elif optname == TCP_LINGER2:
            sk.linger2 = val
        elif optname == TCP_DEFER_ACCEPT:
            # Kept as a number of SYN-ACK retransmissions (rskq_defer_accept): the fewest
            # whose backed-off timeouts add up to the seconds asked for.
            sk.defer_accept = secs_to_retrans(val, 1, 120)
        elif optname == TCP_WINDOW_CLAMP:
            if not val:
                if sk.sk_state != TCP_CLOSE:
                    raise KernelError(errno.EINVAL)
                sk.window_clamp = 0
            else:
                sk.window_clamp = max(val, 2048)  # SOCK_MIN_RCVBUF / 2
        elif optname == TCP_QUICKACK:
            if val:
                sk.icsk_ack_pingpong = 0
                from .tcp_input import tcp_enter_quickack_mode
                tcp_enter_quickack_mode(sk)
            else:
                sk.icsk_ack_pingpong = 1
        elif optname == TCP_USER_TIMEOUT:
            if val < 0:
                raise KernelError(errno.EINVAL)
            sk.icsk_user_timeout = val
        elif optname == TCP_NOTSENT_LOWAT:
            sk.notsent_lowat = val
            sk.sk_write_space(sk)
        else:
            raise KernelError(errno.ENOPROTOOPT)
    finally:
        release_sock(sk)


def tcp_getsockopt(sk: TcpSock, optname: int) -> Any:
    if optname == TCP_NODELAY:
        return int(bool(sk.nonagle & TCP_NAGLE_OFF))
    if optname == TCP_CORK:
        return int(bool(sk.nonagle & TCP_NAGLE_CORK))
    if optname == TCP_MAXSEG:
        if sk.user_mss and sk.sk_state in (TCP_CLOSE, TCP_LISTEN):
            return sk.user_mss
        return sk.mss_cache
    if optname == TCP_KEEPIDLE:
        return sk.keepalive_time or sk.sk_net.sysctl.tcp_keepalive_time
    if optname == TCP_KEEPINTVL:
        return sk.keepalive_intvl or sk.sk_net.sysctl.tcp_keepalive_intvl
    if optname == TCP_KEEPCNT:
        return sk.keepalive_probes or sk.sk_net.sysctl.tcp_keepalive_probes
    if optname == TCP_SYNCNT:
        return sk.icsk_syn_retries or sk.sk_net.sysctl.tcp_syn_retries
    if optname == TCP_LINGER2:
        return sk.linger2 or sk.sk_net.sysctl.tcp_fin_timeout
    if optname == TCP_DEFER_ACCEPT:
        return retrans_to_secs(sk.defer_accept, 1, 120)
    if optname == TCP_WINDOW_CLAMP:
        return sk.window_clamp
    if optname == TCP_QUICKACK:
        return int(not sk.icsk_ack_pingpong)
    if optname == TCP_USER_TIMEOUT:
        return sk.icsk_user_timeout
    if optname == TCP_NOTSENT_LOWAT:
        return sk.notsent_lowat
    if optname == TCP_CONGESTION:
        return sk.icsk_ca_ops.name.encode().ljust(16, b"\0")
    if optname == TCP_INFO:
        return tcp_info_bytes(sk)
    raise KernelError(errno.ENOPROTOOPT)


def tcp_get_info(sk: TcpSock) -> dict[str, int]:
    """struct tcp_info as a dict of its tcpi_* fields (times in microseconds)."""
    now = kclock.now()
    busy, rwnd, sndbuf = tcp_chrono_stats(sk)
    options = 0
    if sk.tstamp_ok:
        options |= TCPI_OPT_TIMESTAMPS
    if sk.sack_ok:
        options |= TCPI_OPT_SACK
    if sk.wscale_ok:
        options |= TCPI_OPT_WSCALE
    us = lambda t: int(round(t * 1e6))  # noqa: E731
    ms = lambda t: int(round(t * 1e3))  # noqa: E731
    rtt = sk.srtt_us >> 3
    info = {
        "tcpi_state": sk.sk_state, "tcpi_ca_state": sk.icsk_ca_state,
        "tcpi_retransmits": sk.icsk_retransmits, "tcpi_probes": sk.icsk_probes_out,
        "tcpi_backoff": sk.icsk_backoff, "tcpi_options": options,
        "tcpi_snd_wscale": sk.snd_wscale, "tcpi_rcv_wscale": sk.rcv_wscale,
        "tcpi_rto": us(sk.icsk_rto), "tcpi_ato": us(sk.icsk_ack_ato),
        "tcpi_snd_mss": sk.mss_cache, "tcpi_rcv_mss": sk.icsk_ack_rcv_mss,
        "tcpi_unacked": sk.packets_out, "tcpi_sacked": sk.sacked_out,
        "tcpi_lost": sk.lost_out, "tcpi_retrans": sk.retrans_out, "tcpi_fackets": 0,
        "tcpi_last_data_sent": ms(now - sk.lsndtime),
        "tcpi_last_ack_sent": 0,
        "tcpi_last_data_recv": ms(now - sk.icsk_ack_lrcvtime),
        "tcpi_last_ack_recv": ms(now - sk.rcv_tstamp),
        "tcpi_pmtu": sk.sk_dst_cache.dst_mtu() if sk.sk_dst_cache is not None else 0,
        "tcpi_rcv_ssthresh": sk.rcv_ssthresh, "tcpi_rtt": rtt,
        "tcpi_rttvar": sk.mdev_us >> 2, "tcpi_snd_ssthresh": sk.snd_ssthresh
        if sk.snd_ssthresh < 0x7FFFFFFF else 0x7FFFFFFF,
        "tcpi_snd_cwnd": sk.snd_cwnd, "tcpi_advmss": sk.advmss,
        "tcpi_reordering": sk.reordering, "tcpi_rcv_rtt": 0, "tcpi_rcv_space": sk.rcv_space,
        "tcpi_total_retrans": sk.total_retrans, "tcpi_pacing_rate": 0,
        "tcpi_max_pacing_rate": 0xFFFFFFFFFFFFFFFF, "tcpi_bytes_acked": sk.bytes_acked,
        "tcpi_bytes_received": sk.bytes_received, "tcpi_segs_out": sk.segs_out,
        "tcpi_segs_in": sk.segs_in,
        "tcpi_notsent_bytes": (sk.write_seq - sk.snd_nxt) & 0xFFFFFFFF,
        "tcpi_min_rtt": sk.min_rtt_us or 0xFFFFFFFF, "tcpi_data_segs_in": sk.data_segs_in,
        "tcpi_data_segs_out": sk.data_segs_out, "tcpi_delivery_rate": 0, "tcpi_busy_time": busy,
        "tcpi_rwnd_limited": rwnd, "tcpi_sndbuf_limited": sndbuf, "tcpi_delivered": sk.delivered,
        "tcpi_delivered_ce": 0, "tcpi_bytes_sent": sk.bytes_sent,
        "tcpi_bytes_retrans": sk.bytes_retrans, "tcpi_dsack_dups": sk.dsack_dups,
        "tcpi_reord_seen": 0, "tcpi_rcv_ooopack": sk.rcv_ooopack, "tcpi_snd_wnd": sk.snd_wnd,
    }
    return info


def tcp_info_bytes(sk: TcpSock) -> bytes:
    i = tcp_get_info(sk)
    return _TCP_INFO.pack(
        i["tcpi_state"], i["tcpi_ca_state"], i["tcpi_retransmits"], i["tcpi_probes"],
        i["tcpi_backoff"], i["tcpi_options"], (i["tcpi_rcv_wscale"] << 4) | i["tcpi_snd_wscale"],
        0, i["tcpi_rto"], i["tcpi_ato"], i["tcpi_snd_mss"], i["tcpi_rcv_mss"],
        i["tcpi_unacked"], i["tcpi_sacked"], i["tcpi_lost"], i["tcpi_retrans"],
        i["tcpi_fackets"], i["tcpi_last_data_sent"], i["tcpi_last_ack_sent"],
        i["tcpi_last_data_recv"], i["tcpi_last_ack_recv"], i["tcpi_pmtu"],
        i["tcpi_rcv_ssthresh"], i["tcpi_rtt"], i["tcpi_rttvar"], i["tcpi_snd_ssthresh"],
        i["tcpi_snd_cwnd"], i["tcpi_advmss"], i["tcpi_reordering"], i["tcpi_rcv_rtt"],
        i["tcpi_rcv_space"], i["tcpi_total_retrans"], i["tcpi_pacing_rate"],
        i["tcpi_max_pacing_rate"], i["tcpi_bytes_acked"], i["tcpi_bytes_received"],
        i["tcpi_segs_out"], i["tcpi_segs_in"], i["tcpi_notsent_bytes"], i["tcpi_min_rtt"],
        i["tcpi_data_segs_in"], i["tcpi_data_segs_out"], i["tcpi_delivery_rate"],
        i["tcpi_busy_time"], i["tcpi_rwnd_limited"], i["tcpi_sndbuf_limited"],
        i["tcpi_delivered"], i["tcpi_delivered_ce"], i["tcpi_bytes_sent"],
        i["tcpi_bytes_retrans"], i["tcpi_dsack_dups"], i["tcpi_reord_seen"],
        i["tcpi_rcv_ooopack"], i["tcpi_snd_wnd"])

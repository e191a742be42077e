"""Pluggable congestion control, as net/ipv4/tcp_cong.c (Reno) and tcp_cubic.c (CUBIC).

Read first: RFC 5681 (slow start, congestion avoidance), RFC 6582 (NewReno), RFC 9438 (CUBIC),
net/ipv4/tcp_cong.c (tcp_slow_start, tcp_cong_avoid_ai, tcp_reno_*), net/ipv4/tcp_cubic.c
(bictcp_update, bictcp_recalc_ssthresh; HyStart is not implemented).

A congestion ops object has `init`, `ssthresh` (on loss), `cong_avoid` (on ACK), `undo_cwnd`
and `name`, as `struct tcp_congestion_ops`. `TCP_CONGESTION` picks one by name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from .tcp import TcpSock

TCP_INIT_CWND: Final = 10


def tcp_slow_start(tp: "TcpSock", acked: int) -> int:
    """Grow cwnd by what was acked, up to ssthresh; return the acks left over."""
    cwnd = min(tp.snd_cwnd + acked, tp.snd_ssthresh)
    acked -= cwnd - tp.snd_cwnd
    tp.snd_cwnd = min(cwnd, tp.snd_cwnd_clamp)
    return acked


def tcp_cong_avoid_ai(tp: "TcpSock", w: int, acked: int) -> None:
    """Additive increase: one segment per `w` acked."""
    if tp.snd_cwnd_cnt >= w:
        tp.snd_cwnd_cnt = 0
        tp.snd_cwnd += 1
    tp.snd_cwnd_cnt += acked
    if tp.snd_cwnd_cnt >= w:
        delta = tp.snd_cwnd_cnt // w
        tp.snd_cwnd_cnt -= delta * w
        tp.snd_cwnd += delta
    tp.snd_cwnd = min(tp.snd_cwnd, tp.snd_cwnd_clamp)


class Reno:
    name = "reno"

    def init(self, tp: "TcpSock") -> None:
        pass

    def ssthresh(self, tp: "TcpSock") -> int:
        return max(tp.snd_cwnd >> 1, 2)

    def cong_avoid(self, tp: "TcpSock", ack: int, acked: int) -> None:
        if not tp.is_cwnd_limited():
            return
        if tp.snd_cwnd < tp.snd_ssthresh:
            acked = tcp_slow_start(tp, acked)
            if not acked:
                return
        tcp_cong_avoid_ai(tp, tp.snd_cwnd, acked)

    def undo_cwnd(self, tp: "TcpSock") -> int:
        return max(tp.snd_cwnd, tp.prior_cwnd)

    def on_loss(self, tp: "TcpSock") -> None:
        pass


BICTCP_BETA_SCALE: Final = 1024
BETA: Final = 717  # 0.7 * 1024
BICTCP_HZ: Final = 10
CUBE_RTT_SCALE: Final = 410  # bic_scale 41 * 10
CUBE_FACTOR = (1 << (10 + 3 * BICTCP_HZ)) // CUBE_RTT_SCALE


class CubicState:
    __slots__ = ("cnt", "last_max_cwnd", "last_cwnd", "last_time", "bic_origin_point",
                 "bic_K", "delay_min", "epoch_start", "ack_cnt", "tcp_cwnd")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.cnt = 0
        self.last_max_cwnd = 0
        self.last_cwnd = 0
        self.last_time = 0.0
        self.bic_origin_point = 0
        self.bic_K = 0.0
        self.delay_min = 0.0
        self.epoch_start = 0.0
        self.ack_cnt = 0
        self.tcp_cwnd = 0


class Cubic(Reno):
    """CUBIC (RFC 9438) with Linux's fast convergence and TCP-friendliness; no HyStart."""

    name = "cubic"

    def init(self, tp: "TcpSock") -> None:
        tp.ca_priv = CubicState()

    def _ca(self, tp: "TcpSock") -> CubicState:
        ca = tp.ca_priv
        if not isinstance(ca, CubicState):
            ca = tp.ca_priv = CubicState()
        return ca

    def ssthresh(self, tp: "TcpSock") -> int:
        ca = self._ca(tp)
        ca.epoch_start = 0.0
        if tp.snd_cwnd < ca.last_max_cwnd:  # fast convergence
            ca.last_max_cwnd = (tp.snd_cwnd * (BICTCP_BETA_SCALE + BETA)) // (
                2 * BICTCP_BETA_SCALE)
        else:
            ca.last_max_cwnd = tp.snd_cwnd
        return max((tp.snd_cwnd * BETA) // BICTCP_BETA_SCALE, 2)

    def on_loss(self, tp: "TcpSock") -> None:
        self._ca(tp).reset()

    def cong_avoid(self, tp: "TcpSock", ack: int, acked: int) -> None:
        if not tp.is_cwnd_limited():
            return
        if tp.snd_cwnd < tp.snd_ssthresh:
            acked = tcp_slow_start(tp, acked)
            if not acked:
                return
        ca = self._ca(tp)
        self._update(tp, ca, acked)
        tcp_cong_avoid_ai(tp, ca.cnt, acked)

    def _update(self, tp: "TcpSock", ca: CubicState, acked: int) -> None:
        now = tp.now()
        cwnd = tp.snd_cwnd
        ca.ack_cnt += acked
        if ca.last_cwnd == cwnd and now - ca.last_time <= 1 / 32:
            return
        ca.last_cwnd = cwnd
        ca.last_time = now
        if ca.epoch_start == 0.0:
            ca.epoch_start = now or 1e-9
            ca.ack_cnt = acked
            ca.tcp_cwnd = cwnd
            if ca.last_max_cwnd <= cwnd:
                ca.bic_K = 0.0
                ca.bic_origin_point = cwnd
            else:
                ca.bic_K = ((ca.last_max_cwnd - cwnd) * 10 / 4) ** (1 / 3)  # (W_max-W)/C, C=0.4
                ca.bic_origin_point = ca.last_max_cwnd
        rtt = ca.delay_min or (tp.srtt_us / 8e6 if tp.srtt_us else 0.1)
        t = now + rtt - ca.epoch_start
        target = ca.bic_origin_point + 0.4 * (t - ca.bic_K) ** 3
        if target > cwnd:
            ca.cnt = max(int(cwnd / (target - cwnd)), 2)
        else:
            ca.cnt = 100 * cwnd
        if ca.last_max_cwnd == 0 and ca.cnt > 20:
            ca.cnt = 20  # the first epoch grows at least as fast as 5% per RTT
        # TCP friendliness: never slower than Reno would be.
        delta = (cwnd * BICTCP_BETA_SCALE * 3) // (BICTCP_BETA_SCALE + BETA) // 1 or 1
        while ca.ack_cnt > delta:
            ca.ack_cnt -= delta
            ca.tcp_cwnd += 1
        if ca.tcp_cwnd > cwnd:
            max_cnt = cwnd // (ca.tcp_cwnd - cwnd)
            if ca.cnt > max_cnt:
                ca.cnt = max(max_cnt, 2)
        ca.cnt = max(ca.cnt, 2)

    def undo_cwnd(self, tp: "TcpSock") -> int:
        return max(tp.snd_cwnd, tp.prior_cwnd)


CONGESTION_OPS: dict[str, Any] = {"reno": Reno(), "cubic": Cubic()}


def tcp_ca_find(name: str) -> Any:
    return CONGESTION_OPS.get(name)

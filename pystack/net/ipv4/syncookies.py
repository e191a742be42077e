"""SYN cookies, as net/ipv4/syncookies.c.

Read first: RFC 4987 §3.6, net/ipv4/syncookies.c (secure_tcp_syn_cookie,
check_tcp_syn_cookie, __cookie_v4_init_sequence, cookie_init_timestamp, cookie_v4_check,
cookie_timestamp_decode).

When a listener's SYN queue is full, the SYN-ACK's sequence number carries the connection's
state instead of a request sock: a keyed hash of the 4-tuple, a minute counter and an index
into a small MSS table. With timestamps on, the low bits of our TSval carry the window scale
and SACK permission. The final ACK (ack - 1) is checked against the hash; a valid one creates
the connection as if the request had been kept.

The hash key comes from the network's seed (Linux uses a random boot-time secret).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Final

from ...kernel.ktime import ktime_get
from .tcp import tcp_segment_addrs
from .tcp_minisocks import RequestSock

if TYPE_CHECKING:
    from ..core.skbuff import SkBuff
    from .tcp import TcpSkbCb, TcpSock

COOKIEBITS: Final = 24
COOKIEMASK: Final = (1 << COOKIEBITS) - 1
MAX_SYNCOOKIE_AGE: Final = 2  # minutes
MSS_TABLE: Final = (536, 1300, 1440, 1460)  # msstab: the MSS values a cookie can carry
TSBITS: Final = 6
TSMASK: Final = (1 << TSBITS) - 1
TS_OPT_WSCALE_MASK: Final = 0xF
TS_OPT_SACK: Final = 1 << 4
MASK: Final = 0xFFFFFFFF


def _hash(key: bytes, saddr: int, daddr: int, sport: int, dport: int, count: int, c: int) -> int:
    data = b"%d|%d|%d|%d|%d|%d" % (saddr, daddr, sport, dport, count, c)
    return int.from_bytes(hashlib.blake2s(data, key=key, digest_size=4).digest(), "big")


def _key(net) -> bytes:
    return hashlib.sha256(b"syncookie-%d-%s" % (net.seed, net.host.name.encode())).digest()


def tcp_cookie_time() -> int:
    return int(ktime_get() // 60)


def cookie_v4_init_sequence(net, saddr: int, daddr: int, sport: int, dport: int, sseq: int,
                            mss: int) -> tuple[int, int]:
    """The ISN for a cookie SYN-ACK, and the MSS it promises (the largest table entry that
    does not exceed the peer's)."""
    mssind = 0
    for i, value in enumerate(MSS_TABLE):
        if mss >= value:
            mssind = i
    key = _key(net)
    count = tcp_cookie_time()
    isn = (_hash(key, saddr, daddr, sport, dport, 0, 0) + sseq + (count << COOKIEBITS)
           + ((_hash(key, saddr, daddr, sport, dport, count, 1) + mssind) & COOKIEMASK)) & MASK
    return isn, MSS_TABLE[mssind]


def check_tcp_syn_cookie(net, cookie: int, saddr: int, daddr: int, sport: int, dport: int,
                         sseq: int) -> int:
    """The MSS index a valid cookie carries, or -1."""
    key = _key(net)
    count = tcp_cookie_time()
    cookie = (cookie - _hash(key, saddr, daddr, sport, dport, 0, 0) - sseq) & MASK
    diff = (count - (cookie >> COOKIEBITS)) & ((MASK >> COOKIEBITS))
    if diff >= MAX_SYNCOOKIE_AGE:
        return -1
    data = (cookie - _hash(key, saddr, daddr, sport, dport, count - diff, 1)) & COOKIEMASK
    return data if data < len(MSS_TABLE) else -1


def cookie_init_timestamp(req: RequestSock, now_ts: int) -> int:
    """Our TSval with the window scale and SACK bits in its low bits."""
    options = req.snd_wscale if req.wscale_ok else TS_OPT_WSCALE_MASK
    if req.sack_ok:
        options |= TS_OPT_SACK
    ts = (now_ts & ~TSMASK) | options
    if ((ts - now_ts) & MASK) < 0x80000000 and ts != now_ts:
        ts = (ts - (1 << TSBITS)) & MASK
    return ts


def cookie_v4_check(listener: "TcpSock", skb: "SkBuff") -> RequestSock | None:
    """Rebuild the request of a cookie ACK, or None if the ACK carries no valid cookie."""
    net = listener.sk_net
    cb: TcpSkbCb = skb.cb
    raddr, laddr, rport, lport = tcp_segment_addrs(skb)
    mssind = check_tcp_syn_cookie(net, (cb.ack_seq - 1) & MASK, raddr, laddr, rport, lport,
                                  (cb.seq - 1) & MASK)
    if mssind < 0:
        net.mib.tcpext_inc("SyncookiesFailed")
        return None
    req = RequestSock(listener, laddr, lport, raddr, rport)
    req.rcv_isn = (cb.seq - 1) & MASK
    req.snt_isn = (cb.ack_seq - 1) & MASK
    req.peer_mss = MSS_TABLE[mssind]
    opts = cb.opts
    if opts is not None and opts.saw_tstamp and opts.rcv_tsecr:
        options = opts.rcv_tsecr & TSMASK
        req.tstamp_ok = True
        req.ts_recent = opts.rcv_tsval
        req.sack_ok = bool(options & TS_OPT_SACK) and bool(net.sysctl.tcp_sack)
        wscale = options & TS_OPT_WSCALE_MASK
        if wscale != TS_OPT_WSCALE_MASK:
            req.wscale_ok = True
            req.snd_wscale = wscale
    net.mib.tcpext_inc("SyncookiesRecv")
    return req

"""TCP over IPv4: segment input, resets, the passive and active open, ICMP errors, as
net/ipv4/tcp_ipv4.c (and the listen-queue parts of inet_connection_sock.c).

Read first: RFC 9293 §3.10.7.1 (segment arrives, CLOSED), §3.10.7.2 (LISTEN), RFC 5961,
RFC 1122 §4.2.3.9 (ICMP for TCP), net/ipv4/tcp_ipv4.c (tcp_v4_rcv, tcp_v4_do_rcv,
tcp_v4_send_reset, tcp_v4_connect, tcp_v4_err, tcp_v4_syn_recv_sock), net/ipv4/tcp_input.c
(tcp_conn_request), net/ipv4/inet_connection_sock.c (inet_csk_listen_start/stop).
"""

from __future__ import annotations

import errno
import functools
import hashlib
import operator
import struct
from collections import deque
from typing import TYPE_CHECKING, Any, Final

from ...kernel.errors import KernelError
from ...kernel.ktime import kclock
from ...lib.checksum import csum_ipv4_payload
from ...uapi.icmp import ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, ICMP_TIME_EXCEEDED
from ...uapi.ip import IP_ADDRS, IPPROTO_TCP
from ...uapi.tcp import (TCP_HDR, TCPHDR_ACK, TCPHDR_FIN, TCPHDR_RST, TCPHDR_SYN,
                         parse_options)
from ..core import drop_reason as dr
from ..core.dev import IFF_LOOPBACK
from ..core.drop_reason import consume_skb, kfree_skb
from ..core.skbuff import (CHECKSUM_PARTIAL, CHECKSUM_UNNECESSARY, PACKET_HOST, SkBuff,
                           alloc_skb)
from ..core.sock import (SOCK_BINDPORT_LOCK, SOCK_DEAD, SOCK_KEEPOPEN, sk_add_backlog,
                         sock_owned_by_user)
from .fib import RTN_BROADCAST, RTN_LOCAL, RTN_MULTICAST
from .inet_hashtables import inet_bind_conflict, inet_hash_connect
from .ip_output import ip_build_header, ip_local_out
from .route import RouteError, ip_route_output, ip_route_output_sk, ip_rt_update_pmtu
from .syncookies import cookie_init_timestamp, cookie_v4_check, cookie_v4_init_sequence
from .tcp import (TCP_TIMEOUT_INIT, TcpSkbCb, TcpSock, after, before, tcp_done,
                  tcp_segment_addrs, tcp_set_state)
from .tcp_input import tcp_rcv_established, tcp_rcv_state_process, tcp_rtt_estimator, tcp_set_rto
from .tcp_minisocks import (TCP_TW_ACK, TCP_TW_SYN, RequestSock, TimeWaitSock,
                            reqsk_queue_drop, tcp_check_req, tcp_timewait_state_process)
from .tcp_output import (ipv4_default_advmss, tcp_connect, tcp_full_space, tcp_make_synack,
                         tcp_retransmit_skb, tcp_select_initial_window, tcp_sync_mss)
from .tcp_states import (TCP_CLOSE, TCP_ESTABLISHED, TCP_LISTEN, TCP_NEW_SYN_RECV,
                         TCP_SYN_RECV, TCP_SYN_SENT, TCP_TIME_WAIT)
from .udp import ICMP_ERR_CONVERT

if TYPE_CHECKING:
    from ..core.dev import NetDevice
    from ..core.net_namespace import Net

MASK: Final = 0xFFFFFFFF
_unpack_tcp: Final = TCP_HDR.unpack_from
_pack_tcp: Final = TCP_HDR.pack_into
_unpack_addrs: Final = IP_ADDRS.unpack_from


def tcp_v4_rcv(skb: SkBuff) -> None:
    dev: NetDevice = skb.dev
    net = dev.nd_net
    mib = net.mib.tcp
    if skb.trace is not None:
        skb.trace.hop(net, "tcp_v4_rcv")
    if skb.pkt_type != PACKET_HOST:
        kfree_skb(skb, dr.OTHERHOST)
        return
    mib["InSegs"] += skb.gso_segs
    buf = skb.buf
    off = skb.data
    length = skb.tail - off
    if length < 20:
        mib["InErrs"] += 1
        kfree_skb(skb, dr.PKT_TOO_SMALL)
        return
    sport, dport, seq, ack_seq, doff, flags, window, _check, _urg = _unpack_tcp(buf, off)
    hlen = (doff >> 4) * 4
    if hlen < 20 or hlen > length:
        mib["InErrs"] += 1
        kfree_skb(skb, dr.PKT_TOO_SMALL)
        return
    saddr, daddr = _unpack_addrs(buf, skb.network_header + 12)
    # skb_csum_unnecessary: verified by the NIC (or GRO), or CHECKSUM_PARTIAL (never on a wire)
    ip_summed = skb.ip_summed
    if ip_summed != CHECKSUM_UNNECESSARY and ip_summed != CHECKSUM_PARTIAL and \
            not dev.flags & IFF_LOOPBACK:
        if csum_ipv4_payload(saddr, daddr, IPPROTO_TCP, buf, off, length) != 0:
            mib["InCsumErrors"] += 1
            mib["InErrs"] += 1
            kfree_skb(skb, dr.TCP_CSUM)
            return
    datalen = length - hlen
    cb = TcpSkbCb(seq, (seq + datalen + (1 if flags & TCPHDR_SYN else 0)
                        + (1 if flags & TCPHDR_FIN else 0)) & MASK, flags)
    cb.ack_seq = ack_seq
    cb.window = window
    cb.opts = parse_options(buf, off + 20, off + hlen, bool(flags & TCPHDR_SYN))
    skb.cb = cb
    skb.transport_header = off
    skb.data = off + hlen
    hashinfo = net.ipv4.tcp.hashinfo
    sk = hashinfo.ehash.get((daddr, dport, saddr, sport))
    if sk is not None:
        state = sk.sk_state
        if state == TCP_TIME_WAIT:
            verdict = tcp_timewait_state_process(sk, skb)
            if verdict == TCP_TW_SYN:
                sk.kill()
                sk = None  # fall through to the listener
            else:
                if verdict == TCP_TW_ACK:
                    _tw_send_ack(net, sk)
                consume_skb(skb)
                return
        elif state == TCP_NEW_SYN_RECV:
            result = tcp_check_req(sk, skb)
            if result is True:
                tcp_v4_send_reset(net, skb)
                kfree_skb(skb, "TCP_RESET")
            elif result is not None:
                child = result
                tcp_rcv_state_process(child, skb)
                listener = child.parent
                if listener is not None:
                    listener.sk_data_ready(listener)
            return
    if sk is None:
        sk = hashinfo.lookup_listener(daddr, dport, dev.ifindex)
    if sk is None:
        if skb.dst is None or skb.dst.type == RTN_LOCAL:
            tcp_v4_send_reset(net, skb)
        kfree_skb(skb, dr.NO_SOCKET)
        return
    sk.segs_in += skb.gso_segs
    if datalen:
        sk.data_segs_in += skb.gso_segs
    if sock_owned_by_user(sk):
        if not sk_add_backlog(sk, skb, sk.sk_rcvbuf + sk.sk_sndbuf):
            net.mib.tcpext_inc("TCPBacklogDrop")
            kfree_skb(skb, "SOCKET_BACKLOG")
        return
    tcp_v4_do_rcv(sk, skb)


def tcp_v4_do_rcv(sk: TcpSock, skb: SkBuff) -> None:
    """The socket's own input, from softirq or from release_sock's backlog."""
    state = sk.sk_state
    if state == TCP_ESTABLISHED:
        tcp_rcv_established(sk, skb)
        return
    if state == TCP_LISTEN:
        flags = skb.cb.tcp_flags
        if flags & TCPHDR_ACK and not flags & (TCPHDR_SYN | TCPHDR_RST) and \
                sk.sk_net.sysctl.tcp_syncookies:
            # Maybe the final ACK of a handshake answered with a SYN cookie.
            req = cookie_v4_check(sk, skb)
            if req is not None:
                _cookie_child(sk, req, skb)
                return
        if flags & TCPHDR_ACK:
            tcp_v4_send_reset(sk.sk_net, skb)
            kfree_skb(skb, "TCP_FLAGS")
        elif flags & TCPHDR_RST or not flags & TCPHDR_SYN or flags & TCPHDR_FIN:
            kfree_skb(skb, "TCP_FLAGS")
        else:
            tcp_conn_request(sk, skb)
        return
    if tcp_rcv_state_process(sk, skb):
        tcp_v4_send_reset(sk.sk_net, skb)


# -- initial sequence numbers and timestamp offsets ---------------------------------------------

@functools.lru_cache(maxsize=256)
def _tcp_secret(seed: int, host_name: str) -> "hashlib._Hash":
    """The host's secret for ISNs and timestamp offsets (net_secret in Linux), from the
    network's seed, as a keyed BLAKE2s ready to be copied: made once per host, not once
    per connection."""
    key = hashlib.sha256(b"tcp-secret-%d-%s" % (seed, host_name.encode())).digest()
    return hashlib.blake2s(key=key, digest_size=4)


def _keyed(seed: int, host_name: str, *fields: int) -> int:
    """The host's keyed hash of `fields` (siphash over net_secret in Linux)."""
    h = _tcp_secret(seed, host_name).copy()
    h.update(b",".join(map(b"%d".__mod__, fields)))
    return int.from_bytes(h.digest(), "big")


def secure_tcp_seq(net: "Net", saddr: int, daddr: int, sport: int, dport: int) -> int:
    """RFC 6528, as Linux: a keyed hash of the 4-tuple plus a clock ticking every 64 ns,
    so a new connection on a 4-tuple starts above the old one's sequence numbers."""
    return (_keyed(net.seed, net.host.name, 1, saddr, daddr, sport, dport)
            + (int(kclock.now() * 1e9) >> 6)) & MASK


def secure_tcp_ts_off(net: "Net", saddr: int, daddr: int) -> int:
    """The timestamp offset for an address pair (the same for every connection between
    them, so their timestamps keep increasing across connections)."""
    return _ts_off(net.seed, net.host.name, 2, saddr, daddr)


# One offset per address pair, so hashed once per pair.
_ts_off: Final = functools.lru_cache(maxsize=4096)(_keyed)


# -- segments without a full socket -------------------------------------------------------------

def _send_raw(net: "Net", saddr: int, daddr: int, sport: int, dport: int, seq: int, ack: int,
              flags: int, window: int, opts: bytes = b"", ttl: int | None = None,
              tos: int = 0) -> None:
    try:
        rt = ip_route_output(net, daddr, saddr)
    except RouteError:
        return
    hlen = 20 + len(opts)
    skb = alloc_skb(hlen)
    off = skb.put(hlen)
    buf = skb.buf
    _pack_tcp(buf, off, sport, dport, seq & MASK, ack & MASK, (hlen // 4) << 4, flags, window,
              0, 0)
    buf[off + 20:off + hlen] = opts
    check = csum_ipv4_payload(saddr, daddr, IPPROTO_TCP, buf, off, hlen)
    buf[off + 16] = check >> 8
    buf[off + 17] = check & 0xFF
    skb.transport_header = off
    skb.dst = rt
    ip_build_header(skb, saddr, daddr, IPPROTO_TCP, ttl or net.sysctl.ip_default_ttl, tos,
                    True, 0)
    net.mib.tcp["OutSegs"] += 1
    if flags & TCPHDR_RST:
        net.mib.tcp["OutRsts"] += 1
    ip_local_out(net, skb)


def tcp_v4_send_reset(net: "Net", skb: SkBuff) -> None:
    """Answer a segment that has no connection (RFC 9293 §3.10.7.1)."""
    cb: TcpSkbCb = skb.cb
    if cb.tcp_flags & TCPHDR_RST:
        return
    rt = skb.dst
    if rt is not None and rt.type in (RTN_BROADCAST, RTN_MULTICAST):
        return
    saddr, daddr, sport, dport = tcp_segment_addrs(skb)
    if cb.tcp_flags & TCPHDR_ACK:
        _send_raw(net, daddr, saddr, dport, sport, cb.ack_seq, 0, TCPHDR_RST, 0)
    else:
        _send_raw(net, daddr, saddr, dport, sport, 0, cb.end_seq, TCPHDR_RST | TCPHDR_ACK, 0)


def _ts_opts(tsval: int, tsecr: int) -> bytes:
    return struct.pack("!BBBBII", 1, 1, 8, 10, tsval, tsecr)


def _tw_send_ack(net: "Net", tw: TimeWaitSock) -> None:
    opts = b""
    if tw.tstamp_ok:
        opts = _ts_opts((int(kclock.now() * 1000) + tw.tsoffset) & MASK, tw.ts_recent)
    _send_raw(net, tw.inet_saddr, tw.inet_daddr, tw.inet_sport, tw.inet_dport, tw.snd_nxt,
              tw.rcv_nxt, TCPHDR_ACK, tw.rcv_wnd, opts, tw.ttl_, tw.tos)


def tcp_v4_send_synack(listener: TcpSock, req: RequestSock) -> None:
    tsval = (int(kclock.now() * 1000) + req.tsoffset) & MASK
    if req.cookie and req.tstamp_ok:
        tsval = cookie_init_timestamp(req, tsval)
    opts = tcp_make_synack(listener, req, tsval)
    _send_raw(listener.sk_net, req.laddr, req.raddr, req.lport, req.rport, req.snt_isn,
              req.rcv_isn + 1, TCPHDR_SYN | TCPHDR_ACK, min(req.rcv_wnd, 0xFFFF), opts,
              listener.ttl(), listener.tos)
    req.snt_synack = kclock.now()


# -- passive open -------------------------------------------------------------------------------

def sk_acceptq_is_full(sk: TcpSock) -> bool:
    return len(sk.icsk_accept_queue) > sk.sk_max_ack_backlog


def tcp_conn_request(listener: TcpSock, skb: SkBuff) -> None:
    """A SYN for a listener: answer with a SYN-ACK and remember the request."""
    net = listener.sk_net
    s = net.sysctl
    cb: TcpSkbCb = skb.cb
    want_cookie = False
    if s.tcp_syncookies == 2 or len(listener.icsk_syn_queue) >= max(
            listener.sk_max_ack_backlog, 1):
        if not s.tcp_syncookies:
            net.mib.tcpext_inc("TCPReqQFullDrop")
            net.mib.tcpext_inc("ListenDrops")
            kfree_skb(skb, "TCP_REQQFULLDROP")
            return
        want_cookie = True  # tcp_syn_flood_action: answer statelessly
        if s.tcp_syncookies == 1:
            net.mib.tcpext_inc("TCPReqQFullDoCookies")
    if sk_acceptq_is_full(listener):
        net.mib.tcpext_inc("ListenOverflows")
        net.mib.tcpext_inc("ListenDrops")
        kfree_skb(skb, "TCP_LISTEN_OVERFLOW")
        return
    raddr, laddr, rport, lport = tcp_segment_addrs(skb)
    key = (raddr, rport)
    if key in listener.icsk_syn_queue:
        consume_skb(skb)
        return
    opts = cb.opts
    req = RequestSock(listener, laddr, lport, raddr, rport)
    req.dev_ifindex = skb.dev.ifindex
    req.rcv_isn = cb.seq
    req.tstamp_ok = opts.saw_tstamp and bool(s.tcp_timestamps)
    req.sack_ok = opts.sack_ok and bool(s.tcp_sack)
    req.wscale_ok = opts.wscale >= 0 and bool(s.tcp_window_scaling)
    req.snd_wscale = opts.wscale if req.wscale_ok else 0
    req.ts_recent = opts.rcv_tsval if req.tstamp_ok else 0
    req.peer_mss = opts.mss or 536
    if listener.user_mss:
        req.peer_mss = min(req.peer_mss, listener.user_mss)
    try:
        rt = ip_route_output(net, raddr, laddr)
    except RouteError:
        kfree_skb(skb, dr.IP_OUTNOROUTES)
        return
    advmss = ipv4_default_advmss(rt.dst_mtu())
    if listener.user_mss:
        advmss = min(advmss, listener.user_mss)
    req.mss = advmss
    rcv_wnd, clamp, wscale = tcp_select_initial_window(
        listener, tcp_full_space(listener), advmss - (12 if req.tstamp_ok else 0),
        req.wscale_ok)
    req.rcv_wnd = rcv_wnd
    req.window_clamp = clamp
    req.rcv_wscale = wscale if req.wscale_ok else 0
    tcp = net.ipv4.tcp
    req.snt_isn = cb.tw_isn or secure_tcp_seq(net, laddr, raddr, lport, rport)
    req.tsoffset = secure_tcp_ts_off(net, laddr, raddr) if s.tcp_timestamps == 1 else 0
    if want_cookie:
        req.snt_isn, req.mss = cookie_v4_init_sequence(net, raddr, laddr, rport, lport,
                                                       req.rcv_isn, req.peer_mss)
        req.tsoffset = 0
        req.cookie = True
        net.mib.tcpext_inc("SyncookiesSent")
        tcp_v4_send_synack(listener, req)  # no state is kept
        consume_skb(skb)
        return
    listener.icsk_syn_queue[key] = req
    tcp.hashinfo.ehash[req.key] = req
    net.host.cpus[0].timers.mod_timer(req.timer, kclock.now() + TCP_TIMEOUT_INIT)
    tcp_v4_send_synack(listener, req)
    consume_skb(skb)


def _cookie_child(listener: TcpSock, req: RequestSock, skb: SkBuff) -> None:
    net = listener.sk_net
    try:
        rt = ip_route_output(net, req.raddr, req.laddr)
    except RouteError:
        kfree_skb(skb, dr.IP_OUTNOROUTES)
        return
    req.mss = min(ipv4_default_advmss(rt.dst_mtu()), listener.user_mss or 0xFFFF)
    req.rcv_wnd, req.window_clamp, wscale = tcp_select_initial_window(
        listener, tcp_full_space(listener), req.mss - (12 if req.tstamp_ok else 0),
        req.wscale_ok)
    req.rcv_wscale = wscale if req.wscale_ok else 0
    child = tcp_v4_syn_recv_sock(listener, req, skb)
    if child is None:
        net.mib.tcpext_inc("ListenOverflows")
        kfree_skb(skb, "TCP_LISTEN_OVERFLOW")
        return
    tcp_rcv_state_process(child, skb)
    listener.sk_data_ready(listener)


# What a child socket takes from its listener (sk_clone_lock's copy, the part that matters).
_INHERITED: Final = ("sk_rcvbuf", "sk_sndbuf", "sk_userlocks", "sk_reuse", "sk_reuseport",
              "sk_flags", "sk_lingertime", "sk_priority", "sk_mark", "sk_bound_dev_if",
              "sk_uid", "nonagle", "user_mss", "keepalive_time", "keepalive_intvl",
              "keepalive_probes", "linger2", "icsk_user_timeout", "icsk_syn_retries",
              "icsk_ca_ops", "uc_ttl", "tos", "pmtudisc", "notsent_lowat", "window_clamp")
_inherited: Final = operator.attrgetter(*_INHERITED)


def tcp_v4_syn_recv_sock(listener: TcpSock, req: RequestSock, skb: SkBuff) -> TcpSock | None:
    """The handshake completed: the full socket for the connection, queued for accept()."""
    if sk_acceptq_is_full(listener):
        return None
    net = listener.sk_net
    tcp = net.ipv4.tcp
    child = tcp.prot.sk_alloc(net, listener.sk_family, listener.sk_type, listener.sk_protocol)
    for name, value in zip(_INHERITED, _inherited(listener)):
        setattr(child, name, value)
    child.inet_saddr = child.inet_rcv_saddr = req.laddr
    child.inet_num = child.inet_sport = req.lport
    child.inet_daddr = req.raddr
    child.inet_dport = req.rport
    child.iss = req.snt_isn
    child.snd_una = child.snd_nxt = child.write_seq = child.pushed_seq = child.snd_sml = \
        (req.snt_isn + 1) & MASK
    child.irs = req.rcv_isn
    child.rcv_nxt = child.rcv_wup = child.copied_seq = (req.rcv_isn + 1) & MASK
    child.rcv_wnd = req.rcv_wnd
    child.rcv_ssthresh = req.rcv_wnd
    child.window_clamp = req.window_clamp
    child.wscale_ok = req.wscale_ok
    child.rcv_wscale = req.rcv_wscale
    child.snd_wscale = req.snd_wscale
    child.sack_ok = req.sack_ok
    child.tstamp_ok = req.tstamp_ok
    child.ts_recent = req.ts_recent
    child.ts_recent_stamp = kclock.now() if req.tstamp_ok else -1.0
    child.tsoffset = req.tsoffset
    child.mss_clamp = req.peer_mss
    child.advmss = req.mss
    child.inet_id = tcp.isn_rng.getrandbits(16)
    try:
        rt = ip_route_output(net, req.raddr, req.laddr)
    except RouteError:
        return None
    child.sk_dst_cache = rt
    tcp_sync_mss(child, rt.dst_mtu())
    if req.snt_synack is not None and not req.num_retrans:
        tcp_rtt_estimator(child, int((kclock.now() - req.snt_synack) * 1e6))
        tcp_set_rto(child)
    child.total_retrans = req.num_retrans
    child.icsk_ack_lrcvtime = kclock.now()  # tcp_create_openreq_child
    child.lsndtime = child.icsk_ack_lrcvtime
    child.sk_state = TCP_SYN_RECV
    # The request's place in the tables goes to the child.
    reqsk_queue_drop(req)
    tcp.hashinfo.ehash[(req.laddr, req.lport, req.raddr, req.rport)] = child
    tcp.hashinfo.bind_add(req.lport, child)
    child.parent = listener
    listener.icsk_accept_queue.append(child)
    net.mib.tcp["PassiveOpens"] += 1
    return child


def inet_csk_listen_start(sk: TcpSock) -> None:
    net = sk.sk_net
    if not isinstance(sk.icsk_accept_queue, deque):
        sk.icsk_accept_queue = deque()
        sk.icsk_syn_queue = {}
    tcp_set_state(sk, TCP_LISTEN)
    if not sk.inet_num:
        if not sk.sk_prot.get_port(sk, 0):
            tcp_set_state(sk, TCP_CLOSE)
            raise KernelError(errno.EADDRINUSE)
    else:
        owners = net.ipv4.tcp.hashinfo.bhash.get(sk.inet_num, {})
        if inet_bind_conflict(sk, owners):
            sk.sk_state = TCP_CLOSE
            raise KernelError(errno.EADDRINUSE)
    sk.inet_sport = sk.inet_num
    net.ipv4.tcp.hashinfo.listen_hash(sk)


def inet_csk_listen_stop(sk: TcpSock) -> None:
    """Close a listener: pending requests vanish, unaccepted children are reset."""
    for req in list(sk.icsk_syn_queue.values()):
        reqsk_queue_drop(req)
    while sk.icsk_accept_queue:
        child = sk.icsk_accept_queue.popleft()
        child.parent = None
        child.sock_set_flag(SOCK_DEAD)
        child.sk_prot.disconnect(child)
        tcp_done(child)


def tcp_unhash(sk: TcpSock) -> None:
    hashinfo = sk.sk_net.ipv4.tcp.hashinfo
    key = (sk.inet_saddr, sk.inet_num, sk.inet_daddr, sk.inet_dport)
    hashinfo.ehash_remove(key, sk)
    if sk.sk_state == TCP_LISTEN:
        hashinfo.listen_unhash(sk)
    if sk.inet_num and not sk.sk_userlocks & SOCK_BINDPORT_LOCK:
        hashinfo.bind_remove(sk.inet_num, sk)


# -- active open --------------------------------------------------------------------------------

def tcp_v4_connect(sk: TcpSock, daddr: int, dport: int) -> None:
    net = sk.sk_net
    rt = ip_route_output_sk(sk, daddr)
    if rt.type in (RTN_MULTICAST, RTN_BROADCAST):
        raise KernelError(errno.ENETUNREACH)
    if not sk.inet_saddr:
        sk.inet_saddr = rt.saddr
    if not sk.inet_rcv_saddr:
        sk.inet_rcv_saddr = sk.inet_saddr
    sk.inet_dport = dport
    sk.inet_daddr = rt.daddr  # the route's: connect to 0.0.0.0 means 127.0.0.1
    tcp_set_state(sk, TCP_SYN_SENT)
    if not inet_hash_connect(net, sk, sk.inet_daddr, dport):
        tcp_set_state(sk, TCP_CLOSE)
        sk.inet_dport = 0
        raise KernelError(errno.EADDRNOTAVAIL)
    sk.sk_dst_cache = rt
    tcp = net.ipv4.tcp
    sk.iss = secure_tcp_seq(net, sk.inet_saddr, sk.inet_daddr, sk.inet_sport, sk.inet_dport)
    sk.tsoffset = (secure_tcp_ts_off(net, sk.inet_saddr, sk.inet_daddr)
                   if net.sysctl.tcp_timestamps == 1 else 0)
    sk.inet_id = tcp.isn_rng.getrandbits(16)
    tcp_connect(sk)


# -- ICMP ---------------------------------------------------------------------------------------

def tcp_v4_err(skb: SkBuff, type_: int, code: int, info: int) -> None:
    """An ICMP error about a segment we sent (RFC 1122 §4.2.3.9, RFC 5927)."""
    net = skb.dev.nd_net
    buf = skb.buf
    inner = skb.data
    ihl = (buf[inner] & 15) * 4
    saddr = int.from_bytes(buf[inner + 12:inner + 16], "big")
    daddr = int.from_bytes(buf[inner + 16:inner + 20], "big")
    th = inner + ihl
    sport = (buf[th] << 8) | buf[th + 1]
    dport = (buf[th + 2] << 8) | buf[th + 3]
    seq = int.from_bytes(buf[th + 4:th + 8], "big")
    sk = net.ipv4.tcp.hashinfo.ehash.get((saddr, sport, daddr, dport))
    if sk is None or isinstance(sk, TimeWaitSock):
        return
    if isinstance(sk, RequestSock):
        if seq == sk.snt_isn and type_ == ICMP_DEST_UNREACH and code != ICMP_FRAG_NEEDED:
            reqsk_queue_drop(sk)
        return
    if sk.sk_state != TCP_LISTEN and not (not before(seq, sk.snd_una)
                                          and before(seq, sk.snd_nxt)):
        net.mib.tcpext_inc("OutOfWindowIcmps")
        return
    if type_ == ICMP_DEST_UNREACH:
        if code == ICMP_FRAG_NEEDED:
            if sk.pmtudisc != 0 and info:
                tcp_v4_mtu_reduced(sk, info)
            return
        if code >= len(ICMP_ERR_CONVERT):
            return
        err = ICMP_ERR_CONVERT[code][0]
    elif type_ == ICMP_TIME_EXCEEDED:
        err = errno.EHOSTUNREACH
    else:
        err = errno.EPROTO
    if sk.sk_state in (TCP_SYN_SENT, TCP_SYN_RECV):
        if not sock_owned_by_user(sk):
            sk.sk_err = err
            sk.sk_error_report(sk)
            tcp_done(sk)
        else:
            sk.sk_err_soft = err
        return
    if not sock_owned_by_user(sk) and sk.recverr:
        sk.sk_err = err
        sk.sk_error_report(sk)
    else:
        sk.sk_err_soft = err


def tcp_v4_mtu_reduced(sk: TcpSock, mtu: int) -> None:
    """Path MTU learned from fragmentation-needed: shrink the MSS and resend what is lost."""
    rt = sk.sk_dst_cache
    if rt is None or mtu >= rt.dst_mtu() or mtu < 68:
        return
    ip_rt_update_pmtu(rt, mtu)  # inet_csk_update_pmtu: the route cache learns it
    mtu = rt.dst_mtu()
    tcp_sync_mss(sk, mtu)
    for skb in list(sk.rtx_queue):
        if skb.tail - skb.data > sk.mss_cache:
            tcp_retransmit_skb(sk, skb)
            break


__all__ = ["tcp_v4_rcv", "tcp_v4_do_rcv", "tcp_v4_connect", "tcp_v4_err", "tcp_unhash",
           "tcp_v4_send_reset", "inet_csk_listen_start", "inet_csk_listen_stop", "Any",
           "SOCK_KEEPOPEN", "after"]

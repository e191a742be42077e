"""Script packets against live packets: the socket model, the script<->live mapping of
addresses, sequence numbers and timestamps, and the field-by-field check of what the stack
sent.

Read first: packetdrill's run_packet.c (map_inbound_packet, tcp_convert_seq_number,
map_outbound_live_packet, verify_outbound_live_packet and its verify_* helpers,
find_or_create_socket_for_script_packet, aggregate_packets) and socket.h (the four
*_seq_*_offset functions); this module follows them rule for rule, and its error messages are
theirs, so a failure reads the same as on real packetdrill.

The rules, in short:
* One socket is "under test" at a time (the last one made by socket(), or the child a SYN to a
  listener creates). Live packets that do not belong to it are ignored, as packetdrill ignores
  them.
* Sequence numbers: a script's inbound SYN carries its ISN as written, and later inbound
  segments are offsets from it; outbound segments are offsets from the stack's ISN, learned from
  its SYN or SYN-ACK. ACKs and SACK blocks use the other side's numbers.
* TS: an inbound `TS ecr E` is replaced by the live TS val of the outbound packet whose script
  TS val was E; outbound TS vals are shifted to the script's first value (checked only with
  --tcp_ts_tick_usecs); outbound TS ecr is not checked.
* Outbound: no `win` means any window; no `<...>` list at all, or `<...>`, means any options;
  `P` and `F` are checked (packetdrill's strict mode for the final packet).
"""

from __future__ import annotations

import struct
from typing import Any

import attrs

from ..uapi.ip import IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP
from . import ast
from .packet import (ICMP_TYPES, ICMP_UNREACH_CODES, TCP_FLAG_BITS, TCPOPT_EOL, TCPOPT_NOP,
                     TCPOPT_SACK, TCPOPT_TIMESTAMP, Packet, encode_option, flags_to_bits,
                     format_options)

__all__ = ["Config", "Endpoint", "SocketModel", "ScriptPacket", "MatchError",
           "script_packet", "map_inbound", "owns_live_packet", "convert_live_seq",
           "verify_outbound", "verify_fragments", "aggregate", "SocketState"]

U32 = 1 << 32
TTL_CHECK_NONE = 255


class SocketState:
    """packetdrill's enum socket_state_t."""
    INIT = "init"
    NEW = "new"
    PASSIVE_LISTENING = "passive_listening"
    PASSIVE_PACKET_RECEIVED = "passive_packet_received"
    PASSIVE_SYNACK_SENT = "passive_synack_sent"
    PASSIVE_SYNACK_ACKED = "passive_synack_acked"
    ACTIVE_CONNECTING = "active_connecting"
    ACTIVE_SYN_SENT = "active_syn_sent"
    ACTIVE_SYN_ACKED = "active_syn_acked"


class MatchError(Exception):
    """A mapping or verification failure; the message is packetdrill's wording. `actual` is
    the live packet in script space, when there is one."""

    actual: Packet | None = None


@attrs.define
class Config:
    """The run's settings: packetdrill's `struct config`, for what a local ipv4 run uses."""
    local_ip: int = 0xC0A80001      # 192.168.0.1
    remote_ip: int = 0xC0000201     # 192.0.2.1
    gateway_ip: int = 0xC0A80001
    prefix_len: int = 16
    bind_port: int = 8080
    connect_port: int = 8080
    tolerance_usecs: int = 4000
    tolerance_percent: float = 12.5
    tcp_ts_tick_usecs: int = 0
    tcp_ts_ecr_scaled: bool = False
    strict_segments: bool = False
    mtu: int = 1500
    defines: dict[str, str] = attrs.Factory(dict)


@attrs.define
class Endpoint:
    ip: int = 0
    port: int = 0


@attrs.define(eq=False)
class SocketModel:
    """packetdrill's `struct socket`: what the runner knows about one socket."""
    state: str = SocketState.INIT
    protocol: int = IPPROTO_TCP
    type: int = 1
    script_fd: int = -1
    live_fd: int = -1
    closed: bool = False
    script_local: Endpoint = attrs.Factory(Endpoint)
    script_remote: Endpoint = attrs.Factory(Endpoint)
    live_local: Endpoint = attrs.Factory(Endpoint)
    live_remote: Endpoint = attrs.Factory(Endpoint)
    script_local_isn: int = 0
    script_remote_isn: int = 0
    live_local_isn: int = 0
    live_remote_isn: int = 0
    ts_val_map: dict[int, int] = attrs.Factory(dict)
    found_first_ts: bool = False
    first_script_ts_val: int = 0
    first_actual_ts_val: int = 0

    # socket.h
    def remote_script_to_live(self, is_syn: bool) -> int:
        return 0 if is_syn else self.live_remote_isn

    def local_script_to_live(self, is_syn: bool) -> int:
        if is_syn:
            return (self.live_local_isn - self.script_local_isn) % U32
        return self.live_local_isn


@attrs.define
class ScriptPacket:
    """A script line's packet in script space, with what is (not) to be checked."""
    pkt: Packet
    direction: str
    check_window: bool = True
    check_options: bool = True
    tos_check: str = "none"        # none | ecn | tos | ect01
    ttl: int = 0                   # 0: not checked
    explicit_ports: bool = False
    echoed: ast.IcmpEchoed | None = None
    line: int = 0

    @property
    def payload_len(self) -> int:
        return len(self.pkt.payload)


def _resolve(value: Any, defines: dict[str, str], what: str) -> int:
    if isinstance(value, int):
        return value
    text = defines.get(value)
    if text is None:
        raise MatchError(f"unknown name {value!r} in {what} (define it with -D {value}=...)")
    try:
        return int(text, 0)
    except ValueError:
        raise MatchError(f"-D {value}={text} is not a number, as {what} needs") from None


def script_packet(ev: ast.PacketEvent, cfg: Config, line: int = 0) -> ScriptPacket:
    """The packet a script line describes, in script space."""
    pkt = Packet(proto={"tcp": IPPROTO_TCP, "udp": IPPROTO_UDP, "icmp": IPPROTO_ICMP}[ev.protocol],
                 ttl=0)
    sp = ScriptPacket(pkt, ev.direction, line=line)
    info = ev.ip_info
    if info is not None:
        if info.ecn is not None:
            sp.tos_check = "ect01" if info.ecn == "ect01" else "ecn"
            pkt.tos = {"noecn": 0, "ect1": 1, "ect0": 2, "ce": 3, "ect01": 0}[info.ecn]
        elif info.tos is not None:
            sp.tos_check = "tos"
            pkt.tos = info.tos
        if info.ttl is not None:
            sp.ttl = info.ttl
    if ev.src_port is not None:
        pkt.sport, pkt.dport = ev.src_port, ev.dst_port
        sp.explicit_ports = True
    if ev.protocol == "tcp":
        pkt.flags = flags_to_bits(ev.flags or "")
        pkt.seq = ev.seq_start % U32
        pkt.payload = bytes(ev.seq_len or 0)
        pkt.ack = (ev.ack or 0) % U32
        if ev.win is None:
            if ev.direction == "<":
                raise MatchError("window must be specified for inbound packets")
            sp.check_window = False
        else:
            pkt.window = ev.win
        pkt.urg = ev.urg or 0
        if ev.tcp_options is not None and ev.tcp_options_wildcard:
            if ev.direction == "<":
                raise MatchError("<...> for TCP options can only be used with outbound packets")
            sp.check_options = False
        elif ev.tcp_options is not None:
            try:
                pkt.options = [encode_option(o.kind, _option_values(o, cfg))
                               for o in ev.tcp_options]
            except (ValueError, struct.error) as e:
                raise MatchError(f"bad TCP option value: {e}") from None
            if sum(1 if k in (TCPOPT_EOL, TCPOPT_NOP) else 2 + len(d)
                   for k, d in pkt.options) % 4:
                raise MatchError("TCP options are not padded correctly to ensure TCP header "
                                 "is a multiple of 4 bytes")
        # No option list written: packetdrill builds the packet with an empty list
        # (tcp_options_new()), so the live packet must carry no options at all.
    elif ev.protocol == "udp":
        pkt.payload = bytes(ev.udp_len or 0)
    else:
        if ev.icmp_type.startswith("type_"):
            pkt.icmp_type = int(ev.icmp_type[5:])
        elif ev.icmp_type in ICMP_TYPES:
            pkt.icmp_type = ICMP_TYPES[ev.icmp_type]
        else:
            raise MatchError(f"bad ICMP type {ev.icmp_type}")
        code = ev.icmp_code
        if code is None:
            pkt.icmp_code = 0
        elif code.startswith("code_"):
            pkt.icmp_code = int(code[5:])
        elif pkt.icmp_type == 3 and code in ICMP_UNREACH_CODES:
            pkt.icmp_code = ICMP_UNREACH_CODES[code]
        else:
            raise MatchError(f"bad ICMP code {code}")
        rest = 0
        if ev.icmp_mtu is not None:
            if pkt.icmp_type != 3 or pkt.icmp_code != 4:
                raise MatchError("ICMPv4 MTU is only valid for unreachable-frag_needed")
            rest |= ev.icmp_mtu & 0xFFFF
        if ev.icmp_id is not None:
            rest |= (ev.icmp_id & 0xFFFF) << 16
        pkt.icmp_rest = rest
        sp.echoed = ev.icmp_echoed or ast.IcmpEchoed(protocol="tcp", length=0, seq_start=0,
                                                     seq_end=0)
    return sp


def _option_values(opt: ast.TcpOption, cfg: Config) -> tuple:
    if opt.kind in ("mss", "wscale"):
        return (_resolve(opt.values[0], cfg.defines, opt.kind),)
    if opt.kind == "TS":
        return tuple(_resolve(v, cfg.defines, "TS") for v in opt.values)
    if opt.kind in ("FO", "FOEXP") and opt.values:
        value = opt.values[0]
        return (cfg.defines.get(value, value),)
    return opt.values


# --- inbound ----------------------------------------------------------------------------------

def _ts_offset(pkt: Packet) -> int | None:
    """The index of the TS option in pkt.options, or None."""
    for i, (kind, data) in enumerate(pkt.options):
        if kind == TCPOPT_TIMESTAMP and len(data) == 8:
            return i
    return None


def _offset_sack(pkt: Packet, offset: int) -> None:
    for i, (kind, data) in enumerate(pkt.options):
        if kind == TCPOPT_SACK and len(data) % 8 == 0:
            blocks = [(struct.unpack_from("!I", data, j)[0] + offset) % U32
                      for j in range(0, len(data), 4)]
            pkt.options[i] = (kind, struct.pack(f"!{len(blocks)}I", *blocks))


def map_inbound(sp: ScriptPacket, sock: SocketModel, cfg: Config) -> Packet:
    """map_inbound_packet: the live packet to inject for a script's inbound packet."""
    live = sp.pkt.copy()
    live.src, live.dst = sock.live_remote.ip, sock.live_local.ip
    if live.ttl == 0:
        live.ttl = sp.ttl or TTL_CHECK_NONE
    if not sp.explicit_ports:
        live.sport, live.dport = sock.live_remote.port, sock.live_local.port
    if live.proto == IPPROTO_ICMP:
        live.payload = _echoed_datagram(sp, sock, cfg)
        return live
    if live.proto != IPPROTO_TCP:
        return live
    is_syn = live.flag("S")
    live.seq = (live.seq + sock.remote_script_to_live(is_syn)) % U32
    ack_offset = sock.local_script_to_live(is_syn)
    if live.flag("."):
        live.ack = (live.ack + ack_offset) % U32
    _offset_sack(live, ack_offset)
    i = _ts_offset(live)
    if live.flag(".") and i is not None:
        val, ecr = struct.unpack("!II", live.options[i][1])
        live_ecr = sock.ts_val_map.get(ecr)
        if live_ecr is None:
            if cfg.tcp_ts_ecr_scaled and sock.found_first_ts:
                live_ecr = (ecr - sock.first_script_ts_val + sock.first_actual_ts_val) % U32
            else:
                raise MatchError(f"unable to infer live TS ecr for script TS ecr {ecr};  "
                                 "no matching or preceding outbound TS val")
        live.options[i] = (TCPOPT_TIMESTAMP, struct.pack("!II", val, live_ecr))
    return live


def _echoed_datagram(sp: ScriptPacket, sock: SocketModel, cfg: Config) -> bytes:
    """The IP header + 8 bytes an inbound ICMP error quotes: the original outbound datagram
    (local -> remote), with the live ports and, for TCP, the live sequence number."""
    echoed = sp.echoed
    if echoed is None or echoed.protocol == "raw":
        return bytes(echoed.length if echoed is not None else 0)
    proto = IPPROTO_UDP if echoed.protocol == "udp" else IPPROTO_TCP
    l4_len = (8 if proto == IPPROTO_UDP else 20) + echoed.length
    ip = bytearray(struct.pack("!BBHHHBBHII", 0x45, 0, 20 + l4_len, 0, 0, 0, proto, 0,
                               sock.live_local.ip, sock.live_remote.ip))
    if proto == IPPROTO_TCP:
        seq = ((echoed.seq_start or 0) + sock.local_script_to_live(False)) % U32
        l4 = struct.pack("!HHI", sock.live_local.port, sock.live_remote.port, seq)
    else:
        l4 = struct.pack("!HHHH", sock.live_local.port, sock.live_remote.port, l4_len, 0)
    return bytes(ip) + l4


# --- outbound ---------------------------------------------------------------------------------

def owns_live_packet(sock: SocketModel | None, live: Packet, expect_icmp: bool,
                     cfg: Config) -> bool:
    """find_socket_for_live_packet + find_connect_for_live_packet: whether an outbound live
    packet belongs to the socket under test (learning its live address and ISN when it is the
    first packet of a connect). ICMP packets from the local to the remote address belong to an
    ICMP script line whatever the socket (an extension: packetdrill needs an ICMP socket)."""
    if live.proto == IPPROTO_ICMP:
        return (expect_icmp or (sock is not None and sock.protocol == IPPROTO_ICMP)) and \
            live.src == cfg.local_ip and live.dst == cfg.remote_ip
    if sock is None:
        return False
    udp_match = live.proto == IPPROTO_UDP and sock.protocol == IPPROTO_UDP and \
        sock.state == SocketState.ACTIVE_CONNECTING
    tcp_match = live.proto == IPPROTO_TCP and live.flag("S") and not live.flag(".") and \
        sock.protocol == IPPROTO_TCP and sock.state == SocketState.ACTIVE_SYN_SENT
    if (udp_match or tcp_match) and live.dst == sock.live_remote.ip and \
            live.dport == sock.live_remote.port:
        # The first packet of a connect: learn the live port (and ISN), even if the local
        # address was filled in earlier (events._fill_live_tuple).
        sock.live_local = Endpoint(live.src, live.sport)
        if live.proto == IPPROTO_TCP:
            sock.live_local_isn = live.seq
        return True
    return (live.src, live.sport, live.dst, live.dport) == (
        sock.live_local.ip, sock.live_local.port, sock.live_remote.ip, sock.live_remote.port)


def convert_live_seq(sock: SocketModel, pkt: Packet) -> None:
    """tcp_convert_seq_number: an outbound live TCP packet's seq, ack and SACK blocks into
    script space (in place)."""
    is_syn = pkt.flag("S")
    pkt.seq = (pkt.seq - sock.local_script_to_live(is_syn)) % U32
    ack_offset = (-sock.remote_script_to_live(is_syn)) % U32
    if pkt.flag("."):
        pkt.ack = (pkt.ack + ack_offset) % U32
    _offset_sack(pkt, ack_offset)


def map_outbound(sock: SocketModel | None, live: Packet, sp: ScriptPacket) -> Packet:
    """map_outbound_live_packet: the TS val into script space (the tuple is not compared)."""
    actual = live.copy()
    if actual.proto != IPPROTO_TCP or sock is None:
        return actual
    si, ai = _ts_offset(sp.pkt), _ts_offset(actual)
    if si is not None and ai is not None:
        script_val, _ = struct.unpack("!II", sp.pkt.options[si][1])
        actual_val, actual_ecr = struct.unpack("!II", actual.options[ai][1])
        sock.ts_val_map[script_val] = actual_val
        if not sock.found_first_ts:
            sock.found_first_ts = True
            sock.first_script_ts_val = script_val
            sock.first_actual_ts_val = actual_val
        val = (sock.first_script_ts_val + actual_val - sock.first_actual_ts_val) % U32
        actual.options[ai] = (TCPOPT_TIMESTAMP, struct.pack("!II", val, actual_ecr))
    return actual


def _check(name: str, expected: int, actual: int) -> None:
    if expected != actual:
        raise MatchError(f"live packet field {name}: expected: {expected} ({expected:#x}) vs "
                         f"actual: {actual} ({actual:#x})")


_PROTO_NAMES = {IPPROTO_TCP: "tcp", IPPROTO_UDP: "udp", IPPROTO_ICMP: "icmpv4"}


def _verify_headers(actual: Packet, script: Packet, sp: ScriptPacket | None,
                    strict: bool) -> None:
    """verify_outbound_live_headers. `sp` is None when checking aggregation candidates."""
    if actual.proto != script.proto:
        raise MatchError(f"live packet header layer 1: expected: "
                         f"{_PROTO_NAMES.get(script.proto, script.proto)} header vs actual: "
                         f"{_PROTO_NAMES.get(actual.proto, actual.proto)} header")
    check_opts = sp.check_options if sp is not None else True
    allowance = actual.options_len if not check_opts else 0
    _check("ipv4_protocol", script.proto, actual.proto)
    _check("ipv4_header_length", script.ihl, actual.ihl)
    if strict and script.proto != IPPROTO_ICMP:
        # (ICMP lengths are not compared: a script cannot say how much an error quotes.)
        _check("ipv4_total_length", _ip_len(script) + allowance, _ip_len(actual))
    tos_check = sp.tos_check if sp is not None else "none"
    ecn = actual.tos & 3
    if tos_check == "ect01" and ecn not in (1, 2):
        raise MatchError(f"live packet field ip_ecn: expected: 0x1 or 0x2 vs actual: {ecn:#x}")
    if tos_check == "ecn":
        _check("ip_ecn", script.tos, ecn)
    if tos_check == "tos":
        _check("tos", script.tos, actual.tos)
    ttl = sp.ttl if sp is not None else script.ttl
    if ttl and ttl != TTL_CHECK_NONE:
        _check("ttl", ttl, actual.ttl)
    if script.proto == IPPROTO_TCP:
        payload_len = len(script.payload)
        _check("tcp_data_offset", script.doff + allowance // 4, actual.doff)
        for ch, name, always in (("F", "tcp_fin", False), ("S", "tcp_syn", True),
                                 ("R", "tcp_rst", True), ("P", "tcp_psh", False),
                                 (".", "tcp_ack", True), ("U", "tcp_urg", True),
                                 ("E", "tcp_ece", True), ("W", "tcp_cwr", False),
                                 ("A", "tcp_ae", True)):
            if always or strict:
                _check(name, int(script.flag(ch)), int(actual.flag(ch)))
        if strict:
            _check("tcp_seq", script.seq, actual.seq)
        else:
            _check("tcp_seq", (script.seq + payload_len) % U32, actual.seq)
        _check("tcp_ack_seq", script.ack, actual.ack)
        if sp is None or sp.check_window:
            _check("tcp_window", script.window, actual.window)
        _check("tcp_urg_ptr", script.urg, actual.urg)
    elif script.proto == IPPROTO_UDP:
        if strict:
            _check("udp_len", 8 + len(script.payload), 8 + len(actual.payload))
    elif script.proto == IPPROTO_ICMP:
        _check("icmp_type", script.icmp_type, actual.icmp_type)
        _check("icmp_code", script.icmp_code, actual.icmp_code)


def _ip_len(pkt: Packet) -> int:
    if pkt.proto == IPPROTO_TCP:
        return 20 + pkt.doff * 4 + len(pkt.payload)
    return 28 + len(pkt.payload)  # UDP and ICMP: 8-byte headers


def _verify_options(actual: Packet, sp: ScriptPacket, ts_tolerance_usecs: float,
                    cfg: Config) -> None:
    """verify_outbound_live_tcp_options: same kinds in the same order, same values except
    TS (val within tolerance when --tcp_ts_tick_usecs is set; ecr never checked)."""
    if not sp.check_options:
        return
    script_opts, actual_opts = sp.pkt.options, actual.options
    for i in range(max(len(script_opts), len(actual_opts))):
        if i >= len(script_opts) or i >= len(actual_opts) or \
                script_opts[i][0] != actual_opts[i][0]:
            raise MatchError("bad outbound TCP options")
        kind, sdata = script_opts[i]
        adata = actual_opts[i][1]
        if kind in (TCPOPT_EOL, TCPOPT_NOP):
            continue
        if kind == TCPOPT_TIMESTAMP:
            tick = cfg.tcp_ts_tick_usecs
            if tick and len(sdata) == 8 and len(adata) == 8:
                sval = struct.unpack("!I", sdata[:4])[0]
                aval = struct.unpack("!I", adata[:4])[0]
                diff = ((aval - sval + (1 << 31)) % U32) - (1 << 31)
                if abs(diff) * tick > ts_tolerance_usecs:
                    raise MatchError("bad outbound TCP timestamp value, tolerance "
                                     f"{int(ts_tolerance_usecs)}")
            continue
        err = None
        if len(sdata) != len(adata):
            err = "bad length"
        elif sdata != adata:
            err = "bad value"
        if err:
            raise MatchError(f"{err} in outbound TCP option (kind={kind}): expected: "
                             f"{format_options([(kind, sdata)])} actual: "
                             f"{format_options([(kind, adata)])}")


def verify_outbound(sock: SocketModel | None, live: Packet, sp: ScriptPacket,
                    ts_tolerance_usecs: float, cfg: Config) -> Packet:
    """verify_outbound_live_packet minus the timing: map `live` (already in script sequence
    space) and check headers, options and payload. Returns the mapped packet (for printing);
    raises MatchError on the first difference."""
    actual = map_outbound(sock, live, sp)
    try:
        _verify_headers(actual, sp.pkt, sp, strict=True)
        if sp.pkt.proto == IPPROTO_TCP:
            _verify_options(actual, sp, ts_tolerance_usecs, cfg)
        if actual.proto != IPPROTO_ICMP and actual.payload != sp.pkt.payload:
            raise MatchError("incorrect outbound data payload")
    except MatchError as e:
        e.actual = actual  # the packet as compared, for the message
        raise
    return actual


def verify_fragments(current: Packet, previous: Packet, sniffed: int,
                     expected_total: int) -> None:
    """verify_packet_fragments: `current` may continue `previous` in one TSO/GSO burst."""
    try:
        _verify_headers(current, previous, None, strict=False)
    except MatchError as e:
        raise MatchError(str(e).replace("live packet", "aggregate candidate packet")) from None
    n = len(current.payload)
    if n < expected_total - sniffed and n != len(previous.payload):
        raise MatchError(f"fragment payload: expected {len(previous.payload)} bytes vs actual "
                         f"{n} bytes; total payload: expected {expected_total} bytes vs actual "
                         f"{n + sniffed} bytes")


def aggregate(packets: list[Packet]) -> Packet:
    """aggregate_packets: the last packet's headers, the first's seq and CWR bit, all the
    payloads."""
    first, last = packets[0], packets[-1]
    out = last.copy()
    out.payload = b"".join(p.payload for p in packets)
    out.seq = first.seq
    cwr = TCP_FLAG_BITS["W"]
    out.flags = (out.flags & ~cwr) | (first.flags & cwr)
    return out

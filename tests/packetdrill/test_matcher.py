"""Tests of TCP (and ICMP) packet matching: pystack.packetdrill.matcher, on segments built by
hand with scapy, so they hold whatever state pystack's own TCP is in.

The rules come from packetdrill's run_packet.c and socket.h; each test is one of them.
"""

from __future__ import annotations

import struct

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP

from pystack.packetdrill import parse
from pystack.packetdrill.matcher import (Config, Endpoint, MatchError, SocketModel, SocketState,
                                         aggregate, convert_live_seq, map_inbound,
                                         owns_live_packet, script_packet, verify_fragments,
                                         verify_outbound)
from pystack.packetdrill.packet import parse as parse_packet

LOCAL, REMOTE = "192.168.0.1", "192.0.2.1"
LOCAL_ISN, REMOTE_ISN = 1_000_000, 0   # the stack's ISN; the script's inbound SYN said 0
CFG = Config()


def sp(line: str, cfg: Config = CFG):
    ev = parse(f"0 {line}\n").events[0].action
    return script_packet(ev, cfg)


def established() -> SocketModel:
    sock = SocketModel(state=SocketState.PASSIVE_SYNACK_ACKED)
    sock.live_local = Endpoint(0xC0A80001, 8080)
    sock.live_remote = Endpoint(0xC0000201, 40000)
    sock.live_local_isn = LOCAL_ISN
    sock.script_local_isn = 0
    return sock


def live(flags: str, seq: int, ack: int = 0, win: int = 256, options=(), payload=b"",
         tos: int = 0, time: float = 0.0, sport: int = 8080):
    raw = bytes(IP(src=LOCAL, dst=REMOTE, tos=tos) /
                TCP(sport=sport, dport=40000, flags=flags, seq=seq, ack=ack, window=win,
                    options=list(options)) / payload)
    return parse_packet(raw, time)


def check(sock, pkt, line, cfg=CFG):
    """What the runner does with a sniffed segment: into script space, then compare."""
    convert_live_seq(sock, pkt)
    return verify_outbound(sock, pkt, sp(line, cfg), 4000, cfg)


def mismatch(sock, pkt, line, cfg=CFG) -> str:
    with pytest.raises(MatchError) as info:
        check(sock, pkt, line, cfg)
    return str(info.value)


# --- outbound ---------------------------------------------------------------------------------

def test_outbound_seq_is_relative_to_the_stacks_isn_and_ack_to_the_scripts():
    pkt = live("PA", LOCAL_ISN + 1, ack=REMOTE_ISN + 1, payload=bytes(1000))
    actual = check(established(), pkt, "> P. 1:1001(1000) ack 1")
    assert (actual.seq, actual.ack) == (1, 1)


def test_a_wrong_flag_is_named():
    pkt = live("A", LOCAL_ISN + 1, ack=1, payload=bytes(1000))
    assert mismatch(established(), pkt, "> P. 1:1001(1000) ack 1") == \
        "live packet field tcp_psh: expected: 1 (0x1) vs actual: 0 (0x0)"
    pkt = live("SA", LOCAL_ISN, ack=1)
    assert "tcp_syn: expected: 0 (0x0) vs actual: 1 (0x1)" in mismatch(
        established(), pkt, "> . 0:0(0) ack 1")


def test_a_wrong_ack_number_is_named():
    pkt = live("A", LOCAL_ISN + 1, ack=REMOTE_ISN + 1)
    assert "tcp_ack_seq: expected: 1001 (0x3e9) vs actual: 1 (0x1)" in mismatch(
        established(), pkt, "> . 1:1(0) ack 1001")


def test_window_is_checked_only_when_the_script_gives_one():
    pkt = live("A", LOCAL_ISN + 1, ack=1, win=256)
    check(established(), pkt, "> . 1:1(0) ack 1")
    pkt = live("A", LOCAL_ISN + 1, ack=1, win=256)
    assert "tcp_window: expected: 257" in mismatch(established(), pkt, "> . 1:1(0) ack 1 win 257")


def test_options_in_order_and_value():
    opts = [("MSS", 1460), ("NOP", None), ("WScale", 8)]
    synack = "> S. 0:0(0) ack 1 <mss 1460,nop,wscale 8>"
    sock = established()
    sock.live_local_isn = 5
    check(sock, live("SA", 5, ack=1, options=opts), synack)
    msg = mismatch(sock, live("SA", 5, ack=1, options=[("MSS", 1400), ("NOP", None),
                                                        ("WScale", 8)]), synack)
    assert msg == ("bad value in outbound TCP option (kind=2): expected: mss 1460 actual: "
                   "mss 1400")
    msg = mismatch(sock, live("SA", 5, ack=1, options=[("NOP", None), ("MSS", 1460),
                                                        ("WScale", 8)]), synack)
    assert msg == "bad outbound TCP options"


def test_ellipsis_options_accept_any_and_no_list_means_none():
    opts = [("NOP", None), ("NOP", None), ("Timestamp", (5, 6))]
    check(established(), live("A", LOCAL_ISN + 1, ack=1, options=opts), "> . 1:1(0) ack 1 <...>")
    msg = mismatch(established(), live("A", LOCAL_ISN + 1, ack=1, options=opts),
                   "> . 1:1(0) ack 1")
    assert msg == "live packet field ipv4_total_length: expected: 40 (0x28) vs actual: 52 (0x34)"


def test_outbound_ts_val_is_shifted_to_the_scripts_first_val_and_ecr_is_not_checked():
    sock = established()
    first = live("A", LOCAL_ISN + 1, ack=1, options=[("NOP", None), ("NOP", None),
                                                     ("Timestamp", (7000, 1))])
    check(sock, first, "> . 1:1(0) ack 1 <nop,nop,TS val 100 ecr 999>")
    second = live("A", LOCAL_ISN + 1, ack=1, options=[("NOP", None), ("NOP", None),
                                                      ("Timestamp", (7050, 1))])
    actual = check(sock, second, "> . 1:1(0) ack 1 <nop,nop,TS val 150 ecr 0>")
    assert struct.unpack("!II", actual.options[2][1]) == (150, 1)
    assert sock.ts_val_map == {100: 7000, 150: 7050}


def test_outbound_ts_val_is_checked_with_a_tick():
    cfg = Config(tcp_ts_tick_usecs=1000)
    sock = established()
    line = "> . 1:1(0) ack 1 <nop,nop,TS val {} ecr 0>"
    check(sock, live("A", LOCAL_ISN + 1, ack=1, options=[
        ("NOP", None), ("NOP", None), ("Timestamp", (7000, 1))]), line.format(100), cfg)
    pkt = live("A", LOCAL_ISN + 1, ack=1, options=[("NOP", None), ("NOP", None),
                                                   ("Timestamp", (7050, 1))])
    assert mismatch(sock, pkt, line.format(300), cfg) == \
        "bad outbound TCP timestamp value, tolerance 4000"


def test_outbound_sack_blocks_are_relative_to_the_scripts_isn():
    sock = established()
    sock.live_remote_isn = 5000
    pkt = live("A", LOCAL_ISN + 1, ack=5001, options=[("NOP", None), ("NOP", None),
                                                      ("SAck", (7001, 8001))])
    check(sock, pkt, "> . 1:1(0) ack 1 <nop,nop,sack 2001:3001>")


def test_payload_must_be_the_zeros_the_script_wrote():
    pkt = live("PA", LOCAL_ISN + 1, ack=1, payload=b"x" * 10)
    assert mismatch(established(), pkt, "> P. 1:11(10) ack 1") == "incorrect outbound data payload"


def test_ecn_bits_are_checked_when_written():
    line = "> [ect0] . 1:1(0) ack 1"
    check(established(), live("A", LOCAL_ISN + 1, ack=1, tos=2), line)
    assert "ip_ecn: expected: 2 (0x2) vs actual: 0 (0x0)" in mismatch(
        established(), live("A", LOCAL_ISN + 1, ack=1), line)


def test_a_udp_packet_where_tcp_is_expected():
    raw = bytes(IP(src=LOCAL, dst=REMOTE) / UDP(sport=8080, dport=40000) / bytes(4))
    with pytest.raises(MatchError, match="expected: tcp header vs actual: udp header"):
        verify_outbound(established(), parse_packet(raw), sp("> . 1:1(0) ack 1"), 4000, CFG)


# --- segmentation offload: consecutive segments make one script packet ------------------------

def test_segments_aggregate_into_one_tso_packet():
    sock = established()
    segs = [live("A", LOCAL_ISN + 1, ack=1, payload=bytes(1000)),
            live("A", LOCAL_ISN + 1001, ack=1, payload=bytes(1000)),
            live("PA", LOCAL_ISN + 2001, ack=1, payload=bytes(1000))]
    total = 0
    for i, seg in enumerate(segs):
        convert_live_seq(sock, seg)
        if i:
            verify_fragments(seg, segs[i - 1], total, 3000)
        total += len(seg.payload)
    tso = aggregate(segs)
    verify_outbound(sock, tso, sp("> P. 1:3001(3000) ack 1"), 4000, CFG)


def test_a_gap_between_segments_is_not_aggregated():
    sock = established()
    a = live("A", LOCAL_ISN + 1, ack=1, payload=bytes(1000))
    b = live("A", LOCAL_ISN + 2001, ack=1, payload=bytes(1000))
    convert_live_seq(sock, a)
    convert_live_seq(sock, b)
    with pytest.raises(MatchError, match="aggregate candidate packet field tcp_seq: "
                                         "expected: 1001"):
        verify_fragments(b, a, 1000, 3000)


# --- inbound ----------------------------------------------------------------------------------

def test_inbound_numbers_become_live_ones():
    sock = established()
    sock.live_remote_isn = 5000
    sock.ts_val_map[100] = 77777
    pkt = map_inbound(sp("< P. 1:1001(1000) ack 1 win 257 <nop,nop,TS val 10 ecr 100>"), sock,
                      CFG)
    got = IP(pkt.emit())
    assert (got.src, got.dst, got[TCP].sport, got[TCP].dport) == (REMOTE, LOCAL, 40000, 8080)
    assert (got[TCP].seq, got[TCP].ack, got[TCP].window) == (5001, LOCAL_ISN + 1, 257)
    assert dict(got[TCP].options)["Timestamp"] == (10, 77777)
    assert len(got[TCP].payload) == 1000
    chk = got[TCP].chksum
    del got[TCP].chksum, got.chksum
    assert IP(bytes(got))[TCP].chksum == chk


def test_inbound_syn_keeps_its_sequence_number():
    sock = SocketModel(state=SocketState.PASSIVE_PACKET_RECEIVED)
    sock.live_local, sock.live_remote = Endpoint(0xC0A80001, 8080), Endpoint(0xC0000201, 4000)
    pkt = map_inbound(sp("< S 0:0(0) win 32792 <mss 1000,nop,wscale 7>"), sock, CFG)
    assert IP(pkt.emit())[TCP].seq == 0


def test_inbound_sack_blocks_use_the_stacks_isn():
    pkt = map_inbound(sp("< . 1:1(0) ack 1 win 257 <sack 1001:2001,nop,nop>"), established(), CFG)
    assert dict(IP(pkt.emit())[TCP].options)["SAck"] == (LOCAL_ISN + 1001, LOCAL_ISN + 2001)


def test_inbound_ts_ecr_must_echo_a_val_the_stack_sent():
    with pytest.raises(MatchError, match="unable to infer live TS ecr for script TS ecr 5"):
        map_inbound(sp("< . 1:1(0) ack 1 win 257 <nop,nop,TS val 1 ecr 5>"), established(),
                    CFG)


def test_inbound_packets_need_a_window():
    with pytest.raises(MatchError, match="window must be specified for inbound packets"):
        sp("< . 1:1(0) ack 1")


def test_inbound_icmp_quotes_the_live_segment():
    sock = established()
    pkt = map_inbound(sp("< icmp unreachable frag_needed mtu 1200 [1:1001(1000)]"), sock, CFG)
    got = IP(pkt.emit())
    assert (got[ICMP].type, got[ICMP].code, got[ICMP].nexthopmtu) == (3, 4, 1200)
    quoted = got[ICMP].payload
    assert (quoted.src, quoted.dst) == (LOCAL, REMOTE)
    assert struct.unpack("!HHI", bytes(quoted)[20:28]) == (8080, 40000, LOCAL_ISN + 1)


# --- which live packets belong to the test ----------------------------------------------------

def test_a_connecting_socket_learns_its_port_and_isn_from_its_syn():
    sock = SocketModel(state=SocketState.ACTIVE_SYN_SENT)
    sock.live_remote = Endpoint(0xC0000201, 8080)
    other = parse_packet(bytes(IP(src=LOCAL, dst=REMOTE) /
                               TCP(sport=555, dport=9999, flags="S", seq=1)))
    assert not owns_live_packet(sock, other, False, CFG)
    syn = parse_packet(bytes(IP(src=LOCAL, dst=REMOTE) /
                             TCP(sport=41000, dport=8080, flags="S", seq=123456)))
    assert owns_live_packet(sock, syn, False, CFG)
    assert (sock.live_local.port, sock.live_local_isn) == (41000, 123456)


def test_icmp_belongs_to_icmp_lines_only():
    echo = parse_packet(bytes(IP(src=LOCAL, dst=REMOTE) / ICMP(type=0)))
    assert owns_live_packet(established(), echo, True, CFG)
    assert not owns_live_packet(established(), echo, False, CFG)

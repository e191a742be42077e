"""Tests of the packetdrill script front end (pystack.packetdrill: lexer, ast, parser).

Every script here is a tiny one written for this file, one grammar feature at a time (see
/work/shared/conformance/packetdrill/syntax.md). The one exception is the corpus walk at the
end, which reads packetdrill's own GPLv2 scripts from /work/shared at run time only.
"""

from __future__ import annotations

import pathlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pystack.packetdrill import (
    PacketdrillError,
    PacketdrillSyntaxError,
    PacketdrillUnsupported,
    ast,
    parse,
    tokenize,
)

CORPUS = pathlib.Path("/work/shared/conformance/packetdrill/gtests")


def one(text: str) -> ast.Event:
    """The single event of a one-event script."""
    script = parse(text)
    assert len(script.events) == 1
    return script.events[0]


def action(text: str) -> ast.Action:
    return one(text).action


def syntax_error(text: str) -> PacketdrillSyntaxError:
    with pytest.raises(PacketdrillSyntaxError) as info:
        parse(text, "t.pkt")
    return info.value


# --- lexer ---------------------------------------------------------------------------------


def kinds(text: str) -> list[tuple[str, str]]:
    return [(t.kind, t.text) for t in tokenize(text)[:-1]]


def test_lexer_comments_vanish_and_keep_line_numbers():
    toks = tokenize("a // one\n/* two\nthree */ b\n\nc")
    assert [(t.text, t.line) for t in toks[:-1]] == [("a", 1), ("b", 3), ("c", 5)]
    assert toks[-1].kind == "EOF"


def test_lexer_numbers():
    assert kinds("12 0x1F .1 0.200") == [("INT", "12"), ("INT", "0x1F"), ("FLOAT", ".1"),
                                         ("FLOAT", "0.200")]
    toks = tokenize("0x1F .5")
    assert toks[0].value == 31 and toks[1].value == 0.5


def test_lexer_float_needs_digit_after_dot():
    # `+.1...0.2` is a time, an ellipsis and an end time; `S.` is flags then ACK's dot.
    assert kinds("+.1...0.2") == [("+", "+"), ("FLOAT", ".1"), ("...", "..."),
                                  ("FLOAT", "0.2")]
    assert kinds("+0...0 S. 1:1(0)") == [
        ("+", "+"), ("INT", "0"), ("...", "..."), ("INT", "0"), ("WORD", "S"), (".", "."),
        ("INT", "1"), (":", ":"), ("INT", "1"), ("(", "("), ("INT", "0"), (")", ")")]


def test_lexer_ipv4_and_digit_led_words():
    assert kinds("10.0.0.1: 1234abcd 0099 x_1") == [
        ("IPV4", "10.0.0.1"), (":", ":"), ("WORD", "1234abcd"), ("INT", "0099"),
        ("WORD", "x_1")]


def test_lexer_punctuation():
    text = "... < > [ ] { } : ( ) , = ~ + * | - ."
    assert [k for k, _ in kinds(text)] == text.split()


def test_lexer_strings_decode_c_escapes():
    (tok,) = tokenize(r'"a\tb\"c\\d\x41\101"')[:-1]
    assert tok.kind == "STRING" and tok.value == 'a\tb"c\\dAA'


def test_string_bytes_survive_non_utf8_escapes():
    (tok,) = tokenize(r'"\xf7\x00ok"')[:-1]
    assert ast.String(tok.value).to_bytes() == b"\xf7\x00ok"


def test_lexer_backquote_and_code_are_raw_and_may_span_lines():
    toks = tokenize("`echo a\n echo b` %{\nassert x == 1 // not a comment\n}% z")
    assert toks[0].kind == "BACKQUOTE" and toks[0].value == "echo a\n echo b"
    assert toks[1].kind == "CODE" and toks[1].value == "\nassert x == 1 // not a comment\n"
    assert toks[1].line == 2 and toks[2].line == 4


def test_lexer_options_keep_raw_values():
    toks = tokenize('--tolerance_usecs=10000\n--local_ip=fd::1\n--flag // why\n--s="a b"')
    assert [t.value for t in toks if t.kind == "OPTION"] == [
        ("tolerance_usecs", "10000"), ("local_ip", "fd::1"), ("flag", None), ("s", "a b")]


def test_lexer_unknown_character_is_a_token_not_a_crash():
    assert kinds("a ' b") == [("WORD", "a"), ("CHAR", "'"), ("WORD", "b")]


@pytest.mark.parametrize("text, line, what", [
    ("a\n/* never closed", 2, "/* comment"),
    ("a\n\n`never closed", 3, "back-quoted command"),
    ("%{ x", 1, "code block"),
    ('a\n"never closed\n"', 2, "string"),
])
def test_lexer_unterminated_constructs(text, line, what):
    with pytest.raises(PacketdrillSyntaxError) as info:
        tokenize(text, "t.pkt")
    assert info.value.line == line and what in info.value.message
    assert str(info.value).startswith(f"t.pkt:{line}: ")


# --- script structure ----------------------------------------------------------------------


def test_options_then_init_command_then_events_then_cleanup():
    script = parse(
        "// a test\n"
        "--tolerance_usecs=10000\n"
        "--strict_segments // trailing comment\n"
        "--local_ip=192.168.0.1\n"
        "\n"
        "`./defaults.sh\n"
        " ./more.sh`\n"
        "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"
        "+0 close(3) = 0\n"
        "`./restore.sh`\n", "x.pkt")
    assert script.options == (
        ast.Option(name="tolerance_usecs", value="10000", line=2),
        ast.Option(name="strict_segments", value=None, line=3),
        ast.Option(name="local_ip", value="192.168.0.1", line=4))
    assert script.init_command == "./defaults.sh\n ./more.sh"
    assert script.cleanup_command == "./restore.sh"
    assert [e.line for e in script.events] == [8, 9]
    assert script.filename == "x.pkt"


def test_script_without_commands():
    script = parse("0 close(3) = 0")
    assert script.init_command is None and script.cleanup_command is None
    assert script.options == ()


def test_untimed_command_in_the_middle_is_an_error():
    err = syntax_error("0 close(3) = 0\n`echo mid`\n+0 close(4) = 0\n")
    assert err.line == 2 and "start or end" in err.message


def test_option_after_events_is_an_error():
    err = syntax_error("0 close(3) = 0\n--tolerance_usecs=1\n")
    assert err.line == 2 and "before the first event" in err.message


@pytest.mark.parametrize("text", ["", "// only a comment\n", "--a=1\n`cmd`\n"])
def test_script_without_events_is_an_error(text):
    assert "no events" in syntax_error(text).message


def test_empty_option_value_is_an_error():
    assert "no value" in syntax_error("--tolerance_usecs=\n0 close(3) = 0").message


# --- times ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("0.100", ast.EventTime(kind="absolute", start=0.1)),
    ("2", ast.EventTime(kind="absolute", start=2.0)),
    ("+.1", ast.EventTime(kind="relative", start=0.1)),
    ("+0", ast.EventTime(kind="relative", start=0.0)),
    ("*", ast.EventTime(kind="any")),
    ("0.1~0.25", ast.EventTime(kind="range", start=0.1, end=0.25)),
    ("+.3~+.310", ast.EventTime(kind="relative_range", start=0.3, end=0.31)),
])
def test_event_times(text, expected):
    assert one(f"{text} close(3) = 0").time == expected


def test_time_in_microseconds():
    time = one("+.011~+1.5 close(3) = 0").time
    assert (time.start_usecs, time.end_usecs) == (11_000, 1_500_000)


@pytest.mark.parametrize("text, message", [
    ("close(3) = 0", "expected a time stamp"),
    ("0x10 close(3) = 0", "decimal seconds"),
    ("0~+1 close(3) = 0", "no '+'"),
    ("+0~1 close(3) = 0", "'+T1~+T2'"),
    ("+ close(3) = 0", "a time after '+'"),
    ("0 banana", "expected a packet"),
])
def test_bad_times_and_actions(text, message):
    err = syntax_error("0 close(9) = 0\n" + text)
    assert err.line == 2 and message in err.message


def test_event_lines_follow_multiline_constructs():
    script = parse(
        "0 setsockopt(3, SOL_SOCKET,\n"
        "     SO_SNDBUF, [1000], 4) = 0\n"
        "/* a\n block */ +0 %{\n"
        "assert tcpi_snd_cwnd == 10\n"
        "}%\n"
        "+0 `echo\n hi`\n"
        "+0 close(3) = 0\n")
    assert [e.line for e in script.events] == [1, 4, 7, 9]


# --- TCP packets ---------------------------------------------------------------------------


def test_inbound_syn_with_options():
    pkt = action("0 < S 0:0(0) win 32792 <mss 1000,sackOK,nop,nop,nop,wscale 7>")
    assert pkt == ast.PacketEvent(
        direction="<", protocol="tcp", flags="S", seq_start=0, seq_end=0, seq_len=0,
        win=32792, tcp_options=(
            ast.TcpOption("mss", (1000,)), ast.TcpOption("sackOK"), ast.TcpOption("nop"),
            ast.TcpOption("nop"), ast.TcpOption("nop"), ast.TcpOption("wscale", (7,))))
    assert not pkt.tcp_options_wildcard


def test_outbound_synack_and_data():
    syn_ack = action("+0 > S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK,nop,wscale 8>")
    assert (syn_ack.direction, syn_ack.flags, syn_ack.ack, syn_ack.win) == (">", "S.", 1, None)
    data = action("+0 > P. 1:1001(1000) ack 1")
    assert (data.flags, data.seq_start, data.seq_end, data.seq_len, data.tcp_options) == (
        "P.", 1, 1001, 1000, None)


@pytest.mark.parametrize("flags, expected", [
    (".", "."), ("-", ""), ("F.", "F."), ("R", "R"), ("SEW", "SEW"), ("FP.", "FP."),
    ("U.", "U."),
])
def test_tcp_flags(flags, expected):
    assert action(f"+0 < {flags} 1:1(0) win 10").flags == expected


def test_ports_and_urgent_pointer():
    pkt = action("+0 < 8080 > 80 P. 1:11(10) ack 1 win 100 urg 5")
    assert (pkt.src_port, pkt.dst_port, pkt.urg) == (8080, 80, 5)


def test_sequence_numbers_wrap_modulo_2_32():
    pkt = action("+0 < . 4294967290:10(16) win 1")
    assert (pkt.seq_start, pkt.seq_end, pkt.seq_len) == (4294967290, 10, 16)


def test_all_tcp_option_kinds():
    pkt = action("+0 < . 1:1(0) ack 1 win 9 <nop,eol,sack 1:2 3:4 5:6,TS val 700 ecr 100,"
                 "FO,FO 0011aabb,FOEXP,FOEXP 1234abcd,md5 000102030405060708090a0b0c0d0e0f,"
                 "mss MSS,FO TFO_COOKIE,FO 0042>")
    assert pkt.tcp_options == (
        ast.TcpOption("nop"), ast.TcpOption("eol"),
        ast.TcpOption("sack", ((1, 2), (3, 4), (5, 6))),
        ast.TcpOption("TS", (700, 100)),
        ast.TcpOption("FO"), ast.TcpOption("FO", ("0011aabb",)),
        ast.TcpOption("FOEXP"), ast.TcpOption("FOEXP", ("1234abcd",)),
        ast.TcpOption("md5", ("000102030405060708090a0b0c0d0e0f",)),
        ast.TcpOption("mss", ("MSS",)), ast.TcpOption("FO", ("TFO_COOKIE",)),
        ast.TcpOption("FO", ("0042",)))


def test_tcp_options_wildcard():
    pkt = action("+0 > S 0:0(0) <...>")
    assert pkt.tcp_options == (ast.TcpOption("..."),) and pkt.tcp_options_wildcard


@pytest.mark.parametrize("ip, expected", [
    ("[ect0]", ast.IpInfo(ecn="ect0")),
    ("[noecn]", ast.IpInfo(ecn="noecn")),
    ("(ect1)", ast.IpInfo(ecn="ect1")),
    ("[ce]", ast.IpInfo(ecn="ce")),
    ("[ect01]", ast.IpInfo(ecn="ect01")),
    ("(tos 0x4)", ast.IpInfo(tos=4)),
    ("[ttl 64]", ast.IpInfo(ttl=64)),
    ("(ect0, flowlabel 0x12345)", ast.IpInfo(ecn="ect0", flow_label=0x12345)),
])
def test_ip_info(ip, expected):
    assert action(f"+0 > {ip} P. 1:2(1) ack 1").ip_info == expected


def test_explicit_ipv4_prefix():
    pkt = action("+0 < ipv4 [ttl 3] 192.0.2.1 > 192.168.0.1: S 0:0(0) win 100")
    assert pkt.ip_prefixes == (ast.IpPrefix(version=4, src="192.0.2.1", dst="192.168.0.1",
                                            ip_info=ast.IpInfo(ttl=3)),)
    assert pkt.flags == "S" and pkt.ip_info is None


@pytest.mark.parametrize("text, message", [
    ("+0 < SX 0:0(0) win 1", "expected TCP flags"),
    ("+0 < 0:0(0) win 1", "expected TCP flags"),
    ("+0 < S 0:5(10) win 1", "inconsistent sequence range"),
    ("+0 < S 0:0 win 1", "'(' before the payload length"),
    ("+0 < S 0:0(0 win 1", "')' after the payload length"),
    ("+0 < S 0:4294967296(0)", "does not fit in 32 bits"),
    ("+0 < S 0:0(0) win 1 <mss 1,bogus>", "unknown TCP option 'bogus'"),
    ("+0 < S 0:0(0) win 1 <sack>", "at least one"),
    ("+0 < S 0:0(0) win 1 <TS val 1>", "'ecr'"),
    ("+0 < S 0:0(0) win 1 <md5>", "hex key"),
    ("+0 < S 0:0(0) win 1 <mss 1", "'>'"),
    ("+0 < [purple] S 0:0(0)", "unknown IP field"),
    ("+0 < [ect0, ect1] S 0:0(0)", "given twice"),
    ("+0 < 70000 > 1 S 0:0(0)", "out of range"),
    ("+0 < ipv4 1.2.3.4 1.2.3.5: S 0:0(0)", "'>' between"),
    ("+0 < S 0:0(0) win 1 ack 1", "unexpected 'ack' at the end of the event"),
])
def test_bad_tcp_packets(text, message):
    err = syntax_error("0 close(9) = 0\n\n" + text)
    assert err.line == 3, err
    assert message in err.message, err


@pytest.mark.parametrize("prefix", ["ipv6", "gre", "mpls", "encap psp spi 1"])
def test_unsupported_packet_forms(prefix):
    with pytest.raises(PacketdrillUnsupported) as info:
        parse(f"0 close(9) = 0\n+0 > {prefix} . 1:1(0) ack 1", "u.pkt")
    assert info.value.line == 2 and "not supported" in info.value.message
    assert not isinstance(info.value, PacketdrillSyntaxError)
    assert isinstance(info.value, PacketdrillError)


# --- UDP and ICMP packets ------------------------------------------------------------------


def test_udp_packets():
    assert action("+0 > udp (100)") == ast.PacketEvent(direction=">", protocol="udp",
                                                      udp_len=100)
    pkt = action("+0 < [tos 0x10] udp 5353 > 53 (8)")
    assert (pkt.src_port, pkt.dst_port, pkt.udp_len, pkt.ip_info) == (5353, 53, 8,
                                                                     ast.IpInfo(tos=16))


def test_icmp_packets():
    pkt = action("+0 < icmp unreachable frag_needed mtu 900 [0:10(10)]")
    assert pkt == ast.PacketEvent(
        direction="<", protocol="icmp", icmp_type="unreachable", icmp_code="frag_needed",
        icmp_mtu=900, icmp_echoed=ast.IcmpEchoed(protocol="tcp", length=10, seq_start=0,
                                                 seq_end=10))
    bare = action("+0 < icmp unreachable")
    assert (bare.icmp_type, bare.icmp_code, bare.icmp_echoed) == ("unreachable", None, None)
    too_big = action("+0 < icmp packet_too_big mtu 1280")
    assert (too_big.icmp_code, too_big.icmp_mtu) == (None, 1280)
    echo = action("+0 > icmp echo_reply id 7 [raw (56)]")
    assert (echo.icmp_id, echo.icmp_echoed) == (7, ast.IcmpEchoed(protocol="raw", length=56))
    udp = action("+0 < icmp unreachable port_unreachable [udp (12)]")
    assert udp.icmp_echoed == ast.IcmpEchoed(protocol="udp", length=12)


def test_bad_icmp_and_udp():
    assert syntax_error("0 close(9) = 0\n+0 < icmp 3").line == 2
    assert "']'" in syntax_error("0 close(9) = 0\n+0 < icmp unreachable [1:2(1)").message
    assert "UDP payload length" in syntax_error("0 close(9) = 0\n+0 < udp (x)").message


# --- syscalls ------------------------------------------------------------------------------


def test_simple_syscalls():
    assert action("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3") == ast.SyscallEvent(
        name="socket", args=(ast.EllipsisExpr(), ast.Name("SOCK_STREAM"),
                             ast.Name("IPPROTO_TCP")), result=ast.Int(3))
    assert action("+0 getpid() = 9").args == ()


def test_blocking_syscall_with_end_time():
    event = one("+.1...0.200 accept(3, ..., ...) = 4")
    assert event.time == ast.EventTime(kind="relative", start=0.1)
    assert event.action.end_time == 0.2 and event.action.end_usecs == 200_000
    assert one("0...1 read(4, ..., 10) = 10").action.end_time == 1.0


def test_errno_and_note():
    call = action("+0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)")
    assert (call.result, call.errno, call.note) == (ast.Int(-1), "EINPROGRESS",
                                                    "Operation now in progress")
    bare = action("+0 write(4, ..., 1) = -1 EPIPE")
    assert (bare.errno, bare.note) == ("EPIPE", None)
    flags = action("+0 fcntl(3, F_GETFL) = 0x802 (flags O_RDWR|O_NONBLOCK)")
    assert (flags.result, flags.errno, flags.note) == (ast.Int(0x802), None,
                                                       "flags O_RDWR|O_NONBLOCK")
    only_note = action("+0 setsockopt(3, SOL_TCP, TCP_X, \"\", 0) = -1 (Can't do\n that)")
    assert (only_note.errno, only_note.note) == (None, "Can't do that")


def test_flag_expressions_and_negative_numbers():
    call = action("+0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK|0x10) = 0")
    assert call.args[2] == ast.BinaryOp("|", ast.BinaryOp("|", ast.Name("O_RDWR"),
                                                          ast.Name("O_NONBLOCK")), ast.Int(16))
    assert action("+0 close(-1) = -1 EBADF (Bad file descriptor)").args == (ast.Int(-1),)


def test_arrays_strings_and_null():
    call = action('+0 setsockopt(3, SOL_SOCKET, SO_LINGER, [], "ab"..., NULL, "x", [[1], 2])'
                  ' = 0')
    assert call.args[3:] == (ast.Array(()), ast.String("ab", partial=True), ast.Null(),
                             ast.String("x"), ast.Array((ast.Array((ast.Int(1),)), ast.Int(2))))


def test_sockaddr_struct_with_helpers():
    call = action('+0 bind(3, {sa_family=AF_INET, sin_port=htons(8080),\n'
                  '               sin_addr=inet_addr("192.0.2.1")}, 16) = 0')
    sockaddr = call.args[1]
    assert isinstance(sockaddr, ast.Struct)
    assert sockaddr.fields() == {
        "sa_family": ast.Name("AF_INET"),
        "sin_port": ast.Call("htons", (ast.Int(8080),)),
        "sin_addr": ast.Call("inet_addr", (ast.String("192.0.2.1"),)),
    }


def test_linger_pollfd_and_epoll_structs():
    linger = action("+0 setsockopt(3, SOL_SOCKET, SO_LINGER, {l_onoff=1, l_linger=0}, 8) = 0")
    assert linger.args[3] == ast.Struct((ast.Assign(ast.Name("l_onoff"), ast.Int(1)),
                                         ast.Assign(ast.Name("l_linger"), ast.Int(0))))
    poll = action("+0...0.1 poll([{fd=3, events=POLLIN|POLLOUT, revents=POLLOUT}], 1, 100) = 1")
    pollfd = poll.args[0].items[0]
    assert pollfd.fields()["events"] == ast.BinaryOp("|", ast.Name("POLLIN"),
                                                     ast.Name("POLLOUT"))
    ev = action("+0 epoll_ctl(5, EPOLL_CTL_ADD, 4, {events=EPOLLIN, fd=4}) = 0")
    assert ev.args[3].fields() == {"events": ast.Name("EPOLLIN"), "fd": ast.Int(4)}


def test_msghdr_with_iovec_and_cmsg():
    call = action(
        "+0 recvmsg(4, {msg_name(...)=...,\n"
        "               msg_iov(1)=[{..., 100}],\n"
        "               msg_flags=0,\n"
        "               msg_control=[{cmsg_level=SOL_TCP, cmsg_type=TCP_CM_INQ,\n"
        "                             cmsg_data=0}]}, 0) = 100")
    msghdr = call.args[1].fields()
    assert msghdr["msg_name"] == ast.EllipsisExpr()
    assert msghdr["msg_iov"] == ast.Array((ast.Struct((ast.EllipsisExpr(), ast.Int(100))),))
    assert call.args[1].items[1].target == ast.Call("msg_iov", (ast.Int(1),))
    cmsg = msghdr["msg_control"].items[0]
    assert cmsg.fields()["cmsg_type"] == ast.Name("TCP_CM_INQ")


def test_keywords_are_plain_names_in_expressions():
    # `TS`, `win`, `ack` and `mss` are only keywords inside packets.
    call = action("+0 f(TS, win, ack, mss, icmp) = 0")
    assert call.args == tuple(ast.Name(n) for n in ("TS", "win", "ack", "mss", "icmp"))


@pytest.mark.parametrize("text, message", [
    ("+0 close(3)", "expected '= RESULT'"),
    ("+0 close(3 4) = 0", "',' or ')'"),
    ("+0 close(3", "end of script"),
    ("+0 f(1 = 2) = 0", "only a name"),
    ("+0 close(3) = -1 EBADF (never closed", "unterminated '(' note"),
    ("+0 f(@) = 0", "unexpected character '@'"),
    ("+0 ...0.1 = 0", "system call name"),
    ("+0 ... close(3) = 0", "end time after '...'"),
    ("+0 f({a=1,}) = 0", "expected an expression"),
])
def test_bad_syscalls(text, message):
    err = syntax_error("0 close(9) = 0\n" + text)
    assert err.line == 2, err
    assert message in err.message, err


# --- commands and code ---------------------------------------------------------------------


def test_timed_command_and_code_block():
    script = parse("0 `sysctl -q net.ipv4.tcp_timestamps=0`\n"
                   "+0 %{ assert tcpi_snd_cwnd == 10, tcpi_snd_cwnd }%\n"
                   "+0 %{\n"
                   "assert 5000 <= tcpi_rtt <= 20000, 'srtt=%d us' % tcpi_rtt\n"
                   "}%\n")
    cmd, code, block = (e.action for e in script.events)
    assert cmd == ast.CommandEvent("sysctl -q net.ipv4.tcp_timestamps=0")
    assert code == ast.CodeEvent(" assert tcpi_snd_cwnd == 10, tcpi_snd_cwnd ")
    assert "tcpi_rtt <= 20000" in block.code


# --- a whole script ------------------------------------------------------------------------


def test_a_whole_handshake_script():
    script = parse("""\
--tolerance_usecs=10000
`./defaults.sh`
// Passive open, one write, close.
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
   +0 bind(3, ..., ...) = 0
   +0 listen(3, 1) = 0
   +0 < S 0:0(0) win 32792 <mss 1000,nop,wscale 7>
   +0 > S. 0:0(0) ack 1 <mss 1460,nop,wscale 8>
  +.1 < . 1:1(0) ack 1 win 257
   +0 accept(3, ..., ...) = 4
   +0 write(4, ..., 1000) = 1000
   +0 > P. 1:1001(1000) ack 1
 +.01 < . 1:1(0) ack 1001 win 257
   +0 close(4) = 0
   +0 > F. 1001:1001(0) ack 1
""", "handshake.pkt")
    assert len(script.events) == 13
    kinds_ = [type(e.action).__name__[0] for e in script.events]
    assert "".join(kinds_) == "SSSSPPPSSPPSP"
    assert script.events[6].time == ast.EventTime(kind="relative", start=0.1)
    assert script.events[-1].line == 16


# --- generated packets round-trip ----------------------------------------------------------


u32 = st.integers(0, 2**32 - 1)


@given(flags=st.sampled_from(["S", "S.", ".", "P.", "F.", "R", "R.", "SEW", "-"]),
       start=u32, length=st.integers(0, 65535), ack=st.none() | u32,
       win=st.none() | st.integers(0, 65535),
       mss=st.none() | st.integers(0, 65535), ts=st.none() | st.tuples(u32, u32),
       relative=st.booleans(), usecs=st.integers(0, 10**7))
def test_generated_tcp_packet_lines(flags, start, length, ack, win, mss, ts, relative, usecs):
    end = (start + length) % 2**32
    text = f"{'+' if relative else ''}{usecs / 1e6:.6f} > {flags} {start}:{end}({length})"
    text += f" ack {ack}" if ack is not None else ""
    text += f" win {win}" if win is not None else ""
    opts = ([f"mss {mss}"] if mss is not None else []) + (
        [f"TS val {ts[0]} ecr {ts[1]}"] if ts is not None else [])
    text += f" <{','.join(opts)}>" if opts else ""
    event = one(text)
    assert event.time.kind == ("relative" if relative else "absolute")
    assert event.time.start_usecs == usecs
    pkt = event.action
    assert (pkt.flags, pkt.seq_start, pkt.seq_end, pkt.seq_len, pkt.ack, pkt.win) == (
        "" if flags == "-" else flags, start, end, length, ack, win)
    expected_opts = ([ast.TcpOption("mss", (mss,))] if mss is not None else []) + (
        [ast.TcpOption("TS", ts)] if ts is not None else [])
    assert pkt.tcp_options == (tuple(expected_opts) if expected_opts else None)


# --- the packetdrill corpus ----------------------------------------------------------------


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"packetdrill corpus not present at {CORPUS}")
def test_corpus_scripts_parse():
    """Every script under gtests/net/tcp parses; elsewhere a script may instead be reported
    as PacketdrillUnsupported (PSP encapsulation), never as a syntax error or a crash."""
    scripts = sorted(CORPUS.rglob("*.pkt"))
    assert scripts, "corpus folder has no .pkt files"
    parsed, unsupported, failures = 0, [], []
    for path in scripts:
        rel = path.relative_to(CORPUS).as_posix()
        try:
            script = parse(path.read_text(), rel)
        except PacketdrillUnsupported as exc:
            if rel.startswith("net/tcp/"):
                failures.append(f"{exc} (unsupported)")
            else:
                unsupported.append(rel)
            continue
        except PacketdrillSyntaxError as exc:
            failures.append(str(exc))
            continue
        parsed += 1
        lines = [e.line for e in script.events]
        assert lines == sorted(set(lines)), f"{rel}: event lines out of order"
    assert not failures, "\n".join(failures)
    tcp = [p for p in scripts if p.relative_to(CORPUS).as_posix().startswith("net/tcp/")]
    assert parsed + len(unsupported) == len(scripts)
    assert len(tcp) <= parsed

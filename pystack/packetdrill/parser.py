"""A recursive-descent parser for packetdrill scripts: `parse(text) -> ast.Script`.

Read first: /work/shared/conformance/packetdrill/syntax.md. The docstring of each method below
names the grammar rule it implements, and the grammar's LALR(1) choices map onto one or two
tokens of lookahead:

* an event starts with a time; its action is a packet if `<`/`>` follows, a command for a
  back-quoted token, a code block for `%{ }%`, otherwise a syscall (optionally `...END`);
* an untimed back-quoted command may only open the events (init) or close them (cleanup);
* in a TCP packet, `INT >` means ports and `INT :` the sequence range;
* syscall arguments use one generic expression grammar (`|`, `=`, calls, `[...]`, `{...}`)
  instead of the grammar's per-struct rules (sockaddr, msghdr, pollfd, linger, cmsg, ...):
  those are all `{name=expr, ...}`, and what the names mean is the runner's business.

Keywords (`ack`, `win`, `mss`, `icmp`, ...) are ordinary WORD tokens recognised by position,
so a constant like `TS` or `win` in a syscall argument stays a plain name.

Out of scope, raised as PacketdrillUnsupported: ipv6/gre/mpls packet prefixes and PSP's
`encap` (none appear under gtests/net/tcp).
"""

from __future__ import annotations

from collections.abc import Callable

from . import ast
from .lexer import PacketdrillSyntaxError, PacketdrillUnsupported, Token, tokenize

__all__ = ["parse", "PacketdrillSyntaxError", "PacketdrillUnsupported"]

# F S R P U as in RFC 793; E = ECE, W = CWR (RFC 3168); the ACK bit is written as a trailing '.'.
_TCP_FLAGS = frozenset("FSRPUEW")
_ECN_WORDS = frozenset({"noecn", "ect0", "ect1", "ce", "ect01"})
_UNSUPPORTED_PREFIXES = {
    "ipv6": "an IPv6 packet prefix",
    "gre": "GRE encapsulation",
    "mpls": "MPLS encapsulation",
    "encap": "PSP encapsulation",
}
_U32 = 1 << 32


def parse(text: str, filename: str = "<script>") -> ast.Script:
    """Parse a whole packetdrill script. Raises PacketdrillSyntaxError (with the line) on bad
    input and PacketdrillUnsupported for the forms this front end does not model."""
    return _Parser(tokenize(text, filename), text, filename).script()


def _describe(tok: Token) -> str:
    if tok.kind == "EOF":
        return "end of script"
    if tok.kind == "CHAR":
        return f"unexpected character {tok.text!r}"
    if tok.kind in ("BACKQUOTE", "CODE"):
        return "a back-quoted command" if tok.kind == "BACKQUOTE" else "a %{ }% code block"
    text = tok.text if len(tok.text) <= 30 else tok.text[:27] + "..."
    return repr(text)


class _Parser:
    def __init__(self, tokens: list[Token], source: str, filename: str) -> None:
        self.tokens = tokens
        self.source = source
        self.filename = filename
        self.i = 0

    # --- token plumbing --------------------------------------------------------------------

    def peek(self, k: int = 0) -> Token:
        return self.tokens[min(self.i + k, len(self.tokens) - 1)]

    def next(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind != "EOF":
            self.i += 1
        return tok

    def at(self, kind: str, k: int = 0) -> bool:
        return self.peek(k).kind == kind

    def at_word(self, *words: str) -> bool:
        return self.peek().kind == "WORD" and self.peek().text in words

    def error(self, message: str, tok: Token | None = None) -> PacketdrillSyntaxError:
        tok = tok or self.peek()
        return PacketdrillSyntaxError(message, self.filename, tok.line)

    def expect(self, kind: str, what: str) -> Token:
        if self.peek().kind != kind:
            raise self.error(f"expected {what}, found {_describe(self.peek())}")
        return self.next()

    def expect_word(self, word: str, context: str) -> Token:
        if not self.at_word(word):
            raise self.error(f"expected '{word}' {context}, found {_describe(self.peek())}")
        return self.next()

    def integer(self, what: str, *, u32: bool = False) -> int:
        tok = self.expect("INT", what)
        if u32 and tok.value >= _U32:
            raise self.error(f"{what} {tok.value} does not fit in 32 bits", tok)
        return tok.value

    def comma_list(self, item: Callable[[], object], close: str) -> tuple:
        """`item (',' item)*` up to the `close` punctuation (consumed); may be empty."""
        items = []
        if not self.at(close):
            items.append(item())
            while self.at(","):
                self.next()
                items.append(item())
        self.expect(close, f"',' or '{close}'")
        return tuple(items)

    # --- script ----------------------------------------------------------------------------

    def script(self) -> ast.Script:
        options = []
        while self.at("OPTION"):
            tok = self.next()
            name, value = tok.value
            options.append(ast.Option(name=name, value=value, line=tok.line))
        init_command = self.next().value if self.at("BACKQUOTE") else None
        events: list[ast.Event] = []
        cleanup_command = None
        while not self.at("EOF"):
            if self.at("BACKQUOTE"):
                tok = self.next()
                if not self.at("EOF"):
                    raise self.error(
                        "a command without a time stamp may only start or end the script "
                        "(give it a time, e.g. `+0 `...``)", tok)
                cleanup_command = tok.value
                break
            if self.at("OPTION"):
                raise self.error(f"option {self.peek().text} must come before the first event")
            events.append(self.event())
        if not events:
            raise self.error("script has no events")
        return ast.Script(options=tuple(options), events=tuple(events),
                          init_command=init_command, cleanup_command=cleanup_command,
                          filename=self.filename)

    def event(self) -> ast.Event:
        line = self.peek().line
        time = self.event_time()
        tok = self.peek()
        if tok.kind in ("<", ">"):
            action: ast.Action = self.packet()
        elif tok.kind == "BACKQUOTE":
            action = ast.CommandEvent(self.next().value)
        elif tok.kind == "CODE":
            action = ast.CodeEvent(self.next().value)
        elif tok.kind == "..." or (tok.kind == "WORD" and self.at("(", k=1)):
            action = self.syscall()
        else:
            raise self.error("expected a packet ('<' or '>'), a syscall, a back-quoted command "
                             f"or a %{{ }}% block after the time stamp, found {_describe(tok)}")
        return ast.Event(time=time, action=action, line=line)

    def time(self, what: str = "a time") -> float:
        tok = self.peek()
        if tok.kind not in ("INT", "FLOAT"):
            raise self.error(f"expected {what}, found {_describe(tok)}")
        if tok.text[:2].lower() == "0x":
            raise self.error(f"a time is decimal seconds, not {tok.text!r}")
        self.next()
        return float(tok.value)

    def event_time(self) -> ast.EventTime:
        """`event_time`: `T`, `+T`, `*`, `T~T`, `+T~+T`."""
        if self.at("*"):
            self.next()
            return ast.EventTime(kind="any")
        if self.at("+"):
            self.next()
            start = self.time("a time after '+'")
            if not self.at("~"):
                return ast.EventTime(kind="relative", start=start)
            self.next()
            if not self.at("+"):
                raise self.error("a relative time range is written '+T1~+T2'")
            self.next()
            end = self.time("the end of the time range")
            return ast.EventTime(kind="relative_range", start=start, end=end)
        if self.peek().kind not in ("INT", "FLOAT"):
            if self.i > 0 and self.tokens[self.i - 1].line == self.peek().line:
                raise self.error(f"unexpected {_describe(self.peek())} at the end of the event")
            raise self.error("expected a time stamp ('0.1', '+.1', '*' or 'T1~T2') at the start "
                             f"of an event, found {_describe(self.peek())}")
        start = self.time()
        if not self.at("~"):
            return ast.EventTime(kind="absolute", start=start)
        self.next()
        if self.at("+"):
            raise self.error("an absolute time range is written 'T1~T2' (no '+')")
        end = self.time("the end of the time range")
        return ast.EventTime(kind="range", start=start, end=end)

    # --- packets ---------------------------------------------------------------------------

    def packet(self) -> ast.PacketEvent:
        """`packet_spec`: direction, explicit headers, ip info, then tcp/udp/icmp."""
        direction = self.next().kind
        prefixes = []
        while self.peek().kind == "WORD" and self.peek().text.lower() in (
                "ipv4", *_UNSUPPORTED_PREFIXES):
            word = self.peek().text.lower()
            if word != "ipv4":
                raise PacketdrillUnsupported(f"{_UNSUPPORTED_PREFIXES[word]} is not supported",
                                             self.filename, self.peek().line)
            self.next()
            info = self.opt_ip_info()
            src = self.expect("IPV4", "the IPv4 source address").value
            self.expect(">", "'>' between the IPv4 addresses")
            dst = self.expect("IPV4", "the IPv4 destination address").value
            self.expect(":", "':' after the IPv4 header")
            prefixes.append(ast.IpPrefix(version=4, src=src, dst=dst, ip_info=info))
        common = {"direction": direction, "ip_info": self.opt_ip_info(),
                  "ip_prefixes": tuple(prefixes)}
        if self.at_word("udp"):
            self.next()
            return ast.PacketEvent(protocol="udp", **common, **self.opt_ports(),
                                   udp_len=self.paren_int("the UDP payload length"))
        if self.at_word("icmp"):
            self.next()
            return self.icmp(common)
        return self.tcp(common)

    def opt_ip_info(self) -> ast.IpInfo | None:
        """`opt_ip_info`: `(...)` or `[...]` holding ECN/tos, flowlabel, ttl, comma-separated."""
        if not (self.at("(") or self.at("[")):
            return None
        close = ")" if self.next().kind == "(" else "]"
        fields: dict[str, object] = {}

        def item() -> None:
            tok = self.expect("WORD", "an IP field (noecn, ect0, ect1, ce, ect01, tos, "
                                      "flowlabel, ttl)")
            word = tok.text.lower()
            if word in _ECN_WORDS:
                key, value = "ecn", word
            elif word in ("tos", "flowlabel", "ttl"):
                key = {"tos": "tos", "flowlabel": "flow_label", "ttl": "ttl"}[word]
                value = self.integer(f"a value after '{word}'")
            else:
                raise self.error(f"unknown IP field {tok.text!r}", tok)
            if key in fields or (key == "tos" and "ecn" in fields) or (
                    key == "ecn" and "tos" in fields):
                raise self.error(f"IP field {tok.text!r} given twice", tok)
            fields[key] = value

        self.comma_list(item, close)
        if not fields:
            raise self.error("empty IP info")
        return ast.IpInfo(**fields)

    def opt_ports(self) -> dict[str, int]:
        """`opt_port_info`: `SRC > DST`."""
        if not (self.at("INT") and self.at(">", k=1)):
            return {}
        src = self.integer("the source port")
        self.next()
        dst = self.integer("the destination port")
        for port in (src, dst):
            if port > 0xFFFF:
                raise self.error(f"port {port} is out of range")
        return {"src_port": src, "dst_port": dst}

    def paren_int(self, what: str) -> int:
        self.expect("(", f"'(' before {what}")
        value = self.integer(what)
        self.expect(")", f"')' after {what}")
        return value

    def seq(self) -> tuple[int, int, int]:
        """`seq`: `START:END(LEN)`, END - START must be LEN (mod 2**32)."""
        start = self.integer("a sequence range START:END(LEN)", u32=True)
        self.expect(":", "':' in the sequence range START:END(LEN)")
        end = self.integer("the end of the sequence range", u32=True)
        line_tok = self.peek()
        length = self.paren_int("the payload length")
        if (start + length) % _U32 != end:
            raise self.error(f"inconsistent sequence range {start}:{end}({length}): "
                             f"{end} - {start} is not {length}", line_tok)
        return start, end, length

    def tcp(self, common: dict) -> ast.PacketEvent:
        """`tcp_packet_spec`: ports, flags, seq, `ack N`, `win N`, `urg N`, `<options>`."""
        ports = self.opt_ports()
        tok = self.peek()
        if tok.kind == "-":
            self.next()
            flags = ""
        elif tok.kind == ".":
            self.next()
            flags = "."
        elif tok.kind == "WORD":
            self.next()
            bad = set(tok.text) - _TCP_FLAGS
            if bad:
                raise self.error(f"expected TCP flags (letters of {''.join(sorted(_TCP_FLAGS))}, "
                                 f"'.', or '-'), found {tok.text!r}", tok)
            flags = tok.text
            if self.at("."):
                self.next()
                flags += "."
        else:
            raise self.error(f"expected TCP flags ('S', 'S.', '.', 'P.', '-', ...), "
                             f"found {_describe(tok)}")
        start, end, length = self.seq()
        fields: dict[str, object] = {}
        for word in ("ack", "win", "urg"):
            if self.at_word(word):
                self.next()
                fields[word] = self.integer(f"a number after '{word}'", u32=True)
        options = self.tcp_options() if self.at("<") else None
        return ast.PacketEvent(protocol="tcp", **common, **ports, flags=flags, seq_start=start,
                               seq_end=end, seq_len=length, tcp_options=options, **fields)

    def tcp_options(self) -> tuple[ast.TcpOption, ...]:
        """`opt_tcp_options`: `<opt, opt, ...>` or `<...>`."""
        self.next()
        if self.at("..."):
            self.next()
            self.expect(">", "'>' after '<...'")
            return (ast.TcpOption("..."),)
        options = [self.tcp_option()]
        while self.at(","):
            self.next()
            options.append(self.tcp_option())
        self.expect(">", "',' or '>' in the TCP option list")
        return tuple(options)

    def number_or_name(self, what: str) -> int | str:
        tok = self.peek()
        if tok.kind == "INT":
            return self.next().value
        if tok.kind == "WORD":  # a -D define, e.g. `mss MSS`
            return self.next().text
        raise self.error(f"expected {what}, found {_describe(tok)}")

    def tcp_option(self) -> ast.TcpOption:
        tok = self.expect("WORD", "a TCP option (mss, nop, sackOK, TS, wscale, sack, ...)")
        kind = tok.text
        if kind in ("nop", "eol", "sackOK"):
            return ast.TcpOption(kind)
        if kind in ("mss", "wscale"):
            return ast.TcpOption(kind, (self.number_or_name(f"a value after '{kind}'"),))
        if kind == "sack":
            blocks = []
            while self.at("INT"):
                left = self.integer("a SACK block edge", u32=True)
                self.expect(":", "':' in the SACK block LEFT:RIGHT")
                blocks.append((left, self.integer("a SACK block edge", u32=True)))
            if not blocks:
                raise self.error("'sack' needs at least one LEFT:RIGHT block")
            return ast.TcpOption(kind, tuple(blocks))
        if kind == "TS":
            self.expect_word("val", "after 'TS'")
            val = self.number_or_name("the TS value")
            self.expect_word("ecr", "after the TS value")
            return ast.TcpOption(kind, (val, self.number_or_name("the TS echo reply")))
        if kind in ("FO", "FOEXP", "md5"):
            # A hex blob is a WORD or INT; take its text so leading zeros survive.
            if self.peek().kind in ("WORD", "INT"):
                return ast.TcpOption(kind, (self.next().text,))
            if kind == "md5":
                raise self.error("'md5' needs a hex key")
            return ast.TcpOption(kind)
        raise self.error(f"unknown TCP option {kind!r}", tok)

    def icmp(self, common: dict) -> ast.PacketEvent:
        """`icmp_packet_spec`: type [code] [mtu N] [id N] [echoed packet]."""
        icmp_type = self.expect("WORD", "an ICMP type (unreachable, packet_too_big, ...)").text
        fields: dict[str, object] = {}
        if self.peek().kind == "WORD" and not self.at_word("mtu", "id"):
            fields["icmp_code"] = self.next().text
        if self.at_word("mtu"):
            self.next()
            fields["icmp_mtu"] = self.integer("the MTU after 'mtu'")
        if self.at_word("id"):
            self.next()
            fields["icmp_id"] = self.integer("the echo id after 'id'")
        if self.at("["):
            self.next()
            if self.at_word("udp", "raw"):
                proto = self.next().text
                echoed = ast.IcmpEchoed(protocol=proto,
                                        length=self.paren_int(f"the {proto} length"))
            else:
                start, end, length = self.seq()
                echoed = ast.IcmpEchoed(protocol="tcp", length=length, seq_start=start,
                                        seq_end=end)
            self.expect("]", "']' after the echoed packet")
            fields["icmp_echoed"] = echoed
        return ast.PacketEvent(protocol="icmp", **common, icmp_type=icmp_type, **fields)

    # --- syscalls --------------------------------------------------------------------------

    def syscall(self) -> ast.SyscallEvent:
        """`syscall_spec`: `[...END] name(args) = result [ERRNO] [(note)]`."""
        end_time = None
        if self.at("..."):
            self.next()
            end_time = self.time("the end time after '...'")
        name = self.expect("WORD", "a system call name").text
        self.expect("(", f"'(' after {name}")
        args = self.comma_list(self.expression, ")")
        if not self.at("="):
            raise self.error(f"expected '= RESULT' after {name}(...), found "
                             f"{_describe(self.peek())}")
        self.next()
        result = self.expression(result=True)
        # The errno and note must start on the result's line. packetdrill's grammar ignores
        # line breaks, but requiring this lets a following line that lacks its time stamp
        # (`close(3) = 0`) be reported as such instead of being read as an errno and note.
        errno = note = None
        line = self.tokens[self.i - 1].line
        if self.at("WORD") and self.peek().line == line:
            errno = self.next().text
        if self.at("(") and self.peek().line == line:
            note = self.note()
        return ast.SyscallEvent(name=name, args=args, result=result, errno=errno, note=note,
                                end_time=end_time)

    def note(self) -> str:
        """`note`: free text in parentheses, kept as written (white space collapsed)."""
        open_tok = self.next()
        depth = 1
        while True:
            tok = self.next()
            if tok.kind == "EOF":
                raise self.error("unterminated '(' note after the syscall result", open_tok)
            depth += {"(": 1, ")": -1}.get(tok.kind, 0)
            if depth == 0:
                return " ".join(self.source[open_tok.end:tok.pos].split())

    def expression(self, result: bool = False) -> ast.Expr:
        """`expression`: or-expressions, and `target = value` for struct members."""
        expr = self.or_expression(result)
        if self.at("=") and not result:
            if not isinstance(expr, (ast.Name, ast.Call)):
                raise self.error("only a name or a name(...) may be assigned with '='")
            self.next()
            return ast.Assign(expr, self.expression())
        return expr

    def or_expression(self, result: bool) -> ast.Expr:
        expr = self.primary(result)
        while self.at("|"):
            self.next()
            expr = ast.BinaryOp("|", expr, self.primary(result))
        return expr

    def primary(self, result: bool = False) -> ast.Expr:
        tok = self.peek()
        kind = tok.kind
        if kind == "...":
            self.next()
            return ast.EllipsisExpr()
        if kind == "INT":
            return ast.Int(self.next().value)
        if kind == "-" and self.at("INT", k=1):
            self.next()
            return ast.Int(-self.next().value)
        if kind == "STRING":
            self.next()
            partial = self.at("...")
            if partial:
                self.next()
            return ast.String(tok.value, partial)
        if kind == "WORD":
            self.next()
            # In a result, `WORD (` is an errno and its note, never a call.
            if self.at("(") and not result:
                self.next()
                return ast.Call(tok.text, self.comma_list(self.expression, ")"))
            return ast.Null() if tok.text == "NULL" else ast.Name(tok.text)
        if kind == "[":
            self.next()
            return ast.Array(self.comma_list(self.expression, "]"))
        if kind == "{":
            self.next()
            return ast.Struct(self.comma_list(self.expression, "}"))
        raise self.error(f"expected an expression, found {_describe(tok)}")

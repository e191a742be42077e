"""The syntax tree of a parsed packetdrill script: frozen attrs classes, no behaviour.

Read first: /work/shared/conformance/packetdrill/syntax.md; each class names the grammar rule
it stands for. The tree is deliberately close to the text: names that packetdrill resolves
at run time (errno names, socket option names, `-D` defines such as `TFO_COOKIE` or `MSS`)
stay names here, and every sequence is a tuple so nodes are hashable and comparable in tests.

Times are seconds as written (floats); `EventTime.start_usecs` gives the microseconds that
packetdrill works in. A syscall's `end_time` (the `0.1...0.2 accept(...)` form) is on the
same base as the event's start: absolute for an absolute start, relative to the previous
event for a `+` start.
"""

from __future__ import annotations

from typing import Union

import attrs

__all__ = [
    "Script", "Option", "Event", "EventTime", "Action",
    "PacketEvent", "IpInfo", "IpPrefix", "TcpOption", "IcmpEchoed",
    "SyscallEvent", "CommandEvent", "CodeEvent",
    "Expr", "Int", "String", "Name", "Null", "EllipsisExpr", "BinaryOp", "Array", "Struct",
    "Assign", "Call",
]


def _usecs(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1_000_000)


# --- expressions (syscall arguments and results) -------------------------------------------


@attrs.frozen
class Int:
    """An integer literal, decimal or hex (`any_int`); negative for `-1`."""

    value: int


@attrs.frozen
class String:
    """A string literal, C escapes decoded; `partial` for `"abc"...`, which matches any string
    starting so."""

    value: str
    partial: bool = False

    def to_bytes(self) -> bytes:
        """The C bytes of the literal (escapes such as `\\xf7` that are not UTF-8 are kept in
        `value` as surrogate escapes, so this is exact)."""
        return self.value.encode("utf-8", "surrogateescape")


@attrs.frozen
class Name:
    """A bare WORD: a constant (SOL_SOCKET, O_NONBLOCK, EPOLLIN) resolved by the runner."""

    name: str


@attrs.frozen
class Null:
    """The NULL pointer."""


@attrs.frozen
class EllipsisExpr:
    """`...`: "whatever is right here" (a buffer, an address, a length)."""


@attrs.frozen
class BinaryOp:
    """`left | right`, as in `O_RDWR|O_NONBLOCK`; `op` is the operator text."""

    op: str
    left: Expr
    right: Expr


@attrs.frozen
class Array:
    """`[a, b, ...]`: an array, or a pointer to one value (`[1]` for an int option)."""

    items: tuple[Expr, ...]


@attrs.frozen
class Struct:
    """`{...}`: a C struct or list literal (sockaddr, msghdr, iovec, pollfd, linger, cmsg,
    epoll_event, ...). Members are usually `Assign`s (`{l_onoff=1, l_linger=0}`), but iovecs
    are positional (`{..., 10}`)."""

    items: tuple[Expr, ...]

    def fields(self) -> dict[str, Expr]:
        """The named members, by name (the target's name for `msg_iov(1)=...` too)."""
        out: dict[str, Expr] = {}
        for item in self.items:
            if isinstance(item, Assign):
                target = item.target
                out[target.name] = item.value
        return out


@attrs.frozen
class Call:
    """`name(args)` inside an expression: `htons(8080)`, `inet_addr("1.2.3.4")`, and the
    size-annotated msghdr members `msg_name(...)` / `msg_iov(1)`."""

    name: str
    args: tuple[Expr, ...]


@attrs.frozen
class Assign:
    """`target = value`, a named member of a struct: `sin_family=AF_INET`,
    `msg_iov(1)=[...]`."""

    target: Union[Name, Call]
    value: Expr


Expr = Union[Int, String, Name, Null, EllipsisExpr, BinaryOp, Array, Struct, Call, Assign]


# --- packets -------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class IpInfo:
    """`opt_ip_info`: `[ect0]`, `(tos 0x4)`, `[ttl 64]`, `(noecn, flowlabel 0x1)`.
    `ecn` is one of noecn, ect0, ect1, ce, ect01."""

    ecn: str | None = None
    tos: int | None = None
    flow_label: int | None = None
    ttl: int | None = None


@attrs.frozen(kw_only=True)
class IpPrefix:
    """One explicit `ipv4 [ip_info] SRC > DST:` header before the packet proper."""

    version: int
    src: str
    dst: str
    ip_info: IpInfo | None = None


@attrs.frozen
class TcpOption:
    """One TCP option (`tcp_option`). `kind` and `values`:

    mss (n,) | wscale (n,) | nop () | eol () | sackOK () | sack ((l, r), ...) | TS (val, ecr)
    | FO () or (cookie,) | FOEXP () or (cookie,) | md5 (key,) | ... () for `<...>`.

    Numbers are ints, or names for `-D` defines (`mss MSS`); cookies and keys are the hex text
    as written (or a define's name)."""

    kind: str
    values: tuple = ()


@attrs.frozen(kw_only=True)
class IcmpEchoed:
    """The quoted packet in an ICMP error: `[0:10(10)]` (tcp, with its sequence range),
    `[udp (100)]` or `[raw (20)]` (payload length only)."""

    protocol: str
    length: int
    seq_start: int | None = None
    seq_end: int | None = None


@attrs.frozen(kw_only=True)
class PacketEvent:
    """A packet to inject (`<`) or to expect from the stack (`>`).

    Which fields are set depends on `protocol`:
      tcp:  flags ('S.', 'P.', '.', 'SEW'; '' for the `-` no-flags form), seq_start, seq_end,
            seq_len, optional ack/win/urg, tcp_options (None when absent)
      udp:  udp_len
      icmp: icmp_type, optional icmp_code, icmp_mtu, icmp_id, icmp_echoed
    All may carry ports (`8080 > 80`), ip_info and explicit ip_prefixes.
    """

    direction: str
    protocol: str
    flags: str | None = None
    seq_start: int | None = None
    seq_end: int | None = None
    seq_len: int | None = None
    ack: int | None = None
    win: int | None = None
    urg: int | None = None
    tcp_options: tuple[TcpOption, ...] | None = None
    src_port: int | None = None
    dst_port: int | None = None
    udp_len: int | None = None
    icmp_type: str | None = None
    icmp_code: str | None = None
    icmp_mtu: int | None = None
    icmp_id: int | None = None
    icmp_echoed: IcmpEchoed | None = None
    ip_info: IpInfo | None = None
    ip_prefixes: tuple[IpPrefix, ...] = ()

    @property
    def tcp_options_wildcard(self) -> bool:
        """True for `<...>`: any options at all are acceptable."""
        return self.tcp_options is not None and any(o.kind == "..." for o in self.tcp_options)


# --- other actions -------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class SyscallEvent:
    """`[...END] name(args) = result [ERRNO] [(note)]`.

    `errno` is the expected errno's name (EINPROGRESS); `note` is the parenthesised free text
    after it (`Operation now in progress`), or after the result alone (`= 0x2 (flags O_RDWR)`).
    `end_time` (seconds) is set for a blocking call written `START...END name(...)`."""

    name: str
    args: tuple[Expr, ...]
    result: Expr
    errno: str | None = None
    note: str | None = None
    end_time: float | None = None

    @property
    def end_usecs(self) -> int | None:
        return _usecs(self.end_time)


@attrs.frozen
class CommandEvent:
    """A back-quoted shell command, text as written between the back quotes."""

    command: str


@attrs.frozen
class CodeEvent:
    """A `%{ ... }%` Python block (TCP_INFO asserts), text as written between the markers."""

    code: str


Action = Union[PacketEvent, SyscallEvent, CommandEvent, CodeEvent]


# --- the script ----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class EventTime:
    """When an event happens (`event_time`).

    kind          written      start / end
    absolute      `0.100`      0.1 / None
    relative      `+.1`        0.1 / None  (after the previous event)
    any           `*`          None / None
    range         `0.1~0.2`    0.1 / 0.2
    relative_range `+0~+0.1`   0 / 0.1     (both after the previous event)
    """

    kind: str
    start: float | None = None
    end: float | None = None

    @property
    def start_usecs(self) -> int | None:
        return _usecs(self.start)

    @property
    def end_usecs(self) -> int | None:
        return _usecs(self.end)


@attrs.frozen(kw_only=True)
class Event:
    """One timed line of the script; `line` is where its time stamp is."""

    time: EventTime
    action: Action
    line: int


@attrs.frozen(kw_only=True)
class Option:
    """A `--name[=value]` line; `value` is the raw text (quotes of a whole string removed)."""

    name: str
    value: str | None = None
    line: int = 0


@attrs.frozen(kw_only=True)
class Script:
    """A whole script: options, an optional untimed first command (usually
    `` `../common/defaults.sh` ``), the timed events, and an optional untimed last command
    (usually the sysctl restore)."""

    options: tuple[Option, ...] = ()
    events: tuple[Event, ...] = ()
    init_command: str | None = None
    cleanup_command: str | None = None
    filename: str = "<script>"

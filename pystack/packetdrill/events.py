"""The event loop of a run: each script line at its time, as packetdrill's run_script does.

Read first: runner.py (the harness) and state.py (State), then packetdrill's run.c (run_script,
adjust_relative_event_times), run_packet.c (run_packet_event, do_outbound_script_packet,
do_inbound_script_packet, sniff_outbound_live_packet) and run_system_call.c
(run_system_call_event, enqueue_system_call, system_call_thread).

Blocking calls (`T1...T2 call()`) run in a second task, as packetdrill's syscall thread: the
main loop goes on once the call has started and is blocked (trio's `wait_all_tasks_blocked`
plays the part of packetdrill's "is the thread sleeping" check), and the call's return time is
checked against T2 when it returns. Any failure there ends the whole run.
"""

from __future__ import annotations

import re

import trio
import trio.testing

from ..net import socket as syscalls
from ..uapi.ip import IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP
from . import ast
from .matcher import (Endpoint, MatchError, SocketModel, SocketState, aggregate,
                      convert_live_seq, map_inbound, owns_live_packet, script_packet,
                      verify_fragments, verify_outbound)
from .packet import Packet, format_packet
from .state import ANY_TIME_SNIFF_LIMIT, HANG_LIMIT, IDLE_WAIT, NO_TIME_RANGE, State, Timed
from .expr import ScriptError, Unsupported
from .syscalls import run_syscall
from .tcp_info import CodeBlock, decode_tcp_info, run_code_blocks

__all__ = ["run_events"]

TCP_INFO = 11
SOL_TCP = 6


async def run_events(st: State) -> None:
    script = st.script
    if script.init_command is not None:
        st.shell.run(script.init_command, "script")
    events = list(script.events)
    first = events[0]
    if (first.time.start_usecs or 0) != 0:
        raise st.fail(_timed(first), "first event should be at time 0")
    for event in events:
        te = _timed(event)
        last = st.last
        if last is not None and last.is_absolute and te.is_absolute and \
                te.time < st.script_last_time:
            raise st.fail(te, f"time goes backward in script from {st.script_last_time} usec "
                              f"to {te.time} usec")
        _adjust_relative_times(st, te)
        await _run_event(st, te)
        st.script_last_time = te.time
        st.last = te
    await _end_of_script(st)


def _timed(event: ast.Event) -> Timed:
    t = event.time
    te = Timed(event, t.kind, t.start_usecs or 0,
               t.end_usecs if t.end_usecs is not None else NO_TIME_RANGE)
    action = event.action
    if isinstance(action, ast.SyscallEvent) and action.end_usecs is not None:
        te.syscall_end = action.end_usecs
    return te


def _adjust_relative_times(st: State, te: Timed) -> None:
    """adjust_relative_event_times."""
    if te.kind not in ("any", "relative", "relative_range"):
        return
    if st.last is not None and st.last.is_inbound and te.is_inbound:
        offset = st.last.time
    else:
        offset = st.now()
    te.offset = offset
    te.time += offset
    if te.kind == "relative_range":
        te.end += offset
    if te.kind == "relative" and te.syscall_end != NO_TIME_RANGE:
        te.syscall_end += offset


async def _run_event(st: State, te: Timed) -> None:
    action = te.event.action
    if isinstance(action, ast.PacketEvent):
        await _packet_event(st, te, action)
    elif isinstance(action, ast.SyscallEvent):
        if action.end_time is not None:
            await _blocking_syscall(st, te, action)
        else:
            await _await_idle(st)
            await st.wait_for_event(te, "system call start")
            await _invoke(st, te, action, blocking=False)
    elif isinstance(action, ast.CommandEvent):
        await st.wait_for_event(te, "command")
        try:
            st.shell.run(action.command, "script")
        except Unsupported as e:
            raise st.fail(te, str(e), status="unsupported") from None
    elif isinstance(action, ast.CodeEvent):
        await st.wait_for_event(te, "data collection for code")
        _snapshot(st, te, action)


# --- syscalls ---------------------------------------------------------------------------------

async def _invoke(st: State, te: Timed, action: ast.SyscallEvent, blocking: bool) -> None:
    try:
        if blocking:
            await run_syscall(st, action)
        else:
            with trio.move_on_after(HANG_LIMIT) as scope:
                await run_syscall(st, action)
            if scope.cancelled_caught:
                raise ScriptError(f"the call blocked for {HANG_LIMIT:.0f} s and never returned "
                                  f"(a call expected to block is written "
                                  f"'T1...T2 {action.name}(...)')")
    except ScriptError as e:
        raise st.fail(te, f"runtime error in {action.name} call: {e}") from None
    except Unsupported as e:
        raise st.fail(te, str(e), status="unsupported") from None


async def _await_idle(st: State) -> bool:
    """await_idle_thread: wait (one second at most) for a blocking call to finish."""
    if st.syscall_busy is None:
        return True
    with trio.move_on_after(IDLE_WAIT):
        await st.syscall_idle.wait()
    return st.syscall_busy is None


async def _blocking_syscall(st: State, te: Timed, action: ast.SyscallEvent) -> None:
    if not await _await_idle(st):
        raise st.fail(te, f"runtime error in {action.name} call: blocking system call while "
                          "another blocking system call is already in progress")
    began = trio.Event()
    st.syscall_busy = te
    st.syscall_idle = trio.Event()

    async def thread() -> None:
        await st.wait_for_event(te, "system call start")
        began.set()
        await _invoke(st, te, action, blocking=True)
        err = st.verify_time(te, te.kind, te.syscall_end, 0, st.now(), te.time,
                             "system call return")
        if err:
            raise st.fail(te, err)
        st.syscall_busy = None
        st.syscall_idle.set()

    st.nursery.start_soon(thread, name=f"syscall line {te.event.line}")
    await began.wait()
    await trio.testing.wait_all_tasks_blocked()


def _snapshot(st: State, te: Timed, action: ast.CodeEvent) -> None:
    """run_code_event: TCP_INFO of the socket under test, now."""
    sock = st.socket_under_test
    if sock is None or sock.live_fd < 0:
        raise st.fail(te, "no socket to use for code")
    try:
        value = syscalls.sys_getsockopt(st.task, sock.live_fd, SOL_TCP, TCP_INFO)
        snapshot = decode_tcp_info(value)
    except (OSError, ValueError) as e:
        raise st.fail(te, f"can't find getsockopt to get TCP info: {e}") from None
    st.code_blocks.append(CodeBlock(te.event.line, action.code, snapshot))


async def _end_of_script(st: State) -> None:
    """As packetdrill ends a script: the cleanup command, the code blocks, then a last wait
    (one second) for a blocking call still running."""
    if st.script.cleanup_command is not None:
        try:
            st.shell.run(st.script.cleanup_command, "script")
        except Unsupported as e:
            raise st.fail(None, str(e), status="unsupported") from None
    if st.code_blocks:
        err = run_code_blocks(st.code_blocks, st.path)
        if err:
            raise st.fail(None, err)
    if not await _await_idle(st):
        raise st.fail(st.syscall_busy, "runtime error: exiting while a blocking system call "
                                       "is in progress")


# --- packets ----------------------------------------------------------------------------------

def _socket_for(st: State, sp, te: Timed) -> SocketModel:
    """find_or_create_socket_for_script_packet."""
    pkt = sp.pkt
    sock = st.socket_under_test
    cfg = st.cfg
    if pkt.proto == IPPROTO_TCP:
        if sp.direction == "<" and (sock is None or sock.state == SocketState.PASSIVE_LISTENING):
            child = SocketModel(state=SocketState.PASSIVE_PACKET_RECEIVED, protocol=IPPROTO_TCP)
            child.script_remote = Endpoint(0, pkt.sport)
            child.script_local = Endpoint(0, pkt.dport)
            child.script_remote_isn = child.live_remote_isn = pkt.seq
            child.live_remote = Endpoint(cfg.remote_ip, _ephemeral_port(st))
            # packetdrill sends to the harness's bind address; the listener's own address is
            # the same unless the script bound elsewhere, and then it is the one that works.
            child.live_local = _bound_address(st, sock)
            st.sockets.append(child)
            st.socket_under_test = child
            return child
        if sp.direction == ">" and pkt.flag("S") and not pkt.flag(".") and sock is not None \
                and sock.state == SocketState.ACTIVE_CONNECTING:
            sock.state = SocketState.ACTIVE_SYN_SENT
            sock.script_local_isn = pkt.seq
            return sock
    if sock is not None:
        icmp = pkt.proto == IPPROTO_ICMP
        if (sock.protocol == IPPROTO_TCP and (pkt.proto == IPPROTO_TCP or icmp)) or \
                (sock.protocol == IPPROTO_UDP and (pkt.proto == IPPROTO_UDP or icmp)) or \
                (sock.protocol == IPPROTO_ICMP and icmp):
            _fill_live_tuple(st, sock)
            return sock
    if pkt.proto == IPPROTO_ICMP or sp.explicit_ports:
        # No socket: an ICMP exchange with the host itself (ping), or a packet with explicit
        # ports. Addresses are the harness's; an extension over packetdrill, which needs a
        # socket under test here.
        model = SocketModel(state=SocketState.NEW, protocol=pkt.proto)
        model.live_remote = Endpoint(cfg.remote_ip, _ephemeral_port(st))
        model.live_local = Endpoint(cfg.local_ip, cfg.bind_port)
        return model
    raise st.fail(te, "error handling packet: no matching socket for script packet")


def _bound_address(st: State, sock: SocketModel | None) -> Endpoint:
    ip, port = 0, 0
    if sock is not None and sock.live_fd >= 0:
        try:
            ip, port = syscalls.sys_getsockname(st.task, sock.live_fd)
        except OSError:
            pass
    return Endpoint(ip or st.cfg.local_ip, port or st.cfg.bind_port)


def _fill_live_tuple(st: State, sock: SocketModel) -> None:
    """A socket that has only been bound has no live peer yet; inbound packets to it come
    from the remote address (an extension: packetdrill would send from 0.0.0.0:0)."""
    if not sock.live_local.ip or not sock.live_local.port:
        bound = _bound_address(st, sock)
        sock.live_local = Endpoint(sock.live_local.ip or bound.ip,
                                   sock.live_local.port or bound.port)
    if not sock.live_remote.ip:
        sock.live_remote = Endpoint(st.cfg.remote_ip, sock.live_remote.port or
                                    _ephemeral_port(st))


def _ephemeral_port(st: State) -> int:
    """next_ephemeral_port: a port for the remote end (the harness asks its own kernel for one;
    here it is drawn from the seeded generator, in Linux's ephemeral range)."""
    return st.rng.randrange(32768, 61000)


async def _packet_event(st: State, te: Timed, action: ast.PacketEvent) -> None:
    try:
        sp = script_packet(action, st.cfg, te.event.line)
    except MatchError as e:
        raise st.fail(te, f"error handling packet: {e}") from None
    sock = _socket_for(st, sp, te)
    if action.direction == ">":
        await _outbound(st, te, sp, sock)
    else:
        await st.wait_for_event(te, "inbound packet")
        _inbound(st, te, sp, sock)


def _inbound(st: State, te: Timed, sp, sock: SocketModel) -> None:
    """do_inbound_script_packet."""
    pkt = sp.pkt
    if pkt.proto == IPPROTO_TCP:
        if sock.state == SocketState.PASSIVE_SYNACK_SENT and pkt.flag("."):
            sock.state = SocketState.PASSIVE_SYNACK_ACKED
        elif sock.state == SocketState.ACTIVE_SYN_SENT and pkt.flag("S") and pkt.flag("."):
            sock.state = SocketState.ACTIVE_SYN_ACKED
            sock.script_remote_isn = sock.live_remote_isn = pkt.seq
    try:
        live = map_inbound(sp, sock, st.cfg)
    except MatchError as e:
        raise st.fail(te, f"error handling packet: {e}") from None
    st.tun.tun_get_user(live.emit())


_TIME_PREFIX = re.compile(r"^\s*(\*|\+?[0-9.]+(\s*~\s*\+?[0-9.]+)?)\s+")


def _script_line(st: State, te: Timed) -> str:
    """The line's packet as written (its time stamp and comment cut off)."""
    line = te.event.line
    text = st.lines[line - 1] if 0 < line <= len(st.lines) else ""
    text = text.split("//")[0].strip()
    return _TIME_PREFIX.sub("", text, count=1)


async def _sniff(st: State, te: Timed, sock: SocketModel, sp) -> Packet:
    """sniff_outbound_live_packet: the next packet of the socket under test (others are
    ignored), waiting up to 2 s past the expected time."""
    if te.kind == "any":
        timeout = ANY_TIME_SNIFF_LIMIT
    else:
        expected = max(te.time, te.end) - st.script_last_time
        timeout = int(expected / 1e6) + 2
    deadline = trio.current_time() + timeout
    expect_icmp = sp.pkt.proto == IPPROTO_ICMP
    while True:
        while st.outq:
            live = st.outq.popleft()
            if live.proto >= 0 and owns_live_packet(sock, live, expect_icmp, st.cfg):
                return live
            st.ignored.append(live)
        if trio.current_time() >= deadline:
            break
        with trio.move_on_at(deadline):
            await st.out_lot.park()
    details = f"script packet: {te.time / 1e6:9.6f} {_script_line(st, te)}"
    recent = [p for p in st.ignored[-3:]]
    if recent:
        details += "\nignored (not for the socket under test): " + "; ".join(
            f"{p.time:.6f} {format_packet(p, addresses=True)}" for p in recent)
    raise st.fail(te, "error handling packet: Timed out waiting for packet", details=details,
                  expected=_script_line(st, te))


async def _outbound(st: State, te: Timed, sp, sock: SocketModel) -> None:
    """do_outbound_script_packet + verify_outbound_live_packet."""
    pkt = sp.pkt
    is_synack = pkt.proto == IPPROTO_TCP and pkt.flag("S") and pkt.flag(".")
    if sock.state == SocketState.PASSIVE_PACKET_RECEIVED and is_synack:
        sock.script_local_isn = pkt.seq
    expected_len = len(pkt.payload)
    sniffed: list[Packet] = []
    total = 0
    while True:
        live = await _sniff(st, te, sock, sp)
        if sock.state == SocketState.PASSIVE_PACKET_RECEIVED and is_synack:
            sock.state = SocketState.PASSIVE_SYNACK_SENT
            sock.live_local_isn = live.seq
        if live.proto == IPPROTO_TCP:
            convert_live_seq(sock, live)
        if sniffed:
            prev = sniffed[-1]
            if (live.src, live.sport, live.dst, live.dport) != \
                    (prev.src, prev.sport, prev.dst, prev.dport):
                sniffed, total = [], 0
            else:
                try:
                    verify_fragments(live, prev, total, expected_len)
                except MatchError as e:
                    _mismatch(st, te, str(e), sniffed + [live])
        sniffed.append(live)
        total += len(live.payload)
        if not (live.proto == IPPROTO_TCP and total < expected_len and
                not st.cfg.strict_segments):
            break
    if total != expected_len and pkt.proto != IPPROTO_ICMP:  # (what an ICMP quotes varies)
        _mismatch(st, te, f"live packet payload: expected {expected_len} bytes vs actual "
                          f"{total} bytes", sniffed)
    live = sniffed[0] if len(sniffed) == 1 else aggregate(sniffed)
    try:
        actual = verify_outbound(sock, live, sp, _ts_tolerance(st, te), st.cfg)
    except MatchError as e:
        _mismatch(st, te, str(e), [e.actual or live])
    err = st.verify_time(te, te.kind, te.time, te.end, round(live.time * 1e6),
                         st.last.time if st.last is not None else None, "outbound packet")
    if err:
        _mismatch(st, te, err, [actual])


def _ts_tolerance(st: State, te: Timed) -> float:
    tol = st.cfg.tolerance_usecs
    return max(tol, st.cfg.tolerance_percent / 100.0 * te.time)


def _mismatch(st: State, te: Timed, message: str, actual: list[Packet]) -> None:
    expected = _script_line(st, te)
    action = te.event.action
    sp_ttl = action.ip_info.ttl if isinstance(action, ast.PacketEvent) and action.ip_info else 0
    lines = [f"script packet: {te.time / 1e6:9.6f} {expected}"]
    shown = []
    for i, p in enumerate(actual):
        label = "actual packet" if len(actual) == 1 else f"actual #{i}"
        text = format_packet(p, ttl=bool(sp_ttl))
        shown.append(text)
        lines.append(f"{label}: {p.time:9.6f} {text}")
    raise st.fail(te, f"error handling packet: {message}", details="\n".join(lines),
                  expected=expected, actual=" | ".join(shown))

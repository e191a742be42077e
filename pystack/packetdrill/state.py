"""The state of one run: the harness's objects, the socket model, the virtual clock base,
and how failures are told.

Read first: runner.py (what a run is) and packetdrill's run.c (verify_time, wait_for_event),
whose timing rules and messages these follow.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any

import attrs
import trio

from . import ast
from .commands import Shell
from .matcher import Config, SocketModel
from .packet import BadPacket, Packet, parse as parse_packet
from .tcp_info import CodeBlock

__all__ = ["State", "Timed", "ScriptFailure", "SEED", "WALL_CLOCK_LIMIT", "HANG_LIMIT",
           "ANY_TIME_SNIFF_LIMIT", "IDLE_WAIT", "NO_TIME_RANGE", "HARNESS_DEFINES"]

SEED = 1
WALL_CLOCK_LIMIT = 20.0       # seconds of real time per script
HANG_LIMIT = 300.0            # virtual seconds a call without `...` may block before we call it hung
ANY_TIME_SNIFF_LIMIT = 600.0  # virtual seconds to wait for a `*` outbound packet
IDLE_WAIT = 1.0               # await_idle_thread's one second
NO_TIME_RANGE = -1

# The -D defines run_all.py passes for an ipv4 run.
HARNESS_DEFINES = {"TFO_COOKIE": "3021b9d889017eeb", "CODE": "host_unreachable",
                   "CMSG_LEVEL_IP": "SOL_IP", "CMSG_TYPE_RECVERR": "IP_RECVERR"}


class ScriptFailure(Exception):
    """The script failed; carries the fields of the Result."""

    def __init__(self, reason: str, details: str = "", line: int | None = None,
                 time_: float | None = None, expected: str | None = None,
                 actual: str | None = None, status: str = "fail"):
        super().__init__(reason)
        self.reason = reason
        self.details = details or reason
        self.line = line
        self.time = time_
        self.expected = expected
        self.actual = actual
        self.status = status


@attrs.define(eq=False)
class Timed:
    """An event with its times in microseconds, adjusted as the run goes."""
    event: ast.Event
    kind: str
    time: int
    end: int = NO_TIME_RANGE
    syscall_end: int = NO_TIME_RANGE
    offset: int = 0

    @property
    def is_inbound(self) -> bool:
        a = self.event.action
        return isinstance(a, ast.PacketEvent) and a.direction == "<"

    @property
    def is_absolute(self) -> bool:
        return self.kind in ("absolute", "range")


class State:
    """Everything one run holds: the host, the device, the socket model, the clock base."""

    def __init__(self, script: ast.Script, path: str, cfg: Config, lines: list[str]):
        self.script = script
        self.path = path
        self.cfg = cfg
        self.lines = lines
        self.sockets: list[SocketModel] = []
        self.socket_under_test: SocketModel | None = None
        self.fds: dict[int, int] = {}
        self.outq: deque[Packet] = deque()
        self.out_lot = trio.lowlevel.ParkingLot()
        self.ignored: list[Packet] = []
        self.code_blocks: list[CodeBlock] = []
        self.t0 = 0.0
        self.last: Timed | None = None
        self.script_last_time = 0
        self.syscall_busy: Timed | None = None
        self.syscall_idle = trio.Event()
        self.syscall_idle.set()
        self.rng = random.Random(SEED)
        self.host: Any = None
        self.tun: Any = None
        self.task: Any = None
        self.shell: Shell | None = None
        self.nursery: trio.Nursery | None = None

    # -- time ----------------------------------------------------------------------------------
    def now(self) -> int:
        return round((trio.current_time() - self.t0) * 1_000_000)

    def fail(self, te: Timed | None, message: str, *, details: str = "",
             expected: str | None = None, actual: str | None = None,
             status: str = "fail") -> ScriptFailure:
        line = te.event.line if te is not None else None
        where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        now = self.now() / 1e6
        body = where + message
        full = body + (("\n" + details) if details else "") + \
            f"\n(virtual time {now:.6f} s)"
        return ScriptFailure((f"line {line}: " if line is not None else "") + message, full,
                             line, now, expected, actual, status)

    def verify_time(self, te: Timed, kind: str, script: int, script_end: int, live: int,
                    last: int | None, what: str) -> str | None:
        """packetdrill's verify_time: None, or the timing error."""
        if kind == "any":
            return None
        tol = self.cfg.tolerance_usecs
        if last is not None and last != NO_TIME_RANGE:
            tol = max(tol, int(self.cfg.tolerance_percent / 100.0 * (script - last)))
        if kind in ("range", "relative_range"):
            if live < script - tol or live > script_end + tol:
                if kind == "range":
                    return (f"timing error: expected {what} in time range {script / 1e6:.6f}~"
                            f"{script_end / 1e6:.6f} sec but happened at {live / 1e6:.6f} sec")
                off = te.offset
                return (f"timing error: expected {what} in relative time range "
                        f"+{(script - off) / 1e6:.6f}~+{(script_end - off) / 1e6:.6f} sec but "
                        f"happened at {(live - off) / 1e6:+.6f} sec")
            return None
        if live < script - tol or live > script + tol:
            return (f"timing error: expected {what} at {script / 1e6:.6f} sec but happened at "
                    f"{live / 1e6:.6f} sec; tolerance {tol / 1e6:.6f} sec")
        return None

    async def wait_for_event(self, te: Timed, what: str) -> None:
        due = self.t0 + te.time / 1e6
        if trio.current_time() < due:
            await trio.sleep_until(due)
        err = self.verify_time(te, te.kind, te.time, te.end, self.now(),
                               self.last.time if self.last is not None else None, what)
        if err:
            raise self.fail(te, err)

    # -- the tun device's reader -----------------------------------------------------------------
    def on_transmit(self, data: bytes) -> None:
        try:
            pkt = parse_packet(data, self.now() / 1e6)
        except BadPacket as e:
            pkt = Packet(proto=-1, payload=data, time=self.now() / 1e6)
            pkt.options = [(-1, str(e).encode())]
        self.outq.append(pkt)
        self.out_lot.unpark_all()

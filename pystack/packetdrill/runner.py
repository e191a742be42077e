"""Run a packetdrill script against an emulated host, in virtual time: `run_script`.

Read first: packetdrill's run.c (run_script: the event loop, adjust_relative_event_times,
wait_for_event, verify_time) and run_system_call.c (enqueue_system_call: how blocking calls
overlap the following events), then matcher.py (packets), syscalls.py (calls), commands.py
(back-quoted commands) and tcp_info.py (`%{ }%`).

The harness is packetdrill's local mode: a host whose tun0 has 192.168.0.1/16, a route to
192.0.2.0/24 through tun0 via 192.168.0.1, and one process that makes the script's calls. The
runner reads what the host sends on tun0 and writes the packets the script injects. Time is
virtual (trio's MockClock jumps when everything waits), so a run takes no real time and gives
the same result every time: the network's seed is fixed and so is trio's scheduler's.

Timing follows packetdrill: an event is due at its script time (relative times count from
when the previous event actually happened, except between two inbound packets); an outbound
packet must arrive within the tolerance (--tolerance_usecs, default 4000, or
--tolerance_percent, default 12.5 %, of the gap since the previous event, whichever is larger);
a `T1...T2` call is started at T1 and must return at T2 while later events go on; a call
without `...` must not block (the runner waits for it, as packetdrill's main thread does).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import threading
import time
import traceback
from typing import Any, Iterator

import attrs
import trio

from ..kernel.sched import seed_trio_scheduler
import trio.testing

from ..drivers.net.tun import add_tun
from ..uapi.ip import ip_str
from ..world import Network
from . import ast
from .commands import Shell
from .events import run_events
from .lexer import PacketdrillError, PacketdrillUnsupported
from .matcher import Config
from .parser import parse
from .state import HARNESS_DEFINES, SEED, WALL_CLOCK_LIMIT, ScriptFailure, State
from .expr import ScriptError, Unsupported

__all__ = ["Result", "run_script", "run_script_async"]


@attrs.define
class Result:
    """How one script ran. `status` is "pass", "fail" or "unsupported"; `reason` is one line
    (the first error), `details` the whole message with expected and actual packets."""
    path: str
    status: str
    reason: str = ""
    details: str = ""
    line: int | None = None
    time: float | None = None
    expected: str | None = None
    actual: str | None = None
    warnings: list[str] = attrs.Factory(list)
    wall_time: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)

    def __str__(self) -> str:
        text = f"{self.path}: {self.status.upper()}"
        if self.reason:
            text += f": {self.reason}"
        if self.details and self.details != self.reason:
            text += "\n" + self.details
        return text


# --- running one script ---------------------------------------------------------------------------

def _config(script: ast.Script) -> Config:
    cfg = Config(defines=dict(HARNESS_DEFINES))
    for opt in script.options:
        name, value = opt.name, opt.value
        try:
            if name == "tolerance_usecs":
                cfg.tolerance_usecs = int(value)
            elif name == "tolerance_percent":
                cfg.tolerance_percent = float(value)
            elif name == "tcp_ts_tick_usecs":
                cfg.tcp_ts_tick_usecs = int(value)
            elif name == "tcp_ts_ecr_scaled":
                cfg.tcp_ts_ecr_scaled = True
            elif name == "strict_segments":
                cfg.strict_segments = True
            elif name == "local_ip":
                cfg.local_ip = _ipv4(value, name)
            elif name == "remote_ip":
                cfg.remote_ip = _ipv4(value, name)
            elif name == "gateway_ip":
                cfg.gateway_ip = _ipv4(value, name)
            elif name == "bind_port":
                cfg.bind_port = int(value)
            elif name == "connect_port":
                cfg.connect_port = int(value)
            elif name == "mtu":
                cfg.mtu = int(value)
            elif name == "ip_version":
                if value != "ipv4":
                    raise Unsupported(f"--ip_version={value} (only ipv4 runs for now)")
            elif name in ("define", "D"):
                key, _, val = (value or "").partition("=")
                cfg.defines[key] = val
            elif name in ("verbose", "send_omit_free", "dry_run"):
                pass
            else:
                raise Unsupported(f"option --{name}")
        except ValueError:
            raise ScriptError(f"bad value for --{name}: {value!r}") from None
    return cfg


def _ipv4(value: str | None, name: str) -> int:
    try:
        return int(ipaddress.IPv4Address(value or ""))
    except ValueError:
        raise Unsupported(f"--{name}={value} (only IPv4 addresses for now)") from None


def run_script(path_or_text: str | os.PathLike, *, ip_version: str = "ipv4",
               wall_clock_limit: float = WALL_CLOCK_LIMIT) -> Result:
    """Run one script (a path, or the script's text) in a fresh emulated world; never raises
    for anything the script does: every error becomes the Result's reason.

    A run that takes more than `wall_clock_limit` seconds of real time is cancelled and
    failed; one stuck in code that never yields to trio is stopped by SIGALRM a few seconds
    later (when running in the main thread)."""
    started = time.monotonic()
    name = _name_of(path_or_text)
    guard = _WallGuard(started + wall_clock_limit, wall_clock_limit)
    try:
        with _hard_stop(wall_clock_limit + HARD_STOP_GRACE):
            try:
                _seed_trio_scheduler(SEED)
                result = trio.run(run_script_async, path_or_text, ip_version, guard,
                                  clock=trio.testing.MockClock(autojump_threshold=0),
                                  instruments=[guard])
            except BaseException as e:  # noqa: BLE001 -- a run must never take the caller down
                if isinstance(e, KeyboardInterrupt):
                    raise
                if _caused_by(e, _HardStop):
                    raise _HardStop() from None
                result = Result(name, "fail", f"runner crashed: {type(e).__name__}: {e}",
                                "".join(traceback.format_exception(e))[-4000:])
    except _HardStop:
        result = Result(name, "fail", f"wall-clock guard: the script was stopped after "
                        f"{wall_clock_limit + HARD_STOP_GRACE:.0f} s of real time, inside code "
                        "that never returned to the event loop")
    result.wall_time = time.monotonic() - started
    return result


HARD_STOP_GRACE = 5.0


class _HardStop(BaseException):
    """Raised by SIGALRM in a run that stopped yielding to trio."""


@contextlib.contextmanager
def _hard_stop(seconds: float) -> Iterator[None]:
    usable = (hasattr(signal, "setitimer") and
              threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def alarm(signum: int, frame: Any) -> None:
        raise _HardStop()

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _caused_by(exc: BaseException | None, kind: type) -> bool:
    seen = 0
    while exc is not None and seen < 50:
        if isinstance(exc, kind):
            return True
        if isinstance(exc, BaseExceptionGroup):
            return any(_caused_by(sub, kind) for sub in exc.exceptions)
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def _seed_trio_scheduler(seed: int) -> None:
    """Trio reverses a batch of runnable tasks at random; seed that generator so the same
    script runs the same way every time (Network seeds it again when it starts)."""
    seed_trio_scheduler(seed)


class _WallGuard(trio.abc.Instrument):
    """Cancels a run that has taken more than its share of real time."""

    def __init__(self, deadline: float, limit: float):
        self.deadline = deadline
        self.limit = limit
        self.scope: trio.CancelScope | None = None
        self.fired = False

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if not self.fired and self.scope is not None and time.monotonic() > self.deadline:
            self.fired = True
            self.scope.cancel()


def _name_of(path_or_text: Any) -> str:
    """The script's path, or "<script>" when given the script's text."""
    if isinstance(path_or_text, os.PathLike):
        return os.fspath(path_or_text)
    text = path_or_text
    if "\n" not in text and (text.endswith(".pkt") or os.path.isfile(text)):
        return text
    return "<script>"


async def run_script_async(path_or_text: str | os.PathLike, ip_version: str = "ipv4",
                           guard: _WallGuard | None = None) -> Result:
    """run_script inside a running trio loop (which should have an autojump MockClock)."""
    name = _name_of(path_or_text)
    script_dir: str | None = None
    try:
        if name != "<script>":
            with open(name, encoding="utf-8") as f:
                text = f.read()
            script_dir = os.path.dirname(os.path.abspath(name))
        else:
            text = os.fspath(path_or_text)
    except OSError as e:
        return Result(name, "fail", f"cannot read script: {e}")
    if ip_version != "ipv4":
        return Result(name, "unsupported", f"unsupported: --ip_version={ip_version} (only "
                      "ipv4 runs for now)")
    if name.endswith("v6.pkt"):
        return Result(name, "unsupported", "unsupported: an IPv6-only script (*v6.pkt)")
    try:
        script = parse(text, name)
    except PacketdrillUnsupported as e:
        return Result(name, "unsupported", f"unsupported: {e}")
    except PacketdrillError as e:
        return Result(name, "fail", f"syntax error: {e}")
    try:
        cfg = _config(script)
    except Unsupported as e:
        return Result(name, "unsupported", f"unsupported: {e}")
    except ScriptError as e:
        return Result(name, "fail", str(e))
    state = State(script, name, cfg, text.splitlines())
    cancelled_by_guard = False
    try:
        with trio.CancelScope() as scope:
            if guard is not None:
                guard.scope = scope
            await _run(state, script_dir)
        if scope.cancelled_caught:
            cancelled_by_guard = True
    except BaseException as e:  # noqa: BLE001 -- sorted into a Result below
        if _caused_by(e, _HardStop):
            raise
        failure = _pick(e)
        if isinstance(failure, (KeyboardInterrupt, SystemExit)):
            raise failure from None
        return _result_from(state, failure)
    warnings = list(state.shell.warnings) if state.shell else []
    if cancelled_by_guard:
        return Result(name, "fail", f"wall-clock guard: the script ran for more than "
                      f"{guard.limit:g} s of real time (virtual time "
                      f"{state.now() / 1e6:.6f} s)", warnings=warnings)
    return Result(name, "pass", warnings=warnings)


def _pick(exc: BaseException) -> BaseException:
    """The exception that explains a run's end, out of an exception group."""
    if isinstance(exc, BaseExceptionGroup):
        leaves = list(_leaves(exc))
        for kind in (ScriptFailure, Unsupported, NotImplementedError, ScriptError):
            for leaf in leaves:
                if isinstance(leaf, kind):
                    return leaf
        for leaf in leaves:
            if not isinstance(leaf, trio.Cancelled):
                return leaf
        return leaves[0] if leaves else exc
    return exc


def _leaves(exc: BaseException):
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            yield from _leaves(sub)
    else:
        yield exc


def _result_from(state: State, e: BaseException) -> Result:
    warnings = list(state.shell.warnings) if state.shell else []
    name = state.path
    if isinstance(e, ScriptFailure):
        reason = e.reason if e.status != "unsupported" else f"unsupported: {e.reason}"
        return Result(name, e.status, reason, e.details, e.line, e.time, e.expected, e.actual,
                      warnings)
    if isinstance(e, Unsupported):
        return Result(name, "unsupported", f"unsupported: {e}", warnings=warnings)
    if isinstance(e, NotImplementedError):
        return Result(name, "fail", f"NotImplementedError: {e}",
                      "".join(traceback.format_exception(e))[-3000:], warnings=warnings)
    tb = "".join(traceback.format_exception(e))[-4000:]
    return Result(name, "fail", f"internal error: {type(e).__name__}: {e}", tb,
                  warnings=warnings)


async def _run(state: State, script_dir: str | None) -> None:
    cfg = state.cfg
    net = Network(seed=SEED)
    async with net:
        host = net.add_host("pd")
        state.host = host
        state.tun = add_tun(host, "tun0", address=f"{ip_str(cfg.local_ip)}/{cfg.prefix_len}",
                            mtu=cfg.mtu, reader=state.on_transmit)
        host.add_route("192.0.2.0/24" if cfg.remote_ip == 0xC0000201 else
                       f"{ip_str(cfg.remote_ip)}/32", via=ip_str(cfg.gateway_ip), dev="tun0")
        state.task = host.spawn_task("packetdrill")
        state.shell = Shell(host, script_dir)
        state.t0 = trio.current_time()
        async with trio.open_nursery() as nursery:
            state.nursery = nursery
            await run_events(state)
            nursery.cancel_scope.cancel()

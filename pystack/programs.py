"""Servers and clients for a test: run a program on a host, wait until it listens, run clients
on other hosts at once, collect what each returned and printed, stop everything at the end.

Read first: pystack/dropin/runner.py (run_script: a script as `__main__` in a thread of a
process), pystack/dropin/blocking.py (the blocking face and its threads), pystack/host.py
(`host.process`).

    async with net.server(b, echo_server, 7) as server:       # returns once b listens
        clients = await net.run_clients([a, c], echo_client, "b", 7)
    assert [p.result for p in clients] == [b"hi", b"hi"]
    print(server.stdout)

A program (`target`) is one of:
- an async function: awaited as `target(*args)` in a new process on the host, in the trio run
  (so `trio.socket`, `trio.serve_tcp`, `open_tcp_stream` reach the host);
- a plain function: called as `target(*args)` in a thread of a new process, with the blocking
  `socket`/`select`/`selectors` face (code written for a real network, unchanged);
- the path of a script: run unmodified with `args` as its command line (`run_script`).

Each run gives a `Program`: its exit status (0; SystemExit's code; 1 after an uncaught
exception, whose traceback is in its stderr; -15 when it was stopped, as if by SIGTERM),
the function's return value or exception, and what it printed to stdout and stderr (captured
per program while it runs and still passed on to the real streams, so pytest shows it too).

Failures are raised, not returned: a client that fails raises `ProgramError` naming each
failing program with the end of its stderr; a server that fails while the `async with` block
runs cancels the block and raises `ProgramError` at its end. A server that does not listen
within `ready_timeout` virtual seconds, or exits before it listens, raises at once.

"Listens" means: a TCP socket in LISTEN or a bound UDP socket appears on the server's host
(on `port`, if given) that was not there before it started. It is checked each time a socket
on that host binds or listens (the EVENT_BIND and EVENT_LISTEN tracepoints), so clients start
at the virtual instant the server is ready, not at the next tick of a poll.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import math
import os
import sys
import traceback
from typing import Any, AsyncIterator, Callable, Iterator, Sequence

import attrs
import trio

from .dropin import blocking
from .dropin.runner import routed, run_script
from .host import Host

__all__ = ["Program", "ProgramError", "server", "run", "run_clients"]

STOPPED = -15  # the status of a program stopped from outside, as a SIGTERMed process's
_TAIL = 20  # lines of a failing program's output quoted in its ProgramError


@attrs.define(eq=False)
class Program:
    """One program run on a host by `net.server`, `net.run` or `net.run_clients`."""

    host: Host
    name: str
    kind: str  # "function" (async, in the trio run), "thread" (a plain function), "script"
    status: int | None = None  # None while it runs
    result: Any = None  # what the function returned (None for a script)
    error: BaseException | None = None  # the exception that ended it, if any
    timed_out: bool = False  # stopped because `timeout` ran out
    _out: list[str] = attrs.field(init=False, factory=list, repr=False)
    _err: list[str] = attrs.field(init=False, factory=list, repr=False)
    _done: trio.Event = attrs.field(init=False, factory=trio.Event, repr=False)
    _scope: trio.CancelScope = attrs.field(init=False, factory=trio.CancelScope, repr=False)
    _on_done: list[Callable[[], None]] = attrs.field(init=False, factory=list, repr=False)

    @property
    def stdout(self) -> str:
        return "".join(self._out)

    @property
    def stderr(self) -> str:
        return "".join(self._err)

    @property
    def done(self) -> bool:
        return self.status is not None

    @property
    def ok(self) -> bool:
        """It ended by itself with status 0."""
        return self.status == 0

    def outcome(self) -> str:
        if self.status is None:
            return "still running"
        if self.timed_out:
            return "still running when its time ran out; stopped"
        if self.status == STOPPED:
            return "stopped"
        if self.error is not None:
            return f"exit status {self.status} ({type(self.error).__name__}: {self.error})"
        return f"exit status {self.status}"

    def describe(self) -> str:
        """A report: who it is, how it ended, and the end of what it printed."""
        lines = [f"{self.name} on host {self.host.name}: {self.outcome()}"]
        for label, text in (("stderr", self.stderr), ("stdout", self.stdout)):
            tail = text.rstrip("\n").splitlines()[-_TAIL:]
            if tail:
                lines.append(f"  --- its {label} (last {len(tail)} lines) ---")
                lines.extend(f"  {line}" for line in tail)
        return "\n".join(lines)

    def _finish(self, status: int, result: Any = None, error: BaseException | None = None
                ) -> None:
        self.status, self.result, self.error = status, result, error
        self._done.set()
        for callback in self._on_done:
            callback()


class ProgramError(Exception):
    """Programs run by the helpers failed (or did not become ready, or ran out of time).
    `programs` holds them; the message describes each."""

    def __init__(self, message: str, programs: Sequence[Program]):
        super().__init__(message)
        self.programs = list(programs)


# -- output: each program's prints, routed by the context they are made in --------------------
_PROGRAM: contextvars.ContextVar[Program | None] = contextvars.ContextVar(
    "pystack_program", default=None)


class _Tee:
    """Stands in for sys.stdout / sys.stderr while programs run: a write made in a program's
    context (its task, the tasks and threads it starts) is also kept for that program."""

    def __init__(self, under: Any, stderr: bool):
        self._under = under
        self._stderr = stderr

    def write(self, text: str) -> int:
        program = _PROGRAM.get()
        if program is not None:
            (program._err if self._stderr else program._out).append(text)
        return self._under.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._under, name)


_tees: list[_Tee] = []  # the installed pair, while any program runs
_users = 0


@contextlib.contextmanager
def _capturing() -> Iterator[None]:
    global _users
    if _users == 0:
        _tees[:] = [_Tee(sys.stdout, False), _Tee(sys.stderr, True)]
        sys.stdout, sys.stderr = _tees  # type: ignore[assignment]
    _users += 1
    try:
        yield
    finally:
        _users -= 1
        if _users == 0:
            # Put back what was there, unless someone replaced our streams meanwhile.
            if sys.stdout is _tees[0]:
                sys.stdout = _tees[0]._under
            if sys.stderr is _tees[1]:
                sys.stderr = _tees[1]._under
            _tees.clear()


# -- running one program ----------------------------------------------------------------------
def _host(network: Any, host: Host | str) -> Host:
    if isinstance(host, str):
        return network.host(host)
    if not isinstance(host, Host) or host.network is not network:
        raise ValueError(f"{host!r} is not a host of this network")
    return host


def _kind(target: Any) -> str:
    if isinstance(target, (str, os.PathLike)):
        return "script"
    if inspect.iscoroutinefunction(target):
        return "function"
    if callable(target):
        return "thread"
    raise TypeError("a program is an async function, a function or the path of a script, "
                    f"not {type(target).__name__}")


def _new(network: Any, host: Host | str, target: Any, args: Sequence[Any],
         name: str | None) -> Program:
    kind = _kind(target)
    if kind == "script":
        bad = [a for a in args if not isinstance(a, (str, int, float, os.PathLike))]
        if bad:
            raise TypeError(f"a script's arguments are its command line: strings or numbers, "
                            f"not {bad[0]!r}")
        default = os.path.basename(os.fspath(target))
    else:
        default = getattr(target, "__name__", None) or type(target).__name__
    return Program(_host(network, host), name or default, kind)


async def _execute(program: Program, target: Any, args: Sequence[Any]) -> None:
    """Run `program` to its end (or until its scope is cancelled) and record how it ended."""
    token = _PROGRAM.set(program)
    try:
        with _capturing(), program._scope:
            try:
                if program.kind == "script":
                    status = await run_script(os.fspath(target), [os.fspath(a) if isinstance(
                        a, os.PathLike) else str(a) for a in args], host=program.host,
                        name=program.name, abandon_on_cancel=True)
                    if not program._scope.cancel_called:
                        program._finish(status)
                    return
                with routed():
                    async with program.host.process(program.name):
                        if program.kind == "function":
                            result = await target(*args)
                        else:
                            result = await blocking.run_sync(target, *args,
                                                             abandon_on_cancel=True)
                program._finish(0, result)
            except SystemExit as e:
                code = e.code
                program._finish(code if isinstance(code, int) else (0 if code is None else 1),
                                error=None if code in (0, None) else e)
            except Exception as e:
                if program._scope.cancel_called:
                    raise  # stopped: whatever the stop made it raise is not its failure
                # As python prints an uncaught exception: to the program's stderr.
                sys.stderr.write("".join(traceback.format_exception(e)))
                program._finish(1, error=e)
    finally:
        if program.status is None:
            program._finish(STOPPED)
        _PROGRAM.reset(token)


# -- the helpers --------------------------------------------------------------------------------
def _listening(host: Host, port: int | None) -> set[tuple[str, str]]:
    """The host's listening TCP sockets and bound UDP sockets (on `port`, if given)."""
    return {(row.netid, row.local) for row in host.sockets()
            if (row.netid == "udp" or row.state == "LISTEN")
            and (port is None or row.local.rsplit(":", 1)[1] == str(port))}


@contextlib.asynccontextmanager
async def server(network: Any, host: Host | str, target: Any, *args: Any,
                 port: int | None = None, name: str | None = None,
                 ready_timeout: float = 10.0) -> AsyncIterator[Program]:
    """`async with net.server(host, target, *args) as program:` starts `target` on `host`,
    returns once it listens (on `port`, if given), and stops it when the block ends."""
    if network._nursery is None:
        raise RuntimeError("net.server() needs a running network: use it inside `async with net`")
    program = _new(network, host, target, args, name)
    h = program.host
    before = _listening(h, port)
    ready = trio.Event()

    def check(event: Any = None) -> None:
        if event is None or event.host == h.name:
            if _listening(h, port) - before:
                ready.set()

    program._on_done.append(ready.set)
    unsubscribe = network.trace(check, match=lambda n: n in ("EVENT_BIND", "EVENT_LISTEN"))
    try:
        network._nursery.start_soon(_execute, program, target, args,
                                    name=f"{h.name}:{program.name}")
        with trio.move_on_after(ready_timeout):
            await ready.wait()
    finally:
        unsubscribe()
    on = f" on port {port}" if port is not None else ""
    if not ready.is_set() or program.done:
        if program.done:
            why = f"ended before it listened{on}"
        else:
            why = f"did not listen{on} within {ready_timeout:g} s (virtual)"
            program._scope.cancel()
            with trio.CancelScope(shield=True):
                await program._done.wait()
            program.timed_out = True
        raise ProgramError(f"server {program.name} on host {h.name} {why}:\n"
                           f"{program.describe()}", [program])

    body = trio.CancelScope()

    def failed_by_itself() -> None:
        if program.status not in (0, STOPPED):
            body.cancel()
    program._on_done.append(failed_by_itself)
    try:
        with body:
            yield program
    except BaseException as e:
        if program.done and program.status not in (0, STOPPED):
            e.add_note(f"meanwhile the server failed:\n{program.describe()}")
        raise
    finally:
        if not program.done:
            program._scope.cancel()
            with trio.CancelScope(shield=True):
                await program._done.wait()
    if body.cancelled_caught:
        raise ProgramError(f"server {program.name} on host {h.name} failed while it served:\n"
                           f"{program.describe()}", [program])


async def run(network: Any, host: Host | str, target: Any, *args: Any,
              name: str | None = None, timeout: float | None = None,
              check: bool = True) -> Program:
    """Run `target` on `host` to its end and return its Program. With `check` (the default)
    a failure raises ProgramError; running past `timeout` virtual seconds always does."""
    return (await _run_all(network, [_new(network, host, target, args, name)], target, args,
                           timeout, check, "program"))[0]


async def run_clients(network: Any, hosts: Sequence[Host | str], target: Any, *args: Any,
                      name: str | None = None, timeout: float | None = None,
                      check: bool = True) -> list[Program]:
    """Run `target(*args)` on each of `hosts` at once, each in its own process; return their
    Programs in the order of `hosts` once all have ended. `check` and `timeout` as `run`."""
    if isinstance(hosts, (str, Host)):
        raise TypeError("hosts is a list of hosts (or host names)")
    programs = [_new(network, h, target, args, name) for h in hosts]
    return await _run_all(network, programs, target, args, timeout, check, "client")


async def _run_all(network: Any, programs: list[Program], target: Any, args: Sequence[Any],
                   timeout: float | None, check: bool, noun: str) -> list[Program]:
    if network._nursery is None:
        raise RuntimeError("programs need a running network: use them inside `async with net`")
    with trio.move_on_after(math.inf if timeout is None else timeout):
        async with trio.open_nursery() as nursery:
            for p in programs:
                nursery.start_soon(_execute, p, target, args, name=f"{p.host.name}:{p.name}")
    late = [p for p in programs if p.status == STOPPED]
    for p in late:
        p.timed_out = True
    failed = [p for p in programs if p.status not in (0, STOPPED)] if check else []
    if late or failed:
        bad = late + failed
        head = (f"{len(bad)} of {len(programs)} {noun}s did not succeed"
                if len(programs) > 1 else f"the {noun} did not succeed")
        if late:
            head += f" ({len(late)} still running after {timeout:g} s virtual)"
        raise ProgramError(head + ":\n" + "\n".join(p.describe() for p in bad), bad)
    return programs


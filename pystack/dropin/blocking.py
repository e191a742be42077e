"""The blocking face: the `socket`, `select` and `selectors` modules for threads of a process.

Read first: DESIGN.md §5 ("Drop-in faces", its traps), the Python `socket` module source
(Lib/socket.py: how `accept`, `dup`, `socketpair`, `makefile`, `create_connection` rebuild
sockets through the module's own `socket` name), Lib/selectors.py (`_selector_cls`), trio's
`trio.to_thread` / `trio.from_thread`, then pystack/dropin/trio.py (EmulatedSocket, which does
the work underneath).

Blocking code runs in a thread started from a process context (`trio.to_thread.run_sync`
inside `async with host.process(...)`, or `threading.Thread` started from such a thread). Each
call crosses into trio with `trio.from_thread` and runs the syscall there.

`install()` patches the modules *globally*, but every patched name dispatches on the calling
context: inside a process context (`pystack.kernel.sched.current`) it is emulated; everywhere
else (trio's own wakeup socket, pytest, other code) it is the real thing. The patched
`socket.socket` is a subclass of the real class, so sockets of both kinds pass
`isinstance(s, socket.socket)` and `type(s) is socket.socket`; every method falls back to the
real implementation for a real `self`. Real sockets built while installed are instances of the
patched class too, so trio's `from_stdlib_socket` type check keeps working.

Virtual time: trio's autojump clock would jump while a thread runs application code between
two calls (every trio task is blocked then). `_TimeGuard` counts emulated threads that are
outside a call and lifts the MockClock's autojump threshold to infinity while that count is
non-zero; the clock jumps again only when every such thread is inside a call (blocked in the
emulated kernel, as a real thread would be blocked in a syscall).
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import math
import os
import select as _select
import selectors as _selectors
import socket as _socket
import threading
from typing import Any, Callable, Iterator

import trio

from ..kernel.sched import current
from ..net import socket as sys
from ..net.ipv4.udp import POLLERR, POLLHUP, POLLIN, POLLOUT, POLLPRI
from .trio import (EmulatedSocket, current_task, emulated_getaddrinfo, emulated_getnameinfo,
                   parse_inet_address, run_nonblocking)

__all__ = ["install", "uninstall", "installed", "socket", "run_sync", "TimeGuard", "Patches",
           "call_in_trio", "in_emulated_thread"]

# -- the originals (pystack's own machinery always uses these) ----------------------------------
_RealSocket = _socket.socket
_real = {
    "socket": _socket.socket, "getaddrinfo": _socket.getaddrinfo,
    "gethostbyname": _socket.gethostbyname, "gethostbyname_ex": _socket.gethostbyname_ex,
    "getnameinfo": _socket.getnameinfo, "gethostname": _socket.gethostname,
    "socketpair": _socket.socketpair, "fromfd": _socket.fromfd,
    "select": _select.select, "poll": _select.poll, "epoll": getattr(_select, "epoll", None),
}
_real_to_thread = trio.to_thread.run_sync
_real_thread_start = threading.Thread.start
_real_poll_cls = _selectors.PollSelector.__dict__.get("_selector_cls")
_real_epoll_cls = getattr(_selectors, "EpollSelector", None) and \
    _selectors.EpollSelector.__dict__.get("_selector_cls")

_TOKEN: contextvars.ContextVar[Any] = contextvars.ContextVar("pystack_trio_token", default=None)
_THREAD: contextvars.ContextVar[Any] = contextvars.ContextVar("pystack_thread", default=None)
_REAL_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar("pystack_real_only",
                                                                  default=False)
POLLIN_SET = POLLIN | POLLHUP | POLLERR   # fs/select.c: what select() reports readable
POLLOUT_SET = POLLOUT | POLLERR
POLLEX_SET = POLLPRI


# -- virtual time with threads --------------------------------------------------------------------
class ThreadState:
    """One emulated thread, as the time guard sees it: running application code ("outside"),
    in a call ("inside"), or finished/abandoned ("gone")."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = "new"

    @classmethod
    def untracked(cls) -> "ThreadState":
        """A thread the guard never counts (one not started through the face)."""
        th = cls()
        th.state = "gone"
        return th


class TimeGuard:
    """Counts emulated threads running application code; while any does, the MockClock does
    not autojump (DESIGN.md §5, "virtual time with threads"). Touched only in the trio
    thread. Per-thread states keep the count right when a thread is abandoned (cancelled
    `to_thread.run_sync(..., abandon_on_cancel=True)`) and goes on calling afterwards."""

    def __init__(self, clock: Any):
        self.clock = clock
        self.outside = 0
        self._saved: float | None = None

    def leave(self, th: ThreadState) -> None:
        """The thread (re)starts running application code."""
        if th.state in ("new", "inside"):
            th.state = "outside"
            self.outside += 1
            if self.outside == 1 and _is_mock_clock(self.clock):
                self._saved = self.clock.autojump_threshold
                self.clock.autojump_threshold = math.inf

    def enter(self, th: ThreadState, final: bool = False) -> None:
        """The thread enters a call (or, final, ends or is abandoned)."""
        if th.state == "outside":
            self.outside -= 1
            if self.outside == 0 and self._saved is not None:
                self.clock.autojump_threshold = self._saved
                self._saved = None
        if final:
            th.state = "gone"
        elif th.state != "gone":
            th.state = "inside"


def _is_mock_clock(clock: Any) -> bool:
    # trio.testing imports pytest: too heavy for every run; MockClock lives in trio._core.
    return type(clock).__name__ == "MockClock" and hasattr(clock, "autojump_threshold")


_GUARD: trio.lowlevel.RunVar[TimeGuard] = trio.lowlevel.RunVar("pystack_time_guard")


def _guard() -> TimeGuard:
    try:
        return _GUARD.get()
    except LookupError:
        g = TimeGuard(trio.lowlevel.current_clock())
        _GUARD.set(g)
        return g


def _in_trio_thread() -> bool:
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return False
    return True


def in_emulated_thread() -> bool:
    """Whether the caller is an emulated thread: one started from a process context (not the
    trio thread), whose calls reach its host."""
    return _TOKEN.get() is not None and current_task() is not None and not _in_trio_thread()


async def run_sync(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`trio.to_thread.run_sync` that makes the thread an emulated one (when called in a
    process context): its socket calls reach the host, and the clock waits for it."""
    if current_task() is None:
        return await _real_to_thread(fn, *args, **kwargs)
    token = trio.lowlevel.current_trio_token()
    guard = _guard()
    th = ThreadState()

    def in_thread(*a: Any) -> Any:
        t1, t2 = _TOKEN.set(token), _THREAD.set(th)
        try:
            return fn(*a)
        finally:
            _THREAD.reset(t2)
            _TOKEN.reset(t1)

    guard.leave(th)
    try:
        return await _real_to_thread(in_thread, *args, **kwargs)
    finally:
        guard.enter(th, final=True)


def _thread_start(self: threading.Thread) -> None:
    """threading.Thread.start from an emulated thread: the new thread is emulated too (same
    process, counted by the time guard)."""
    if not in_emulated_thread():
        return _real_thread_start(self)
    token = _TOKEN.get()
    th = ThreadState()
    ctx = contextvars.copy_context()
    ctx.run(_THREAD.set, th)
    run = self.run

    def emulated_run() -> None:
        try:
            ctx.run(run)
        finally:
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(lambda: _guard().enter(th, final=True),
                                          trio_token=token)

    self.run = emulated_run  # type: ignore[method-assign]
    trio.from_thread.run_sync(lambda: _guard().leave(th), trio_token=token)
    try:
        _real_thread_start(self)
    except BaseException:
        trio.from_thread.run_sync(lambda: _guard().enter(th, final=True), trio_token=token)
        raise


def _sync(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a synchronous kernel call in the trio thread."""
    token = _TOKEN.get()
    if token is None or _in_trio_thread():
        return fn(*args)

    th = _THREAD.get() or ThreadState.untracked()

    def call() -> Any:
        g = _guard()
        g.enter(th)
        try:
            return fn(*args)
        finally:
            g.leave(th)
    return trio.from_thread.run_sync(call, trio_token=token)


def call_in_trio(afn: Callable[..., Any], *args: Any, trio_token: Any = None) -> Any:
    """From an emulated thread: `await afn(*args)` in the trio thread, in the thread's process
    context, with the thread counted as inside a call (the clock may jump meanwhile)."""
    token = trio_token or _TOKEN.get()
    th = _THREAD.get() or ThreadState.untracked()
    task = current_task()

    async def call() -> Any:
        g = _guard()
        g.enter(th)
        tok = current.set(task)
        try:
            return await afn(*args)
        finally:
            current.reset(tok)
            g.leave(th)
    return trio.from_thread.run(call, trio_token=token)


def _async(afn: Callable[..., Any], *args: Any, timeout: float | None = None) -> Any:
    """Run a blocking kernel call in the trio thread; `timeout` seconds → socket.timeout."""
    if _TOKEN.get() is None or _in_trio_thread():
        raise RuntimeError("a blocking socket call needs a thread of a process context: "
                           "run the blocking code with trio.to_thread.run_sync inside "
                           "`async with host.process(...)`")
    if timeout is None:
        return call_in_trio(afn, *args)

    async def with_timeout() -> Any:
        with trio.move_on_after(timeout):
            return await afn(*args)
        raise _socket.timeout("timed out")
    return call_in_trio(with_timeout)


def _io(e: "_Emu", afn: Callable[..., Any], *args: Any) -> Any:
    """A call that may wait, on an emulated socket. A non-blocking socket's call never waits:
    it runs to its end at once in the trio thread, which is also how asyncio's loop (running
    there) makes it. Any other waits up to the socket's timeout, from an emulated thread."""
    if e.timeout == 0.0:
        return _sync(run_nonblocking, afn, *args)
    if _in_trio_thread():
        return _now_or_never(e, afn, *args)
    return _async(afn, *args, timeout=e.timeout)


def _now_or_never(e: "_Emu", afn: Callable[..., Any], *args: Any) -> Any:
    """A blocking socket's call made in the trio thread (asyncio code calling `sock.sendto`
    on a blocking socket, say). If it need not wait it is made, as it would return at once on
    Linux; one that would wait cannot wait here (it would stop every host), and raises."""
    t = e.tsock
    flags = sys.sys_fcntl(t.task, t._fdno(), sys.F_GETFL)
    sys.sys_fcntl(t.task, t._fdno(), sys.F_SETFL, flags | sys.O_NONBLOCK)
    try:
        return run_nonblocking(afn, *args)
    except BlockingIOError:
        raise RuntimeError("a blocking socket call that must wait cannot be made in the trio "
                           "thread (asyncio code runs there): make the socket non-blocking "
                           "and use the loop's sock_* methods, or call it from a thread of "
                           "the process") from None
    finally:
        if not t._closed:
            sys.sys_fcntl(t.task, t._fdno(), sys.F_SETFL, flags)


@contextlib.contextmanager
def _real_only() -> Iterator[None]:
    t = _REAL_ONLY.set(True)
    try:
        yield
    finally:
        _REAL_ONLY.reset(t)


def _emulated_task() -> Any:
    if _REAL_ONLY.get():
        return None
    return current_task()


def _is_emulated_fd(task: Any, fd: int) -> bool:
    def check() -> bool:
        fds = task.files.fds
        return 0 <= fd < len(fds) and fds[fd] is not None and \
            getattr(fds[fd].private_data, "sk", None) is not None
    return bool(_sync(check))


# -- the socket class -----------------------------------------------------------------------------
class _Emu:
    __slots__ = ("tsock", "timeout", "proto")

    def __init__(self, tsock: EmulatedSocket, timeout: float | None, proto: int):
        self.tsock = tsock
        self.timeout = timeout
        self.proto = proto  # as the socket module shows it: the number given to socket()


def _emu(self: Any) -> _Emu | None:
    return getattr(self, "_emu", None)


def _check_timeout(value: Any) -> float | None:
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError("Timeout value must be int, float or None") from None
    if value < 0 or math.isnan(value):
        raise ValueError("Timeout value out of range")
    return value


class socket(_RealSocket):  # noqa: N801 - it stands in for socket.socket
    """`socket.socket`: emulated inside a process context, real elsewhere."""

    __slots__ = ("_emu",)

    def __init__(self, family: int = -1, type: int = -1, proto: int = -1,
                 fileno: int | None = None):
        self._emu = None
        task = _emulated_task()
        if task is not None:
            if fileno is None:
                fam = _socket.AF_INET if family == -1 else family
                if fam in (_socket.AF_INET, _socket.AF_INET6):
                    typ = _socket.SOCK_STREAM if type == -1 else type
                    self._init_emulated(task, int(fam), int(typ), 0 if proto == -1 else proto)
                    return
            elif isinstance(fileno, int) and _is_emulated_fd(task, fileno):
                self._adopt(task, fileno, proto)
                return
        _RealSocket.__init__(self, family, type, proto, fileno)

    def _init_emulated(self, task: Any, family: int, type_: int, proto: int) -> None:
        if family == _socket.AF_INET6:
            # Linux without IPv6 says so; create_server/has_dualstack_ipv6 then use AF_INET.
            raise OSError(errno.EAFNOSUPPORT, os.strerror(errno.EAFNOSUPPORT))
        tsock = _sync(EmulatedSocket.create, task, family, type_, proto)
        timeout = 0.0 if type_ & _socket.SOCK_NONBLOCK else _socket.getdefaulttimeout()
        self._setup(tsock, timeout, proto)

    def _adopt(self, task: Any, fd: int, proto: int) -> None:
        def make() -> EmulatedSocket:
            stype = sys.sys_getsockopt(task, fd, _socket.SOL_SOCKET, _socket.SO_TYPE)
            proto = sys.sys_getsockopt(task, fd, _socket.SOL_SOCKET, _socket.SO_PROTOCOL)
            return EmulatedSocket(task, fd, _socket.AF_INET, stype, proto)
        tsock = _sync(make)
        self._setup(tsock, _socket.getdefaulttimeout(), tsock.proto if proto == -1 else proto)

    def _setup(self, tsock: EmulatedSocket, timeout: float | None, proto: int) -> None:
        self._io_refs = 0
        self._closed = False
        self._emu = _Emu(tsock, None, proto)
        self._set_timeout(timeout)

    def _set_timeout(self, timeout: float | None) -> None:
        e = self._emu
        assert e is not None
        t = e.tsock
        flags = sys.O_NONBLOCK if timeout == 0.0 else 0
        _sync(sys.sys_fcntl, t.task, t._fdno(), sys.F_SETFL, flags)
        e.timeout = timeout

    @classmethod
    def _wrap(cls, tsock: EmulatedSocket, timeout: float | None, proto: int) -> "socket":
        obj = cls.__new__(cls)
        obj._setup(tsock, timeout, proto)
        return obj

    # -- attributes -----------------------------------------------------------------------------
    @property
    def family(self) -> Any:
        e = _emu(self)
        return e.tsock.family if e else _RealSocket.family.fget(self)  # type: ignore

    @property
    def type(self) -> Any:
        e = _emu(self)
        return e.tsock.type if e else _RealSocket.type.fget(self)  # type: ignore

    @property
    def proto(self) -> int:
        e = _emu(self)
        return e.proto if e else _socket.SocketType.proto.__get__(self)  # type: ignore

    @property
    def timeout(self) -> float | None:
        e = _emu(self)
        return e.timeout if e else _socket.SocketType.timeout.__get__(self)  # type: ignore

    def fileno(self) -> int:
        e = _emu(self)
        return e.tsock.fileno() if e else _RealSocket.fileno(self)

    def gettimeout(self) -> float | None:
        e = _emu(self)
        return e.timeout if e else _RealSocket.gettimeout(self)

    def settimeout(self, value: Any) -> None:
        e = _emu(self)
        if not e:
            return _RealSocket.settimeout(self, value)
        self._set_timeout(_check_timeout(value))

    def setblocking(self, flag: bool) -> None:
        e = _emu(self)
        if not e:
            return _RealSocket.setblocking(self, flag)
        self._set_timeout(None if flag else 0.0)

    def getblocking(self) -> bool:
        e = _emu(self)
        return e.timeout != 0.0 if e else _RealSocket.getblocking(self)

    def get_inheritable(self) -> bool:
        return False if _emu(self) else _RealSocket.get_inheritable(self)

    def set_inheritable(self, inheritable: bool) -> None:
        if not _emu(self):
            _RealSocket.set_inheritable(self, inheritable)

    # -- life -----------------------------------------------------------------------------------
    def _real_close(self, _ss: Any = _socket.SocketType) -> None:
        e = _emu(self)
        if not e:
            return _RealSocket._real_close(self)  # type: ignore[attr-defined]
        _sync(e.tsock.close)

    def detach(self) -> int:
        e = _emu(self)
        if not e:
            return _RealSocket.detach(self)
        self._closed = True
        return e.tsock.detach()

    def dup(self) -> "socket":
        e = _emu(self)
        if not e:
            with _real_only():
                return _RealSocket.dup(self)
        t = e.tsock
        fd = _sync(sys.sys_dup, t.task, t._fdno())
        new = EmulatedSocket(t.task, fd, t.family, t.type, t.proto)
        return type(self)._wrap(new, e.timeout, e.proto)

    # -- calls ----------------------------------------------------------------------------------
    def bind(self, address: Any) -> None:
        e = _emu(self)
        if not e:
            return _RealSocket.bind(self, address)
        t = e.tsock

        def bind() -> None:
            addr, port = parse_inet_address(t.task, address, for_bind=True, what="bind")
            sys.sys_bind(t.task, t._fdno(), t.family, addr, port)
        _sync(bind)

    def listen(self, backlog: int | None = None) -> None:
        e = _emu(self)
        if not e:
            return _RealSocket.listen(self) if backlog is None \
                else _RealSocket.listen(self, backlog)
        _sync(e.tsock.listen, min(_socket.SOMAXCONN, 128) if backlog is None else backlog)

    def connect(self, address: Any) -> None:
        e = _emu(self)
        if not e:
            return _RealSocket.connect(self, address)
        _io(e, e.tsock.connect, address)

    def connect_ex(self, address: Any) -> int:
        e = _emu(self)
        if not e:
            return _RealSocket.connect_ex(self, address)
        try:
            self.connect(address)
        except _socket.timeout:
            return errno.EWOULDBLOCK  # CPython's sock_connect_ex on a timeout
        except _socket.gaierror:
            raise
        except OSError as exc:
            if exc.errno is None:
                raise
            return exc.errno
        return 0

    def accept(self) -> tuple["socket", Any]:
        e = _emu(self)
        if not e:
            with _real_only():
                return _RealSocket.accept(self)
        tsock, addr = _io(e, e.tsock.accept)
        # As Lib/socket.py accept(): the new socket takes the default timeout, but is blocking
        # when there is no default and the listener has a timeout.
        timeout = _socket.getdefaulttimeout()
        if timeout is None and e.timeout:
            timeout = None
        return type(self)._wrap(tsock, timeout, e.proto), addr

    def send(self, data: Any, flags: int = 0) -> int:
        e = _emu(self)
        if not e:
            return _RealSocket.send(self, data, flags)
        return _io(e, e.tsock.send, data, flags)

    def sendall(self, data: Any, flags: int = 0) -> None:
        e = _emu(self)
        if not e:
            return _RealSocket.sendall(self, data, flags)
        t = e.tsock

        async def sendall() -> None:
            view = memoryview(data).cast("B")
            total = 0
            while total < len(view):
                total += await t.send(view[total:], flags)
        _io(e, sendall)

    def sendto(self, data: Any, *args: Any) -> int:
        e = _emu(self)
        if not e:
            return _RealSocket.sendto(self, data, *args)
        return _io(e, e.tsock.sendto, data, *args)

    def sendmsg(self, buffers: Any, ancdata: Any = (), flags: int = 0,
                address: Any = None) -> int:
        e = _emu(self)
        if not e:
            return _RealSocket.sendmsg(self, buffers, ancdata, flags, address)
        return _io(e, e.tsock.sendmsg, buffers, ancdata, flags, address)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        e = _emu(self)
        if not e:
            return _RealSocket.recv(self, bufsize, flags)
        return _io(e, e.tsock.recv, bufsize, flags)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        e = _emu(self)
        if not e:
            return _RealSocket.recv_into(self, buffer, nbytes, flags)
        return _io(e, e.tsock.recv_into, buffer, nbytes, flags)

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        e = _emu(self)
        if not e:
            return _RealSocket.recvfrom(self, bufsize, flags)
        return _io(e, e.tsock.recvfrom, bufsize, flags)

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> tuple[int, Any]:
        e = _emu(self)
        if not e:
            return _RealSocket.recvfrom_into(self, buffer, nbytes, flags)
        return _io(e, e.tsock.recvfrom_into, buffer, nbytes, flags)

    def recvmsg(self, bufsize: int, ancbufsize: int = 0, flags: int = 0) -> Any:
        e = _emu(self)
        if not e:
            return _RealSocket.recvmsg(self, bufsize, ancbufsize, flags)
        return _io(e, e.tsock.recvmsg, bufsize, ancbufsize, flags)

    def shutdown(self, how: int) -> None:
        e = _emu(self)
        if not e:
            return _RealSocket.shutdown(self, how)
        _sync(e.tsock.shutdown, how)

    def getsockname(self) -> Any:
        e = _emu(self)
        return _sync(e.tsock.getsockname) if e else _RealSocket.getsockname(self)

    def getpeername(self) -> Any:
        e = _emu(self)
        return _sync(e.tsock.getpeername) if e else _RealSocket.getpeername(self)

    def setsockopt(self, level: int, optname: int, value: Any, *optlen: Any) -> None:
        e = _emu(self)
        if not e:
            return _RealSocket.setsockopt(self, level, optname, value, *optlen)
        _sync(e.tsock.setsockopt, level, optname, value, *optlen)

    def getsockopt(self, level: int, optname: int, *buflen: Any) -> Any:
        e = _emu(self)
        if not e:
            return _RealSocket.getsockopt(self, level, optname, *buflen)
        return _sync(e.tsock.getsockopt, level, optname, *buflen)

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        if not _emu(self):
            return _RealSocket.sendfile(self, file, offset, count)
        return self._sendfile_use_send(file, offset, count)  # type: ignore[attr-defined]

    def __del__(self) -> None:
        """As the real socket's finalizer: an unclosed socket warns (ResourceWarning) and its
        descriptor is closed. The close runs in the trio thread, soon."""
        e = _emu(self)
        if not e:
            return _socket.SocketType.__del__(self)
        t = e.tsock
        if t._closed or t.task.exited:
            return
        import warnings
        warnings.warn(f"unclosed {self!r}", ResourceWarning, source=self)
        t._closed = True
        task, fd = t.task, t._fd

        def close() -> None:
            if not task.exited:
                with contextlib.suppress(OSError):
                    sys.sys_close(task, fd)
        if _in_trio_thread():
            close()
        else:
            token = _TOKEN.get()
            if token is not None:
                with contextlib.suppress(trio.RunFinishedError):
                    token.run_sync_soon(close)

    def __repr__(self) -> str:
        if not _emu(self):
            return _RealSocket.__repr__(self)
        return _RealSocket.__repr__(self).replace("<pystack.dropin.blocking.socket",
                                                  "<socket.socket")


socket.__module__ = "socket"


# -- module functions -----------------------------------------------------------------------------
def getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0,
                flags: int = 0) -> list[tuple]:
    task = _emulated_task()
    if task is None:
        return _real["getaddrinfo"](host, port, family, type, proto, flags)
    return _sync(emulated_getaddrinfo, task, host, port, family, type, proto, flags)


def getnameinfo(sockaddr: Any, flags: int) -> tuple[str, str]:
    task = _emulated_task()
    if task is None:
        return _real["getnameinfo"](sockaddr, flags)
    return _sync(emulated_getnameinfo, task, sockaddr, flags)


def gethostbyname(hostname: str) -> str:
    if _emulated_task() is None:
        return _real["gethostbyname"](hostname)
    return getaddrinfo(hostname, None, _socket.AF_INET, _socket.SOCK_STREAM)[0][4][0]


def gethostbyname_ex(hostname: str) -> tuple[str, list[str], list[str]]:
    if _emulated_task() is None:
        return _real["gethostbyname_ex"](hostname)
    return hostname, [], [gethostbyname(hostname)]


def gethostname() -> str:
    task = _emulated_task()
    return _real["gethostname"]() if task is None else task.host.name


def socketpair(family: int | None = None, type: int = _socket.SOCK_STREAM,
               proto: int = 0) -> tuple[socket, socket]:
    """Real for AF_UNIX (the default: asyncio's self-pipe and trio's wakeup fd stay real);
    inside a process, AF_INET pairs are emulated over loopback as CPython's fallback does."""
    task = _emulated_task()
    if task is None or family in (None, _socket.AF_UNIX):
        with _real_only():
            if family is None:
                return _real["socketpair"](type=type, proto=proto)
            return _real["socketpair"](family, type, proto)
    if family != _socket.AF_INET:
        raise OSError(errno.EAFNOSUPPORT, os.strerror(errno.EAFNOSUPPORT))
    with socket(family, type, proto) as lsock:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen()
        a = socket(family, type, proto)
        try:
            a.connect(lsock.getsockname())
            b, _ = lsock.accept()
        except BaseException:
            a.close()
            raise
    return a, b


def fromfd(fd: int, family: int, type: int, proto: int = 0) -> socket:
    task = _emulated_task()
    if task is not None and _is_emulated_fd(task, fd):
        new = _sync(sys.sys_dup, task, fd)
        return socket(family, type, proto, new)
    with _real_only():
        return _real["fromfd"](fd, family, type, proto)


# -- select, poll, epoll --------------------------------------------------------------------------
def _fd_of(obj: Any) -> int:
    if isinstance(obj, int):
        fd = obj
    else:
        fd = obj.fileno()
        if not isinstance(fd, int):
            raise TypeError("fileno() returned a non-integer")
    if fd < 0:
        raise ValueError(f"file descriptor cannot be a negative integer ({fd})")
    return fd


def _split(task: Any, fds: list[tuple[int, int]], real_fds: frozenset[int] = frozenset()
           ) -> tuple[list, list]:
    """Emulated descriptors of the task, and real ones: a number the task does not hold, or
    one of `real_fds` (the numbers of real socket objects given to select). A bare number
    both worlds hold is taken as the emulated one."""
    def split() -> tuple[list, list]:
        table = task.files.fds
        emu, real = [], []
        for fd, ev in fds:
            f = table[fd] if fd < len(table) and fd not in real_fds else None
            (emu if f is not None and hasattr(f.private_data, "sk") else real).append((fd, ev))
        return emu, real
    return _sync(split)


async def _poll_async(task: Any, emu: list, real: list, timeout: float | None) -> list:
    if not real:
        return await sys.sys_poll_wait(task, emu, timeout)

    def real_now() -> list:
        p = _real["poll"]()
        for fd, ev in real:
            p.register(fd, ev)
        return p.poll(0)

    deadline = math.inf if timeout is None else trio.current_time() + timeout
    while True:
        ready = (await sys.sys_poll_wait(task, emu, 0) if emu else []) + real_now()
        if ready or trio.current_time() >= deadline:
            return ready
        async with trio.open_nursery() as nursery:
            nursery.cancel_scope.deadline = deadline

            async def wait_emu() -> None:
                await sys.sys_poll_wait(task, emu, None)
                nursery.cancel_scope.cancel()

            async def wait_real(fd: int, ev: int) -> None:
                if ev & POLLIN:
                    await trio.lowlevel.wait_readable(fd)
                else:
                    await trio.lowlevel.wait_writable(fd)
                nursery.cancel_scope.cancel()

            if emu:
                nursery.start_soon(wait_emu)
            for fd, ev in real:
                if ev & POLLIN:
                    nursery.start_soon(wait_real, fd, POLLIN)
                if ev & POLLOUT:
                    nursery.start_soon(wait_real, fd, POLLOUT)


def _poll(task: Any, fds: list[tuple[int, int]], timeout: float | None,
          real_fds: frozenset[int] = frozenset()) -> list:
    emu, real = _split(task, fds, real_fds)
    if _TOKEN.get() is None or _in_trio_thread():
        if timeout != 0:
            raise RuntimeError("a blocking select/poll needs a thread of a process context")
        # no wait: ask now, in the calling (trio) thread
        p = _real["poll"]()
        for fd, ev in real:
            p.register(fd, ev)
        return sys._poll_masks(task, emu)[0] + p.poll(0)
    return _async(_poll_async, task, emu, real, timeout)


def select(rlist: Any, wlist: Any, xlist: Any, timeout: float | None = None) -> tuple:
    task = _emulated_task()
    if task is None:
        return _real["select"](rlist, wlist, xlist, timeout)
    if timeout is not None:
        timeout = float(timeout)
        if timeout < 0:
            raise ValueError("timeout must be non-negative")
    rlist, wlist, xlist = list(rlist), list(wlist), list(xlist)
    events: dict[int, int] = {}
    real_fds = set()
    for objs, bit in ((rlist, POLLIN), (wlist, POLLOUT), (xlist, POLLPRI)):
        for obj in objs:
            fd = _fd_of(obj)
            events[fd] = events.get(fd, 0) | bit
            if isinstance(obj, _RealSocket) and _emu(obj) is None:
                real_fds.add(fd)
    revents = dict(_poll(task, list(events.items()), timeout, frozenset(real_fds)))
    for fd, rev in revents.items():
        if rev & sys.POLLNVAL:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
    return ([o for o in rlist if revents.get(_fd_of(o), 0) & POLLIN_SET],
            [o for o in wlist if revents.get(_fd_of(o), 0) & POLLOUT_SET],
            [o for o in xlist if revents.get(_fd_of(o), 0) & POLLEX_SET])


class _PollObject:
    """select.poll() / select.epoll() over emulated (and real) descriptors."""

    _default = POLLIN | POLLPRI | POLLOUT

    def __init__(self, task: Any, seconds: bool):
        self._task = task
        self._seconds = seconds  # epoll's poll takes seconds, poll's milliseconds
        self._fds: dict[int, int] = {}
        self.closed = False

    def register(self, fd: Any, eventmask: int = _default) -> None:
        fd = _fd_of(fd)
        if self._seconds and fd in self._fds:
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST))
        self._fds[fd] = eventmask

    def modify(self, fd: Any, eventmask: int) -> None:
        fd = _fd_of(fd)
        if fd not in self._fds:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
        self._fds[fd] = eventmask

    def unregister(self, fd: Any) -> None:
        fd = _fd_of(fd)
        if fd not in self._fds:
            if self._seconds:
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
            raise KeyError(fd)
        del self._fds[fd]

    def poll(self, timeout: Any = None, maxevents: int = -1) -> list[tuple[int, int]]:
        if timeout is not None:
            timeout = float(timeout)
            if timeout < 0:
                timeout = None
            elif not self._seconds:
                timeout /= 1000.0
        ready = _poll(self._task, list(self._fds.items()), timeout)
        if maxevents is not None and maxevents > 0:
            ready = ready[:maxevents]
        return ready

    def fileno(self) -> int:
        return -1

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> "_PollObject":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def poll() -> Any:
    task = _emulated_task()
    return _real["poll"]() if task is None else _PollObject(task, seconds=False)


def epoll(sizehint: int = -1, flags: int = 0) -> Any:
    task = _emulated_task()
    if task is None:
        return _real["epoll"](sizehint, flags)
    return _PollObject(task, seconds=True)


# -- installing -----------------------------------------------------------------------------------
class Patches:
    """Attributes of modules and classes replaced while installed, and put back after; nested
    installs count, so faces that share patches can each install them."""

    def __init__(self, patch_list: Callable[[], list[tuple[Any, str, Any]]]):
        self._patch_list = patch_list
        self._saved: list[tuple[Any, str, Any]] = []
        self._depth = 0
        self._lock = threading.Lock()

    def install(self) -> None:
        with self._lock:
            self._depth += 1
            if self._depth > 1:
                return
            for obj, name, new in self._patch_list():
                self._saved.append((obj, name, obj.__dict__[name] if isinstance(obj, type)
                                    else getattr(obj, name)))
                setattr(obj, name, new)

    def uninstall(self) -> None:
        with self._lock:
            if self._depth == 0:
                return
            self._depth -= 1
            if self._depth:
                return
            while self._saved:
                obj, name, old = self._saved.pop()
                setattr(obj, name, old)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        self.install()
        try:
            yield
        finally:
            self.uninstall()


def _patch_list() -> list[tuple[Any, str, Any]]:
    out: list[tuple[Any, str, Any]] = [
        (_socket, "socket", socket), (_socket, "getaddrinfo", getaddrinfo),
        (_socket, "getnameinfo", getnameinfo), (_socket, "gethostbyname", gethostbyname),
        (_socket, "gethostbyname_ex", gethostbyname_ex), (_socket, "gethostname", gethostname),
        (_socket, "socketpair", socketpair), (_socket, "fromfd", fromfd),
        (_select, "select", select), (_select, "poll", poll),
        (_selectors.PollSelector, "_selector_cls", staticmethod(poll)),
        (trio.to_thread, "run_sync", run_sync),
        (threading.Thread, "start", _thread_start),
    ]
    if _real["epoll"] is not None:
        out.append((_select, "epoll", epoll))
        out.append((_selectors.EpollSelector, "_selector_cls", staticmethod(epoll)))
    return out


_FACE = Patches(_patch_list)
install = _FACE.install      # patch socket/select/selectors/trio.to_thread/threading
uninstall = _FACE.uninstall
installed = _FACE.installed

"""The socket system calls, as net/socket.c: the edge where kernel errors become OSError.

Read first: net/socket.c (__sys_socket, __sys_bind, __sys_connect, __sys_sendto,
__sys_recvfrom, __sys_setsockopt, __sys_shutdown, sock_close), man 2 socket and its
siblings for the errno each call may return.

Every call takes the calling task (its fd table, credentials and CPU) and a descriptor.
Calls that may block are async: they try the protocol's non-blocking operation, and on
EAGAIN — unless the file is non-blocking or MSG_DONTWAIT is set — wait on the socket
(wait.py) until a wake-up or the SO_RCVTIMEO/SO_SNDTIMEO deadline, then try again. A timeout
reports EAGAIN, as Linux's does. `KernelError` from anywhere below becomes
`OSError(errno, strerror)` here and nowhere else.

The calls that may block also have a synchronous form, `sys_*_begin`, for the faces: like
Linux's system calls it runs until the call must sleep, and returns either the result or a
`Sleep` whose `wait()` sleeps and finishes the call. A send or receive that does not wait
(nearly all of them) then makes no coroutine at all.
"""

from __future__ import annotations

import errno
import functools
import math
from typing import Any, Awaitable, Callable, Coroutine, Final, TypeVar

import trio

from ..fs.file import O_CLOEXEC, O_NONBLOCK, File, fput
from ..kernel.errors import KernelError
from ..kernel.sched import CAP_NET_ADMIN, CAP_NET_BIND_SERVICE, Task
from .core.sock import Socket
from .core.wait import sk_wait_event
from .ipv4.af_inet import (AF_INET, AF_INET6, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_STREAM,
                           SOCK_TYPE_MASK, NoPortError, inet_create)
from .ipv4.udp import MSG_DONTWAIT, MSG_ERRQUEUE, POLLOUT

T = TypeVar("T")

SOCK_MAX: Final = 11  # SOCK_PACKET + 1 (include/linux/net.h)

__all__ = ["sys_socket", "sys_bind", "sys_connect", "sys_listen", "sys_accept4",
           "sys_sendto", "sys_recvfrom", "sys_recvmsg", "sys_getsockname", "sys_getpeername",
           "sys_sendto_begin", "sys_recvfrom_begin", "sys_recvmsg_begin", "sys_connect_begin",
           "sys_accept4_begin", "Sleep",
           "sys_setsockopt", "sys_getsockopt", "sys_shutdown", "sys_close", "sys_poll",
           "sys_wait_writable", "sockfd_lookup", "SocketFile"]


class SocketFile:
    """`socket_file_ops`: what a file that holds a socket does on release."""

    name = "socket"

    @staticmethod
    def release(file: File) -> None:
        sock: Socket = file.private_data
        sock.ops.release(sock)
        sock.file = None


def _to_oserror(fn: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except KernelError as e:
            raise e.to_oserror() from None
    return wrapper


def _to_oserror_async(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return await fn(*args, **kwargs)
        except KernelError as e:
            raise e.to_oserror() from None
    return wrapper


def _enter(task: Task) -> None:
    """The task is on its CPU: kernel code below reads host.this_cpu."""
    task.host.this_cpu = task.cpu


def sockfd_lookup(task: Task, fd: int) -> tuple[File, Socket]:
    try:
        file = task.files.fds[fd]  # fdget, inline: every socket call starts here
    except IndexError:
        file = None
    if file is None or fd < 0:
        raise KernelError(errno.EBADF)
    sock = file.private_data
    if not isinstance(sock, Socket):
        raise KernelError(errno.ENOTSOCK)
    if sock.sk is None:
        raise KernelError(errno.EBADF)
    return file, sock


def _trace(task: Task, event: str, **fields: Any) -> None:
    net = task.host.net
    if net.tracer.active:
        net.tracer.emit(net, event, pid=task.pid, comm=task.comm, **fields)


@_to_oserror
def sys_socket(task: Task, family: int, type_: int, protocol: int = 0) -> int:
    _enter(task)
    flags = type_ & ~SOCK_TYPE_MASK
    stype = type_ & SOCK_TYPE_MASK
    if flags & ~(SOCK_CLOEXEC | SOCK_NONBLOCK):
        raise KernelError(errno.EINVAL)
    if stype >= SOCK_MAX:
        raise KernelError(errno.EINVAL)  # __sock_create checks the type before the family
    if family == AF_INET6:
        raise NotImplementedError("IPv6 (AF_INET6) is not implemented yet in pystack")
    if family != AF_INET:
        raise KernelError(errno.EAFNOSUPPORT)
    sock = Socket(stype, None)
    inet_create(task.host.net, sock, protocol)
    sock.sk.sk_uid = task.cred.uid
    file = File(SocketFile, sock, O_NONBLOCK if flags & SOCK_NONBLOCK else 0)
    sock.file = file
    try:
        fd = task.files.alloc_fd(file, O_CLOEXEC if flags & SOCK_CLOEXEC else 0)
    except KernelError:
        fput(file)  # sock_map_fd failed: release the socket just made (EMFILE)
        raise
    _trace(task, "EVENT_SOCKET", fd=fd, type=stype, protocol=sock.sk.sk_protocol)
    return fd


@_to_oserror
def sys_bind(task: Task, fd: int, family: int, addr: int, port: int) -> None:
    _enter(task)
    _file, sock = sockfd_lookup(task, fd)
    sock.ops.bind(sock, family, addr, port, task.capable(CAP_NET_BIND_SERVICE))
    _trace(task, "EVENT_BIND", fd=fd, port=port)


# sys_connect and sys_accept4 (one of each per connection) translate KernelError themselves,
# as sys_sendto does: one coroutine layer less.

async def sys_connect(task: Task, fd: int, family: int, addr: int, port: int) -> None:
    calls = 0
    try:
        _enter(task)
        file, sock = sockfd_lookup(task, fd)
        _trace(task, "EVENT_CONNECT", fd=fd, port=port)
        nonblock = bool(file.f_flags & O_NONBLOCK)

        def attempt() -> None:
            # The first call starts the connection; later ones (after a wait) see how it went.
            nonlocal calls
            calls += 1
            sock.ops.connect(sock, family, addr, port, nonblock, calls > 1)

        await _blocking(task, sock, nonblock, sock.sk.sk_sndtimeo, attempt)
    except KernelError as e:
        if e.errno == errno.EAGAIN and calls > 1:
            raise KernelError(errno.EINPROGRESS).to_oserror() from None  # SO_SNDTIMEO ran out
        raise e.to_oserror() from None


@_to_oserror
def sys_listen(task: Task, fd: int, backlog: int) -> None:
    _enter(task)
    _file, sock = sockfd_lookup(task, fd)
    sock.ops.listen(sock, backlog)
    _trace(task, "EVENT_LISTEN", fd=fd, backlog=backlog)


async def sys_accept4(task: Task, fd: int, flags: int = 0) -> tuple[int, tuple[int, int]]:
    """Wait for a connection; return its new descriptor and the peer's address."""
    try:
        _enter(task)
        file, sock = sockfd_lookup(task, fd)
        if flags & ~(SOCK_CLOEXEC | SOCK_NONBLOCK):
            raise KernelError(errno.EINVAL)
        nonblock = bool(file.f_flags & O_NONBLOCK)
        newsock = await _blocking(task, sock, nonblock, sock.sk.sk_rcvtimeo, sock.ops.accept,
                                  sock, flags)
        newfile = File(SocketFile, newsock, O_NONBLOCK if flags & SOCK_NONBLOCK else 0)
        newsock.file = newfile
        newsock.sk.sk_uid = task.cred.uid
        try:
            newfd = task.files.alloc_fd(newfile, O_CLOEXEC if flags & SOCK_CLOEXEC else 0)
        except KernelError:
            fput(newfile)
            raise
        peer = newsock.ops.getname(newsock, True)
        _trace(task, "EVENT_ACCEPT", fd=newfd)
        return newfd, peer
    except KernelError as e:
        raise e.to_oserror() from None


class Sleep:
    """What the synchronous start of a system call returns when the call must sleep:
    `await sleep.wait()` sleeps on the socket, tries again, and ends the call (its result,
    or its error as OSError).

    Linux's system calls are synchronous until they sleep; so are pystack's sends and
    receives (`sys_sendto_begin`, `sys_recvfrom_begin`): a call that needs no sleep, nearly
    every one, returns its result without making a coroutine. `sys_sendto` and the other
    async calls are the same calls for a caller that simply awaits."""

    __slots__ = ("_rest",)

    def __init__(self, rest: Coroutine[Any, Any, Any]) -> None:
        self._rest = rest

    async def wait(self) -> Any:
        try:
            return await self._rest
        except KernelError as e:
            raise e.to_oserror() from None


def _eagain_waits(e: KernelError, nonblock: bool) -> bool:
    """Whether an attempt's error means: sleep on the socket and try again."""
    return e.errno == errno.EAGAIN and not nonblock and not isinstance(e, NoPortError)


async def _retry(task: Task, sock: Socket, nonblock: bool, timeo: float, woken: int,
                 attempt: Callable[..., T], *args: Any) -> T:
    """The rest of a blocking call whose attempt said EAGAIN: sleep on the socket (unless it
    was woken since `woken`, its wake-up count before that attempt) and try `attempt(*args)`
    again, until an answer other than EAGAIN, for at most `timeo` seconds of sleep in all.
    The clock is read only when a first sleep is due."""
    deadline = -1.0
    host = task.host
    while True:
        sk = sock.sk
        if sk is None:
            raise KernelError(errno.EBADF)
        if sk.sk_wakeups == woken:  # not woken while we held the socket: sleep
            if deadline < 0:
                deadline = math.inf if timeo == math.inf else trio.current_time() + timeo
            if not await sk_wait_event(sk, deadline):
                raise KernelError(errno.EAGAIN)
            sk = sock.sk
            if sk is None:
                raise KernelError(errno.EBADF)
        host.this_cpu = task.cpu  # _enter(task), inline: once per attempt
        woken = sk.sk_wakeups
        try:
            return attempt(*args)
        except KernelError as e:
            if not _eagain_waits(e, nonblock):
                raise


async def _blocking(task: Task, sock: Socket, nonblock: bool, timeo: float,
                    attempt: Callable[..., T], *args: Any) -> T:
    """`attempt(*args)` — the protocol's non-blocking operation — until it answers other than
    EAGAIN, sleeping on the socket between tries (unless `nonblock`) for at most `timeo`
    seconds in all (`_retry`)."""
    task.host.this_cpu = task.cpu
    sk = sock.sk
    woken = sk.sk_wakeups if sk is not None else 0
    try:
        return attempt(*args)
    except KernelError as e:
        if not _eagain_waits(e, nonblock):
            raise
    return await _retry(task, sock, nonblock, timeo, woken, attempt, *args)


# sys_sendto_begin and sys_recvfrom_begin are the per-packet calls: synchronous until they
# must sleep, and translating KernelError themselves.

def sys_sendto_begin(task: Task, fd: int, data: Any, flags: int = 0,
                     dest: tuple[int, int, int] | None = None) -> int | Sleep:
    """sendto(2) up to its first sleep: the count sent, or a `Sleep` to finish it. dest is
    (family, addr, port) or None."""
    try:
        file, sock = sockfd_lookup(task, fd)
        addr = None
        if dest is not None:
            family, daddr, dport = dest
            if family != AF_INET:
                raise KernelError(errno.EAFNOSUPPORT)
            addr = (daddr, dport)
        nonblock = bool(file.f_flags & O_NONBLOCK or flags & MSG_DONTWAIT)
        host = task.host
        host.this_cpu = task.cpu  # _enter(task): the event names the CPU, and below
        if host.net.tracer.active:
            _trace(task, "EVENT_SOCK_SENDMSG", fd=fd, len=len(data))
        sk = sock.sk
        woken = sk.sk_wakeups
        timeo = sk.sk_sndtimeo
        if sock.type != SOCK_STREAM:
            try:
                return sock.ops.sendmsg(sock, data, flags, addr)
            except KernelError as e:
                if not _eagain_waits(e, nonblock):
                    raise
            return Sleep(_retry(task, sock, nonblock, timeo, woken, sock.ops.sendmsg,
                                sock, data, flags, addr))
        # A stream send queues what fits; a blocking one waits for room until all is queued
        # (or a timeout/error after some was: then it reports what it queued).
        view = memoryview(data)
        try:
            n = sock.ops.sendmsg(sock, view, flags, addr)
        except KernelError as e:
            if not _eagain_waits(e, nonblock):
                raise
            return Sleep(_stream_send_rest(task, sock, view, flags, addr, timeo, 0, woken))
        if n >= len(view) or nonblock or not n:
            return n
        return Sleep(_stream_send_rest(task, sock, view, flags, addr, timeo, n, -1))
    except KernelError as e:
        raise e.to_oserror() from None


async def _stream_send_rest(task: Task, sock: Socket, view: memoryview, flags: int,
                            addr: tuple[int, int] | None, timeo: float, total: int,
                            woken: int) -> int:
    """A blocking stream send after its first attempt, which queued `total` bytes (and said
    EAGAIN when `woken` is not -1, the socket's wake-up count before it)."""
    send = sock.ops.sendmsg
    while True:
        rest = view[total:] if total else view
        try:
            if woken == -1:
                n = await _blocking(task, sock, False, timeo, send, sock, rest, flags, addr)
            else:
                n = await _retry(task, sock, False, timeo, woken, send, sock, rest, flags,
                                 addr)
                woken = -1
        except KernelError as e:
            if total:
                # Report what was queued; a pending error stays for the next call, as in
                # tcp_sendmsg_locked (which only consumes it when nothing was copied).
                if sock.sk is not None and e.errno not in (errno.EAGAIN, errno.EPIPE):
                    sock.sk.sk_err = e.errno
                return total
            raise
        total += n
        if total >= len(view) or not n:
            return total


async def sys_sendto(task: Task, fd: int, data: Any, flags: int = 0,
                     dest: tuple[int, int, int] | None = None) -> int:
    """sendto(2) to its end. dest is (family, addr, port) or None."""
    result = sys_sendto_begin(task, fd, data, flags, dest)
    if isinstance(result, Sleep):
        return await result.wait()
    return result


def sys_recvfrom_begin(task: Task, fd: int, size: int, flags: int = 0,
                       control: list | None = None
                       ) -> tuple[bytes, tuple[int, int] | None, int, int] | Sleep:
    """recvfrom(2) up to its first sleep: (data, (addr, port) or None, msg_flags, length the
    call returns), or a `Sleep` to finish it. Control messages, as (level, type, data), are
    appended to `control` when it is given."""
    try:
        if size < 0:
            raise KernelError(errno.EINVAL)
        file, sock = sockfd_lookup(task, fd)
        if file.f_flags & O_NONBLOCK:
            flags |= MSG_DONTWAIT  # as __sys_recvfrom does: the protocol sees one flag
        # Reading the error queue never waits (ip_recv_error returns EAGAIN at once).
        nonblock = bool(flags & (MSG_DONTWAIT | MSG_ERRQUEUE))
        # What a stream MSG_WAITALL receive has gathered so far, across its waits.
        acc = bytearray() if sock.type == SOCK_STREAM else None
        host = task.host
        host.this_cpu = task.cpu  # _enter(task)
        sk = sock.sk
        woken = sk.sk_wakeups
        try:
            result = sock.ops.recvmsg(sock, size, flags, acc, control)
        except KernelError as e:
            if not _eagain_waits(e, nonblock):
                raise
            return Sleep(_recv_rest(task, fd, sock, size, flags, acc, control,
                                    sk.sk_rcvtimeo, woken))
        if host.net.tracer.active:
            _trace(task, "EVENT_SOCK_RECVMSG", fd=fd, len=result[3])
        return result
    except KernelError as e:
        raise e.to_oserror() from None


async def _recv_rest(task: Task, fd: int, sock: Socket, size: int, flags: int,
                     acc: bytearray | None, control: list | None, timeo: float, woken: int
                     ) -> tuple[bytes, tuple[int, int] | None, int, int]:
    """A blocking receive after its first attempt said EAGAIN."""
    result = await _retry(task, sock, False, timeo, woken, sock.ops.recvmsg, sock, size, flags,
                          acc, control)
    if task.host.net.tracer.active:
        _trace(task, "EVENT_SOCK_RECVMSG", fd=fd, len=result[3])
    return result


async def sys_recvfrom(task: Task, fd: int, size: int, flags: int = 0,
                       control: list | None = None
                       ) -> tuple[bytes, tuple[int, int] | None, int, int]:
    """recvfrom(2) to its end: see `sys_recvfrom_begin`."""
    result = sys_recvfrom_begin(task, fd, size, flags, control)
    if isinstance(result, Sleep):
        return await result.wait()
    return result


def sys_recvmsg_begin(task: Task, fd: int, size: int, flags: int = 0
                      ) -> tuple[bytes, tuple[int, int] | None, int, int, list] | Sleep:
    """recvmsg(2) up to its first sleep: sys_recvfrom's result plus the control messages
    [(level, type, data)], or a `Sleep` to finish it."""
    control: list = []
    result = sys_recvfrom_begin(task, fd, size, flags, control)
    if isinstance(result, Sleep):
        return Sleep(_with_control(result, control))
    data, addr, msg_flags, n = result
    return data, addr, msg_flags, n, control


async def _with_control(sleep: Sleep, control: list
                        ) -> tuple[bytes, tuple[int, int] | None, int, int, list]:
    data, addr, msg_flags, n = await sleep.wait()
    return data, addr, msg_flags, n, control


async def sys_recvmsg(task: Task, fd: int, size: int, flags: int = 0
                      ) -> tuple[bytes, tuple[int, int] | None, int, int, list]:
    """recvmsg(2) to its end: see `sys_recvmsg_begin`."""
    result = sys_recvmsg_begin(task, fd, size, flags)
    if isinstance(result, Sleep):
        return await result.wait()
    return result


def sys_connect_begin(task: Task, fd: int, family: int, addr: int, port: int) -> Sleep:
    """connect(2) for a caller that takes the begin/`Sleep` form: always its coroutine (one
    call per connection)."""
    return Sleep(sys_connect(task, fd, family, addr, port))


def sys_accept4_begin(task: Task, fd: int, flags: int = 0) -> Sleep:
    """accept4(2) in the begin/`Sleep` form, as `sys_connect_begin`."""
    return Sleep(sys_accept4(task, fd, flags))


@_to_oserror
def sys_getsockname(task: Task, fd: int) -> tuple[int, int]:
    _enter(task)
    _file, sock = sockfd_lookup(task, fd)
    return sock.ops.getname(sock, False)


@_to_oserror
def sys_getpeername(task: Task, fd: int) -> tuple[int, int]:
    _enter(task)
    _file, sock = sockfd_lookup(task, fd)
    return sock.ops.getname(sock, True)


@_to_oserror
def sys_setsockopt(task: Task, fd: int, level: int, optname: int, optval: Any) -> None:
    _enter(task)
    _file, sock = sockfd_lookup(task, fd)
    sock.ops.setsockopt(sock, level, optname, optval, task.capable(CAP_NET_ADMIN))


@_to_oserror
def sys_getsockopt(task: Task, fd: int, level: int, optname: int) -> Any:
    _enter(task)
    _file, sock = sockfd_lookup(task, fd)
    return sock.ops.getsockopt(sock, level, optname)


@_to_oserror
def sys_shutdown(task: Task, fd: int, how: int) -> None:
    _enter(task)
    _file, sock = sockfd_lookup(task, fd)
    sock.ops.shutdown(sock, how)


@_to_oserror
def sys_close(task: Task, fd: int) -> None:
    _enter(task)
    file = task.files.close_fd(fd)
    fput(file)


@_to_oserror
def sys_poll(task: Task, fd: int) -> int:
    """The socket's poll mask (POLLIN, POLLOUT, POLLERR, POLLHUP …)."""
    _enter(task)
    _file, sock = sockfd_lookup(task, fd)
    return sock.ops.poll(sock)


@_to_oserror_async
async def sys_wait_writable(task: Task, fd: int) -> None:
    _enter(task)
    _file, sock = sockfd_lookup(task, fd)

    def writable() -> None:
        if not sock.ops.poll(sock) & POLLOUT:
            raise KernelError(errno.EAGAIN)
    await _blocking(task, sock, False, math.inf, writable)


# -- calls the drop-in faces need (fs/fcntl.c, fs/file.c, fs/select.c) ---------------------------

F_DUPFD: Final = 0
F_GETFD: Final = 1
F_SETFD: Final = 2
F_GETFL: Final = 3
F_SETFL: Final = 4
POLLNVAL: Final = 0x020
SETFL_MASK: Final = O_NONBLOCK  # of fcntl.c's SETFL_MASK, the one bit pystack models


@_to_oserror
def sys_fcntl(task: Task, fd: int, cmd: int, arg: int = 0) -> int:
    """fcntl(2) for F_GETFL/F_SETFL (O_NONBLOCK) and F_DUPFD, as fs/fcntl.c do_fcntl."""
    file = task.files.fget(fd)
    if cmd == F_GETFL:
        return file.f_flags | 0o2  # O_RDWR: a socket is opened for reading and writing
    if cmd == F_SETFL:
        file.f_flags = (file.f_flags & ~SETFL_MASK) | (arg & SETFL_MASK)
        return 0
    if cmd == F_GETFD:
        return 1 if fd in task.files.cloexec else 0
    if cmd == F_SETFD:
        if arg & 1:
            task.files.cloexec.add(fd)
        else:
            task.files.cloexec.discard(fd)
        return 0
    if cmd == F_DUPFD:
        return sys_dup(task, fd)
    raise KernelError(errno.EINVAL)


@_to_oserror
def sys_dup(task: Task, fd: int) -> int:
    """dup(2): a new descriptor for the same open file (fs/file.c ksys_dup)."""
    file = task.files.fget(fd)
    file.f_count += 1
    try:
        return task.files.alloc_fd(file)
    except KernelError:
        file.f_count -= 1
        raise


def _poll_masks(task: Task, fds: list[tuple[int, int]]) -> tuple[list[tuple[int, int]], list]:
    from .ipv4.udp import POLLERR as _ERR, POLLHUP as _HUP
    ready = []
    socks = []
    for fd, events in fds:
        try:
            _file, sock = sockfd_lookup(task, fd)
        except KernelError:
            ready.append((fd, POLLNVAL))
            continue
        mask = sock.ops.poll(sock) & (events | _ERR | _HUP)
        if mask:
            ready.append((fd, mask))
        socks.append(sock)
    return ready, socks


@_to_oserror_async
async def sys_poll_wait(task: Task, fds: list[tuple[int, int]], timeout: float | None
                        ) -> list[tuple[int, int]]:
    """poll(2) over several descriptors: [(fd, revents)] of those ready (POLLNVAL for a bad
    one), waiting up to `timeout` seconds (None: forever; 0: not at all), as fs/select.c
    do_poll: ask every file, sleep on all their wait queues, ask again after a wake-up."""
    deadline = math.inf if timeout is None else trio.current_time() + max(0.0, timeout)
    while True:
        _enter(task)
        ready, socks = _poll_masks(task, fds)
        woken = [(s.sk, s.sk.sk_wakeups) for s in socks if s.sk is not None]
        if ready or trio.current_time() >= deadline:
            return ready
        if not woken:  # poll() on no descriptors: a sleep
            await trio.sleep_until(deadline)
            return []
        got = False
        async with trio.open_nursery() as nursery:
            nursery.cancel_scope.deadline = deadline

            async def wait_one(sk: Any, seen: int) -> None:
                nonlocal got
                if sk.sk_wakeups == seen:  # not woken since we asked: sleep until it is
                    await sk.wait_queue().park()
                got = True
                nursery.cancel_scope.cancel()

            for sk, seen in woken:
                nursery.start_soon(wait_one, sk, seen)
        if not got and trio.current_time() >= deadline:
            _enter(task)
            return _poll_masks(task, fds)[0]


__all__ += ["sys_fcntl", "sys_dup", "sys_poll_wait", "F_GETFL", "F_SETFL", "POLLNVAL"]

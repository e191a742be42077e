"""Emulated sockets with trio's socket interface.

Read first: trio's `trio/_socket.py` (SocketType, _SocketType._nonblocking_helper: the
checkpoint rules), the Python `socket` module documentation (address formats, the errors each
call raises).

`EmulatedSocket` is a `trio.socket.SocketType` backed by a descriptor in an emulated process.
Every async method is a checkpoint as trio's own are: it checks for cancellation first, tries
the call, and yields once after a call that did not block. Addresses are Python's: an AF_INET
address is a (host, port) tuple where host is a dotted quad, a name the network knows ("a",
"localhost"), "" for INADDR_ANY or "<broadcast>".

`install()` puts trio's official hooks in the running trio run: `SocketFactory` and
`HostnameResolver` make `trio.socket.socket()`, `open_tcp_stream`, `serve_tcp`,
`open_tcp_listeners` and `getaddrinfo` reach the host of the current process context
(`pystack.kernel.sched.current`), and stay real outside every process context. Names resolve
as the host's /etc/hosts would (`emulated_getaddrinfo`: AF_INET answers only).
"""

from __future__ import annotations

import errno
import operator
import os
import socket as _stdsocket
from typing import TYPE_CHECKING, Any

import trio

from ..net import socket as sys
from ..net.core import wait as _wait
from ..net.ipv4.udp import MSG_TRUNC, POLLERR, POLLHUP, POLLIN
from ..net.socket import Sleep as _Sleep
from ..uapi.ip import ip_int, ip_str

if TYPE_CHECKING:
    from ..kernel.sched import Task

AF_INET = _stdsocket.AF_INET

# The two directions of EmulatedSocket._call: one task at a time in each (BusyResourceError).
_READING, _WRITING = 0, 1
_DIRECTIONS = ("reading from", "writing to")


def resolve_host(task: "Task", host: Any, *, for_bind: bool) -> int:
    """An AF_INET host part → an address, as the socket module's address parsing does."""
    if isinstance(host, bytes):
        host = host.decode("idna")
    if not isinstance(host, str):
        raise TypeError(f"str, bytes or bytearray expected, not {type(host).__name__}")
    if host == "":
        return 0
    if host == "<broadcast>":
        return 0xFFFFFFFF
    try:
        return ip_int(host)
    except ValueError:
        pass
    addr = task.host.resolve(host)
    if addr is None:
        raise _stdsocket.gaierror(_stdsocket.EAI_NONAME, "Name or service not known")
    return addr


def _is_dotted_quad(host: str) -> bool:
    try:
        ip_int(host)
    except ValueError:
        return False
    return True


def parse_inet_address(task: "Task", address: Any, *, for_bind: bool = False,
                       what: str = "connect") -> tuple[int, int]:
    if not isinstance(address, tuple):
        raise TypeError(f"AF_INET address must be tuple, not {type(address).__name__}")
    if len(address) != 2:
        raise TypeError("AF_INET address must be a pair (host, port)")
    host, port = address
    if not isinstance(port, int) or isinstance(port, bool):
        raise TypeError(f"'{type(port).__name__}' object cannot be interpreted as an integer")
    if not 0 <= port <= 65535:
        raise OverflowError(f"{what}(): port must be 0-65535.")
    return resolve_host(task, host, for_bind=for_bind), port


def _check_size(size: int, call: str) -> int:
    """The socket module refuses a non-integer or negative size before any system call."""
    size = operator.index(size)
    if size < 0:
        raise ValueError(f"negative buffersize in {call}")
    return size


def _addr_tuple(addr: tuple[int, int] | None) -> tuple[str, int] | None:
    if addr is None:
        return None
    return ip_str(addr[0]), addr[1]


# A non-blocking socket's call must be answerable at once from the trio thread: asyncio's
# loop (pystack/dropin/asyncio.py) runs its callbacks there and calls `sock.recv()` and the
# like synchronously. On an O_NONBLOCK file the syscalls never wait, so all that stands between
# the call and its answer are trio's checkpoints; `run_nonblocking` turns them off and runs
# the call's coroutine to its end in one step. Only the trio thread runs these coroutines, and
# the step is synchronous, so a module flag is enough.
_checkpoints = True


_trio_checkpoint_if_cancelled = trio.lowlevel.checkpoint_if_cancelled
_trio_cancel_shielded_checkpoint = trio.lowlevel.cancel_shielded_checkpoint


async def _checkpoint_if_cancelled() -> None:
    if _checkpoints:
        await _trio_checkpoint_if_cancelled()


async def _cancel_shielded_checkpoint() -> None:
    if _checkpoints:
        await _trio_cancel_shielded_checkpoint()


def run_nonblocking(afn: Any, *args: Any) -> Any:
    """`await afn(*args)` for a call on a non-blocking socket, run to its end now, in the trio
    thread, without checkpoints. A call that would wait raises BlockingIOError, as the socket
    module's does."""
    global _checkpoints
    _checkpoints = False
    coro = afn(*args)
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    finally:
        _checkpoints = True
    coro.close()
    raise RuntimeError(f"{getattr(afn, '__qualname__', afn)} waited on a non-blocking socket")


class EmulatedSocket(trio.socket.SocketType):
    """A socket on an emulated host, with the interface of `trio.socket.SocketType`."""

    def __init__(self, task: "Task", fd: int, family: int, type_: int, proto: int):
        self._task = task
        self._fd = fd
        self._family = family
        self._type = type_
        self._proto = proto
        self._closed = False
        self._busy = [False, False]  # [_READING], [_WRITING]: a call in that direction runs
        self._did_shutdown_SHUT_WR = False
        self._dest_key: Any = None  # sendto's last address, and what it parsed to
        self._dest: tuple[int, int, int] | None = None
        self._src_key: Any = None  # recvfrom's last source address, and as Python has it
        self._src: Any = None

    @classmethod
    def create(cls, task: "Task", family: int = AF_INET, type: int = _stdsocket.SOCK_STREAM,
               proto: int = 0) -> "EmulatedSocket":
        fd = sys.sys_socket(task, int(family), int(type), int(proto))
        real_proto = sys.sys_getsockopt(task, fd, _stdsocket.SOL_SOCKET, _stdsocket.SO_PROTOCOL)
        stype = int(type) & 0xF
        return cls(task, fd, family, stype, real_proto)

    # -- attributes ---------------------------------------------------------------------------
    @property
    def family(self) -> _stdsocket.AddressFamily:
        return _stdsocket.AddressFamily(self._family)

    @property
    def type(self) -> _stdsocket.SocketKind:
        return _stdsocket.SocketKind(self._type)

    @property
    def proto(self) -> int:
        return self._proto

    @property
    def did_shutdown_SHUT_WR(self) -> bool:
        return self._did_shutdown_SHUT_WR

    @property
    def task(self) -> "Task":
        """The emulated process whose fd table holds this socket."""
        return self._task

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"fd={self._fd}"
        return (f"<pystack socket {self._task.host.name}:{self._task.pid} {state} "
                f"family={self.family.name} type={self.type.name}>")

    def fileno(self) -> int:
        return -1 if self._closed else self._fd

    def _fdno(self) -> int:
        if self._closed:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        return self._fd

    def get_inheritable(self) -> bool:
        return False

    def set_inheritable(self, inheritable: bool) -> None:
        pass

    def detach(self) -> int:
        fd = self._fd
        self._closed = True
        return fd

    def dup(self) -> "EmulatedSocket":
        raise NotImplementedError("dup() of an emulated socket is not implemented yet")

    def __enter__(self) -> "EmulatedSocket":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._task.exited:
                return  # the process's exit closed every descriptor it had
            try:
                sk = sys.sockfd_lookup(self._task, self._fd)[1].sk
            except Exception:  # noqa: BLE001 -- not a socket any more: nothing to wake
                sk = None
            sys.sys_close(self._task, self._fd)
            # As trio's notify_closing: tasks waiting on this socket wake and see it closed.
            if sk is not None and sk.sk_wq is not None and sk.sk_wq:
                sk.sk_wq.unpark_all()

    async def _call(self, direction: int, syscall: Any, *args: Any) -> Any:
        """`syscall(task, fd, *args)`, a system call that may wait (its `sys_*_begin` form,
        pystack/net/socket.py, which returns its result or a `Sleep`), with trio's rules: a
        checkpoint for cancellation first, one task at a time per direction
        (BusyResourceError), ClosedResourceError if another task closes the socket, and one
        yield after a call that did not wait."""
        if _checkpoints:
            await _trio_checkpoint_if_cancelled()
        if self._closed:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        busy = self._busy
        if busy[direction]:
            raise trio.BusyResourceError(
                f"another task is already {_DIRECTIONS[direction]} this socket")
        busy[direction] = True
        slept = _wait.sleeps
        try:
            result = syscall(self._task, self._fd, *args)
            if type(result) is _Sleep:
                result = await result.wait()
        except OSError as e:
            if self._closed and e.errno == errno.EBADF:
                raise trio.ClosedResourceError("another task closed this socket") from None
            raise
        finally:
            busy[direction] = False
        if _checkpoints and _wait.sleeps == slept:
            # It did not wait: give the scheduler its turn now, as trio's own sockets do
            # (_try_sync); a call that slept was a schedule point already.
            await _trio_cancel_shielded_checkpoint()
        return result

    # -- synchronous calls -------------------------------------------------------------------
    def getsockname(self) -> Any:
        return _addr_tuple(sys.sys_getsockname(self._task, self._fdno()))

    def getpeername(self) -> Any:
        return _addr_tuple(sys.sys_getpeername(self._task, self._fdno()))

    def setsockopt(self, level: int, optname: int, value: Any, optlen: int | None = None) -> None:
        if value is None:
            if optlen is None:
                raise TypeError("setsockopt(level, optname, None) needs an optlen")
            value = bytes(optlen)
        elif isinstance(value, bool):
            value = int(value)
        elif not isinstance(value, (int, bytes, bytearray, memoryview)):
            raise TypeError(f"a bytes-like object or int is required, not "
                            f"'{type(value).__name__}'")
        sys.sys_setsockopt(self._task, self._fdno(), level, optname, value)

    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> Any:
        value = sys.sys_getsockopt(self._task, self._fdno(), level, optname)
        if buflen is None:
            if isinstance(value, (bytes, bytearray)):
                return int.from_bytes(bytes(value[:4]).ljust(4, b"\0"), "little", signed=True)
            return value
        if isinstance(value, int):
            value = value.to_bytes(4, "little", signed=True)
        return bytes(value[:buflen])

    def listen(self, backlog: int = min(_stdsocket.SOMAXCONN, 128)) -> None:
        sys.sys_listen(self._task, self._fdno(), backlog)

    def shutdown(self, flag: int) -> None:
        sys.sys_shutdown(self._task, self._fdno(), flag)
        if flag in (_stdsocket.SHUT_WR, _stdsocket.SHUT_RDWR):
            self._did_shutdown_SHUT_WR = True

    def is_readable(self) -> bool:
        return bool(sys.sys_poll(self._task, self._fdno()) & (POLLIN | POLLERR | POLLHUP))

    async def wait_writable(self) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        await sys.sys_wait_writable(self._task, self._fdno())
        await trio.lowlevel.cancel_shielded_checkpoint()

    # -- async calls -------------------------------------------------------------------------
    async def bind(self, address: Any) -> None:
        await trio.lowlevel.checkpoint()
        addr, port = parse_inet_address(self._task, address, for_bind=True, what="bind")
        sys.sys_bind(self._task, self._fdno(), self._family, addr, port)

    async def connect(self, address: Any) -> None:
        addr, port = parse_inet_address(self._task, address, what="connect")
        await self._call(_WRITING, sys.sys_connect_begin, self._family, addr, port)

    async def accept(self) -> tuple["EmulatedSocket", Any]:
        fd, addr = await self._call(_READING, sys.sys_accept4_begin)
        sock = EmulatedSocket(self._task, fd, self._family, self._type, self._proto)
        return sock, _addr_tuple(addr)

    async def send(self, data: Any, flags: int = 0) -> int:
        n = await self._call(_WRITING, sys.sys_sendto_begin, memoryview(data), flags, None)
        return n

    async def sendto(self, data: Any, *args: Any) -> int:
        if len(args) == 1:
            flags, address = 0, args[0]
        elif len(args) == 2:
            flags, address = args
        else:
            raise TypeError(f"sendto() takes 2 or 3 arguments ({len(args) + 1} given)")
        if address is self._dest_key:
            dest = self._dest
        else:
            dest = self._parse_dest(address)
        return await self._call(_WRITING, sys.sys_sendto_begin, memoryview(data), flags, dest)

    def _parse_dest(self, address: Any) -> tuple[int, int, int]:
        """sendto's destination as the syscall takes it. A program usually sends to the same
        address object each time; when its host is a dotted quad (whose meaning never
        changes, unlike a name's) the answer is kept for the next call with that object."""
        addr, port = parse_inet_address(self._task, address, what="sendto")
        dest = (self._family, addr, port)
        host = address[0]
        if type(host) is str and _is_dotted_quad(host):
            self._dest_key, self._dest = address, dest
        return dest

    async def sendmsg(self, buffers: Any, ancdata: Any = (), flags: int = 0,
                      address: Any = None) -> int:
        if ancdata:
            raise NotImplementedError("ancillary data (sendmsg ancdata) is not implemented yet")
        data = b"".join(bytes(b) for b in buffers)
        if address is None:
            return await self.send(data, flags)
        return await self.sendto(data, flags, address)

    async def recv(self, bufsize: int, flags: int = 0) -> bytes:
        bufsize = _check_size(bufsize, "recv")
        if bufsize == 0:
            return await self._recv_nothing(b"")
        data, _addr, _mf, _n = await self._call(_READING, sys.sys_recvfrom_begin, bufsize, flags)
        return data

    async def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        view = memoryview(buffer).cast("B")
        nbytes = _check_size(nbytes, "recv_into")
        if nbytes > len(view):
            raise ValueError("buffer too small for requested bytes")
        size = nbytes or len(view)
        if size == 0:
            return await self._recv_nothing(0)
        data, _addr, _mf, n = await self._call(_READING, sys.sys_recvfrom_begin, size, flags)
        view[:len(data)] = data
        return n if flags & MSG_TRUNC else len(data)

    async def _recv_nothing(self, result: Any) -> Any:
        """recv(0) and recv_into of nothing make no system call in CPython (sock_recv_guts:
        "If 0 bytes were requested, do nothing"): no datagram is consumed, nothing waits.
        recvfrom(0) and recvmsg(0) do call, and consume one."""
        await _checkpoint_if_cancelled()
        self._fdno()
        await _cancel_shielded_checkpoint()
        return result

    async def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        bufsize = _check_size(bufsize, "recvfrom")
        data, addr, _mf, _n = await self._call(_READING, sys.sys_recvfrom_begin, bufsize, flags)
        if addr != self._src_key:  # a datagram socket hears from the same peer again and again
            self._src_key, self._src = addr, _addr_tuple(addr)
        return data, self._src

    async def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0
                            ) -> tuple[int, Any]:
        view = memoryview(buffer).cast("B")
        nbytes = _check_size(nbytes, "recvfrom_into")
        if nbytes > len(view):
            raise ValueError("nbytes is greater than the length of the buffer")
        size = nbytes or len(view)
        data, addr, _mf, n = await self._call(_READING, sys.sys_recvfrom_begin, size, flags)
        view[:len(data)] = data
        return (n if flags & MSG_TRUNC else len(data)), _addr_tuple(addr)

    async def recvmsg(self, bufsize: int, ancbufsize: int = 0, flags: int = 0
                      ) -> tuple[bytes, list, int, Any]:
        if bufsize < 0:
            raise ValueError("negative buffer size in recvmsg()")
        if ancbufsize < 0:
            raise ValueError("invalid ancillary data buffer length")
        data, addr, msg_flags, _n, control = await self._call(
            _READING, sys.sys_recvmsg_begin, bufsize, flags)
        ancdata, truncated = put_cmsgs(control, ancbufsize)
        if truncated:
            msg_flags |= _stdsocket.MSG_CTRUNC
        return data, ancdata, msg_flags, _addr_tuple(addr)

    async def recvmsg_into(self, buffers: Any, ancbufsize: int = 0, flags: int = 0
                           ) -> tuple[int, list, int, Any]:
        views = [memoryview(b).cast("B") for b in buffers]
        total = sum(len(v) for v in views)
        data, anc, msg_flags, addr = await self.recvmsg(total, ancbufsize, flags)
        pos = 0
        for v in views:
            chunk = data[pos:pos + len(v)]
            v[:len(chunk)] = chunk
            pos += len(chunk)
        return len(data), anc, msg_flags, addr


def put_cmsgs(control: list, ancbufsize: int) -> tuple[list, bool]:
    """The control messages as recvmsg() returns them from an `ancbufsize`-byte buffer, and
    whether they were cut short (MSG_CTRUNC), as put_cmsg fills msg_control: a message that
    does not fit is cut to the room left, and none is written once not even a header fits."""
    out = []
    room = ancbufsize
    truncated = False
    header = _stdsocket.CMSG_LEN(0)
    for level, type_, data in control:
        if room < header:
            truncated = True
            continue
        if room < _stdsocket.CMSG_LEN(len(data)):
            truncated = True
            data = data[:room - header]
        out.append((level, type_, data))
        room -= min(_stdsocket.CMSG_SPACE(len(data)), room)
    return out, truncated


# -- trio's official hooks: a socket factory and a hostname resolver -----------------------------
# Read first: trio's `trio/_socket.py` (socket(), getaddrinfo(): numeric addresses never reach a
# resolver), trio.abc.SocketFactory / HostnameResolver, man 3 getaddrinfo (EAI_* errors, the
# order glibc returns the socket types in).

_REAL_GETADDRINFO = _stdsocket.getaddrinfo
_REAL_GETNAMEINFO = _stdsocket.getnameinfo

# glibc's order for type 0: one entry per type it knows (SOCK_STREAM/TCP, SOCK_DGRAM/UDP,
# SOCK_RAW/0).
_GAI_TYPES = ((_stdsocket.SOCK_STREAM, _stdsocket.IPPROTO_TCP),
              (_stdsocket.SOCK_DGRAM, _stdsocket.IPPROTO_UDP),
              (_stdsocket.SOCK_RAW, 0))


def current_task() -> "Task | None":
    """The emulated process of the running code, or None outside every process context."""
    from ..kernel.sched import current
    task = current.get()
    if task is None or task.exited:
        return None
    return task


def _gai_port(port: Any, type_: int) -> int | None:
    """The port for one socket type; None if a named service does not exist for that type
    (glibc then leaves the type out; SOCK_RAW has no named services)."""
    if port is None:
        return 0
    if isinstance(port, bytes):
        port = port.decode()
    if isinstance(port, int):
        return port
    try:
        return int(port)
    except ValueError:
        pass
    if type_ == _stdsocket.SOCK_RAW:
        return None
    try:
        return _stdsocket.getservbyname(port, "udp" if type_ == _stdsocket.SOCK_DGRAM else "tcp")
    except OSError:
        return None


def emulated_getaddrinfo(task: "Task", host: Any, port: Any, family: int = 0, type: int = 0,
                         proto: int = 0, flags: int = 0) -> list[tuple]:
    """`getaddrinfo` as the host's own resolver sees it (/etc/hosts only): AF_INET answers only,
    since AF_INET is the one family pystack serves."""
    if isinstance(host, bytes):
        host = host.decode("idna")
    family, type, flags = int(family), int(type), int(flags)
    if family not in (_stdsocket.AF_UNSPEC, _stdsocket.AF_INET):
        if family == _stdsocket.AF_INET6:
            raise _stdsocket.gaierror(_stdsocket.EAI_ADDRFAMILY,
                                      "Address family for hostname not supported")
        raise _stdsocket.gaierror(_stdsocket.EAI_FAMILY, "ai_family not supported")
    if host is None or host == "":
        if host == "" or port is None:
            raise _stdsocket.gaierror(_stdsocket.EAI_NONAME, "Name or service not known")
        addr = 0 if flags & _stdsocket.AI_PASSIVE else 0x7F000001
    else:
        try:
            addr = ip_int(host)
        except ValueError:
            if ":" in host:  # an IPv6 literal: a family pystack does not serve
                raise _stdsocket.gaierror(_stdsocket.EAI_ADDRFAMILY,
                                          "Address family for hostname not supported") from None
            if flags & _stdsocket.AI_NUMERICHOST:
                raise _stdsocket.gaierror(_stdsocket.EAI_NONAME,
                                          "Name or service not known") from None
            addr = task.host.resolve(host)
            if addr is None:
                raise _stdsocket.gaierror(_stdsocket.EAI_NONAME,
                                          "Name or service not known") from None
    canon = host if (flags & _stdsocket.AI_CANONNAME and host) else ""
    out = []
    for stype, sproto in _GAI_TYPES:
        if type and stype != type:
            continue
        if proto and sproto and proto != sproto:
            continue
        pnum = _gai_port(port, stype)
        if pnum is None:
            continue
        out.append((_stdsocket.AF_INET, _stdsocket.SocketKind(stype), proto or sproto, canon,
                    (ip_str(addr), pnum)))
        canon = ""
    if not out:
        if isinstance(port, str) and not port.isdigit():
            raise _stdsocket.gaierror(_stdsocket.EAI_SERVICE,
                                      "Servname not supported for ai_socktype")
        raise _stdsocket.gaierror(_stdsocket.EAI_SOCKTYPE, "ai_socktype not supported")
    return out


def emulated_getnameinfo(task: "Task", sockaddr: Any, flags: int) -> tuple[str, str]:
    host, port = sockaddr[0], sockaddr[1]
    name = host
    if not flags & _stdsocket.NI_NUMERICHOST:
        addr = ip_int(host)
        if addr >> 24 == 127:
            name = "localhost"
        else:
            for other in task.host.network.hosts.values():
                if other._first_address() == addr:
                    name = other.name
                    break
    serv = str(port)
    if not flags & _stdsocket.NI_NUMERICSERV:
        try:
            serv = _stdsocket.getservbyport(port, "udp" if flags & _stdsocket.NI_DGRAM else "tcp")
        except OSError:
            pass
    return name, serv


class SocketFactory(trio.abc.SocketFactory):
    """trio's socket factory: an emulated socket inside a process context, a real one outside."""

    def socket(self, family: int = AF_INET, type: int = _stdsocket.SOCK_STREAM,
               proto: int = 0) -> trio.socket.SocketType:
        task = current_task()
        if task is None:
            # The module's current class: with the blocking face installed, that is its
            # subclass, which trio's from_stdlib_socket type check expects.
            return trio.socket.from_stdlib_socket(_stdsocket.socket(family, type, proto))
        if int(family) == _stdsocket.AF_INET6:
            # A kernel built without IPv6 answers so; trio's open_tcp_listeners skips the family.
            raise OSError(errno.EAFNOSUPPORT, os.strerror(errno.EAFNOSUPPORT))
        # trio's sockets are non-blocking under the hood and wait in the async methods; the
        # emulated file stays blocking so the syscalls wait.
        type = int(type) & ~_stdsocket.SOCK_NONBLOCK
        return EmulatedSocket.create(task, family, type, proto)

    def is_trio_socket(self, obj: object) -> bool:
        return isinstance(obj, trio.socket.SocketType)


class HostnameResolver(trio.abc.HostnameResolver):
    """Names as the current process's host knows them; the real resolver outside processes."""

    async def getaddrinfo(self, host: Any, port: Any, family: int = 0, type: int = 0,
                          proto: int = 0, flags: int = 0) -> list[tuple]:
        task = current_task()
        if task is None:
            return await trio.to_thread.run_sync(_REAL_GETADDRINFO, host, port, family, type,
                                                 proto, flags, abandon_on_cancel=True)
        await trio.lowlevel.checkpoint()
        return emulated_getaddrinfo(task, host, port, family, type, proto, flags)

    async def getnameinfo(self, sockaddr: Any, flags: int) -> tuple[str, str]:
        task = current_task()
        if task is None:
            return await trio.to_thread.run_sync(_REAL_GETNAMEINFO, sockaddr, flags,
                                                 abandon_on_cancel=True)
        await trio.lowlevel.checkpoint()
        return emulated_getnameinfo(task, sockaddr, flags)


def install() -> None:
    """Install the factory and resolver in the running trio run (idempotent). Code in a process
    context then reaches its host through `trio.socket`, `open_tcp_stream`, `serve_tcp`..."""
    trio.socket.set_custom_socket_factory(SocketFactory())
    trio.socket.set_custom_hostname_resolver(HostnameResolver())

"""The system calls of a packetdrill script, made by one emulated process on the host under
test through pystack.net.socket's sys_* functions.

Read first: packetdrill's run_system_call.c (each syscall_* function: which arguments it takes,
what `...` stands for, how the result and errno are checked: end_syscall), then
pystack/net/socket.py for the calls underneath.

What `...` means, as in packetdrill: a socket address is the harness's address (bind: the
local address and port 8080; connect/sendto: the remote address and port 8080); a buffer is
`count` zero bytes to send, or room for `count` bytes to receive. Descriptors in the script are
mapped to the live ones (they are the same numbers here, 3 upwards, but the mapping is kept as
packetdrill keeps it). A result of `-1 ERRNO` must fail with that errno; socket() and accept()
only need a non-negative result when one is expected.

Not modelled (reported as unsupported): epoll, sendfile, splice, pipe, open, cmsgs; a NULL
buffer is answered with EFAULT here, since pystack has no user memory to fault on.
"""

from __future__ import annotations

import errno
import math
import os
import struct
from typing import TYPE_CHECKING, Any

import trio

from ..kernel.errors import KernelError
from ..net import socket as syscalls
from ..net.core.wait import sk_wait_event
from . import ast
from .expr import ELLIPSIS, ScriptError, Unsupported, evaluate
from .matcher import Endpoint, SocketModel, SocketState
from .symbols import SYMBOLS, errno_name, lookup

if TYPE_CHECKING:
    from .runner import State

__all__ = ["run_syscall", "Unsupported", "ScriptError"]


AF_INET, AF_UNSPEC = 2, 0
SOCK_STREAM, SOCK_DGRAM = 1, 2
IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP = 6, 17, 1
O_RDWR, O_NONBLOCK = 2, 0o4000
MSG_PEEK = 0x2
POLLERR, POLLHUP, POLLNVAL = 0x8, 0x10, 0x20
_SETFL_MASK = 0o2000 | 0o4000 | 0o20000 | 0o40000 | 0o1000000  # APPEND NONBLOCK ASYNC DIRECT NOATIME


# --- the syscall layer ------------------------------------------------------------------------

class _Result:
    """What a call did: its return value and errno (0 on success)."""
    __slots__ = ("value", "errno")

    def __init__(self, value: int, err: int = 0):
        self.value = value
        self.errno = err


def _fail(err: int) -> _Result:
    return _Result(-1, err)


async def run_syscall(state: "State", ev: ast.SyscallEvent) -> None:
    """Run one syscall line and check its result; raises ScriptError / Unsupported."""
    handler = _HANDLERS.get(ev.name)
    if handler is None:
        if ev.name in _UNSUPPORTED:
            raise Unsupported(f"syscall {ev.name}")
        raise ScriptError(f"Unknown system call: '{ev.name}'")
    args = [evaluate(a, state.cfg.defines) for a in ev.args]
    expected = evaluate(ev.result, state.cfg.defines)
    if not isinstance(expected, int):
        raise ScriptError(f"a syscall's result must be an integer, not {expected!r}")
    await handler(_Call(state, ev, args, expected))


class _Call:
    """One syscall being made: the state, the line, its evaluated arguments."""

    def __init__(self, state: "State", ev: ast.SyscallEvent, args: list, expected: int):
        self.state = state
        self.ev = ev
        self.args = args
        self.expected = expected
        self.task = state.task

    def nargs(self, *counts: int) -> None:
        if len(self.args) not in counts:
            want = " or ".join(str(c) for c in counts)
            raise ScriptError(f"{self.ev.name} expected {want} args but got {len(self.args)}")

    def int_arg(self, i: int) -> int:
        v = self.args[i]
        if isinstance(v, list) and len(v) == 1 and isinstance(v[0], int):
            return v[0]
        if not isinstance(v, int):
            raise ScriptError(f"argument {i + 1} of {self.ev.name} must be an integer")
        return v

    def fd_arg(self, i: int = 0) -> int:
        script_fd = self.int_arg(i)
        live = self.state.fds.get(script_fd)
        if live is None:
            # An fd the script never opened: pass it on, so the kernel answers EBADF.
            return script_fd
        return live

    def is_null(self, i: int) -> bool:
        v = self.args[i]
        if v is ELLIPSIS:
            return False
        if v == 0:
            return True
        raise ScriptError("Expected ... or NULL for buffer")

    def check(self, result: _Result, fd_mode: bool = False) -> None:
        """end_syscall."""
        exp = self.expected
        act, err = result.value, result.errno
        if fd_mode and exp >= 0:
            if act < 0:
                raise ScriptError(f"Expected non-negative result but got {act} with errno "
                                  f"{_errno_text(err)}")
        elif act != exp:
            raise ScriptError(f"Expected result {exp} but got {act} with errno "
                              f"{_errno_text(err)}")
        if self.ev.errno is not None:
            want = lookup(self.ev.errno)
            if want is None:
                raise ScriptError(f"unknown errno {self.ev.errno}")
            if err != want:
                raise ScriptError(f"Expected errno {_errno_text(want)} but got "
                                  f"{_errno_text(err)}")

    def model(self, live_fd: int) -> SocketModel | None:
        for m in self.state.sockets:
            if m.live_fd == live_fd and not m.closed:
                return m
        return None


def _errno_text(err: int) -> str:
    if not err:
        return "0 (Success)"
    return f"{err} {errno_name(err)} ({os.strerror(err)})"


async def _sys(coro_or_fn: Any, *args: Any) -> Any:
    """Call a sys_* function; an OSError becomes a _Result failure, anything else passes."""
    try:
        result = coro_or_fn(*args)
        if hasattr(result, "__await__"):
            result = await result
        return result
    except KernelError as e:  # should have been turned into OSError at the edge
        return _fail(e.errno)
    except OSError as e:
        return _fail(e.errno or errno.EIO)


def _sockaddr(call: _Call, i: int, default: Endpoint) -> tuple[int, int, int]:
    """(family, addr, port) of a sockaddr argument; `...` is `default`."""
    v = call.args[i]
    if v is ELLIPSIS:
        return AF_INET, default.ip, default.port
    if isinstance(v, int):  # a bare family, as in connect(fd, AF_UNSPEC, ...)
        return v, 0, 0
    if isinstance(v, dict):
        family = v.get("sa_family", v.get("sin_family", AF_INET))
        return family, v.get("sin_addr", 0), v.get("sin_port", 0)
    raise ScriptError(f"bad socket address argument {v!r}")


# --- the calls --------------------------------------------------------------------------------

async def _socket(call: _Call) -> None:
    call.nargs(3)
    domain = AF_INET if call.args[0] is ELLIPSIS else call.int_arg(0)
    stype, proto = call.int_arg(1), call.int_arg(2)
    res = await _sys(syscalls.sys_socket, call.task, domain, stype, proto)
    result = res if isinstance(res, _Result) else _Result(res)
    call.check(result, fd_mode=True)
    if result.value >= 0:
        st = call.state
        script_fd = call.expected
        if script_fd in st.fds:
            raise ScriptError(f"duplicate fd {script_fd} in script")
        st.fds[script_fd] = result.value
        if not proto:
            proto = IPPROTO_TCP if stype & 0xF == SOCK_STREAM else IPPROTO_UDP
        model = SocketModel(state=SocketState.NEW, protocol=proto, type=stype & 0xF,
                            script_fd=script_fd, live_fd=result.value)
        st.sockets.append(model)
        st.socket_under_test = model


async def _bind(call: _Call) -> None:
    call.nargs(3)
    fd = call.fd_arg()
    cfg = call.state.cfg
    family, addr, port = _sockaddr(call, 1, Endpoint(cfg.local_ip, cfg.bind_port))
    res = await _sys(syscalls.sys_bind, call.task, fd, family, addr, port)
    call.check(res if isinstance(res, _Result) else _Result(0))


async def _listen(call: _Call) -> None:
    call.nargs(2)
    fd = call.fd_arg()
    res = await _sys(syscalls.sys_listen, call.task, fd, call.int_arg(1))
    call.check(res if isinstance(res, _Result) else _Result(0))
    model = call.model(fd)
    if model is None:
        raise ScriptError(f"unable to find socket with script fd {call.int_arg(0)}")
    model.state = SocketState.PASSIVE_LISTENING


async def _accept(call: _Call) -> None:
    call.nargs(3, 4)
    fd = call.fd_arg()
    flags = call.int_arg(3) if len(call.args) == 4 else 0
    res = await _sys(syscalls.sys_accept4, call.task, fd, flags)
    result = res if isinstance(res, _Result) else _Result(res[0])
    call.check(result, fd_mode=True)
    if result.value < 0:
        return
    st = call.state
    for model in st.sockets:
        if model.state in (SocketState.PASSIVE_SYNACK_SENT, SocketState.PASSIVE_SYNACK_ACKED) \
                and model.live_fd < 0:
            model.script_fd = call.expected
            model.live_fd = result.value
            st.fds[call.expected] = result.value
            return
    raise ScriptError("unable to find socket matching accept() call")


def _prepare_connect(call: _Call, i: int) -> tuple[int, int, int]:
    """run_syscall_connect: the live destination, and the socket model's new state."""
    cfg = call.state.cfg
    dest = _sockaddr(call, i, Endpoint(cfg.remote_ip, cfg.connect_port))
    model = call.model(call.fd_arg())
    if model is not None:
        if dest[0] == AF_UNSPEC:
            model.state = SocketState.NEW
        elif model.state == SocketState.NEW:
            model.state = SocketState.ACTIVE_CONNECTING
            model.script_local = Endpoint()
            model.script_remote = Endpoint()
            model.live_remote = Endpoint(dest[1], dest[2])
    return dest


async def _connect(call: _Call) -> None:
    call.nargs(3)
    fd = call.fd_arg()
    family, addr, port = _prepare_connect(call, 1)
    res = await _sys(syscalls.sys_connect, call.task, fd, family, addr, port)
    call.check(res if isinstance(res, _Result) else _Result(0))


async def _send_common(call: _Call, fd: int, count: int, null: bool, flags: int,
                       dest: tuple[int, int, int] | None) -> None:
    if null and count > 0:
        res: Any = await _sys(syscalls.sockfd_lookup, call.task, fd)
        if not isinstance(res, _Result):
            res = _fail(errno.EFAULT)  # the kernel's copy_from_user(NULL) fails
    else:
        res = await _sys(syscalls.sys_sendto, call.task, fd, bytes(count), flags, dest)
    call.check(res if isinstance(res, _Result) else _Result(res))


async def _write(call: _Call) -> None:
    call.nargs(3)
    await _send_common(call, call.fd_arg(), call.int_arg(2), call.is_null(1), 0, None)


async def _send(call: _Call) -> None:
    call.nargs(4)
    await _send_common(call, call.fd_arg(), call.int_arg(2), call.is_null(1),
                       call.int_arg(3), None)


async def _sendto(call: _Call) -> None:
    call.nargs(6)
    fd = call.fd_arg()
    null = call.is_null(1)
    dest = _prepare_connect(call, 4)
    await _send_common(call, fd, call.int_arg(2), null, call.int_arg(3), dest)


async def _recv_common(call: _Call, fd: int, count: int, null: bool, flags: int) -> Any:
    if null and count > 0:
        res = await _sys(syscalls.sys_recvfrom, call.task, fd, count, flags | MSG_PEEK)
        if not isinstance(res, _Result) and res[3] > 0:
            res = _fail(errno.EFAULT)  # data to copy, nowhere to copy it to
    else:
        res = await _sys(syscalls.sys_recvfrom, call.task, fd, count, flags)
    call.check(res if isinstance(res, _Result) else _Result(res[3]))
    return res


async def _read(call: _Call) -> None:
    call.nargs(3)
    await _recv_common(call, call.fd_arg(), call.int_arg(2), call.is_null(1), 0)


async def _recv(call: _Call) -> None:
    call.nargs(4)
    await _recv_common(call, call.fd_arg(), call.int_arg(2), call.is_null(1), call.int_arg(3))


async def _recvfrom(call: _Call) -> None:
    call.nargs(6)
    await _recv_common(call, call.fd_arg(), call.int_arg(2), call.is_null(1), call.int_arg(3))


def _iov_len(v: Any) -> int:
    if not isinstance(v, list):
        raise ScriptError("expected an iovec array")
    total = 0
    for item in v:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], int):
            total += item[1]
        elif isinstance(item, dict) and isinstance(item.get("iov_len"), int):
            total += item["iov_len"]
        else:
            raise ScriptError(f"bad iovec {item!r}")
    return total


def _msghdr(call: _Call, i: int) -> dict:
    v = call.args[i]
    if not isinstance(v, dict):
        raise ScriptError("expected a msghdr {msg_name(...)=..., msg_iov(N)=[...], ...}")
    if v.get("msg_control") not in (None, []):
        raise Unsupported(f"{call.ev.name} with control messages (cmsg)")
    return v


async def _writev(call: _Call) -> None:
    call.nargs(3)
    await _send_common(call, call.fd_arg(), _iov_len(call.args[1]), False, 0, None)


async def _readv(call: _Call) -> None:
    call.nargs(3)
    await _recv_common(call, call.fd_arg(), _iov_len(call.args[1]), False, 0)


async def _sendmsg(call: _Call) -> None:
    call.nargs(3)
    fd = call.fd_arg()
    msg = _msghdr(call, 1)
    dest = None
    if call.ev.args and msg.get("msg_name", ELLIPSIS) is not ELLIPSIS:
        raise Unsupported("sendmsg with an explicit msg_name")
    await _send_common(call, fd, _iov_len(msg.get("msg_iov", [])), False, call.int_arg(2), dest)


async def _recvmsg(call: _Call) -> None:
    call.nargs(3)
    msg = _msghdr(call, 1)
    res = await _recv_common(call, call.fd_arg(), _iov_len(msg.get("msg_iov", [])), False,
                             call.int_arg(2))
    want = msg.get("msg_flags", 0)
    if not isinstance(res, _Result) and isinstance(want, int) and res[2] != want:
        raise ScriptError(f"Expected msg_flags 0x{want:08X} but got 0x{res[2]:08X}")


async def _close(call: _Call) -> None:
    call.nargs(1)
    fd = call.fd_arg()
    res = await _sys(syscalls.sys_close, call.task, fd)
    call.check(res if isinstance(res, _Result) else _Result(0))
    model = call.model(fd)
    if model is not None:
        model.closed = True
    call.state.fds.pop(call.int_arg(0), None)


async def _shutdown(call: _Call) -> None:
    call.nargs(2)
    res = await _sys(syscalls.sys_shutdown, call.task, call.fd_arg(), call.int_arg(1))
    call.check(res if isinstance(res, _Result) else _Result(0))


def _optval_for_set(call: _Call, v: Any, optlen: int) -> Any:
    if isinstance(v, list) and len(v) == 1 and isinstance(v[0], int):
        return v[0]
    if isinstance(v, int):
        return v
    if isinstance(v, bytes):
        return v
    if isinstance(v, dict) and set(v) == {"l_onoff", "l_linger"}:
        return struct.pack("<ii", v["l_onoff"], v["l_linger"])
    if isinstance(v, dict) and set(v) == {"tv_sec", "tv_usec"}:
        return struct.pack("<qq", v["tv_sec"], v["tv_usec"])
    raise Unsupported(f"setsockopt value {v!r}")


async def _setsockopt(call: _Call) -> None:
    call.nargs(5)
    level, name, optlen = call.int_arg(1), call.int_arg(2), call.int_arg(4)
    val = _optval_for_set(call, call.args[3], optlen)
    res = await _sys(syscalls.sys_setsockopt, call.task, call.fd_arg(), level, name, val)
    call.check(res if isinstance(res, _Result) else _Result(0))


async def _getsockopt(call: _Call) -> None:
    call.nargs(5)
    level, name = call.int_arg(1), call.int_arg(2)
    want_len = call.int_arg(4)
    res = await _sys(syscalls.sys_getsockopt, call.task, call.fd_arg(), level, name)
    if isinstance(res, _Result):
        call.check(res)
        return
    call.check(_Result(0))
    want = call.args[3]
    if isinstance(want, bytes):
        actual = res if isinstance(res, (bytes, bytearray)) else str(res).encode()
        actual = bytes(actual)[:want_len]
        if len(actual) != want_len:
            raise ScriptError(f"Bad getsockopt optlen: expected: {want_len} actual: "
                              f"{len(actual)}")
        if actual != want:
            raise ScriptError(f"Bad getsockopt optval: expected: '{want.decode(errors='replace')}'"
                              f" actual: '{actual.decode(errors='replace')}'")
        return
    if isinstance(want, list) and len(want) == 1 and isinstance(want[0], int):
        if want_len != 4:
            raise ScriptError(f"Unsupported getsockopt optlen: {want_len}")
        if isinstance(res, (bytes, bytearray)):
            if len(res) != 4:
                raise ScriptError(f"Bad getsockopt optlen: expected: 4 actual: {len(res)}")
            res = int.from_bytes(res, "little", signed=True)
        if not isinstance(res, int):
            raise Unsupported(f"getsockopt returning {type(res).__name__}")
        if res != want[0]:
            raise ScriptError(f"Bad getsockopt optval: expected: {want[0]} actual: {res}")
        return
    raise ScriptError(f"unsupported getsockopt value type: {want!r}")


async def _fcntl(call: _Call) -> None:
    call.nargs(2, 3)
    fd = call.fd_arg()
    cmd = call.int_arg(1)
    try:
        file = call.task.files.fget(fd)
    except KernelError as e:
        call.check(_fail(e.errno))
        return
    if cmd == SYMBOLS["F_GETFL"]:
        call.check(_Result(file.f_flags | O_RDWR))
    elif cmd == SYMBOLS["F_SETFL"]:
        arg = call.int_arg(2) if len(call.args) == 3 else 0
        file.f_flags = (file.f_flags & ~_SETFL_MASK) | (arg & _SETFL_MASK)
        call.check(_Result(0))
    elif cmd == SYMBOLS["F_GETFD"]:
        call.check(_Result(1 if fd in call.task.files.cloexec else 0))
    elif cmd == SYMBOLS["F_SETFD"]:
        arg = call.int_arg(2) if len(call.args) == 3 else 0
        if arg & 1:
            call.task.files.cloexec.add(fd)
        else:
            call.task.files.cloexec.discard(fd)
        call.check(_Result(0))
    else:
        raise Unsupported(f"fcntl command {cmd}")


_IOCTL_NAMES = {0x541B: "SIOCINQ", 0x5411: "SIOCOUTQ", 0x894B: "SIOCOUTQNSD"}


async def _ioctl(call: _Call) -> None:
    call.nargs(2, 3)
    fd = call.fd_arg()
    cmd = call.int_arg(1)
    name = _IOCTL_NAMES.get(cmd, hex(cmd))
    try:
        _file, sock = syscalls.sockfd_lookup(call.task, fd)
    except KernelError as e:
        call.check(_fail(e.errno))
        return
    fn = getattr(sock.ops, "ioctl", None)
    if fn is None:
        fn = getattr(sock.sk.sk_prot, "ioctl", None)
        target: Any = sock.sk
    else:
        target = sock
    if fn is None:
        raise Unsupported(f"ioctl {name} (the socket offers no ioctl)")
    try:
        value = fn(target, cmd)
    except KernelError as e:
        call.check(_fail(e.errno))
        return
    call.check(_Result(0))
    if len(call.args) == 3:
        want = call.int_arg(2)
        if value != want:
            raise ScriptError(f"Bad ioctl optval: expected: {want} actual: {value}")


async def _poll(call: _Call) -> None:
    call.nargs(3)
    fds = call.args[0]
    if not isinstance(fds, list) or not all(isinstance(p, dict) for p in fds):
        raise ScriptError("poll expects [{fd=N, events=MASK[, revents=MASK]}, ...]")
    timeout_ms = call.int_arg(2)
    deadline = math.inf if timeout_ms < 0 else trio.current_time() + timeout_ms / 1000
    st = call.state

    def scan() -> list[int]:
        out = []
        for p in fds:
            live = st.fds.get(p["fd"], p["fd"])
            try:
                mask = syscalls.sys_poll(call.task, live)
            except OSError:
                mask = POLLNVAL
            out.append(mask & (p.get("events", 0) | POLLERR | POLLHUP | POLLNVAL))
        return out

    while True:
        revents = scan()
        ready = sum(1 for r in revents if r)
        if ready or trio.current_time() >= deadline:
            break
        sk = None
        for p in fds:
            try:
                _f, sock = syscalls.sockfd_lookup(call.task, st.fds.get(p["fd"], p["fd"]))
                sk = sock.sk
                break
            except KernelError:
                continue
        if sk is None:
            await trio.sleep_until(deadline)
        else:
            await sk_wait_event(sk, deadline)
    call.check(_Result(ready))
    for p, r in zip(fds, revents):
        if "revents" in p and p["revents"] != r:
            raise ScriptError(f"Expected revents 0x{p['revents']:x} for fd {p['fd']} but got "
                              f"0x{r:x}")


_HANDLERS = {
    "socket": _socket, "bind": _bind, "listen": _listen, "accept": _accept,
    "accept4": _accept, "connect": _connect, "read": _read, "write": _write,
    "send": _send, "sendto": _sendto, "recv": _recv, "recvfrom": _recvfrom,
    "readv": _readv, "writev": _writev, "sendmsg": _sendmsg, "recvmsg": _recvmsg,
    "close": _close, "shutdown": _shutdown, "setsockopt": _setsockopt,
    "getsockopt": _getsockopt, "fcntl": _fcntl, "ioctl": _ioctl, "poll": _poll,
}
_UNSUPPORTED = {"epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "sendfile",
                "splice", "pipe", "open", "cap_set", "psp_rx_assoc", "psp_tx_assoc"}

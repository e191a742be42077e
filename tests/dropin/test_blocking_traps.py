"""The traps DESIGN.md §5 lists for the blocking face, one test each, and the errors the real
socket module gives.

Read first: pystack/dropin/blocking.py, DESIGN.md §5 ("traps known in advance").
"""

from __future__ import annotations

import errno
import select
import selectors
import socket

import pytest
import trio

import pystack
from pystack.dropin import blocking


@pytest.fixture
def face():
    with blocking.installed():
        yield


async def _in_process(fn, *args):
    async with pystack.Network(seed=5) as net:
        a, b = net.add_host("a"), net.add_host("b")
        net.add_link(a, b, subnet="10.0.0.0/24")
        async with a.process("p"):
            return await trio.to_thread.run_sync(fn, *args)


async def test_fileno_rebuilds_real_for_a_real_fd_and_emulated_for_an_emulated_one(face):
    def proc():
        real = blocking._real["socket"](socket.AF_INET, socket.SOCK_DGRAM)
        emu = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            real_fd = real.detach()
            again_real = socket.socket(fileno=real_fd)
            again_emu = socket.socket(fileno=emu.detach())
            with again_real, again_emu:
                return (blocking._emu(again_real) is None, blocking._emu(again_emu) is not None,
                        again_emu.type, again_real.fileno() == real_fd)
        finally:
            real.close()

    assert await _in_process(proc) == (True, True, socket.SOCK_DGRAM, True)


async def test_class_methods_fall_back_to_the_real_implementation_for_a_real_self(face):
    def proc():
        r1, r2 = socket.socketpair()  # AF_UNIX: stays real
        with r1, r2:
            socket.socket.sendall(r1, b"via the class")
            got = socket.socket.recv(r2, 100)
        with socket.socket() as e:
            return got, r1.family, type(e) is socket.socket, isinstance(r1, socket.socket)

    assert await _in_process(proc) == (b"via the class", socket.AF_UNIX, True, True)


async def test_one_selector_waits_on_real_and_emulated_fds_together(face):
    def proc():
        r1, r2 = socket.socketpair()
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        with r1, r2, u, selectors.DefaultSelector() as sel:
            sel.register(r2, selectors.EVENT_READ, "real")
            sel.register(u, selectors.EVENT_READ, "emulated")
            assert sel.select(timeout=0) == []
            r1.send(b"x")
            first = sorted(k.data for k, _ in sel.select(timeout=5))
            r2.recv(1)
            u.sendto(b"y", u.getsockname())
            second = sorted(k.data for k, _ in sel.select(timeout=5))
            return first, second

    assert await _in_process(proc) == (["real"], ["emulated"])


async def test_machinery_outside_processes_keeps_the_real_select(face):
    # trio's own I/O manager and code outside a process context get the real objects.
    ep = select.epoll()
    with ep:
        assert type(ep) is blocking._real["epoll"]
    assert type(select.poll()) is type(blocking._real["poll"]())
    s = trio.socket.socket()  # trio's from_stdlib_socket type check holds for real sockets
    s.close()


async def test_linux_defaults_and_name_resolution_in_bind(face):
    def proc():
        with socket.socket() as s:
            default = s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
            s.bind(("localhost", 0))
            return default, s.getsockname()[0]

    assert await _in_process(proc) == (0, "127.0.0.1")


async def test_dup_and_detach(face):
    def proc():
        a, b = socket.socketpair(socket.AF_INET)
        with a, b:
            d = a.dup()
            fds = (a.fileno(), d.fileno())
            a.close()
            d.sendall(b"still open")
            d.close()
            return fds[0] != fds[1], b.recv(100), a.fileno()

    assert await _in_process(proc) == (True, b"still open", -1)


async def test_accept_timeout_is_socket_timeout(face):
    def proc():
        with socket.create_server(("", 0)) as s:
            s.settimeout(30)
            try:
                s.accept()
            except socket.timeout as e:
                return type(e), str(e)

    assert await _in_process(proc) == (TimeoutError, "timed out")


async def test_reset_peer_gives_connection_reset_and_broken_pipe(face):
    import struct

    def proc():
        with socket.create_server(("", 0)) as srv:
            c = socket.create_connection(("127.0.0.1", srv.getsockname()[1]))
            conn, _ = srv.accept()
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()  # linger 0: an RST
            out = []
            try:
                c.recv(10)
            except ConnectionResetError as e:
                out.append(e.errno)
            try:
                c.sendall(b"x")
            except BrokenPipeError as e:
                out.append(e.errno)
            c.close()
            return out

    assert await _in_process(proc) == [errno.ECONNRESET, errno.EPIPE]


async def test_af_inet6_is_not_served(face):
    def proc():
        try:
            socket.socket(socket.AF_INET6)
        except OSError as e:
            return e.errno, socket.has_dualstack_ipv6()

    assert await _in_process(proc) == (errno.EAFNOSUPPORT, False)


async def test_connect_to_inaddr_any_reaches_the_local_listener(face):
    def proc():
        with socket.create_server(("", 0)) as srv:
            with socket.create_connection(srv.getsockname(), timeout=5) as c:
                return c.getpeername()[0]

    assert await _in_process(proc) == "127.0.0.1"


async def test_an_unreferenced_socket_warns_and_its_descriptor_is_closed(face):
    import gc

    def proc():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        fd = s.fileno()
        with pytest.warns(ResourceWarning, match="unclosed <socket.socket"):
            del s
            gc.collect()
        return fd

    async with pystack.Network(seed=5) as net:
        a = net.add_host("a")
        async with a.process("p") as task:
            fd = await trio.to_thread.run_sync(proc)
            await trio.sleep(0)
            assert fd not in task.files.open_fds()


async def test_select_tells_a_real_socket_from_an_emulated_one_with_the_same_number(face):
    def proc():
        emu = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(40)]
        r1, r2 = socket.socketpair()  # real fds: some emulated socket has the same number
        try:
            twin = next(e for e in emu if e.fileno() == r2.fileno())
            twin.bind(("127.0.0.1", 0))
            twin.sendto(b"x", twin.getsockname())  # the emulated twin is readable
            readable, _, _ = select.select([r2], [], [], 0)
            r1.send(b"y")
            readable2, _, _ = select.select([r2], [], [], 5)
            return readable, readable2 == [r2]
        finally:
            r1.close(), r2.close()
            for e in emu:
                e.close()

    assert await _in_process(proc) == ([], True)


async def test_trio_factory_outside_processes_with_the_blocking_face_installed(face):
    from pystack.dropin.trio import install
    async with pystack.Network(seed=5):
        install()
        s = trio.socket.socket()  # the real factory path; from_stdlib_socket accepts it
        try:
            assert type(s).__name__ != "EmulatedSocket"
        finally:
            s.close()


async def test_connect_timeout_on_a_silent_network_is_socket_timeout(face):
    def proc():
        with socket.socket() as s:
            s.settimeout(5)
            try:
                s.connect(("b", 80))
            except socket.timeout as e:
                return str(e)

    async with pystack.Network(seed=5) as net:
        a, b = net.add_host("a"), net.add_host("b")
        link = net.add_link(a, b, subnet="10.0.0.0/24")
        await a.ping("10.0.0.2")  # the neighbour is known: only the SYNs will be lost
        link.set(loss=1.0)
        async with a.process("p"):
            start = trio.current_time()
            assert await trio.to_thread.run_sync(proc) == "timed out"
            assert trio.current_time() - start == pytest.approx(5)

"""The blocking socket face: socket-module code in threads of a process context.

Read first: pystack/dropin/blocking.py (the module docstring: dispatch by context, the time
guard).
"""

from __future__ import annotations

import errno
import select
import selectors
import socket
import time

import pytest
import trio

import pystack
from pystack.dropin import blocking


@pytest.fixture
def face():
    with blocking.installed():
        yield


def _two_hosts(net: pystack.Network):
    a, b = net.add_host("a"), net.add_host("b")
    net.add_link(a, b, subnet="10.0.0.0/24")
    return a, b


async def _run(host: pystack.Host, name: str, fn, *args):
    async with host.process(name):
        return await trio.to_thread.run_sync(fn, *args)


def _echo_server(port: int, ready: list) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("", port))
        s.listen()
        ready.append(s.getsockname())
        conn, _addr = s.accept()
        with conn:
            got = b""
            while True:
                data = conn.recv(1024)
                if not data:
                    return got
                got += data
                conn.sendall(data)


async def test_echo_between_hosts_with_makefile(face) -> None:
    ready: list = []

    def client() -> list:
        with socket.create_connection(("b", 5000)) as s:
            assert type(s) is socket.socket and s.fileno() >= 3
            f = s.makefile("rwb")
            f.write(b"one\ntwo\n")
            f.flush()
            lines = [f.readline(), f.readline()]
            f.close()
            s.shutdown(socket.SHUT_WR)
            return lines

    async with pystack.Network(seed=3) as net:
        a, b = _two_hosts(net)
        async with trio.open_nursery() as nursery:
            server = []

            async def serve():
                server.append(await _run(b, "server", _echo_server, 5000, ready))
            nursery.start_soon(serve)
            while not ready:  # the server thread has bound and listens (trio's
                await trio.sleep(0.01)  # wait_all_tasks_blocked cannot see threads)
            assert await _run(a, "client", client) == [b"one\n", b"two\n"]
    assert ready == [("0.0.0.0", 5000)]
    assert server == [b"one\ntwo\n"]


async def test_settimeout_on_silent_peer_raises_socket_timeout_fast(face) -> None:
    def client() -> str:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(3600)
            s.sendto(b"anyone?", ("b", 9))
            try:
                s.recvfrom(100)
            except socket.timeout as e:
                return str(e)
            return "no timeout"

    async with pystack.Network(seed=3) as net:
        a, _b = _two_hosts(net)
        wall, virtual = time.monotonic(), trio.current_time()
        assert await _run(a, "client", client) == "timed out"
        assert trio.current_time() - virtual == pytest.approx(3600)
        assert time.monotonic() - wall < 1.0


async def test_clock_does_not_jump_while_a_thread_runs_application_code(face) -> None:
    import threading

    def proc() -> bytes:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            s.settimeout(0.5)
            port = s.getsockname()[1]

            def sender() -> None:
                time.sleep(0.05)  # application work while every trio task is blocked
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as t:
                    t.sendto(b"x", ("127.0.0.1", port))
            th = threading.Thread(target=sender)
            th.start()
            try:
                return s.recv(10)  # times out early if the clock jumps during the sleep
            finally:
                th.join()

    async with pystack.Network(seed=3) as net:
        a, _b = _two_hosts(net)
        start = trio.current_time()
        assert await _run(a, "p", proc) == b"x"
        assert trio.current_time() - start < 0.5


async def test_errors_are_the_socket_modules(face) -> None:
    def client() -> list:
        out = []
        with socket.socket() as s:
            try:
                s.connect(("b", 9))
            except ConnectionRefusedError as e:
                out.append(e.errno)
        with socket.socket() as s1, socket.socket() as s2:
            s1.bind(("", 6000))
            try:
                s2.bind(("", 6000))
            except OSError as e:
                out.append(e.errno)
        with socket.socket() as s:
            s.setblocking(False)
            try:
                s.connect(("b", 9))
            except BlockingIOError as e:
                out.append(e.errno)
            out.append(s.connect_ex(("b", 9)) in (errno.EALREADY, errno.ECONNREFUSED))
        with socket.socket() as s:
            out.append(s.connect_ex(("b", 9)))
            out.append(s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
        return out

    async with pystack.Network(seed=3) as net:
        a, _b = _two_hosts(net)
        assert await _run(a, "client", client) == [
            errno.ECONNREFUSED, errno.EADDRINUSE, errno.EINPROGRESS, True,
            errno.ECONNREFUSED, 0]


async def test_nonblocking_recv_raises_blocking_io_error(face) -> None:
    def proc() -> list:
        a, b = socket.socketpair(socket.AF_INET)
        with a, b:
            b.setblocking(False)
            out = [b.getblocking(), b.gettimeout()]
            try:
                b.recv(10)
            except BlockingIOError as e:
                out.append(e.errno)
            a.sendall(b"hi")
            buf = bytearray(10)
            r, _w, _x = select.select([b], [], [], 5)
            out.append(r == [b])
            out.append(b.recv_into(buf))
            return out

    async with pystack.Network(seed=3) as net:
        a, _b = _two_hosts(net)
        assert await _run(a, "p", proc) == [False, 0.0, errno.EAGAIN, True, 2]


async def test_selectors_echo(face) -> None:
    def proc() -> bytes:
        sel = selectors.DefaultSelector()
        lsock = socket.create_server(("127.0.0.1", 0))
        lsock.setblocking(False)
        sel.register(lsock, selectors.EVENT_READ)
        c = socket.create_connection(lsock.getsockname())
        c.sendall(b"ping")
        got = b""
        while not got:
            for key, _ev in sel.select(timeout=10):
                if key.fileobj is lsock:
                    conn, _ = lsock.accept()
                    sel.register(conn, selectors.EVENT_READ)
                else:
                    data = key.fileobj.recv(100)
                    key.fileobj.sendall(data.upper())
                    got = c.recv(100)
        sel.close()
        return got

    async with pystack.Network(seed=3) as net:
        a, _b = _two_hosts(net)
        assert await _run(a, "p", proc) == b"PING"


async def test_names_and_real_sockets_outside(face) -> None:
    def proc() -> tuple:
        return (socket.gethostbyname("b"), socket.gethostname(),
                {ai[0] for ai in socket.getaddrinfo("localhost", 80)})

    async with pystack.Network(seed=3) as net:
        a, _b = _two_hosts(net)
        assert await _run(a, "p", proc) == ("10.0.0.2", "a", {socket.AF_INET})

        # a real socket opened outside any process context while one is active elsewhere
        async with trio.open_nursery() as nursery:
            started = trio.Event()

            async def busy() -> None:
                async with a.process("p"):
                    started.set()
                    await trio.sleep(10)
            nursery.start_soon(busy)
            await started.wait()
            with socket.socket() as real:
                assert blocking._emu(real) is None
                real.bind(("127.0.0.1", 0))
                assert real.getsockname()[0] == "127.0.0.1"
            nursery.cancel_scope.cancel()


async def test_select_poll_face_over_emulated_fds(face) -> None:
    def proc() -> list:
        a, b = socket.socketpair(socket.AF_INET)
        with a, b:
            p = select.poll()
            p.register(b, select.POLLIN)
            first = p.poll(0)
            a.sendall(b"z")
            second = p.poll(5000)
            p.unregister(b)
            try:
                p.unregister(b)
            except KeyError:
                missing = True
            try:
                socket.gethostbyname("nosuchhost")
            except socket.gaierror as e:
                gai = e.errno
            return [first, second == [(b.fileno(), select.POLLIN)], missing, gai]

    async with pystack.Network(seed=3) as net:
        a, _b = _two_hosts(net)
        assert await _run(a, "p", proc) == [[], True, True, socket.EAI_NONAME]

"""The asyncio face: asyncio's own loop machinery on emulated hosts, in the network's trio run.

Read first: pystack/dropin/asyncio.py (the module docstring: what the loop changes and why).
"""

from __future__ import annotations

import asyncio
import errno
import functools
import os
import pathlib
import socket
import ssl
import stat
import threading
import time

import pytest
import sniffio
import trio
import trio.testing

import pystack
from pystack.dropin import asyncio as asyncio_face
from pystack.dropin import blocking
from pystack.net import socket as sys
from pystack.net.core.netfilter import NF_DROP, NF_INET_LOCAL_IN, nf_register_hook


def _two_hosts(net: pystack.Network, **link):
    a, b = net.add_host("a"), net.add_host("b")
    net.add_link(a, b, subnet="10.0.0.0/24").set(**link)
    return a, b


async def _in(host: pystack.Host, name: str, main):
    """`main()` on an asyncio loop of a new process of `host`."""
    return await pystack.asyncio_run(main(), host=host, name=name)


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1000):
        writer.write(data)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


# -- time ----------------------------------------------------------------------------------------
async def test_an_hour_of_asyncio_timers_takes_no_wall_time() -> None:
    async def main() -> list:
        loop = asyncio.get_running_loop()
        out = [loop.time()]
        await asyncio.sleep(3600)
        out.append(loop.time())
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.sleep(60), timeout=5)
        out.append(loop.time())
        fired = loop.create_future()
        loop.call_later(10, fired.set_result, "called later")
        out.append(await fired)
        out.append(loop.time())
        return out

    async with pystack.Network(seed=1) as net:
        a = net.add_host("a")
        wall, start = time.monotonic(), trio.current_time()
        t0, t1, t2, msg, t3 = await _in(a, "sleeper", main)
        assert time.monotonic() - wall < 1.0
    assert (t0, t1 - t0, t2 - t1, msg, t3 - t2) == (start, 3600, 5, "called later", 10)


async def test_the_loop_runs_only_during_its_iterations() -> None:
    """Inside callbacks and tasks the loop is running (and sniffio says asyncio); trio code
    around it, even while it waits, sees no running loop."""
    seen = []

    async def main() -> None:
        seen.append((asyncio.get_running_loop().is_running(), sniffio.current_async_library()))
        await asyncio.sleep(1)

    async def trio_side() -> None:
        await trio.sleep(0.5)
        with pytest.raises(RuntimeError, match="no running event loop"):
            asyncio.get_running_loop()
        seen.append(sniffio.current_async_library())

    async with pystack.Network(seed=1) as net:
        a = net.add_host("a")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio_side)
            await _in(a, "p", main)
    assert seen == [(True, "asyncio"), "trio"]


# -- streams, protocols, sock_* ------------------------------------------------------------------
async def test_streams_between_hosts_resolve_names_and_echo() -> None:
    async def server() -> None:
        srv = await asyncio.start_server(_echo, "0.0.0.0", 7000)
        async with srv:
            await srv.serve_forever()

    async def client() -> tuple:
        reader, writer = await asyncio.open_connection("b", 7000)
        writer.write(b"x" * 100_000)
        await writer.drain()
        got = await reader.readexactly(100_000)
        peer = writer.get_extra_info("peername")
        writer.close()
        await writer.wait_closed()
        return len(got), peer

    async with pystack.Network(seed=2) as net:
        a, b = _two_hosts(net, delay=0.005)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_in, b, "server", server)
            await trio.sleep(0.1)
            assert await _in(a, "client", client) == (100_000, ("10.0.0.2", 7000))
            assert [r.state for r in b.sockets() if r.local == "0.0.0.0:7000"] == ["LISTEN"]
            nursery.cancel_scope.cancel()
        assert [r for r in b.sockets() if r.state == "LISTEN"] == []  # the process's end


async def test_protocols_over_a_lossy_link() -> None:
    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            self.transport.write(data)

    class Client(asyncio.Protocol):
        def __init__(self, done):
            self.got, self.done = b"", done

        def connection_made(self, transport):
            transport.write(bytes(range(256)) * 200)
            transport.write_eof()

        def data_received(self, data):
            self.got += data

        def connection_lost(self, exc):
            self.done.set_result(self.got)

    async def server() -> None:
        srv = await asyncio.get_running_loop().create_server(Echo, "", 7001)
        await srv.serve_forever()

    async def client() -> bytes:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        transport, _ = await loop.create_connection(lambda: Client(done), "b", 7001)
        try:
            return await done  # the server's transport closes at our EOF (eof_received)
        finally:
            transport.close()

    async with pystack.Network(seed=4) as net:
        a, b = _two_hosts(net, delay=0.01, loss=0.1)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_in, b, "server", server)
            await trio.sleep(0.1)
            assert await _in(a, "client", client) == bytes(range(256)) * 200
            nursery.cancel_scope.cancel()
        assert a.stats()["Tcp"]["RetransSegs"] + b.stats()["Tcp"]["RetransSegs"] > 0


async def test_tls_streams_over_emulated_sockets() -> None:
    """asyncio's TLS (sslproto) runs over the emulated transports unchanged. The certificate
    (tests/dropin/data/tls_host_b.pem: a self-signed one for the name "b", key included) was
    made once with `openssl req -x509 -newkey rsa:2048 -nodes -days 36500 -subj /CN=b
    -addext subjectAltName=DNS:b`."""
    pem = str(pathlib.Path(__file__).parent / "data" / "tls_host_b.pem")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(pem)
    client_ctx = ssl.create_default_context(cafile=pem)

    async def server() -> None:
        srv = await asyncio.start_server(_echo, "0.0.0.0", 4433, ssl=server_ctx)
        await srv.serve_forever()

    async def client() -> tuple:
        reader, writer = await asyncio.open_connection("b", 4433, ssl=client_ctx)
        writer.write(b"secret " * 1000)
        got = await reader.readexactly(7000)
        version = writer.get_extra_info("ssl_object").version()
        writer.close()
        await writer.wait_closed()
        return got == b"secret " * 1000, version

    async with pystack.Network(seed=22) as net:
        a, b = _two_hosts(net, delay=0.002)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_in, b, "server", server)
            await trio.sleep(0.1)
            assert await _in(a, "client", client) == (True, "TLSv1.3")
            nursery.cancel_scope.cancel()


async def test_sock_methods_on_nonblocking_sockets() -> None:
    async def main() -> list:
        loop = asyncio.get_running_loop()
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen()
        lsock.setblocking(False)
        csock = socket.socket()
        csock.setblocking(False)
        accepted = asyncio.ensure_future(loop.sock_accept(lsock))
        await loop.sock_connect(csock, lsock.getsockname())
        conn, addr = await accepted
        conn.setblocking(False)
        await loop.sock_sendall(csock, b"ping" * 50_000)
        got = b""
        while len(got) < 200_000:
            got += await loop.sock_recv(conn, 65536)
        buf = bytearray(10)
        await loop.sock_sendall(conn, b"pong")
        n = await loop.sock_recv_into(csock, buf)
        for s in (conn, csock, lsock):
            s.close()

        u1 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for u in (u1, u2):
            u.setblocking(False)
            u.bind(("127.0.0.1", 0))
        await loop.sock_sendto(u1, b"datagram", u2.getsockname())
        data, src = await loop.sock_recvfrom(u2, 100)
        u1.close()
        u2.close()
        return [addr[0], len(got), bytes(buf[:n]), data, src[0]]

    async with pystack.Network(seed=5) as net:
        a = net.add_host("a")
        assert await _in(a, "p", main) == ["127.0.0.1", 200_000, b"pong", b"datagram",
                                           "127.0.0.1"]


async def test_datagram_endpoint_and_getaddrinfo() -> None:
    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, addr):
            self.transport.sendto(data.upper(), addr)

    async def server() -> None:
        await asyncio.get_running_loop().create_datagram_endpoint(Echo, local_addr=("0.0.0.0", 5353))
        await asyncio.sleep(3600)

    async def client() -> tuple:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo("b", 5353, type=socket.SOCK_DGRAM)
        with pytest.raises(socket.gaierror):
            await loop.getaddrinfo("nowhere", 1)
        got = loop.create_future()

        class Client(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr):
                got.set_result((data, addr))

        transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=("b", 5353))
        transport.sendto(b"hello")
        try:
            return infos[0][4], await got, await loop.getnameinfo(("10.0.0.2", 5353))
        finally:
            transport.close()

    async with pystack.Network(seed=6) as net:
        a, b = _two_hosts(net)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_in, b, "server", server)
            await trio.sleep(0.1)
            assert await _in(a, "client", client) == (
                ("10.0.0.2", 5353), (b"HELLO", ("10.0.0.2", 5353)), ("b", "5353"))
            nursery.cancel_scope.cancel()


async def test_run_in_executor_runs_an_emulated_thread_of_the_process() -> None:
    def blocking_lookup(name: str) -> tuple:
        time.sleep(0.05)  # application code, in real time: the clock must not jump meanwhile
        return socket.gethostname(), socket.gethostbyname(name)

    async def main() -> list:
        loop = asyncio.get_running_loop()
        start = loop.time()
        # Were the clock to jump while the thread runs, this 5 s timeout would fire at once.
        got = await asyncio.wait_for(loop.run_in_executor(None, blocking_lookup, "b"), 5)
        also = await asyncio.to_thread(socket.gethostname)
        return [got, also, loop.time() - start < 0.5]

    async with pystack.Network(seed=7) as net:
        a, _b = _two_hosts(net)
        assert await _in(a, "p", main) == [("a", "10.0.0.2"), "a", True]


async def test_asyncio_run_waits_for_executor_threads_as_asyncio_run_does() -> None:
    done = []

    def slow() -> None:
        time.sleep(0.05)  # application work: asyncio.run must wait for it to finish
        done.append(socket.gethostname())

    async def main() -> str:
        asyncio.get_running_loop().run_in_executor(None, slow)  # not awaited
        return "returned"

    async with pystack.Network(seed=21) as net:
        a = net.add_host("a")
        assert await _in(a, "p", main) == "returned"
        assert done == ["a"]


# -- errors: the ones the real modules give ------------------------------------------------------
async def test_connection_refused_and_address_in_use() -> None:
    async def main() -> list:
        out = []
        try:
            await asyncio.open_connection("b", 9)
        except ConnectionRefusedError as e:
            out.append(e.errno)
        srv = await asyncio.start_server(_echo, "0.0.0.0", 8000)
        try:
            await asyncio.start_server(_echo, "0.0.0.0", 8000, reuse_address=False)
        except OSError as e:
            out.append(e.errno)
        srv.close()
        await srv.wait_closed()
        try:  # the server is shut: its port refuses
            await asyncio.open_connection("127.0.0.1", 8000)
        except ConnectionRefusedError as e:
            out.append(e.errno)
        return out

    async with pystack.Network(seed=8) as net:
        a, _b = _two_hosts(net)
        assert await _in(a, "p", main) == [errno.ECONNREFUSED, errno.EADDRINUSE,
                                           errno.ECONNREFUSED]


async def test_connection_reset_and_broken_pipe() -> None:
    async def main() -> list:
        out = []
        loop = asyncio.get_running_loop()
        accepted = loop.create_future()

        async def keep(reader, writer):
            writer.transport.pause_reading()  # what arrives stays unread in the kernel
            accepted.set_result(writer)

        srv = await asyncio.start_server(keep, "127.0.0.1", 8001)
        reader, writer = await asyncio.open_connection("127.0.0.1", 8001)
        server_side = await accepted
        writer.write(b"unread")
        await writer.drain()
        await asyncio.sleep(0.1)
        server_side.transport.abort()  # closing with unread data sends RST
        try:
            await reader.read(10)
        except ConnectionResetError as e:
            out.append(e.errno)
        writer.close()
        srv.close()

        s1, s2 = socket.socket(), socket.socket()
        s1.bind(("127.0.0.1", 8002))
        s1.listen()
        s1.setblocking(False)
        s2.setblocking(False)
        await loop.sock_connect(s2, ("127.0.0.1", 8002))
        s2.shutdown(socket.SHUT_WR)
        try:
            await loop.sock_sendall(s2, b"after shutdown")
        except BrokenPipeError as e:
            out.append(e.errno)
        s1.close()
        s2.close()
        return out

    async with pystack.Network(seed=9) as net:
        a = net.add_host("a")
        assert await _in(a, "p", main) == [errno.ECONNRESET, errno.EPIPE]


async def test_connect_to_a_silent_host_times_out() -> None:
    async def main() -> tuple:
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            await asyncio.open_connection("b", 80)
        except TimeoutError as e:
            return e.errno, round(loop.time() - start)

    async with pystack.Network(seed=10) as net:
        a, b = _two_hosts(net)
        nf_register_hook(b.net, NF_INET_LOCAL_IN, lambda skb, state: NF_DROP)  # b is silent
        wall = time.monotonic()
        # tcp_syn_retries 6: SYNs at 0, 1, 3, 7, 15, 31, 63 s; ETIMEDOUT at 127 s.
        assert await _in(a, "p", main) == (errno.ETIMEDOUT, 127)
        assert time.monotonic() - wall < 1.0


async def test_udp_port_unreachable_reaches_error_received() -> None:
    async def main() -> list:
        loop = asyncio.get_running_loop()
        errors = loop.create_future()

        class Client(asyncio.DatagramProtocol):
            def error_received(self, exc):
                errors.set_result(exc)

        transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=("b", 9))
        transport.sendto(b"anyone?")
        exc = await asyncio.wait_for(errors, 5)
        transport.close()
        return [type(exc), exc.errno]

    async with pystack.Network(seed=11) as net:
        a, _b = _two_hosts(net)
        assert await _in(a, "p", main) == [ConnectionRefusedError, errno.ECONNREFUSED]


# -- the trio side -------------------------------------------------------------------------------
async def test_cancelling_the_trio_caller_cancels_the_asyncio_task() -> None:
    log = []

    async def main() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            log.append("cancelled")
            await asyncio.sleep(1)  # cleanup may still await
            log.append("cleaned up")
            raise

    async with pystack.Network(seed=12) as net:
        a = net.add_host("a")
        with trio.move_on_after(10) as scope:
            await _in(a, "p", main)
        assert scope.cancelled_caught
        assert log == ["cancelled", "cleaned up"]
        assert trio.current_time() == pytest.approx(11)


async def test_asyncio_run_checks_its_argument_and_returns_exceptions() -> None:
    async def boom() -> None:
        raise ValueError("from asyncio")

    async with pystack.Network(seed=13) as net:
        a = net.add_host("a")
        async with a.process("p"):
            with pytest.raises(ValueError, match="a coroutine was expected"):
                await pystack.asyncio_run(boom)
            with pytest.raises(ValueError, match="from asyncio"):
                await pystack.asyncio_run(boom())


# -- scripts -------------------------------------------------------------------------------------
async def test_asyncio_run_in_a_script_runs_in_the_network_in_virtual_time(tmp_path) -> None:
    path = tmp_path / "s.py"
    path.write_text("""
import asyncio, socket
async def main():
    await asyncio.sleep(3600)
    reader, writer = await asyncio.open_connection("b", 7)
    writer.write(b"echo me")
    data = await reader.read(100)
    writer.close()
    return socket.gethostname(), data
assert asyncio.run(main()) == ("a", b"ECHO ME"), "wrong outcome"
loop = asyncio.new_event_loop()
assert loop.run_until_complete(asyncio.sleep(60, "again")) == "again"
loop.close()
""")

    async def upper(reader, writer) -> None:
        writer.write((await reader.read(100)).upper())
        writer.close()

    async def server() -> None:
        await (await asyncio.start_server(upper, "", 7)).serve_forever()

    async with pystack.Network(seed=14) as net:
        a, b = _two_hosts(net)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_in, b, "server", server)
            wall, start = time.monotonic(), trio.current_time()
            assert await pystack.run_script(str(path), host=a) == 0
            assert trio.current_time() - start == pytest.approx(3660, abs=0.1)
            assert time.monotonic() - wall < 1.0
            nursery.cancel_scope.cancel()


async def test_an_old_style_get_event_loop_script_runs(tmp_path) -> None:
    """`loop = asyncio.get_event_loop(); loop.run_until_complete(...)`: the script's first
    thread plays the main thread, where asyncio makes the loop; the script's other threads
    get the policy's own answer."""
    path = tmp_path / "old.py"
    path.write_text("""
import asyncio, threading
loop = asyncio.get_event_loop()
assert loop.run_until_complete(asyncio.sleep(60, "old style")) == "old style"
assert asyncio.get_event_loop() is loop
other = []
def in_a_thread():
    try:
        asyncio.get_event_loop()
    except RuntimeError as e:
        other.append(str(e))
t = threading.Thread(target=in_a_thread)
t.start()
t.join()
assert other and "no current event loop" in other[0], other
print(type(loop).__module__)
""")
    async with pystack.Network(seed=20) as net:
        a = net.add_host("a")
        start = trio.current_time()
        program = await net.run(a, str(path))
        assert program.stdout == "pystack.dropin.asyncio\n"
        assert trio.current_time() - start == pytest.approx(60)


# -- code outside a process context is untouched --------------------------------------------------
def test_importing_pystack_leaves_asyncio_alone() -> None:
    assert asyncio.new_event_loop is asyncio_face._real_new_event_loop
    assert asyncio.events.new_event_loop is asyncio_face._real_new_event_loop


def test_outside_processes_asyncio_is_the_standard_one_while_installed() -> None:
    """With the face installed (as during run_script), asyncio.run in an ordinary thread gets
    the standard loop and real sockets: a real echo over the machine's 127.0.0.1."""
    async def real_echo() -> tuple:
        loop = asyncio.get_running_loop()
        srv = await asyncio.start_server(_echo, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"real")
        got = await reader.read(10)
        sock = writer.get_extra_info("socket")._sock
        writer.close()
        srv.close()
        return type(loop), got, blocking._emu(sock), os.fstat(sock.fileno()).st_mode

    result = []
    with asyncio_face.installed():
        t = threading.Thread(target=lambda: result.append(asyncio.run(real_echo())))
        t.start()
        t.join()
        main_thread_loop = asyncio.new_event_loop()
        main_thread_loop.close()
    loop_type, got, emulated, mode = result[0]
    assert not issubclass(loop_type, asyncio_face.EventLoop)
    assert not isinstance(main_thread_loop, asyncio_face.EventLoop)
    assert (got, emulated, stat.S_ISSOCK(mode)) == (b"real", None, True)


async def test_a_loop_outside_every_process_has_real_sockets_and_trio_time() -> None:
    async def main() -> tuple:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        await loop.sock_sendall(a, b"real pair")
        got = await loop.sock_recv(b, 100)
        a.close()
        b.close()
        await asyncio.sleep(100)
        return got, loop.time()

    start = trio.current_time()
    got, now = await pystack.asyncio_run(main())
    assert (got, now - start) == (b"real pair", 100)


def test_the_loop_cannot_block_the_trio_thread() -> None:
    async def main() -> None:
        async with pystack.Network(seed=1) as net:
            a = net.add_host("a")
            async with a.process("p"):
                loop = asyncio_face.EventLoop()
                try:
                    with pytest.raises(RuntimeError, match="cannot block the trio run"):
                        loop.run_forever()
                    with pytest.raises(NotImplementedError, match="signal handlers"):
                        loop.add_signal_handler(2, print)
                finally:
                    loop.close()
    trio.run(main)


@pytest.mark.parametrize("n", [3])
async def test_several_processes_run_loops_side_by_side(n) -> None:
    async def server() -> None:
        srv = await asyncio.start_server(_echo, "", 7002)
        await srv.serve_forever()

    async def client(i: int) -> bytes:
        reader, writer = await asyncio.open_connection("b", 7002)
        writer.write(b"client %d" % i)
        writer.write_eof()
        got = await reader.read()
        writer.close()
        return got

    results = {}

    async def one(a: pystack.Host, i: int) -> None:
        results[i] = await _in(a, f"c{i}", functools.partial(client, i))

    async with pystack.Network(seed=15) as net:
        a, b = _two_hosts(net, delay=0.002)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_in, b, "server", server)
            await trio.sleep(0.1)
            async with trio.open_nursery() as clients:
                for i in range(n):
                    clients.start_soon(one, a, i)
            nursery.cancel_scope.cancel()
    assert results == {i: b"client %d" % i for i in range(n)}


def test_a_scenario_gives_the_same_tracepoints_twice() -> None:
    """Deterministic mode reaches asyncio code: the loop's iteration order is the order of
    registration and of call_soon, never of ids or sets. Each run is a trio run of its own
    (ISNs depend on the clock)."""
    async def scenario(events: list) -> None:
        async with pystack.Network(seed=16) as net:
            a, b = _two_hosts(net, delay=0.003, loss=0.05)
            net.trace(lambda event: events.append(str(event)))

            async def server() -> None:
                await (await asyncio.start_server(_echo, "", 7003)).serve_forever()

            async def client(i: int) -> bytes:
                reader, writer = await asyncio.open_connection("b", 7003)
                writer.write(b"%d" % i * 5000)
                writer.write_eof()
                got = await reader.read()
                writer.close()
                return got

            async def clients() -> list:
                return await asyncio.gather(*(client(i) for i in range(3)))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(_in, b, "server", server)
                await trio.sleep(0.1)
                assert await _in(a, "clients", clients) == [b"%d" % i * 5000 for i in range(3)]
                nursery.cancel_scope.cancel()

    runs: list = [[], []]
    for events in runs:
        trio.run(scenario, events, clock=trio.testing.MockClock(autojump_threshold=0))
    assert len(runs[0]) > 100
    assert runs[1] == runs[0]


async def test_real_and_emulated_descriptors_in_one_loop() -> None:
    """socket.socketpair() stays a real AF_UNIX pair inside a process (the blocking face's
    rule); the asyncio docs' "register an open socket" example then waits on a real
    descriptor while emulated connections run in the same loop."""
    async def main() -> list:
        loop = asyncio.get_running_loop()
        rsock, wsock = socket.socketpair()
        reader, writer = await asyncio.open_connection(sock=rsock)
        srv = await asyncio.start_server(_echo, "127.0.0.1", 7004)
        r2, w2 = await asyncio.open_connection("127.0.0.1", 7004)
        loop.call_later(5, wsock.send, b"abc")
        w2.write(b"emulated")
        got = [await r2.read(100), await reader.read(100), loop.time()]
        for w in (writer, w2):
            w.close()
        wsock.close()
        srv.close()
        return [blocking._emu(rsock) is None] + got

    async with pystack.Network(seed=17) as net:
        a = net.add_host("a")
        start = trio.current_time()
        real, emulated, data, when = await _in(a, "p", main)
        assert (real, emulated, data, when - start) == (True, b"emulated", b"abc", 5)


async def test_a_descriptor_closed_while_registered_is_dropped() -> None:
    """As epoll forgets a closed file: the loop neither reports it nor spins on it."""
    async def main() -> tuple:
        loop = asyncio.get_running_loop()
        fired = []
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        first = loop.create_future()

        def readable() -> None:
            fired.append(sock.recv(100))
            if not first.done():
                first.set_result(None)

        loop.add_reader(sock.fileno(), readable)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            tx.sendto(b"once", sock.getsockname())
        await first
        sock.close()  # behind the loop's back: the reader stays registered
        start = loop.time()
        await asyncio.sleep(30)
        return fired, loop.time() - start

    async with pystack.Network(seed=18) as net:
        a = net.add_host("a")
        assert await _in(a, "p", main) == ([b"once"], 30)


async def test_a_blocking_socket_in_asyncio_code_works_unless_it_must_wait() -> None:
    """asyncio code may call a blocking socket directly (the docs' socketpair example sends
    so): a call that need not wait is made; one that would wait cannot stop the whole run,
    and raises."""
    async def main() -> list:
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind(("127.0.0.1", 0))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            tx.sendto(b"no wait", rx.getsockname())
        out = [rx.recv(100), rx.gettimeout()]
        with pytest.raises(RuntimeError, match="must wait"):
            rx.recv(100)
        t = blocking._emu(rx).tsock
        out.append(sys.sys_fcntl(t.task, t.fileno(), sys.F_GETFL) & sys.O_NONBLOCK)  # still 0
        rx.close()
        return out

    async with pystack.Network(seed=19) as net:
        a = net.add_host("a")
        assert await _in(a, "p", main) == [b"no wait", None, 0]

"""trio's own helpers on emulated hosts through the socket factory and resolver hooks.

Read first: pystack/dropin/trio.py (SocketFactory, HostnameResolver, install).
"""

from __future__ import annotations

import socket

import pytest
import trio

import pystack
from pystack.dropin.trio import EmulatedSocket, install


def _two_hosts(net: pystack.Network):
    a, b = net.add_host("a"), net.add_host("b")
    net.add_link(a, b, subnet="10.0.0.0/24")
    return a, b


async def _echo(stream: trio.SocketStream) -> None:
    async for data in stream:
        await stream.send_all(data.upper())


async def test_serve_tcp_and_open_tcp_stream_by_host_name() -> None:
    async with pystack.Network(seed=1) as net:
        a, b = _two_hosts(net)
        install()
        async with b.process("server"), trio.open_nursery() as nursery:
            listeners = await nursery.start(trio.serve_tcp, _echo, 7000)
            assert isinstance(listeners[0].socket, EmulatedSocket)
            assert listeners[0].socket.getsockname() == ("0.0.0.0", 7000)
            async with a.process("client"):
                stream = await trio.open_tcp_stream("b", 7000)
                assert stream.socket.getpeername() == ("10.0.0.2", 7000)
                await stream.send_all(b"hello")
                assert await stream.receive_some(100) == b"HELLO"
                await stream.aclose()
            nursery.cancel_scope.cancel()


async def test_open_tcp_listeners_serves_ipv4_only() -> None:
    async with pystack.Network(seed=1) as net:
        a, _b = _two_hosts(net)
        install()
        async with a.process("server"):
            listeners = await trio.open_tcp_listeners(0, host=None)
            assert [l.socket.family for l in listeners] == [socket.AF_INET]
            for l in listeners:
                await l.aclose()


async def test_udp_through_trio_socket_and_localhost() -> None:
    async with pystack.Network(seed=1) as net:
        a, _b = _two_hosts(net)
        install()
        async with a.process("p"):
            s = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            r = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            await r.bind(("localhost", 0))
            await s.sendto(b"ping", ("localhost", r.getsockname()[1]))
            data, addr = await r.recvfrom(100)
            assert data == b"ping" and addr[0] == "127.0.0.1"
            assert isinstance(s, EmulatedSocket)
            s.close(), r.close()


async def test_getaddrinfo_answers_af_inet_like_etc_hosts() -> None:
    async with pystack.Network(seed=1) as net:
        a, _b = _two_hosts(net)
        install()
        async with a.process("p"):
            res = await trio.socket.getaddrinfo("b", 80, type=socket.SOCK_STREAM)
            assert res == [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                            ("10.0.0.2", 80))]
            res = await trio.socket.getaddrinfo("localhost", 80)
            assert {r[0] for r in res} == {socket.AF_INET}
            assert [r[1] for r in res] == [socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_RAW]
            assert res[0][4] == ("127.0.0.1", 80)
            res = await trio.socket.getaddrinfo("localhost", "http")
            assert res == [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                            ("127.0.0.1", 80))]
            with pytest.raises(socket.gaierror) as e:
                await trio.socket.getaddrinfo("nosuchhost", 80)
            assert e.value.errno == socket.EAI_NONAME
            assert await trio.socket.getnameinfo(("10.0.0.2", 80), 0) == ("b", "http")


async def test_outside_a_process_context_sockets_are_real() -> None:
    async with pystack.Network(seed=1) as net:
        a, _b = _two_hosts(net)
        install()
        async with a.process("p"):
            emulated = trio.socket.socket()
        real = trio.socket.socket()
        try:
            assert isinstance(emulated, EmulatedSocket)
            assert not isinstance(real, EmulatedSocket)
            assert socket.socket(fileno=real.fileno()).detach() == real.fileno()
        finally:
            real.close()
            emulated.close()


async def test_connection_refused_reaches_open_tcp_stream() -> None:
    async with pystack.Network(seed=1) as net:
        a, _b = _two_hosts(net)
        install()
        async with a.process("client"):
            with pytest.raises(OSError) as e:
                await trio.open_tcp_stream("b", 9)
            # open_tcp_stream wraps the per-address errors; the cause is Linux's ECONNREFUSED.
            causes = e.value.__cause__.exceptions if hasattr(e.value.__cause__, "exceptions") \
                else [e.value]
            assert any(isinstance(c, ConnectionRefusedError) for c in causes)

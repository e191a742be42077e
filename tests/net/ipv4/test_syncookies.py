"""SYN cookies (net/ipv4/syncookies.c): a full SYN queue does not stop connections."""

import socket

import trio

import pystack
from pystack.net.ipv4.syncookies import (MSS_TABLE, check_tcp_syn_cookie,
                                         cookie_v4_init_sequence)


async def test_cookie_handshake_carries_data_both_ways():
    net = pystack.Network(seed=3)
    async with net:
        a, b = net.add_host("a"), net.add_host("b")
        net.add_link(a, b, subnet="10.0.0.0/24")
        b.set_sysctl("net.ipv4.tcp_syncookies", 2)  # answer every SYN with a cookie
        srv = b.socket(socket.AF_INET, socket.SOCK_STREAM)
        await srv.bind(("0.0.0.0", 80))
        srv.listen(8)
        cli = a.socket(socket.AF_INET, socket.SOCK_STREAM)
        with trio.fail_after(5):
            await cli.connect(("10.0.0.2", 80))
            conn, _ = await srv.accept()
            await cli.send(b"ping")
            assert await conn.recv(10) == b"ping"
            await conn.send(b"pong")
            assert await cli.recv(10) == b"pong"
        ext = b.stats()["TcpExt"]
        assert ext["SyncookiesSent"] == 1 and ext["SyncookiesRecv"] == 1
        assert not b.sockets()[0].state == "SYN-RECV"


async def test_full_syn_queue_falls_back_to_cookies_with_the_default_sysctl():
    net = pystack.Network(seed=4)
    async with net:
        a, b = net.add_host("a"), net.add_host("b")
        link = net.add_link(a, b, subnet="10.0.0.0/24")
        srv = b.socket(socket.AF_INET, socket.SOCK_STREAM)
        await srv.bind(("0.0.0.0", 80))
        srv.listen(1)  # SYN queue of one request
        # Hold the client's final ACKs so requests stay in the SYN queue.
        link.set(delay=0.5)
        clients = [a.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(2)]
        async with trio.open_nursery() as nursery:
            for c in clients:
                nursery.start_soon(c.connect, ("10.0.0.2", 80))
        assert b.stats()["TcpExt"].get("SyncookiesSent", 0) >= 1


async def test_a_forged_or_stale_cookie_is_refused():
    net = pystack.Network(seed=5)
    async with net:
        h = net.add_host("h")
        isn, mss = cookie_v4_init_sequence(h.net, 1, 2, 3, 4, 1000, 1460)
        assert mss == MSS_TABLE[-1]
        assert check_tcp_syn_cookie(h.net, isn, 1, 2, 3, 4, 1000) == len(MSS_TABLE) - 1
        assert check_tcp_syn_cookie(h.net, isn ^ 1, 1, 2, 3, 4, 1000) == -1  # forged
        assert check_tcp_syn_cookie(h.net, isn, 1, 2, 3, 5, 1000) == -1  # other 4-tuple
        await trio.sleep(3 * 60)
        assert check_tcp_syn_cookie(h.net, isn, 1, 2, 3, 4, 1000) == -1  # too old

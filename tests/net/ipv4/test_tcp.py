"""TCP through the socket interface (pystack/net/ipv4/tcp.py, tcp_ipv4.py, tcp_input.py,
tcp_output.py, inet_connection_sock.py): issue 3's points 1 and 4 — echo and bulk transfers
byte-exact over loopback and Ethernet, trio's stream conformance helper, and every errno of
the issue asserted exactly as Linux returns it.

The reference is Linux: where a comment names a function, it is the Linux function whose
behaviour the assertion encodes (net/ipv4/af_inet.c, net/ipv4/tcp.c, net/ipv4/tcp_input.c ...).
Every test builds its own seeded network and runs in virtual time (tests/conftest.py); every
wait is bounded by `trio.fail_after` in virtual seconds, because the autojump clock cannot see
a deadlock where every task waits forever with no timer armed.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import random
import socket
import struct

import pytest
import trio
import trio.testing
from scapy.layers.inet import TCP
from scapy.layers.l2 import Ether

import pystack
from pystack.dropin.trio import EmulatedSocket
from pystack.fs.file import O_NONBLOCK
from pystack.net.core.netfilter import NF_DROP, NF_INET_LOCAL_IN, nf_register_hook
from pystack.net.ipv4.tcp import TcpSock
from pystack.net.ipv4.tcp_sockopt import tcp_get_info
from pystack.net.socket import sockfd_lookup, sys_connect
from pystack.pcap import read_pcapng
from pystack.uapi.ip import ip_int

from nethelpers import recv_until_eof, sk_of, two_hosts, tcp

AF_INET, SOCK_STREAM = socket.AF_INET, socket.SOCK_STREAM
SOL_SOCKET, IPPROTO_TCP = socket.SOL_SOCKET, socket.IPPROTO_TCP
MB = 1024 * 1024
PORT = 5000

# tcp_states.h
TCP_ESTABLISHED, TCP_SYN_SENT, TCP_CLOSE, TCP_CLOSE_WAIT = 1, 2, 7, 8


# -- helpers ------------------------------------------------------------------------------------

def set_nonblocking(s: EmulatedSocket) -> None:
    sockfd_lookup(s.task, s.fileno())[0].f_flags |= O_NONBLOCK


def linger(onoff: int, seconds: int) -> bytes:
    return struct.pack("ii", onoff, seconds)


async def listener(host: pystack.Host, port: int = PORT, backlog: int = 8,
                   reuse: bool = False) -> EmulatedSocket:
    ls = tcp(host)
    if reuse:
        ls.setsockopt(SOL_SOCKET, socket.SO_REUSEADDR, 1)
    await ls.bind(("", port))
    ls.listen(backlog)
    return ls


async def connected(client_host: pystack.Host, server_host: pystack.Host, dest: str,
                    port: int = PORT, reuse: bool = False):
    """(client, accepted server socket, listener), connected."""
    ls = await listener(server_host, port, reuse=reuse)
    c = tcp(client_host)
    with trio.fail_after(30):
        await c.connect((dest, port))
        conn, peer = await ls.accept()
    assert peer == c.getsockname()
    return c, conn, ls


def payload(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


async def wait_for_state(s: EmulatedSocket, state: int, timeout: float = 30.0) -> None:
    with trio.fail_after(timeout):
        while sk_of(s).sk_state != state:
            await trio.sleep(0.001)


def capture_tcp(path, iface: str) -> list:
    """The TCP segments captured on `iface` ("a:eth0"), decoded with scapy."""
    out = []
    for p in read_pcapng(path):
        if p.interface_name == iface:
            frame = Ether(p.data)
            if TCP in frame:
                out.append(frame)
    return out


def drop_all(host: pystack.Host):
    """Make `host` silent: it exists (answers ARP) but drops every IP packet it receives."""
    return nf_register_hook(host.net, NF_INET_LOCAL_IN, lambda skb, st: NF_DROP)


# -- point 1: echo and bulk, byte-exact -----------------------------------------------------------

async def _echo(client_host, server_host, dest):
    c, conn, ls = await connected(client_host, server_host, dest)
    messages = [b"hello", b"x" * 1, payload(3000, 2), payload(100_000, 3), b"bye"]
    for msg in messages:
        with trio.fail_after(30):
            await c.send(msg)
            got = bytearray()
            while len(got) < len(msg):
                got += await conn.recv(65536)
            assert bytes(got) == msg
            await conn.send(got)
            back = bytearray()
            while len(back) < len(msg):
                back += await c.recv(65536)
        assert bytes(back) == msg
    c.close()
    with trio.fail_after(30):
        assert await conn.recv(10) == b""  # the FIN: end of stream
    conn.close()
    ls.close()


async def test_echo_over_loopback():
    async with two_hosts() as (net, a, b, link):
        await _echo(a, a, "127.0.0.1")


async def test_echo_over_ethernet_between_two_hosts():
    async with two_hosts(delay=0.001) as (net, a, b, link):
        await _echo(a, b, "10.0.0.2")


async def _bulk(client_host, server_host, dest, size):
    data = payload(size, 11)
    c, conn, ls = await connected(client_host, server_host, dest)
    got = bytearray()
    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(recv_until_eof, conn, got)
            view = memoryview(data)
            sent = 0
            while sent < size:
                sent += await c.send(view[sent:sent + 4 * MB])
            c.shutdown(socket.SHUT_WR)
    assert len(got) == size and got == data
    conn.close()
    c.close()
    return c


async def test_10mb_bulk_transfer_over_loopback_is_byte_exact():
    async with two_hosts() as (net, a, b, link):
        await _bulk(a, a, "127.0.0.1", 10 * MB)


async def test_10mb_bulk_transfer_over_ethernet_is_byte_exact():
    async with two_hosts(delay=0.0005) as (net, a, b, link):
        await _bulk(a, b, "10.0.0.2", 10 * MB)
        assert a.stats()["Tcp"]["OutSegs"] > 10 * MB // 1448


async def test_bulk_transfer_both_directions_at_once():
    size = 300_000
    async with two_hosts(delay=0.002) as (net, a, b, link):
        c, conn, ls = await connected(a, b, "10.0.0.2")
        up, down = payload(size, 4), payload(size, 5)
        got_up, got_down = bytearray(), bytearray()

        async def send(s, data):
            await s.send(data)
            s.shutdown(socket.SHUT_WR)
        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(send, c, up)
                nursery.start_soon(send, conn, down)
                nursery.start_soon(recv_until_eof, conn, got_up)
                nursery.start_soon(recv_until_eof, c, got_down)
        assert got_up == up and got_down == down


# -- point 1: trio's stream conformance helper ---------------------------------------------------

async def test_check_half_closeable_stream_on_emulated_sockets():
    async with trio.open_nursery() as nursery:
        async def run_network(net, task_status=trio.TASK_STATUS_IGNORED):
            async with net:
                task_status.started()
                await trio.sleep_forever()

        async def stream_maker():
            # A fresh network per pair, as the helper closes (and breaks) each pair it gets.
            net = pystack.Network(seed=7)
            a, b = net.add_host("a"), net.add_host("b")
            net.add_link(a, b, subnet="10.0.0.0/24")
            await nursery.start(run_network, net)
            c, conn, ls = await connected(a, b, "10.0.0.2")
            ls.close()
            return trio.SocketStream(c), trio.SocketStream(conn)

        with trio.fail_after(3600):
            await trio.testing.check_half_closeable_stream(stream_maker, None)
        nursery.cancel_scope.cancel()


async def test_recv_of_a_float_size_raises_type_error():
    async with two_hosts() as (net, a, b, link):
        c, conn, ls = await connected(a, b, "10.0.0.2")
        with trio.fail_after(5), pytest.raises(TypeError):
            await conn.recv(1.5)


async def test_a_second_concurrent_recv_raises_busy_resource_error():
    async with two_hosts() as (net, a, b, link):
        c, conn, ls = await connected(a, b, "10.0.0.2")
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(conn.recv, 10)
                await trio.testing.wait_all_tasks_blocked()
                with pytest.raises(trio.BusyResourceError):
                    await conn.recv(10)
                nursery.cancel_scope.cancel()


async def test_close_wakes_a_blocked_recv_with_closed_resource_error():
    async with two_hosts() as (net, a, b, link):
        c, conn, ls = await connected(a, b, "10.0.0.2")

        async def reader():
            with pytest.raises(trio.ClosedResourceError):
                await conn.recv(10)
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                await trio.testing.wait_all_tasks_blocked()
                conn.close()


# -- point 4: every errno ----------------------------------------------------------------------

async def test_connect_to_a_closed_port_is_refused_over_ethernet():
    async with two_hosts() as (net, a, b, link):
        c = tcp(a)
        with trio.fail_after(10), pytest.raises(OSError) as e:
            await c.connect(("10.0.0.2", 9))
        assert e.value.errno == errno.ECONNREFUSED
        assert trio.current_time() < 0.01  # the RST answered at once: no retry
        assert b.stats()["Tcp"]["OutRsts"] == 1
        assert a.stats()["Tcp"]["AttemptFails"] == 1


async def test_connect_to_a_closed_port_is_refused_over_loopback():
    async with two_hosts() as (net, a, b, link):
        c = tcp(a)
        with trio.fail_after(10), pytest.raises(OSError) as e:
            await c.connect(("127.0.0.1", 9))
        assert e.value.errno == errno.ECONNREFUSED


async def test_rst_on_an_established_connection_is_econnreset():
    async with two_hosts() as (net, a, b, link):
        c, conn, ls = await connected(a, b, "10.0.0.2")
        conn.setsockopt(SOL_SOCKET, socket.SO_LINGER, linger(1, 0))
        conn.close()  # abortive close: RST
        with trio.fail_after(10), pytest.raises(OSError) as e:
            await c.recv(10)
        assert e.value.errno == errno.ECONNRESET
        assert sk_of(c).sk_state == TCP_CLOSE
        assert a.stats()["Tcp"]["EstabResets"] == 1


async def test_econnreset_is_reported_once_then_recv_returns_eof():
    # tcp_reset sets sk_err; sock_error() takes it once; then the socket is simply closed
    # (tcp_recvmsg: SOCK_DONE is not set but the state is TCP_CLOSE → copied 0 → returns 0).
    async with two_hosts() as (net, a, b, link):
        c, conn, ls = await connected(a, b, "10.0.0.2")
        conn.setsockopt(SOL_SOCKET, socket.SO_LINGER, linger(1, 0))
        conn.close()
        with trio.fail_after(10):
            with pytest.raises(OSError) as e:
                await c.recv(10)
            assert e.value.errno == errno.ECONNRESET
            assert await c.recv(10) == b""


async def test_send_after_shut_wr_is_epipe():
    async with two_hosts() as (net, a, b, link):
        c, conn, ls = await connected(a, b, "10.0.0.2")
        c.shutdown(socket.SHUT_WR)
        with pytest.raises(OSError) as e:
            await c.send(b"late")
        assert e.value.errno == errno.EPIPE


async def test_send_after_the_peer_reset_in_close_wait_is_epipe():
    # tcp_reset: in CLOSE_WAIT the error is EPIPE (the peer had already said it sends no more).
    async with two_hosts() as (net, a, b, link):
        c, conn, ls = await connected(a, b, "10.0.0.2")
        conn.shutdown(socket.SHUT_WR)
        await wait_for_state(c, TCP_CLOSE_WAIT)
        conn.setsockopt(SOL_SOCKET, socket.SO_LINGER, linger(1, 0))
        conn.close()
        await wait_for_state(c, TCP_CLOSE)
        with pytest.raises(OSError) as e:
            await c.send(b"x")
        assert e.value.errno == errno.EPIPE


async def test_getpeername_of_an_unconnected_socket_is_enotconn():
    async with two_hosts() as (net, a, b, link):
        s = tcp(a)
        with pytest.raises(OSError) as e:
            s.getpeername()
        assert e.value.errno == errno.ENOTCONN
        ls = await listener(a)
        with pytest.raises(OSError) as e:
            ls.getpeername()
        assert e.value.errno == errno.ENOTCONN


async def test_recv_on_an_unconnected_socket_is_enotconn():
    async with two_hosts() as (net, a, b, link):
        s = tcp(a)
        with trio.fail_after(5), pytest.raises(OSError) as e:
            await s.recv(10)
        assert e.value.errno == errno.ENOTCONN
        ls = await listener(a)
        with trio.fail_after(5), pytest.raises(OSError) as e:
            await ls.recv(10)
        assert e.value.errno == errno.ENOTCONN


async def test_send_on_a_never_connected_socket_is_epipe():
    # tcp_sendmsg_locked → sk_stream_wait_connect: not SYN_SENT/SYN_RECV → -EPIPE.
    async with two_hosts() as (net, a, b, link):
        s = tcp(a)
        with pytest.raises(OSError) as e:
            await s.send(b"x")
        assert e.value.errno == errno.EPIPE


async def test_shutdown_of_an_unconnected_socket_is_enotconn():
    async with two_hosts() as (net, a, b, link):
        s = tcp(a)
        with pytest.raises(OSError) as e:
            s.shutdown(socket.SHUT_RDWR)
        assert e.value.errno == errno.ENOTCONN


async def test_connect_twice_is_eisconn():
    async with two_hosts() as (net, a, b, link):
        c, conn, ls = await connected(a, b, "10.0.0.2")
        with pytest.raises(OSError) as e:
            await c.connect(("10.0.0.2", PORT))
        assert e.value.errno == errno.EISCONN


async def test_nonblocking_connect_einprogress_then_ealready_then_connected():
    async with two_hosts(delay=0.05) as (net, a, b, link):
        ls = await listener(b)
        c = tcp(a)
        set_nonblocking(c)
        with pytest.raises(OSError) as e:
            await c.connect(("10.0.0.2", PORT))
        assert e.value.errno == errno.EINPROGRESS
        assert sk_of(c).sk_state == TCP_SYN_SENT
        with pytest.raises(OSError) as e:
            await c.connect(("10.0.0.2", PORT))
        assert e.value.errno == errno.EALREADY
        await trio.sleep(0.5)  # ARP and the handshake: two RTTs of 0.1 s
        assert c.getsockopt(SOL_SOCKET, socket.SO_ERROR) == 0
        # __inet_stream_connect: SS_CONNECTING and ESTABLISHED → 0 (and now SS_CONNECTED) …
        await c.connect(("10.0.0.2", PORT))
        # … and from then on EISCONN.
        with pytest.raises(OSError) as e:
            await c.connect(("10.0.0.2", PORT))
        assert e.value.errno == errno.EISCONN


async def test_nonblocking_connect_refused_reports_in_so_error():
    async with two_hosts(delay=0.05) as (net, a, b, link):
        c = tcp(a)
        set_nonblocking(c)
        with pytest.raises(OSError) as e:
            await c.connect(("10.0.0.2", 9))
        assert e.value.errno == errno.EINPROGRESS
        await trio.sleep(0.5)
        assert c.getsockopt(SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED
        assert c.getsockopt(SOL_SOCKET, socket.SO_ERROR) == 0  # read once


async def test_nonblocking_connect_through_the_syscall_layer():
    async with two_hosts(delay=0.05) as (net, a, b, link):
        ls = await listener(b)
        c = tcp(a)
        set_nonblocking(c)
        with pytest.raises(OSError) as e:
            await sys_connect(c.task, c.fileno(), 2, ip_int("10.0.0.2"), PORT)
        assert e.value.errno == errno.EINPROGRESS
        with pytest.raises(OSError) as e:
            await sys_connect(c.task, c.fileno(), 2, ip_int("10.0.0.2"), PORT)
        assert e.value.errno == errno.EALREADY


async def test_nonblocking_accept_with_nothing_queued_is_eagain():
    async with two_hosts() as (net, a, b, link):
        ls = await listener(b)
        set_nonblocking(ls)
        with pytest.raises(OSError) as e:
            await ls.accept()
        assert e.value.errno == errno.EAGAIN
        c = tcp(a)
        with trio.fail_after(10):
            await c.connect(("10.0.0.2", PORT))
        conn, peer = await ls.accept()  # now one is there
        assert peer == c.getsockname()


async def test_nonblocking_recv_with_nothing_queued_is_eagain():
    async with two_hosts() as (net, a, b, link):
        c, conn, ls = await connected(a, b, "10.0.0.2")
        set_nonblocking(conn)
        with pytest.raises(OSError) as e:
            await conn.recv(10)
        assert e.value.errno == errno.EAGAIN


async def test_connect_to_a_silent_peer_times_out_after_syn_retries():
    async with two_hosts() as (net, a, b, link):
        drop_all(b)
        c = tcp(a)
        c.setsockopt(IPPROTO_TCP, socket.TCP_SYNCNT, 2)
        with trio.fail_after(600), pytest.raises(OSError) as e:
            await c.connect(("10.0.0.2", PORT))
        assert e.value.errno == errno.ETIMEDOUT
        # SYN at 0, retries at 1 and 3, given up at 7 (tcp_write_timeout: 1 + 2 + 4).
        assert trio.current_time() == pytest.approx(7.0, abs=0.01)


async def test_established_connection_to_a_vanished_peer_times_out_with_user_timeout():
    async with two_hosts() as (net, a, b, link):
        c, conn, ls = await connected(a, b, "10.0.0.2")
        c.setsockopt(IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 5000)
        drop_all(b)
        start = trio.current_time()
        await c.send(b"into the void")
        with trio.fail_after(600), pytest.raises(OSError) as e:
            await c.recv(10)
        assert e.value.errno == errno.ETIMEDOUT
        assert trio.current_time() - start == pytest.approx(5.0, abs=0.3)
        assert a.stats()["TcpExt"]["TCPAbortOnTimeout"] == 1


async def test_a_user_timeout_longer_than_tcp_retries2_replaces_it():
    # tcp_write_timeout: expired = retransmits_timed_out(sk, retries2, icsk_user_timeout);
    # with a user timeout, it alone decides.
    async with two_hosts() as (net, a, b, link):
        a.set_sysctl("net.ipv4.tcp_retries2", 3)  # gives up after 0.2 * (2^4 - 1) = 3 s
        c, conn, ls = await connected(a, b, "10.0.0.2")
        c.setsockopt(IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 10000)
        drop_all(b)
        start = trio.current_time()
        await c.send(b"x")
        with trio.fail_after(600), pytest.raises(OSError) as e:
            await c.recv(10)
        assert e.value.errno == errno.ETIMEDOUT
        assert trio.current_time() - start == pytest.approx(10.0, abs=0.3)


async def test_user_timeout_ends_a_connection_stuck_on_a_zero_window():
    async with two_hosts(delay=0.01) as (net, a, b, link):
        c, conn, ls = await connected(a, b, "10.0.0.2")
        c.setsockopt(IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 10000)
        async def fill():
            with contextlib.suppress(OSError):
                await c.send(bytes(1_000_000))  # b never reads
        with trio.fail_after(100):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(fill)
                with pytest.raises(OSError) as e:
                    await c.recv(10)
                nursery.cancel_scope.cancel()
        assert e.value.errno == errno.ETIMEDOUT


async def test_bind_to_a_port_in_use_is_eaddrinuse():
    async with two_hosts() as (net, a, b, link):
        s1 = tcp(a)
        await s1.bind(("", PORT))
        s2 = tcp(a)
        with pytest.raises(OSError) as e:
            await s2.bind(("", PORT))
        assert e.value.errno == errno.EADDRINUSE


async def test_bind_beside_a_listener_is_eaddrinuse_even_with_reuseaddr():
    # inet_bind_conflict: SO_REUSEADDR on both does not share a port with a LISTEN socket.
    async with two_hosts() as (net, a, b, link):
        await listener(a, reuse=True)
        s = tcp(a)
        s.setsockopt(SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with pytest.raises(OSError) as e:
            await s.bind(("", PORT))
        assert e.value.errno == errno.EADDRINUSE


async def test_second_listen_on_a_shared_port_is_eaddrinuse():
    # Both bound with SO_REUSEADDR (allowed while neither listens); the second listen()
    # conflicts (inet_csk_listen_start → get_port).
    async with two_hosts() as (net, a, b, link):
        s1, s2 = tcp(a), tcp(a)
        for s in (s1, s2):
            s.setsockopt(SOL_SOCKET, socket.SO_REUSEADDR, 1)
            await s.bind(("", PORT))
        s1.listen(5)
        with pytest.raises(OSError) as e:
            s2.listen(5)
        assert e.value.errno == errno.EADDRINUSE


async def _server_in_time_wait(a, b):
    """A connection the server (b, port 5000, SO_REUSEADDR) closed first: b's side is in
    TIME_WAIT on port 5000 with the listener gone."""
    c, conn, ls = await connected(a, b, "10.0.0.2", reuse=True)
    ls.close()
    conn.close()
    with trio.fail_after(10):
        assert await c.recv(10) == b""
    c.close()
    await trio.sleep(0.5)
    states = [r.state for r in b.sockets() if r.local.endswith(f":{PORT}")]
    assert states == ["TIME-WAIT"]


async def test_time_wait_holds_the_port_against_bind_without_reuseaddr():
    async with two_hosts() as (net, a, b, link):
        await _server_in_time_wait(a, b)
        s = tcp(b)
        with pytest.raises(OSError) as e:
            await s.bind(("", PORT))
        assert e.value.errno == errno.EADDRINUSE


async def test_time_wait_lets_reuseaddr_bind_and_listen():
    async with two_hosts() as (net, a, b, link):
        await _server_in_time_wait(a, b)
        s = tcp(b)
        s.setsockopt(SOL_SOCKET, socket.SO_REUSEADDR, 1)
        await s.bind(("", PORT))
        s.listen(5)
        c2 = tcp(a)
        with trio.fail_after(10):
            await c2.connect(("10.0.0.2", PORT))


async def test_time_wait_releases_the_port_after_60_seconds():
    async with two_hosts() as (net, a, b, link):
        await _server_in_time_wait(a, b)
        await trio.sleep(60)
        s = tcp(b)
        await s.bind(("", PORT))


async def test_a_server_port_is_free_once_its_connections_and_listener_are_closed():
    # The client closes first, so the server side ends in LAST_ACK → CLOSE, no TIME_WAIT.
    async with two_hosts() as (net, a, b, link):
        c, conn, ls = await connected(a, b, "10.0.0.2")
        c.close()
        with trio.fail_after(5):
            assert await conn.recv(10) == b""
        conn.close()
        ls.close()
        await trio.sleep(1)
        assert [r for r in b.sockets()] == []
        s = tcp(b)
        await s.bind(("", PORT))  # EADDRINUSE in pystack


# -- resets on close ---------------------------------------------------------------------------

async def test_close_with_unread_data_sends_rst(tmp_path):
    path = tmp_path / "unread.pcapng"
    async with two_hosts() as (net, a, b, link):
        cap = net.capture(str(path))
        c, conn, ls = await connected(a, b, "10.0.0.2")
        await c.send(b"never read")
        await trio.sleep(0.5)
        conn.close()  # tcp_close: unread data → tcp_send_active_reset, not a FIN
        with trio.fail_after(10), pytest.raises(OSError) as e:
            await c.recv(10)
        assert e.value.errno == errno.ECONNRESET
        assert b.stats()["TcpExt"]["TCPAbortOnClose"] == 1
        cap.close()
    from_b = capture_tcp(path, "b:eth0")
    flags = [str(f[TCP].flags) for f in from_b if f[TCP].sport == PORT]
    assert "RA" in flags and not any("F" in fl for fl in flags)


async def test_so_linger_zero_close_sends_rst(tmp_path):
    path = tmp_path / "linger.pcapng"
    async with two_hosts() as (net, a, b, link):
        cap = net.capture(str(path))
        c, conn, ls = await connected(a, b, "10.0.0.2")
        c.setsockopt(SOL_SOCKET, socket.SO_LINGER, linger(1, 0))
        c.close()
        with trio.fail_after(10), pytest.raises(OSError) as e:
            await conn.recv(10)
        assert e.value.errno == errno.ECONNRESET
        await trio.sleep(61)
        assert not [r for r in a.sockets() if r.state == "TIME-WAIT"]  # no TIME_WAIT
        cap.close()
    from_a = [f for f in capture_tcp(path, "a:eth0") if f[TCP].dport == PORT]
    assert str(from_a[-1][TCP].flags) == "RA"
    assert not any("F" in str(f[TCP].flags) for f in from_a)


# -- shutdown -------------------------------------------------------------------------------------

async def test_shut_wr_sends_fin_and_the_other_direction_still_works():
    async with two_hosts() as (net, a, b, link):
        c, conn, ls = await connected(a, b, "10.0.0.2")
        await c.send(b"request")
        c.shutdown(socket.SHUT_WR)
        got = bytearray()
        with trio.fail_after(10):
            await recv_until_eof(conn, got)
        assert got == b"request"
        await conn.send(b"response")
        with trio.fail_after(10):
            assert await c.recv(100) == b"response"
        conn.close()
        with trio.fail_after(10):
            assert await c.recv(100) == b""


async def test_shut_rd_returns_queued_data_then_eof_without_sending_anything():
    async with two_hosts() as (net, a, b, link):
        c, conn, ls = await connected(a, b, "10.0.0.2")
        await c.send(b"queued")
        await trio.sleep(0.5)
        out_before = b.stats()["Tcp"]["OutSegs"]
        conn.shutdown(socket.SHUT_RD)
        with trio.fail_after(5):
            assert await conn.recv(100) == b"queued"
            assert await conn.recv(100) == b""  # RCV_SHUTDOWN: EOF, not a wait
        await trio.sleep(0.5)
        assert b.stats()["Tcp"]["OutSegs"] == out_before
        await conn.send(b"still writable")
        with trio.fail_after(5):
            assert await c.recv(100) == b"still writable"


async def test_shut_rdwr_sends_fin_then_recv_is_eof_and_send_is_epipe():
    async with two_hosts() as (net, a, b, link):
        c, conn, ls = await connected(a, b, "10.0.0.2")
        c.shutdown(socket.SHUT_RDWR)
        with trio.fail_after(5):
            assert await conn.recv(10) == b""  # the FIN arrived
            assert await c.recv(10) == b""
        with pytest.raises(OSError) as e:
            await c.send(b"x")
        assert e.value.errno == errno.EPIPE


# -- recv flags -----------------------------------------------------------------------------------

async def test_msg_peek_leaves_the_data_queued():
    async with two_hosts() as (net, a, b, link):
        c, conn, ls = await connected(a, b, "10.0.0.2")
        await c.send(b"abcdef")
        with trio.fail_after(5):
            assert await conn.recv(3, socket.MSG_PEEK) == b"abc"
            assert await conn.recv(100, socket.MSG_PEEK) == b"abcdef"
            assert await conn.recv(4) == b"abcd"
            assert await conn.recv(100) == b"ef"


async def test_msg_waitall_gathers_the_full_size_across_segments():
    async with two_hosts(delay=0.01) as (net, a, b, link):
        c, conn, ls = await connected(a, b, "10.0.0.2")
        c.setsockopt(IPPROTO_TCP, socket.TCP_NODELAY, 1)

        async def trickle():
            for i in range(5):
                await c.send(bytes([65 + i]) * 10)
                await trio.sleep(0.1)
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trickle)
                assert await conn.recv(50, socket.MSG_WAITALL) == (
                    b"A" * 10 + b"B" * 10 + b"C" * 10 + b"D" * 10 + b"E" * 10)
        assert trio.current_time() >= 0.4


async def test_msg_waitall_returns_short_at_eof():
    async with two_hosts() as (net, a, b, link):
        c, conn, ls = await connected(a, b, "10.0.0.2")
        await c.send(b"short")
        c.shutdown(socket.SHUT_WR)
        with trio.fail_after(5):
            assert await conn.recv(100, socket.MSG_WAITALL) == b"short"


async def test_msg_dontwait_is_eagain_on_a_blocking_socket_then_reads():
    async with two_hosts() as (net, a, b, link):
        c, conn, ls = await connected(a, b, "10.0.0.2")
        with pytest.raises(OSError) as e:
            await conn.recv(10, socket.MSG_DONTWAIT)
        assert e.value.errno == errno.EAGAIN
        await c.send(b"now")
        await trio.sleep(0.1)
        assert await conn.recv(10, socket.MSG_DONTWAIT) == b"now"


# -- listen backlog -------------------------------------------------------------------------------

async def test_listen_backlog_overflow_drops_the_syn_and_the_client_gets_in_on_retry():
    async with two_hosts() as (net, a, b, link):
        ls = await listener(b, backlog=1)
        clients = [tcp(a) for _ in range(3)]
        with trio.fail_after(5):
            # sk_acceptq_is_full is `queued > backlog`: two fit with listen(1).
            await clients[0].connect(("10.0.0.2", PORT))
            await clients[1].connect(("10.0.0.2", PORT))
        done_at = []

        async def third():
            await clients[2].connect(("10.0.0.2", PORT))
            done_at.append(trio.current_time())
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(third)
                await trio.sleep(0.5)
                assert sk_of(clients[2]).sk_state == TCP_SYN_SENT
                assert b.stats()["TcpExt"]["ListenOverflows"] == 1
                await ls.accept()  # makes room
        # The client's first SYN retransmission (RTO 1 s) gets in.
        assert done_at == [pytest.approx(1.0, abs=0.01)]
        assert tcp_get_info(sk_of(clients[2]))["tcpi_total_retrans"] == 1
        with trio.fail_after(5):
            for _ in range(2):
                await ls.accept()


async def test_a_full_syn_queue_answers_with_syn_cookies_and_everyone_gets_in():
    # tcp_conn_request: inet_csk_reqsk_queue_is_full with tcp_syncookies = 1 → a cookie
    # SYN-ACK instead of a request sock; the client's ACK (or its data) rebuilds the
    # connection (cookie_v4_check).
    async with two_hosts(delay=0.05) as (net, a, b, link):
        ls = await listener(b, backlog=1)
        clients = [tcp(a) for _ in range(3)]
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                for c in clients:
                    nursery.start_soon(c.connect, ("10.0.0.2", PORT))
        assert b.stats()["TcpExt"]["SyncookiesSent"] == 2
        for i, c in enumerate(clients):
            await c.send(b"hello %d" % i)
        got = set()
        with trio.fail_after(10):
            for _ in clients:
                conn, _ = await ls.accept()
                got.add(await conn.recv(100))
        assert got == {b"hello 0", b"hello 1", b"hello 2"}


# -- introspection --------------------------------------------------------------------------------

async def test_tcp_info_after_the_handshake():
    async with two_hosts(delay=0.01) as (net, a, b, link):
        c, conn, ls = await connected(a, b, "10.0.0.2")
        raw = conn.getsockopt(IPPROTO_TCP, socket.TCP_INFO, 232)
        assert len(raw) == 232
        state, ca_state, retransmits, probes, backoff, options, wscales = raw[:7]
        assert (state, ca_state, retransmits, probes, backoff) == (TCP_ESTABLISHED, 0, 0, 0, 0)
        assert options == 7  # TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK | TCPI_OPT_WSCALE
        assert wscales == 0x77  # rcv_wscale << 4 | snd_wscale
        info = tcp_get_info(sk_of(conn))
        # The server's RTT sample is the SYN-ACK's round trip, 20 ms: srtt 20 ms, rttvar
        # mdev/4 = 2 * 20 / 4 ms, rto = srtt + max(mdev, TCP_RTO_MIN) (tcp_rtt_estimator,
        # __tcp_set_rto).
        assert (info["tcpi_rtt"], info["tcpi_rttvar"], info["tcpi_rto"]) == (20000, 10000, 220000)
        assert (info["tcpi_snd_mss"], info["tcpi_advmss"], info["tcpi_pmtu"]) == (1448, 1460, 1500)
        assert (info["tcpi_snd_cwnd"], info["tcpi_snd_ssthresh"]) == (10, 0x7FFFFFFF)
        assert (info["tcpi_unacked"], info["tcpi_total_retrans"], info["tcpi_reordering"]) == (
            0, 0, 3)
        assert info["tcpi_snd_wnd"] == 502 << 7
        assert struct.unpack_from("@I", raw, 8)[0] == info["tcpi_rto"]
        # The buffers Linux reports for a fresh connection (tcp_rmem[1], tcp_sndbuf_expand).
        assert conn.getsockopt(SOL_SOCKET, socket.SO_RCVBUF) == 131072
        assert conn.getsockopt(SOL_SOCKET, socket.SO_SNDBUF) == 87040
        assert c.getsockopt(IPPROTO_TCP, socket.TCP_MAXSEG) == 1448


# -- the rest of the state machine ----------------------------------------------------------------

async def test_simultaneous_open():
    # RFC 9293 §3.5 figure 7: SYN_SENT + SYN → SYN_RECV, SYN-ACK → ESTABLISHED on both.
    async with two_hosts(delay=0.01) as (net, a, b, link):
        with trio.fail_after(10):
            await a.ping("10.0.0.2")  # both ends know each other's MAC: the SYNs cross
        s1, s2 = tcp(a), tcp(b)
        await s1.bind(("", 4001))
        await s2.bind(("", 4002))
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(s1.connect, ("10.0.0.2", 4002))
                nursery.start_soon(s2.connect, ("10.0.0.1", 4001))
        assert sk_of(s1).sk_state == sk_of(s2).sk_state == TCP_ESTABLISHED
        assert (a.stats()["Tcp"]["ActiveOpens"], a.stats()["Tcp"]["PassiveOpens"]) == (1, 0)
        await s1.send(b"crossed")
        with trio.fail_after(5):
            assert await s2.recv(100) == b"crossed"


async def test_simultaneous_close_ends_in_time_wait_on_both_sides():
    # FIN_WAIT1 + FIN → CLOSING; its ACK → TIME_WAIT (tcp_fin, tcp_rcv_state_process).
    async with two_hosts(delay=0.01) as (net, a, b, link):
        c, conn, ls = await connected(a, b, "10.0.0.2")
        ls.close()
        c.close()
        conn.close()
        await trio.sleep(1)
        assert [r.state for r in a.sockets()] == [r.state for r in b.sockets()] == ["TIME-WAIT"]


async def test_an_orphan_in_fin_wait2_is_closed_after_tcp_fin_timeout():
    # tcp_close: an orphan reaching FIN_WAIT2 lives tcp_fin_timeout (60 s), then goes.
    async with two_hosts(delay=0.01) as (net, a, b, link):
        c, conn, ls = await connected(a, b, "10.0.0.2")
        c.close()  # b never closes its side
        await trio.sleep(59)
        assert [r.state for r in a.sockets()] == ["FIN-WAIT-2"]
        await trio.sleep(2)
        assert a.sockets() == []


async def test_data_for_a_closed_orphan_is_answered_with_rst():
    # tcp_rcv_state_process: FIN_WAIT2 of a dead socket receiving new data → TCPAbortOnData,
    # reset (the reader is gone: the data can never be delivered).
    async with two_hosts(delay=0.01) as (net, a, b, link):
        c, conn, ls = await connected(a, b, "10.0.0.2")
        c.close()
        await trio.sleep(1)
        with trio.fail_after(5):
            assert await conn.recv(10) == b""  # a's FIN
        await conn.send(b"anyone there?")
        await wait_for_state(conn, TCP_CLOSE)
        assert a.stats()["TcpExt"]["TCPAbortOnData"] == 1
        assert a.stats()["Tcp"]["OutRsts"] == 1
        # conn was in CLOSE_WAIT: tcp_reset reports EPIPE there.
        with pytest.raises(OSError) as e:
            await conn.send(b"x")
        assert e.value.errno == errno.EPIPE


async def test_connect_to_an_address_nobody_has_fails_with_ehostunreach_after_arp():
    # Three unanswered ARP requests (mcast_solicit, 1 s apart) fail the neighbour; the queued
    # SYNs come back as a local ICMP host unreachable (arp_error_report), which ends the
    # connect in SYN_SENT (tcp_v4_err): "No route to host" after 3 s.
    async with two_hosts() as (net, a, b, link):
        c = tcp(a)
        with trio.fail_after(60), pytest.raises(OSError) as e:
            await c.connect(("10.0.0.99", PORT))
        assert e.value.errno == errno.EHOSTUNREACH
        assert trio.current_time() == pytest.approx(3.0, abs=0.01)


# -- options --------------------------------------------------------------------------------------

async def test_tcp_maxseg_before_connect_is_advertised_and_used(tmp_path):
    path = tmp_path / "maxseg.pcapng"
    async with two_hosts() as (net, a, b, link):
        cap = net.capture(str(path))
        ls = await listener(b)
        c = tcp(a)
        c.setsockopt(IPPROTO_TCP, socket.TCP_MAXSEG, 1000)
        with trio.fail_after(5):
            await c.connect(("10.0.0.2", PORT))
            conn, _ = await ls.accept()
        await c.send(bytes(5000))
        await trio.sleep(1)
        # tcp_connect_init: advmss = min(route's, user_mss); mss_cache less the TS option.
        assert c.getsockopt(IPPROTO_TCP, socket.TCP_MAXSEG) == 988
        cap.close()
    from_a = [f for f in capture_tcp(path, "a:eth0") if f[TCP].sport != PORT]
    assert from_a[0][TCP].options[0] == ("MSS", 1000)
    assert max(len(f[TCP].payload) for f in from_a) == 988


async def test_tcp_cork_holds_a_partial_segment_until_uncorked():
    async with two_hosts(delay=0.01) as (net, a, b, link):
        c, conn, ls = await connected(a, b, "10.0.0.2")
        c.setsockopt(IPPROTO_TCP, socket.TCP_CORK, 1)
        await c.send(b"head")
        await c.send(b"er")
        await trio.sleep(0.1)
        assert sk_of(c).write_queue and not sk_of(c).packets_out  # nothing sent yet
        c.setsockopt(IPPROTO_TCP, socket.TCP_CORK, 0)
        with trio.fail_after(5):
            assert await conn.recv(100) == b"header"  # one segment, on uncork


async def test_tcp_cork_is_released_by_the_probe_timer():
    # man 7 tcp: "a 200 millisecond ceiling on the time for which output is corked": with
    # nothing in flight the probe timer (one RTO) pushes the corked data (tcp_write_wakeup).
    async with two_hosts(delay=0.01) as (net, a, b, link):
        c, conn, ls = await connected(a, b, "10.0.0.2")
        c.setsockopt(IPPROTO_TCP, socket.TCP_CORK, 1)
        start = trio.current_time()
        await c.send(b"corked")
        with trio.fail_after(5):
            assert await conn.recv(100) == b"corked"
        waited = trio.current_time() - start
        assert 0.2 <= waited <= tcp_get_info(sk_of(c))["tcpi_rto"] / 1e6 + 0.011


async def test_tcp_defer_accept_waits_for_data():
    # tcp_check_req: with rskq_defer_accept a bare ACK completing the handshake is dropped
    # (req->acked = 1); the connection is only queued for accept() when data arrives.
    async with two_hosts(delay=0.01) as (net, a, b, link):
        ls = tcp(b)
        await ls.bind(("", PORT))
        ls.setsockopt(IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 5)
        # Kept as 3 SYN-ACK retransmissions (1 + 2 + 4 s >= 5 s), read back as their 7 s.
        assert ls.getsockopt(IPPROTO_TCP, socket.TCP_DEFER_ACCEPT) == 7
        ls.listen(5)
        c = tcp(a)
        with trio.fail_after(5):
            await c.connect(("10.0.0.2", PORT))
        with trio.move_on_after(2):
            await ls.accept()
            pytest.fail("accept() returned before the client sent anything")
        await c.send(b"now")
        with trio.fail_after(5):
            conn, _ = await ls.accept()
            assert await conn.recv(10) == b"now"


async def test_a_closed_connection_frees_its_sockets():
    # Both ends closed: the client's socket became a TIME_WAIT mini-socket, the server's was
    # destroyed after LAST_ACK. Neither full socket may stay reachable, not through the
    # cancelled timers' entries left in the timer heap either: their keep-alive timers (2 h
    # away, behind the TIME_WAIT timer's 60 s) once held each socket until the heap was
    # next rebuilt.
    async with two_hosts() as (net, a, b, link):
        ls = tcp(a)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        await ls.bind(("127.0.0.1", 9100))
        ls.listen(1)
        c = tcp(a)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        await c.connect(("127.0.0.1", 9100))
        s, _ = await ls.accept()
        await c.send(b"x")
        assert await s.recv(1) == b"x"
        # By identity among the collector's objects, not by weak reference: the compiled
        # build's sockets take none. No socket is made after these two, so no id is reused.
        ids = {id(sk_of(c)), id(sk_of(s))}
        s.close()
        assert await c.recv(1) == b""
        c.close()
        await trio.sleep(1)  # the last ACK is in; TIME_WAIT lasts 60 s
        gc.collect()
        assert [o for o in gc.get_objects() if id(o) in ids and isinstance(o, TcpSock)] == []
        ls.close()

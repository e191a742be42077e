"""UDP (pystack/net/ipv4/udp.py) through the socket interface: the rules of man 7 udp and
net/ipv4/udp.c, each asserted with Linux's exact errno.

Every test builds its own seeded network and runs in virtual time (tests/conftest.py).
Receives that could hang on a bug are bounded by `trio.fail_after` (virtual seconds).
"""

from __future__ import annotations

import errno
import socket

import pytest
import trio
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from pystack.kernel.sched import CAP_NET_BIND_SERVICE
from pystack.net.socket import sys_connect
from pystack.pcap import read_pcapng

from nethelpers import lan, udp

AF_INET, SOCK_DGRAM = socket.AF_INET, socket.SOCK_DGRAM
SOL_SOCKET = socket.SOL_SOCKET
IP_FREEBIND = 15  # include/uapi/linux/in.h (not in Python's socket module)


async def recvfrom(s, size: int = 2048, flags: int = 0, timeout: float = 10.0):
    with trio.fail_after(timeout):
        return await s.recvfrom(size, flags)


def assert_nothing_queued(s) -> None:
    """A non-blocking receive finds nothing (without consuming anything)."""
    assert not s.is_readable()


# -- echo ----------------------------------------------------------------------------------------

async def test_echo_host_to_host_over_a_switch():
    async with lan() as (net, a, b, c):
        server = udp(b)
        await server.bind(("0.0.0.0", 7))
        client = udp(a)
        await client.sendto(b"ping", ("10.0.0.2", 7))
        data, peer = await recvfrom(server)
        assert data == b"ping" and peer[0] == "10.0.0.1"
        await server.sendto(data.upper(), peer)
        assert await recvfrom(client) == (b"PING", ("10.0.0.2", 7))
        assert a.stats()["Udp"]["OutDatagrams"] == 1 and a.stats()["Udp"]["InDatagrams"] == 1
        assert b.stats()["Udp"]["InDatagrams"] == 1


async def test_echo_over_loopback():
    async with lan(1) as (net, a):
        server = udp(a)
        await server.bind(("127.0.0.1", 7))
        client = udp(a)
        await client.sendto(b"hello", ("localhost", 7))
        data, peer = await recvfrom(server)
        assert data == b"hello" and peer[0] == "127.0.0.1"
        await server.sendto(data, peer)
        assert await recvfrom(client) == (b"hello", ("127.0.0.1", 7))
        assert a.interface("eth0").stats.as_dict()["tx_packets"] == 0


async def test_sending_to_our_own_ethernet_address_goes_through_loopback():
    async with lan(1) as (net, a):
        server = udp(a)
        await server.bind(("", 7))
        await udp(a).sendto(b"self", ("10.0.0.1", 7))
        data, peer = await recvfrom(server)
        assert data == b"self" and peer[0] == "10.0.0.1"
        assert a.interface("lo").stats.as_dict()["rx_packets"] == 1
        assert a.interface("eth0").stats.as_dict()["tx_packets"] == 0


async def test_a_datagram_looped_back_keeps_the_route_it_was_sent_with():
    # loopback_xmit keeps the skb's dst (skb_dst_force) and ip_rcv_finish routes only an skb
    # without one: nothing is looked up, or cached, for the input side.
    async with lan(1) as (net, a):
        server = udp(a)
        await server.bind(("", 7))
        await udp(a).sendto(b"self", ("10.0.0.1", 7))
        await udp(a).sendto(b"lo", ("127.0.0.1", 7))
        assert [(await recvfrom(server))[0] for _ in range(2)] == [b"self", b"lo"]
        assert [key for key in a.net.ipv4.rt_cache if key[3] == 1] == []  # (…, input)


# -- datagram semantics --------------------------------------------------------------------------

async def test_datagram_boundaries_are_kept():
    async with lan(2) as (net, a, b):
        server = udp(b)
        await server.bind(("", 9000))
        client = udp(a)
        await client.sendto(b"first", ("10.0.0.2", 9000))
        await client.sendto(b"second!", ("10.0.0.2", 9000))
        assert (await recvfrom(server))[0] == b"first"
        assert (await recvfrom(server))[0] == b"second!"


async def test_short_recv_returns_the_head_and_discards_the_rest():
    async with lan(2) as (net, a, b):
        server = udp(b)
        await server.bind(("", 9000))
        client = udp(a)
        await client.sendto(b"0123456789", ("10.0.0.2", 9000))
        await client.sendto(b"next", ("10.0.0.2", 9000))
        assert (await recvfrom(server, 4))[0] == b"0123"
        assert (await recvfrom(server, 100))[0] == b"next"  # "456789" is gone


async def test_recvmsg_reports_msg_trunc():
    async with lan(2) as (net, a, b):
        server = udp(b)
        await server.bind(("", 9000))
        await udp(a).sendto(b"0123456789", ("10.0.0.2", 9000))
        await udp(a).sendto(b"fits", ("10.0.0.2", 9000))
        with trio.fail_after(10):
            data, anc, flags, addr = await server.recvmsg(4)
            assert (data, flags & socket.MSG_TRUNC) == (b"0123", socket.MSG_TRUNC)
            data, anc, flags, addr = await server.recvmsg(100)
            assert (data, flags & socket.MSG_TRUNC) == (b"fits", 0)


async def test_msg_trunc_flag_makes_recv_return_the_real_length():
    async with lan(2) as (net, a, b):
        server = udp(b)
        await server.bind(("", 9000))
        await udp(a).sendto(b"0123456789", ("10.0.0.2", 9000))
        buf = bytearray(4)
        with trio.fail_after(10):
            n = await server.recv_into(buf, 4, socket.MSG_TRUNC)
        assert n == 10 and buf == b"0123"


async def test_msg_peek_leaves_the_datagram_queued():
    async with lan(2) as (net, a, b):
        server = udp(b)
        await server.bind(("", 9000))
        await udp(a).sendto(b"peekaboo", ("10.0.0.2", 9000))
        assert (await recvfrom(server, 100, socket.MSG_PEEK))[0] == b"peekaboo"
        assert (await recvfrom(server, 4, socket.MSG_PEEK))[0] == b"peek"
        assert (await recvfrom(server, 100))[0] == b"peekaboo"
        assert_nothing_queued(server)
        assert b.stats()["Udp"]["InDatagrams"] == 1  # a peek is not a delivery


async def test_msg_dontwait_on_an_empty_socket_raises_eagain():
    async with lan(1) as (net, a):
        s = udp(a)
        await s.bind(("", 9000))
        with pytest.raises(BlockingIOError) as e:
            await s.recv(100, socket.MSG_DONTWAIT)
        assert e.value.errno == errno.EAGAIN


async def test_a_blocking_recv_waits_for_the_datagram():
    async with lan(2) as (net, a, b):
        server = udp(b)
        await server.bind(("", 9000))

        async def later():
            await trio.sleep(3)
            await udp(a).sendto(b"late", ("10.0.0.2", 9000))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(later)
            start = trio.current_time()
            assert (await recvfrom(server))[0] == b"late"
            assert trio.current_time() - start >= 3


# -- receive buffer ------------------------------------------------------------------------------

async def test_so_rcvbuf_reads_back_doubled():
    async with lan(1) as (net, a):
        s = udp(a)
        assert s.getsockopt(SOL_SOCKET, socket.SO_RCVBUF) == 212992  # net.core.rmem_default
        s.setsockopt(SOL_SOCKET, socket.SO_RCVBUF, 10000)
        assert s.getsockopt(SOL_SOCKET, socket.SO_RCVBUF) == 20000


async def test_so_rcvbuf_has_a_minimum_of_2304():
    async with lan(1) as (net, a):
        s = udp(a)
        s.setsockopt(SOL_SOCKET, socket.SO_RCVBUF, 1)
        assert s.getsockopt(SOL_SOCKET, socket.SO_RCVBUF) == 2304  # SOCK_MIN_RCVBUF


async def test_so_rcvbuf_is_capped_by_rmem_max():
    async with lan(1) as (net, a):
        s = udp(a)
        s.setsockopt(SOL_SOCKET, socket.SO_RCVBUF, 1 << 24)
        assert s.getsockopt(SOL_SOCKET, socket.SO_RCVBUF) == 2 * 212992


async def test_a_negative_so_rcvbuf_asks_for_the_maximum():
    # sock_setsockopt clamps with min_t(u32, val, rmem_max): -1 is a huge unsigned value.
    async with lan(1) as (net, a):
        s = udp(a)
        s.setsockopt(SOL_SOCKET, socket.SO_RCVBUF, -1)
        assert s.getsockopt(SOL_SOCKET, socket.SO_RCVBUF) == 2 * 212992
        s.setsockopt(SOL_SOCKET, socket.SO_SNDBUF, -1)
        assert s.getsockopt(SOL_SOCKET, socket.SO_SNDBUF) == 2 * 212992


async def test_so_sndbuf_reads_back_doubled_with_a_minimum():
    async with lan(1) as (net, a):
        s = udp(a)
        s.setsockopt(SOL_SOCKET, socket.SO_SNDBUF, 10000)
        assert s.getsockopt(SOL_SOCKET, socket.SO_SNDBUF) == 20000
        s.setsockopt(SOL_SOCKET, socket.SO_SNDBUF, 1)
        assert s.getsockopt(SOL_SOCKET, socket.SO_SNDBUF) == 4608  # SOCK_MIN_SNDBUF


async def test_a_burst_beyond_the_receive_buffer_is_dropped_and_counted():
    async with lan(2) as (net, a, b):
        server = udp(b)
        server.setsockopt(SOL_SOCKET, socket.SO_RCVBUF, 4096)  # 8192 bytes of truesize
        await server.bind(("", 9000))
        client = udp(a)
        burst = 30
        for i in range(burst):
            await client.sendto(bytes([i]) * 100, ("10.0.0.2", 9000))
        await trio.sleep(1)  # let every frame arrive; nobody reads meanwhile
        udp_mib = b.stats()["Udp"]
        drops = udp_mib["RcvbufErrors"]
        assert 0 < drops < burst
        assert udp_mib["InErrors"] == drops
        [row] = [r for r in b.sockets() if r.local.endswith(":9000")]
        assert row.drops == drops
        assert b.drops().get("SOCKET_RCVBUFF") == drops
        received = []
        while server.is_readable():
            received.append((await server.recv(200, socket.MSG_DONTWAIT))[0])
        # The first datagrams were queued, the later ones dropped: arrival order is kept.
        assert received == list(range(burst - drops))
        assert b.stats()["Udp"]["InDatagrams"] == burst - drops


# -- ports ---------------------------------------------------------------------------------------

async def test_ephemeral_ports_come_from_ip_local_port_range():
    async with lan(1) as (net, a):
        a.set_sysctl("net.ipv4.ip_local_port_range", (40000, 40002))
        ports = set()
        for _ in range(3):
            s = udp(a)
            await s.bind(("", 0))
            ports.add(s.getsockname()[1])
        assert ports == {40000, 40001, 40002}


async def test_bind_to_port_zero_with_the_range_exhausted_raises_eaddrinuse():
    async with lan(1) as (net, a):
        a.set_sysctl("net.ipv4.ip_local_port_range", (40000, 40001))
        for _ in range(2):
            await udp(a).bind(("", 0))
        with pytest.raises(OSError) as e:
            await udp(a).bind(("", 0))
        assert e.value.errno == errno.EADDRINUSE


async def test_autobind_with_the_range_exhausted_raises_eagain():
    # inet_autobind returns -EAGAIN at once (net/ipv4/af_inet.c): it does not wait.
    async with lan(2) as (net, a, b):
        a.set_sysctl("net.ipv4.ip_local_port_range", (40000, 40001))
        for _ in range(2):
            await udp(a).bind(("", 0))
        s = udp(a)
        with trio.fail_after(10), pytest.raises(BlockingIOError) as e:
            await s.sendto(b"x", ("10.0.0.2", 9))
        assert e.value.errno == errno.EAGAIN
        assert s.getsockname() == ("0.0.0.0", 0)


async def test_connect_with_the_range_exhausted_raises_eagain():
    async with lan(2) as (net, a, b):
        a.set_sysctl("net.ipv4.ip_local_port_range", (40000, 40000))
        await udp(a).bind(("", 0))
        with pytest.raises(BlockingIOError) as e:
            await udp(a).connect(("10.0.0.2", 9))
        assert e.value.errno == errno.EAGAIN


async def test_sendto_autobinds_an_ephemeral_port():
    async with lan(2) as (net, a, b):
        server = udp(b)
        await server.bind(("", 9000))
        client = udp(a)
        assert client.getsockname() == ("0.0.0.0", 0)
        await client.sendto(b"x", ("10.0.0.2", 9000))
        port = client.getsockname()[1]
        low, high = a.sysctl.ip_local_port_range
        assert low <= port <= high
        assert (await recvfrom(server))[1] == ("10.0.0.1", port)


async def test_two_binds_to_one_port_raise_eaddrinuse():
    async with lan(1) as (net, a):
        await udp(a).bind(("", 5000))
        with pytest.raises(OSError) as e:
            await udp(a).bind(("", 5000))
        assert e.value.errno == errno.EADDRINUSE


async def test_so_reuseaddr_on_both_lets_two_sockets_bind_one_port():
    async with lan(1) as (net, a):
        s1, s2 = udp(a), udp(a)
        for s in (s1, s2):
            s.setsockopt(SOL_SOCKET, socket.SO_REUSEADDR, 1)
            await s.bind(("", 5000))
        assert s1.getsockname() == s2.getsockname() == ("0.0.0.0", 5000)


async def test_so_reuseaddr_on_one_only_is_not_enough():
    async with lan(1) as (net, a):
        s1 = udp(a)
        s1.setsockopt(SOL_SOCKET, socket.SO_REUSEADDR, 1)
        await s1.bind(("", 5000))
        with pytest.raises(OSError) as e:
            await udp(a).bind(("", 5000))
        assert e.value.errno == errno.EADDRINUSE


async def test_specific_addresses_on_one_port_do_not_conflict_but_the_wildcard_does():
    async with lan(1) as (net, a):
        await udp(a).bind(("10.0.0.1", 5000))
        await udp(a).bind(("127.0.0.1", 5000))
        with pytest.raises(OSError) as e:
            await udp(a).bind(("0.0.0.0", 5000))
        assert e.value.errno == errno.EADDRINUSE


async def test_a_specific_bind_wins_over_the_wildcard_on_the_same_port():
    async with lan(2) as (net, a, b):
        specific, wildcard = udp(b), udp(b)
        for s, addr in ((specific, "10.0.0.2"), (wildcard, "")):
            s.setsockopt(SOL_SOCKET, socket.SO_REUSEADDR, 1)
            await s.bind((addr, 5000))
        await udp(a).sendto(b"to eth0", ("10.0.0.2", 5000))
        await udp(b).sendto(b"to lo", ("127.0.0.1", 5000))
        assert (await recvfrom(specific))[0] == b"to eth0"
        assert (await recvfrom(wildcard))[0] == b"to lo"
        assert_nothing_queued(specific)


async def _reuseport_mapping(seed: int) -> list[int]:
    """Which of four SO_REUSEPORT sockets gets each of 16 flows (by client port)."""
    async with lan(2, seed=seed) as (net, a, b):
        group = []
        for _ in range(4):
            s = udp(b)
            s.setsockopt(SOL_SOCKET, socket.SO_REUSEPORT, 1)
            await s.bind(("", 6000))
            group.append(s)
        mapping = []
        for i in range(16):
            client = udp(a)
            await client.bind(("", 20000 + i))
            for _ in range(2):  # a flow sticks to its socket
                await client.sendto(bytes([i]), ("10.0.0.2", 6000))
            await trio.sleep(1)
            owner = [k for k, s in enumerate(group) if s.is_readable()]
            assert len(owner) == 1
            got = [await group[owner[0]].recv(10) for _ in range(2)]
            assert got == [bytes([i])] * 2
            mapping.append(owner[0])
        return mapping


async def test_so_reuseport_spreads_flows_deterministically():
    first = await _reuseport_mapping(seed=7)
    assert len(set(first)) > 1  # flows are spread over the group
    assert await _reuseport_mapping(seed=7) == first
    assert await _reuseport_mapping(seed=8) == first  # the hash of the 4-tuple, no seed


async def test_so_reuseport_needs_the_same_user():
    async with lan(1) as (net, a):
        s1 = udp(a)
        s1.setsockopt(SOL_SOCKET, socket.SO_REUSEPORT, 1)
        await s1.bind(("", 6000))
        async with a.process("other") as task:
            task.cred.uid = 1000
            s2 = udp(a)
            s2.setsockopt(SOL_SOCKET, socket.SO_REUSEPORT, 1)
            with pytest.raises(OSError) as e:
                await s2.bind(("", 6000))
            assert e.value.errno == errno.EADDRINUSE


# -- bind errors ---------------------------------------------------------------------------------

async def test_bind_to_an_address_that_is_not_ours_raises_eaddrnotavail():
    async with lan(2) as (net, a, b):
        with pytest.raises(OSError) as e:
            await udp(a).bind(("10.0.0.2", 5000))
        assert e.value.errno == errno.EADDRNOTAVAIL


async def test_bind_to_a_nonlocal_address_with_ip_freebind_is_allowed():
    async with lan(1) as (net, a):
        s = udp(a)
        s.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
        await s.bind(("10.0.0.99", 5000))
        assert s.getsockname() == ("10.0.0.99", 5000)


async def test_bind_twice_raises_einval():
    async with lan(1) as (net, a):
        s = udp(a)
        await s.bind(("", 5000))
        with pytest.raises(OSError) as e:
            await s.bind(("", 5001))
        assert e.value.errno == errno.EINVAL
        assert s.getsockname() == ("0.0.0.0", 5000)


async def test_bind_after_autobind_raises_einval():
    async with lan(2) as (net, a, b):
        s = udp(a)
        await s.sendto(b"x", ("10.0.0.2", 9))
        with pytest.raises(OSError) as e:
            await s.bind(("", 5000))
        assert e.value.errno == errno.EINVAL


async def test_bind_below_1024_without_cap_net_bind_service_raises_eacces():
    async with lan(1) as (net, a):
        async with a.process("unprivileged") as task:
            task.drop_capability(CAP_NET_BIND_SERVICE)
            s = udp(a)
            with pytest.raises(PermissionError) as e:
                await s.bind(("", 53))
            assert e.value.errno == errno.EACCES
            await s.bind(("", 1024))  # the first unprivileged port
        privileged = udp(a)
        await privileged.bind(("", 53))
        assert privileged.getsockname() == ("0.0.0.0", 53)


# -- send errors ---------------------------------------------------------------------------------

async def test_send_without_an_address_on_an_unconnected_socket_raises_edestaddrreq():
    async with lan(1) as (net, a):
        with pytest.raises(OSError) as e:
            await udp(a).send(b"where to?")
        assert e.value.errno == errno.EDESTADDRREQ


async def test_sendto_port_zero_raises_einval():
    # udp_sendmsg: `if (dport == 0) return -EINVAL;`
    async with lan(2) as (net, a, b):
        with pytest.raises(OSError) as e:
            await udp(a).sendto(b"x", ("10.0.0.2", 0))
        assert e.value.errno == errno.EINVAL


async def test_a_datagram_over_65507_bytes_raises_emsgsize():
    async with lan(1) as (net, a):
        server = udp(a)
        await server.bind(("127.0.0.1", 9000))
        client = udp(a)
        with pytest.raises(OSError) as e:
            await client.sendto(bytes(65508), ("127.0.0.1", 9000))
        assert e.value.errno == errno.EMSGSIZE
        big = bytes(range(256)) * 255 + bytes(227)  # 65507 bytes: the largest that fits
        assert await client.sendto(big, ("127.0.0.1", 9000)) == 65507
        assert (await recvfrom(server, 70000))[0] == big


async def test_a_datagram_larger_than_the_mtu_crosses_the_switch_whole():
    async with lan(2) as (net, a, b):
        server = udp(b)
        await server.bind(("", 9000))
        payload = bytes(range(256)) * 16  # 4096 bytes: three fragments at MTU 1500
        await udp(a).sendto(payload, ("10.0.0.2", 9000))
        assert (await recvfrom(server, 10000))[0] == payload
        assert b.stats()["Ip"]["ReasmOKs"] == 1


async def test_no_route_raises_enetunreach_and_counts_outnoroutes():
    async with lan(1) as (net, a):
        s = udp(a)
        with pytest.raises(OSError) as e:
            await s.sendto(b"x", ("192.0.2.1", 9))
        assert e.value.errno == errno.ENETUNREACH
        with pytest.raises(OSError) as e:
            await s.connect(("192.0.2.1", 9))
        assert e.value.errno == errno.ENETUNREACH
        assert a.stats()["Ip"]["OutNoRoutes"] == 2


async def test_shutdown_wr_then_send_raises_epipe():
    async with lan(2) as (net, a, b):
        s = udp(a)
        await s.connect(("10.0.0.2", 9000))
        s.shutdown(socket.SHUT_WR)
        with pytest.raises(BrokenPipeError) as e:
            await s.send(b"x")
        assert e.value.errno == errno.EPIPE
        assert s.did_shutdown_SHUT_WR


async def test_shutdown_of_an_unconnected_socket_raises_enotconn_but_shuts_it_down():
    # inet_shutdown: for TCP_CLOSE it sets err = -ENOTCONN and falls through to shut down.
    async with lan(2) as (net, a, b):
        s = udp(a)
        await s.bind(("", 9000))
        with pytest.raises(OSError) as e:
            s.shutdown(socket.SHUT_RDWR)
        assert e.value.errno == errno.ENOTCONN
        with pytest.raises(BrokenPipeError):
            await s.sendto(b"x", ("10.0.0.2", 9000))
        with trio.fail_after(1):
            assert await s.recv(100) == b""


async def test_shutdown_rd_makes_recv_return_empty_at_once():
    async with lan(2) as (net, a, b):
        s = udp(a)
        await s.connect(("10.0.0.2", 9000))
        s.shutdown(socket.SHUT_RD)
        start = trio.current_time()
        assert await s.recv(100) == b""
        assert trio.current_time() == start


async def test_a_nonblocking_recv_after_shutdown_rd_raises_eagain():
    # __skb_recv_udp only returns 0 for a shut-down socket from its wait; a non-blocking call
    # does not wait and reports EAGAIN (checked on Linux 6.18).
    async with lan(2) as (net, a, b):
        s = udp(a)
        await s.connect(("10.0.0.2", 9000))
        s.shutdown(socket.SHUT_RD)
        with pytest.raises(BlockingIOError) as e:
            await s.recv(100, socket.MSG_DONTWAIT)
        assert e.value.errno == errno.EAGAIN
        s2 = a.socket(AF_INET, SOCK_DGRAM | socket.SOCK_NONBLOCK)
        await s2.connect(("10.0.0.2", 9000))
        s2.shutdown(socket.SHUT_RD)
        with pytest.raises(BlockingIOError):
            await s2.recv(100)


async def test_datagrams_queued_before_shutdown_rd_are_still_read():
    async with lan(2) as (net, a, b):
        s = udp(a)
        await s.bind(("", 9000))
        await udp(b).sendto(b"early", ("10.0.0.1", 9000))
        await trio.sleep(1)
        with pytest.raises(OSError):
            s.shutdown(socket.SHUT_RD)  # unconnected: ENOTCONN, but shut down all the same
        assert await s.recv(100) == b"early"
        assert await s.recv(100) == b""


async def test_shutdown_with_a_bad_how_raises_einval():
    async with lan(2) as (net, a, b):
        s = udp(a)
        await s.connect(("10.0.0.2", 9000))
        with pytest.raises(OSError) as e:
            s.shutdown(3)
        assert e.value.errno == errno.EINVAL


# -- connect -------------------------------------------------------------------------------------

async def test_connect_sets_the_default_peer():
    async with lan(2) as (net, a, b):
        server = udp(b)
        await server.bind(("", 9000))
        client = udp(a)
        await client.connect(("10.0.0.2", 9000))
        assert client.getpeername() == ("10.0.0.2", 9000)
        assert client.getsockname()[0] == "10.0.0.1"  # the source the route chose
        await client.send(b"no address needed")
        assert (await recvfrom(server))[0] == b"no address needed"


async def test_getpeername_of_an_unconnected_socket_raises_enotconn():
    async with lan(1) as (net, a):
        with pytest.raises(OSError) as e:
            udp(a).getpeername()
        assert e.value.errno == errno.ENOTCONN


async def test_a_connected_socket_only_receives_from_its_peer():
    async with lan(3) as (net, a, b, c):
        s = udp(a)
        await s.bind(("", 9000))
        await s.connect(("10.0.0.2", 9000))
        peer = udp(b)
        await peer.bind(("", 9000))
        stranger = udp(c)
        await stranger.bind(("", 9000))
        await stranger.sendto(b"from c", ("10.0.0.1", 9000))
        await peer.sendto(b"from b", ("10.0.0.1", 9000))
        await trio.sleep(1)  # both have arrived (in either order: each waited for ARP)
        assert await recvfrom(s) == (b"from b", ("10.0.0.2", 9000))
        assert_nothing_queued(s)
        assert a.stats()["Udp"]["NoPorts"] == 1  # c's datagram found no socket


async def test_sendto_on_a_connected_socket_may_name_another_peer():
    async with lan(3) as (net, a, b, c):
        other = udp(c)
        await other.bind(("", 9000))
        s = udp(a)
        await s.connect(("10.0.0.2", 9000))
        await s.sendto(b"to c", ("10.0.0.3", 9000))
        assert (await recvfrom(other))[0] == b"to c"


async def test_connect_af_unspec_disconnects():
    # The trio face cannot express connect(AF_UNSPEC) (neither can Python's socket module), so
    # this is the syscall a C program makes with a struct sockaddr whose family is AF_UNSPEC.
    async with lan(3) as (net, a, b, c):
        s = udp(a)
        await s.bind(("", 9000))
        await s.connect(("10.0.0.2", 9000))
        await sys_connect(s.task, s.fileno(), 0, 0, 0)
        with pytest.raises(OSError) as e:
            s.getpeername()
        assert e.value.errno == errno.ENOTCONN
        with pytest.raises(OSError) as e:
            await s.send(b"x")
        assert e.value.errno == errno.EDESTADDRREQ
        assert s.getsockname() == ("0.0.0.0", 9000)  # an explicit bind survives
        await udp(c).sendto(b"anyone again", ("10.0.0.1", 9000))
        assert (await recvfrom(s))[0] == b"anyone again"


async def test_disconnect_forgets_the_bound_device():
    # __udp_disconnect resets sk_bound_dev_if: SO_BINDTODEVICE reads b"" afterwards
    # (checked on Linux 6.18).
    async with lan(2) as (net, a, b):
        s = udp(a)
        s.setsockopt(SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
        await s.connect(("10.0.0.2", 9000))
        await sys_connect(s.task, s.fileno(), 0, 0, 0)
        assert s.getsockopt(SOL_SOCKET, socket.SO_BINDTODEVICE, 16) == b""


async def test_disconnect_releases_an_autobound_port():
    # udp_disconnect: without SOCK_BINDPORT_LOCK the socket is unhashed (port 0 again).
    async with lan(2) as (net, a, b):
        s = udp(a)
        await s.connect(("10.0.0.2", 9000))
        assert s.getsockname()[1] != 0
        await sys_connect(s.task, s.fileno(), 0, 0, 0)
        assert s.getsockname() == ("0.0.0.0", 0)


async def test_connect_to_a_broadcast_address_without_so_broadcast_raises_eacces():
    async with lan(2) as (net, a, b):
        with pytest.raises(PermissionError) as e:
            await udp(a).connect(("10.0.0.255", 9000))
        assert e.value.errno == errno.EACCES


# -- ICMP errors ---------------------------------------------------------------------------------

async def _closed_peer_port(a, b) -> None:
    """Bind and close a port on b, so that 10.0.0.2:9000 answers with port unreachable."""
    gone = udp(b)
    await gone.bind(("", 9000))
    gone.close()


async def test_econnrefused_on_a_connected_socket_after_port_unreachable():
    async with lan(2) as (net, a, b):
        await _closed_peer_port(a, b)
        s = udp(a)
        await s.connect(("10.0.0.2", 9000))
        await s.send(b"anyone?")  # the send itself succeeds
        with trio.fail_after(10), pytest.raises(ConnectionRefusedError) as e:
            await s.recv(100)
        assert e.value.errno == errno.ECONNREFUSED
        assert b.stats()["Udp"]["NoPorts"] == 1
        assert a.stats()["Icmp"]["InDestUnreachs"] == 1


async def test_the_refusal_is_reported_once():
    async with lan(2) as (net, a, b):
        await _closed_peer_port(a, b)
        s = udp(a)
        await s.connect(("10.0.0.2", 9000))
        await s.send(b"anyone?")
        with trio.fail_after(10), pytest.raises(ConnectionRefusedError):
            await s.recv(100)
        with pytest.raises(BlockingIOError):
            await s.recv(100, socket.MSG_DONTWAIT)


async def test_no_econnrefused_on_an_unconnected_socket():
    async with lan(2) as (net, a, b):
        await _closed_peer_port(a, b)
        s = udp(a)
        await s.sendto(b"anyone?", ("10.0.0.2", 9000))
        await trio.sleep(1)
        assert a.stats()["Icmp"]["InDestUnreachs"] == 1  # the ICMP error did come back
        with pytest.raises(BlockingIOError) as e:
            await s.recv(100, socket.MSG_DONTWAIT)
        assert e.value.errno == errno.EAGAIN
        assert s.getsockopt(SOL_SOCKET, socket.SO_ERROR) == 0


async def test_so_error_returns_and_clears_the_pending_error():
    async with lan(2) as (net, a, b):
        await _closed_peer_port(a, b)
        s = udp(a)
        await s.connect(("10.0.0.2", 9000))
        await s.send(b"anyone?")
        await trio.sleep(1)
        assert s.getsockopt(SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED
        assert s.getsockopt(SOL_SOCKET, socket.SO_ERROR) == 0
        with pytest.raises(BlockingIOError):  # the error was taken: recv has nothing to say
            await s.recv(100, socket.MSG_DONTWAIT)


async def test_a_pending_error_fails_the_next_send():
    # sock_alloc_send_pskb checks sock_error first (net/core/sock.c).
    async with lan(2) as (net, a, b):
        await _closed_peer_port(a, b)
        s = udp(a)
        await s.connect(("10.0.0.2", 9000))
        await s.send(b"anyone?")
        await trio.sleep(1)
        with pytest.raises(ConnectionRefusedError):
            await s.send(b"again?")
        assert await s.send(b"and again") == 9  # reported once


# -- broadcast -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dest", ["10.0.0.255", "255.255.255.255", "<broadcast>"])
async def test_broadcast_without_so_broadcast_raises_eacces(dest):
    async with lan(2) as (net, a, b):
        a.add_route("default", via="10.0.0.254")  # 255.255.255.255 is routed by the default
        with pytest.raises(PermissionError) as e:
            await udp(a).sendto(b"hello all", (dest, 5000))
        assert e.value.errno == errno.EACCES


async def test_limited_broadcast_without_any_matching_route_raises_enetunreach():
    # ip_route_output_key_hash_rcu: with no oif, 255.255.255.255 goes through fib_lookup, and
    # a host without a default route has no match: -ENETUNREACH, before the SO_BROADCAST check.
    async with lan(2) as (net, a, b):
        s = udp(a)
        s.setsockopt(SOL_SOCKET, socket.SO_BROADCAST, 1)
        with pytest.raises(OSError) as e:
            await s.sendto(b"hello all", ("255.255.255.255", 5000))
        assert e.value.errno == errno.ENETUNREACH


@pytest.mark.parametrize("dest", ["10.0.0.255", "255.255.255.255"])
async def test_broadcast_with_so_broadcast_reaches_every_host_on_the_switch(dest):
    async with lan(4) as (net, a, b, c, d):
        a.add_route("default", via="10.0.0.254")  # never ARPed: a broadcast has no next hop
        receivers = []
        for h in (b, c, d):
            s = udp(h)
            await s.bind(("0.0.0.0", 5000))
            receivers.append(s)
        sender = udp(a)
        sender.setsockopt(SOL_SOCKET, socket.SO_BROADCAST, 1)
        assert sender.getsockopt(SOL_SOCKET, socket.SO_BROADCAST) == 1
        await sender.sendto(b"hello all", (dest, 5000))
        port = sender.getsockname()[1]
        for s in receivers:
            assert await recvfrom(s) == (b"hello all", ("10.0.0.1", port))
        assert a.neighbour_state("10.0.0.254") is None


@pytest.mark.parametrize("dest", ["10.0.0.255", "255.255.255.255"])
async def test_a_broadcast_frame_goes_to_the_ethernet_broadcast_address(tmp_path, dest):
    path = tmp_path / "bcast.pcapng"
    async with lan(2) as (net, a, b):
        a.add_route("default", via="10.0.0.254")
        cap = net.capture(str(path))
        s = udp(a)
        s.setsockopt(SOL_SOCKET, socket.SO_BROADCAST, 1)
        await s.sendto(b"hello all", (dest, 5000))
        await trio.sleep(1)
        cap.close()
    [frame] = _udp_frames(path, "a:eth0")
    assert (frame.dst, frame[IP].src, frame[IP].dst) == ("ff:ff:ff:ff:ff:ff", "10.0.0.1", dest)
    _assert_checksums_correct(frame)
    assert not [p for p in read_pcapng(path) if p.interface_name == "a:eth0"
                and Ether(p.data).type == 0x0806]  # no ARP: a broadcast has no next hop


async def test_broadcast_is_delivered_to_every_socket_on_the_port():
    async with lan(2) as (net, a, b):
        socks = []
        for _ in range(2):
            s = udp(b)
            s.setsockopt(SOL_SOCKET, socket.SO_REUSEADDR, 1)
            await s.bind(("", 5000))
            socks.append(s)
        sender = udp(a)
        sender.setsockopt(SOL_SOCKET, socket.SO_BROADCAST, 1)
        await sender.sendto(b"both", ("10.0.0.255", 5000))
        for s in socks:
            assert (await recvfrom(s))[0] == b"both"


async def test_a_broadcast_nobody_listens_to_is_ignored_without_port_unreachable():
    async with lan(2) as (net, a, b):
        sender = udp(a)
        sender.setsockopt(SOL_SOCKET, socket.SO_BROADCAST, 1)
        await sender.sendto(b"anyone", ("10.0.0.255", 5000))
        await trio.sleep(1)
        assert b.stats()["Udp"]["IgnoredMulti"] == 1
        assert b.stats()["Udp"]["NoPorts"] == 0
        assert b.stats()["Icmp"]["OutDestUnreachs"] == 0


# -- options -------------------------------------------------------------------------------------

async def test_an_unknown_option_raises_enoprotoopt():
    async with lan(1) as (net, a):
        s = udp(a)
        for level in (SOL_SOCKET, socket.IPPROTO_IP):
            with pytest.raises(OSError) as e:
                s.setsockopt(level, 9999, 1)
            assert e.value.errno == errno.ENOPROTOOPT
            with pytest.raises(OSError) as e:
                s.getsockopt(level, 9999)
            assert e.value.errno == errno.ENOPROTOOPT


async def test_an_option_of_another_protocol_level():
    # Linux 6.18: setsockopt says ENOPROTOOPT, getsockopt EOPNOTSUPP (ip_getsockopt's answer
    # for a level that is not SOL_IP).
    async with lan(1) as (net, a):
        s = udp(a)
        with pytest.raises(OSError) as e:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert e.value.errno == errno.ENOPROTOOPT
        with pytest.raises(OSError) as e:
            s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert e.value.errno == errno.EOPNOTSUPP


async def test_read_only_options_cannot_be_set():
    async with lan(1) as (net, a):
        with pytest.raises(OSError) as e:
            udp(a).setsockopt(SOL_SOCKET, socket.SO_TYPE, 1)
        assert e.value.errno == errno.ENOPROTOOPT


async def test_so_type_so_protocol_so_domain_read_back():
    async with lan(1) as (net, a):
        s = udp(a)
        assert s.getsockopt(SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_DGRAM
        assert s.getsockopt(SOL_SOCKET, socket.SO_PROTOCOL) == socket.IPPROTO_UDP
        assert s.getsockopt(SOL_SOCKET, socket.SO_DOMAIN) == socket.AF_INET
        assert (s.family, s.type, s.proto) == (AF_INET, SOCK_DGRAM, socket.IPPROTO_UDP)


async def test_so_reuseaddr_reads_back():
    async with lan(1) as (net, a):
        s = udp(a)
        assert s.getsockopt(SOL_SOCKET, socket.SO_REUSEADDR) == 0
        s.setsockopt(SOL_SOCKET, socket.SO_REUSEADDR, True)
        assert s.getsockopt(SOL_SOCKET, socket.SO_REUSEADDR) == 1


async def test_ip_ttl_out_of_range_raises_einval():
    async with lan(1) as (net, a):
        s = udp(a)
        for bad in (0, 256):
            with pytest.raises(OSError) as e:
                s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, bad)
            assert e.value.errno == errno.EINVAL
        s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, -1)  # back to the default
        assert s.getsockopt(socket.IPPROTO_IP, socket.IP_TTL) == 64


def _udp_frames(path, iface: str) -> list:
    frames = []
    for p in read_pcapng(path):
        if p.interface_name == iface:
            pkt = Ether(p.data)
            if UDP in pkt:
                frames.append(pkt)
    return frames


def _assert_checksums_correct(pkt) -> None:
    ip_sum, udp_sum = pkt[IP].chksum, pkt[UDP].chksum
    rebuilt = pkt.copy()
    del rebuilt[IP].chksum
    del rebuilt[UDP].chksum
    rebuilt = Ether(bytes(rebuilt))
    assert (ip_sum, udp_sum) == (rebuilt[IP].chksum, rebuilt[UDP].chksum)


async def test_ip_ttl_is_seen_on_the_wire(tmp_path):
    path = tmp_path / "ttl.pcapng"
    async with lan(2) as (net, a, b):
        cap = net.capture(str(path))
        server = udp(b)
        await server.bind(("", 9000))
        s = udp(a)
        await s.sendto(b"default ttl", ("10.0.0.2", 9000))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 7)
        assert s.getsockopt(socket.IPPROTO_IP, socket.IP_TTL) == 7
        await s.sendto(b"ttl 7", ("10.0.0.2", 9000))
        await recvfrom(server)
        await recvfrom(server)
        cap.close()
    frames = _udp_frames(path, "a:eth0")
    assert [(bytes(f[UDP].payload), f[IP].ttl) for f in frames] == [
        (b"default ttl", 64), (b"ttl 7", 7)]
    for f in frames:
        _assert_checksums_correct(f)
        assert (f[IP].src, f[IP].dst, f[UDP].dport) == ("10.0.0.1", "10.0.0.2", 9000)


async def test_ip_tos_is_seen_on_the_wire(tmp_path):
    path = tmp_path / "tos.pcapng"
    async with lan(2) as (net, a, b):
        cap = net.capture(str(path))
        server = udp(b)
        await server.bind(("", 9000))
        s = udp(a)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0x13)
        # A datagram socket keeps the ECN bits it is given (Linux 6.18 reads back 0x13).
        assert s.getsockopt(socket.IPPROTO_IP, socket.IP_TOS) == 0x13
        await s.sendto(b"low delay, ECT", ("10.0.0.2", 9000))
        await recvfrom(server)
        cap.close()
    [frame] = _udp_frames(path, "a:eth0")
    assert frame[IP].tos == 0x13
    _assert_checksums_correct(frame)


# -- checksum offload ----------------------------------------------------------------------------

def _payload_whose_checksum_is_zero(saddr: str, daddr: str, sport: int, dport: int) -> bytes:
    """Two bytes after which the datagram's one's complement sum is 0xffff: its checksum
    computes to 0, which UDP must send as 0xffff (0 means "no checksum", RFC 768)."""
    s, d = (int.from_bytes(socket.inet_aton(a), "big") for a in (saddr, daddr))
    ulen = 8 + 2
    total = s + d + 17 + ulen + sport + dport + ulen  # pseudo-header, then the UDP header
    word = (-total) % 0xFFFF or 0xFFFF
    return word.to_bytes(2, "big")


async def test_udp_over_loopback_leaves_the_checksum_to_the_device(tmp_path):
    # __ip_append_data: a datagram that goes out whole through a device with NETIF_F_HW_CSUM
    # (lo) is CHECKSUM_PARTIAL, its field holding only the pseudo-header's sum; the receiver
    # trusts it, and a capture completes it (skb_checksum_help), never as 0 (CSUM_MANGLED_0).
    from pystack.net.core.skbuff import CHECKSUM_PARTIAL
    from nethelpers import sk_of
    zero = _payload_whose_checksum_is_zero("127.0.0.1", "127.0.0.1", 5000, 7)
    path = tmp_path / "lo.pcapng"
    async with lan(1) as (net, a):
        server = udp(a)
        await server.bind(("127.0.0.1", 7))
        client = udp(a)
        await client.bind(("127.0.0.1", 5000))
        await client.sendto(b"partial", ("127.0.0.1", 7))
        assert [skb.ip_summed for skb in sk_of(server).sk_receive_queue] == [CHECKSUM_PARTIAL]
        assert await recvfrom(server) == (b"partial", ("127.0.0.1", 5000))
        cap = net.capture(str(path))
        for data in (b"hello", zero):
            await client.sendto(data, ("127.0.0.1", 7))
            assert (await recvfrom(server))[0] == data
        cap.close()
        assert a.stats()["Udp"]["InCsumErrors"] == 0
    frames = _udp_frames(path, "a:lo")
    assert [bytes(f[UDP].payload) for f in frames] == [b"hello", zero]
    for f in frames:
        _assert_checksums_correct(f)
    assert frames[1][UDP].chksum == 0xFFFF


async def test_udp_between_hosts_rides_the_nics_checksum_offload(tmp_path):
    # The emulated NICs offload the checksum (see drivers/net/nic.py): the datagram arrives
    # CHECKSUM_PARTIAL and is trusted; both captures show the checksum a wire would carry.
    from pystack.net.core.skbuff import CHECKSUM_PARTIAL
    from nethelpers import sk_of
    zero = _payload_whose_checksum_is_zero("10.0.0.1", "10.0.0.2", 5000, 7)
    path = tmp_path / "eth.pcapng"
    async with lan(2) as (net, a, b):
        server = udp(b)
        await server.bind(("", 7))
        client = udp(a)
        await client.bind(("", 5000))
        await client.sendto(b"offloaded", ("10.0.0.2", 7))
        with trio.fail_after(10):
            while not server.is_readable():
                await trio.sleep(0.001)
        assert [skb.ip_summed for skb in sk_of(server).sk_receive_queue] == [CHECKSUM_PARTIAL]
        assert (await recvfrom(server))[0] == b"offloaded"
        cap = net.capture(str(path))
        for data in (b"hello", zero):
            await client.sendto(data, ("10.0.0.2", 7))
            assert (await recvfrom(server))[0] == data
        cap.close()
        assert b.stats()["Udp"]["InCsumErrors"] == 0
    for iface in ("a:eth0", "b:eth0"):  # (b's frames as received: padded to 60 bytes)
        frames = _udp_frames(path, iface)
        assert [bytes(f[UDP].payload)[:f[UDP].len - 8] for f in frames] == [b"hello", zero]
        for f in frames:
            _assert_checksums_correct(f)
        assert frames[1][UDP].chksum == 0xFFFF


# -- sockets view --------------------------------------------------------------------------------

async def test_host_sockets_lists_udp_sockets_like_ss():
    async with lan(2) as (net, a, b):
        s = udp(a)
        await s.bind(("", 9000))
        await s.connect(("10.0.0.2", 7))
        [row] = a.sockets()
        assert (row.netid, row.state, row.local, row.peer, row.fd) == (
            "udp", "ESTAB", "10.0.0.1:9000", "10.0.0.2:7", s.fileno())
        s.close()
        assert list(a.sockets()) == []

"""The socket error queue (pystack/net/ipv4/ip_sockglue.py: ip_icmp_error, ip_local_error,
ip_recv_error) through the faces' recvmsg.

Reference: man 7 ip (IP_RECVERR), include/uapi/linux/errqueue.h, net/ipv4/ip_sockglue.c,
net/core/skbuff.c (sock_dequeue_err_skb: sk_err follows the queue). The first test runs one
program on the real kernel's loopback and on an emulated host and compares what it saw.
"""

from __future__ import annotations

import errno
import select
import socket
import struct

import pytest
import trio

import pystack
from pystack.dropin import blocking
from pystack.uapi.errqueue import (SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_LOCAL, SockExtendedErr)

IP_RECVERR = 11  # include/uapi/linux/in.h (not in Python's socket module)
IP_MTU_DISCOVER, IP_PMTUDISC_DO = 10, 2


def errqueue_program(ancbufsizes: tuple[int, ...]) -> list:
    """Datagrams to a closed port of 127.0.0.1 with IP_RECVERR, then the error queue read
    back with recvmsg(MSG_ERRQUEUE), one record per ancillary-buffer size."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out: list = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        try:
            s.recvmsg(100, 1024, socket.MSG_ERRQUEUE)
        except BlockingIOError as e:
            out.append(("empty", e.errno))
        p = select.poll()
        p.register(s, select.POLLIN)
        for n in ancbufsizes:
            s.sendto(b"probe %d" % n, ("127.0.0.1", port))
            events = p.poll(2000)
            out.append(("poll", [bool(ev & select.POLLERR) for _fd, ev in events]))
            # The error is pending too, and would fail the next sendto: take it.
            out.append(("SO_ERROR", s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)))
        for n in ancbufsizes:
            data, anc, flags, addr = s.recvmsg(100, n, socket.MSG_ERRQUEUE)
            addr = (addr[0], "PORT" if addr[1] == port else addr[1])
            out.append((data, anc, flags, addr, s.getsockopt(socket.SOL_SOCKET,
                                                             socket.SO_ERROR)))
        try:
            s.recvmsg(100, 1024, socket.MSG_ERRQUEUE)
        except BlockingIOError as e:
            out.append(("drained", e.errno))
    return out


async def test_the_error_queue_reads_as_on_the_real_kernel() -> None:
    sizes = (1024, 0, 20, socket.CMSG_LEN(0))
    real = errqueue_program(sizes)
    with blocking.installed():
        async with pystack.Network(seed=5) as net:
            a = net.add_host("a")
            async with a.process("p"):
                emulated = await trio.to_thread.run_sync(errqueue_program, sizes)
    assert emulated == real
    # and what it saw is what man 7 ip promises
    assert real[0] == ("empty", errno.EAGAIN)
    assert real[1:3] == [("poll", [True]), ("SO_ERROR", errno.ECONNREFUSED)]
    data, anc, flags, addr, so_error = real[9]
    assert (data, flags, addr) == (b"probe 1024", socket.MSG_ERRQUEUE, ("127.0.0.1", "PORT"))
    ((level, type_, raw),) = anc
    assert (level, type_) == (socket.IPPROTO_IP, IP_RECVERR)
    ee = SockExtendedErr.parse(raw)
    assert ee == SockExtendedErr(errno.ECONNREFUSED, SO_EE_ORIGIN_ICMP, 3, 3, 0, 0,
                                 offender=0x7F000001)
    assert so_error == errno.ECONNREFUSED  # the next record's errno, taken by SO_ERROR
    assert real[10][1] == [] and real[10][2] == socket.MSG_ERRQUEUE | socket.MSG_CTRUNC
    assert real[-2][4] == 0  # the last record taken clears sk_err


IP_PKTINFO, IP_RECVTTL, IP_RECVTOS = 8, 12, 13


def cmsg_program() -> list:
    """IP_PKTINFO, IP_RECVTTL and IP_RECVTOS on a datagram received over 127.0.0.1, and on an
    error-queue record (they describe the ICMP message there)."""
    out: list = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as r, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        r.bind(("127.0.0.1", 0))
        for opt in (IP_PKTINFO, IP_RECVTTL, IP_RECVTOS):
            r.setsockopt(socket.IPPROTO_IP, opt, 1)
        out.append([r.getsockopt(socket.IPPROTO_IP, o)
                    for o in (IP_PKTINFO, IP_RECVTTL, IP_RECVTOS)])
        s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0x10)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 9)
        s.sendto(b"hi", r.getsockname())
        data, anc, flags, _addr = r.recvmsg(100, 1024)
        out.append((data, anc, flags))
        s.sendto(b"again", r.getsockname())
        data, anc, flags, _addr = r.recvmsg(100, socket.CMSG_SPACE(12))
        out.append((data, anc, flags))  # room for the first only
        r.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 0)
        s.sendto(b"3", r.getsockname())
        out.append([t for _l, t, _d in r.recvmsg(100, 1024)[1]])
        port = r.getsockname()[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as e:
        for opt in (IP_RECVERR, IP_PKTINFO, IP_RECVTTL, IP_RECVTOS):
            e.setsockopt(socket.IPPROTO_IP, opt, 1)
        e.sendto(b"x", ("127.0.0.1", port))  # closed now
        select.select([e], [], [], 2)
        data, anc, flags, _addr = e.recvmsg(100, 1024, socket.MSG_ERRQUEUE)
        out.append((data, anc, flags))
    return out


async def test_ip_pktinfo_recvttl_recvtos_read_as_on_the_real_kernel() -> None:
    real = cmsg_program()
    with blocking.installed():
        async with pystack.Network(seed=5) as net:
            a = net.add_host("a")
            async with a.process("p"):
                emulated = await trio.to_thread.run_sync(cmsg_program)
    assert emulated == real
    lo = b"\x7f\0\0\x01"
    assert real[1] == (b"hi", [(socket.IPPROTO_IP, IP_PKTINFO, struct.pack("=i", 1) + lo + lo),
                               (socket.IPPROTO_IP, socket.IP_TTL, struct.pack("=i", 9)),
                               (socket.IPPROTO_IP, socket.IP_TOS, b"\x10")], 0)
    assert real[2][2] == socket.MSG_CTRUNC
    assert real[3] == [IP_PKTINFO, socket.IP_TOS]
    # on the error queue: the ICMP message's TTL and TOS (network control), then IP_RECVERR
    assert [t for _l, t, _d in real[4][1]] == [IP_PKTINFO, socket.IP_TTL, socket.IP_TOS,
                                                IP_RECVERR]
    assert real[4][1][2][2] == b"\xc0"


def _two_hosts(net: pystack.Network):
    a, b = net.add_host("a"), net.add_host("b")
    net.add_link(a, b, subnet="10.0.0.0/24")
    return a, b


async def test_a_datagram_too_big_with_pmtudisc_do_leaves_a_local_record() -> None:
    async with pystack.Network(seed=5) as net:
        a, _b = _two_hosts(net)
        s = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        s.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)
        with pytest.raises(OSError) as e:
            await s.sendto(b"x" * 2000, ("10.0.0.2", 9))
        assert e.value.errno == errno.EMSGSIZE
        data, anc, flags, addr = await s.recvmsg(100, 1024, socket.MSG_ERRQUEUE)
        assert (data, flags, addr) == (b"", socket.MSG_ERRQUEUE, ("10.0.0.2", 9))
        ee = SockExtendedErr.parse(anc[0][2])
        # ip_local_error: origin LOCAL, the MTU as info, and no offender
        assert ee == SockExtendedErr(errno.EMSGSIZE, SO_EE_ORIGIN_LOCAL, 0, 0, 1500, 0, None)
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0


async def test_without_ip_recverr_nothing_is_queued() -> None:
    async with pystack.Network(seed=5) as net:
        a, _b = _two_hosts(net)
        s = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await s.sendto(b"hello", ("10.0.0.2", 9))
        await trio.sleep(1)
        assert a.stats()["Icmp"]["InDestUnreachs"] == 1
        with pytest.raises(BlockingIOError):
            await s.recvmsg(100, 1024, socket.MSG_ERRQUEUE)


async def test_an_icmp_error_quotes_the_payload_the_router_sent_back() -> None:
    # Port unreachable from another host: the offender is that host, the data is the part
    # of the payload the ICMP message quoted (all of a short one), the address the original
    # destination.
    async with pystack.Network(seed=5) as net:
        a, _b = _two_hosts(net)
        s = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        await s.connect(("10.0.0.2", 33434))
        payload = bytes(range(0x40, 0x60))
        await s.send(payload)
        await trio.sleep(1)
        data, anc, flags, addr = await s.recvmsg(4, 1024, socket.MSG_ERRQUEUE)
        assert (data, flags) == (payload[:4], socket.MSG_ERRQUEUE | socket.MSG_TRUNC)
        assert addr == ("10.0.0.2", 33434)
        ee = SockExtendedErr.parse(anc[0][2])
        assert (ee.ee_errno, ee.ee_type, ee.ee_code) == (errno.ECONNREFUSED, 3, 3)
        assert ee.offender == 0x0A000002
        # The connected socket's pending error was taken with the record.
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0


def test_the_record_layout_is_linuxs() -> None:
    ee = SockExtendedErr(errno.EMSGSIZE, SO_EE_ORIGIN_ICMP, 3, 4, 1280, 0, 0x0A000102)
    raw = ee.emit()
    assert len(raw) == 32
    assert struct.unpack("=IBBBBII", raw[:16]) == (errno.EMSGSIZE, 2, 3, 4, 0, 1280, 0)
    assert raw[16:18] == socket.AF_INET.to_bytes(2, "little") and raw[20:24] == bytes(
        [10, 0, 1, 2])
    assert SockExtendedErr.parse(raw) == ee

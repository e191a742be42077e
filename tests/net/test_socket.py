"""The syscall layer (pystack/net/socket.py) and the trio face over it (pystack/dropin/trio.py):
descriptors, process contexts, errors as the socket module raises them, name resolution.
"""

from __future__ import annotations

import errno
import socket

import pytest
import trio

from pystack.dropin.trio import EmulatedSocket
from pystack.net.socket import (Sleep, sys_bind, sys_close, sys_getsockname, sys_getsockopt,
                                sys_recvfrom, sys_recvfrom_begin, sys_sendto,
                                sys_sendto_begin, sys_socket, sockfd_lookup)

from nethelpers import lan, udp

AF_INET, SOCK_DGRAM = socket.AF_INET, socket.SOCK_DGRAM


def ebadf(fn, *args):
    with pytest.raises(OSError) as e:
        fn(*args)
    assert e.value.errno == errno.EBADF


# -- descriptors ---------------------------------------------------------------------------------

async def test_descriptors_start_at_3_and_the_lowest_free_is_reused():
    async with lan(1) as (net, a):
        async with a.process("p") as task:
            fds = [sys_socket(task, AF_INET, SOCK_DGRAM) for _ in range(3)]
            assert fds == [3, 4, 5]
            sys_close(task, 4)
            assert sys_socket(task, AF_INET, SOCK_DGRAM) == 4
            assert sys_socket(task, AF_INET, SOCK_DGRAM) == 6
            sys_close(task, 3)
            sys_close(task, 5)
            assert sys_socket(task, AF_INET, SOCK_DGRAM) == 3
            assert sys_socket(task, AF_INET, SOCK_DGRAM) == 5


async def test_trio_sockets_get_descriptors_of_the_current_process():
    async with lan(1) as (net, a):
        async with a.process("p") as task:
            s1, s2 = udp(a), udp(a)
            assert (s1.fileno(), s2.fileno()) == (3, 4)
            assert s1.task is task
            assert task.files.open_fds() == [0, 1, 2, 3, 4]


async def test_a_closed_descriptor_gives_ebadf():
    async with lan(1) as (net, a):
        task = a.init_task
        fd = sys_socket(task, AF_INET, SOCK_DGRAM)
        sys_close(task, fd)
        ebadf(sys_close, task, fd)
        ebadf(sys_getsockname, task, fd)
        ebadf(sys_bind, task, fd, AF_INET, 0, 5000)
        ebadf(sys_getsockopt, task, fd, socket.SOL_SOCKET, socket.SO_TYPE)
        with pytest.raises(OSError) as e:
            await sys_sendto(task, fd, b"x", 0, (AF_INET, 0x7F000001, 9))
        assert e.value.errno == errno.EBADF
        with pytest.raises(OSError) as e:
            await sys_recvfrom(task, fd, 100)
        assert e.value.errno == errno.EBADF


async def test_descriptors_never_opened_give_ebadf():
    async with lan(1) as (net, a):
        for fd in (-1, 99, 1 << 20):
            ebadf(sys_getsockname, a.init_task, fd)


async def test_a_standard_stream_is_not_a_socket():
    async with lan(1) as (net, a):
        with pytest.raises(OSError) as e:
            sys_getsockname(a.init_task, 1)
        assert e.value.errno == errno.ENOTSOCK


async def test_a_closed_trio_socket_gives_ebadf():
    async with lan(1) as (net, a):
        s = udp(a)
        s.close()
        assert s.fileno() == -1
        ebadf(s.getsockname)
        with pytest.raises(OSError) as e:
            await s.sendto(b"x", ("127.0.0.1", 9))
        assert e.value.errno == errno.EBADF
        s.close()  # closing twice is harmless, as for a Python socket


async def test_emfile_at_rlimit_nofile_and_nothing_leaks():
    async with lan(1) as (net, a):
        async with a.process("hog") as task:
            fds = []
            for _ in range(1024 - 3):
                fd = sys_socket(task, AF_INET, SOCK_DGRAM)
                sys_bind(task, fd, AF_INET, 0, 0)
                fds.append(fd)
            assert fds[-1] == 1023
            with pytest.raises(OSError) as e:
                sys_socket(task, AF_INET, SOCK_DGRAM)
            assert e.value.errno == errno.EMFILE
            assert len(a.sockets()) == 1021  # the failed socket is not left behind
            assert len(task.files.fds) == 1024
            sys_close(task, 500)
            assert sys_socket(task, AF_INET, SOCK_DGRAM) == 500
        assert list(a.sockets()) == []  # process exit closed every one


# -- socket() arguments --------------------------------------------------------------------------

async def test_af_inet6_is_not_implemented_with_a_sentence():
    async with lan(1) as (net, a):
        with pytest.raises(NotImplementedError, match="IPv6"):
            a.socket(socket.AF_INET6, SOCK_DGRAM)
        assert a.init_task.files.open_fds() == [0, 1, 2]


async def test_an_unsupported_family_gives_eafnosupport():
    async with lan(1) as (net, a):
        with pytest.raises(OSError) as e:
            sys_socket(a.init_task, socket.AF_UNIX, SOCK_DGRAM)
        assert e.value.errno == errno.EAFNOSUPPORT


async def test_raw_sockets_are_not_implemented():
    async with lan(1) as (net, a):
        with pytest.raises(NotImplementedError, match="raw"):
            a.socket(AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)


@pytest.mark.parametrize("stype", [socket.SOCK_SEQPACKET, socket.SOCK_RDM, 0])
async def test_socket_types_inet_lacks_give_esocktnosupport(stype):
    # inet_create: no entry in inetsw[type] → -ESOCKTNOSUPPORT.
    async with lan(1) as (net, a):
        with pytest.raises(OSError) as e:
            sys_socket(a.init_task, AF_INET, stype)
        assert e.value.errno == errno.ESOCKTNOSUPPORT


async def test_a_type_beyond_sock_max_gives_einval():
    # __sock_create: `if (type < 0 || type >= SOCK_MAX) return -EINVAL;` (SOCK_MAX is 11).
    async with lan(1) as (net, a):
        with pytest.raises(OSError) as e:
            sys_socket(a.init_task, AF_INET, 12)
        assert e.value.errno == errno.EINVAL


async def test_an_unknown_type_flag_gives_einval():
    async with lan(1) as (net, a):
        with pytest.raises(OSError) as e:
            sys_socket(a.init_task, AF_INET, SOCK_DGRAM | 0x10)
        assert e.value.errno == errno.EINVAL


async def test_a_protocol_the_type_does_not_carry_gives_eprotonosupport():
    async with lan(1) as (net, a):
        with pytest.raises(OSError) as e:
            sys_socket(a.init_task, AF_INET, SOCK_DGRAM, socket.IPPROTO_TCP)
        assert e.value.errno == errno.EPROTONOSUPPORT


async def test_sock_nonblock_makes_recv_raise_eagain():
    async with lan(1) as (net, a):
        s = a.socket(AF_INET, SOCK_DGRAM | socket.SOCK_NONBLOCK)
        await s.bind(("", 9000))
        assert s.type == SOCK_DGRAM
        with pytest.raises(BlockingIOError) as e:
            await s.recv(10)
        assert e.value.errno == errno.EAGAIN


async def test_so_rcvtimeo_bounds_a_blocking_recv_with_eagain():
    async with lan(1) as (net, a):
        s = udp(a)
        await s.bind(("", 9000))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                     (2).to_bytes(8, "little") + (500000).to_bytes(8, "little"))
        start = trio.current_time()
        with pytest.raises(BlockingIOError) as e:
            await s.recv(10)
        assert e.value.errno == errno.EAGAIN
        assert trio.current_time() - start == pytest.approx(2.5)


async def test_a_send_or_receive_that_needs_no_sleep_returns_at_once_from_its_begin_form():
    async with lan(1) as (net, a):
        task = a.init_task
        tx, rx = sys_socket(task, AF_INET, SOCK_DGRAM), sys_socket(task, AF_INET, SOCK_DGRAM)
        sys_bind(task, rx, AF_INET, 0x7F000001, 9000)
        assert sys_sendto_begin(task, tx, b"hello", 0, (AF_INET, 0x7F000001, 9000)) == 5
        data, (addr, _port), _flags, n = sys_recvfrom_begin(task, rx, 100)
        assert (data, addr, n) == (b"hello", 0x7F000001, 5)


async def test_a_receive_that_must_sleep_hands_back_a_sleep_that_finishes_it():
    async with lan(1) as (net, a):
        task = a.init_task
        tx, rx = sys_socket(task, AF_INET, SOCK_DGRAM), sys_socket(task, AF_INET, SOCK_DGRAM)
        sys_bind(task, rx, AF_INET, 0x7F000001, 9000)
        sleep = sys_recvfrom_begin(task, rx, 100)
        assert isinstance(sleep, Sleep)

        async def send_later() -> None:
            await trio.sleep(1)
            await sys_sendto(task, tx, b"late", 0, (AF_INET, 0x7F000001, 9000))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_later)
            data, _addr, _flags, _n = await sleep.wait()
        assert data == b"late"
        assert trio.current_time() == pytest.approx(1)
        # Its errors are OSErrors, as every system call's: SO_RCVTIMEO runs out.
        sys_close(task, tx)
        s = sockfd_lookup(task, rx)[1]
        s.sk.sk_rcvtimeo = 0.5
        sleep = sys_recvfrom_begin(task, rx, 100)
        with pytest.raises(BlockingIOError):
            await sleep.wait()


# -- processes -----------------------------------------------------------------------------------

async def test_two_processes_have_independent_descriptor_tables():
    async with lan(1) as (net, a):
        async with a.process("one") as t1:
            s1 = udp(a)
            async with a.process("two") as t2:
                s2 = udp(a)
                assert t1.files is not t2.files
                assert s1.fileno() == s2.fileno() == 3
                await s2.bind(("", 7002))
                sys_close(t2, 3)
                assert s2.task is t2
            assert t1.files.open_fds() == [0, 1, 2, 3]  # two's close did not touch one's 3
            await s1.bind(("", 7001))
            assert s1.getsockname() == ("0.0.0.0", 7001)


async def test_sockets_outside_any_process_belong_to_init():
    async with lan(1) as (net, a):
        s = udp(a)
        assert s.task is a.init_task and s.task.pid == 1


async def test_process_exit_closes_its_sockets_and_releases_their_ports():
    async with lan(1) as (net, a):
        async with a.process("server") as task:
            s = udp(a)
            await s.bind(("", 5000))
            [row] = a.sockets()
            assert (row.pid, row.fd) == (task.pid, 3)
        assert list(a.sockets()) == []
        assert task.pid not in a.tasks
        again = udp(a)
        await again.bind(("", 5000))
        assert again.getsockname() == ("0.0.0.0", 5000)


async def test_a_nursery_inside_a_process_belongs_to_it():
    async with lan(1) as (net, a):
        seen = []

        async def child():
            seen.append(udp(a).task)

        async with a.process("parent") as task:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(child)
        assert seen == [task]


# -- the trio face -------------------------------------------------------------------------------

async def test_an_emulated_socket_is_a_trio_socket():
    async with lan(1) as (net, a):
        s = udp(a)
        assert isinstance(s, EmulatedSocket)
        assert isinstance(s, trio.socket.SocketType)
        assert s.family == socket.AF_INET and s.type == socket.SOCK_DGRAM


async def test_a_non_tuple_address_raises_typeerror():
    async with lan(1) as (net, a):
        s = udp(a)
        with pytest.raises(TypeError):
            await s.bind("10.0.0.1:5000")
        with pytest.raises(TypeError):
            await s.sendto(b"x", ("10.0.0.1", "9"))
        with pytest.raises(TypeError):
            await s.connect(("10.0.0.1", 9, 0))
        assert s.getsockname() == ("0.0.0.0", 0)


async def test_a_port_out_of_range_raises_overflowerror():
    async with lan(1) as (net, a):
        s = udp(a)
        with pytest.raises(OverflowError, match="0-65535"):
            await s.bind(("", 70000))
        with pytest.raises(OverflowError):
            await s.sendto(b"x", ("127.0.0.1", -1))


async def test_an_unknown_name_raises_gaierror():
    async with lan(1) as (net, a):
        with pytest.raises(socket.gaierror) as e:
            await udp(a).sendto(b"x", ("no-such-host", 9))
        assert e.value.errno == socket.EAI_NONAME


async def test_host_names_and_localhost_resolve():
    async with lan(2) as (net, a, b):
        server = udp(b)
        await server.bind(("b", 9000))
        assert server.getsockname() == ("10.0.0.2", 9000)
        await udp(a).sendto(b"by name", ("b", 9000))
        with trio.fail_after(10):
            assert (await server.recvfrom(100))[0] == b"by name"
        local = udp(a)
        await local.bind(("localhost", 9001))
        assert local.getsockname() == ("127.0.0.1", 9001)


async def test_empty_host_and_broadcast_name_map_like_the_socket_module():
    async with lan(1) as (net, a):
        s = udp(a)
        await s.bind(("", 0))
        assert s.getsockname()[0] == "0.0.0.0"
        a.add_route("default", via="10.0.0.254")
        with pytest.raises(PermissionError):  # "<broadcast>" is 255.255.255.255: SO_BROADCAST
            await udp(a).sendto(b"x", ("<broadcast>", 9))


async def test_a_negative_buffer_size_raises_valueerror_before_any_syscall():
    async with lan(1) as (net, a):
        s = udp(a)
        with pytest.raises(ValueError, match="negative buffersize in recv"):
            await s.recv(-1)
        with pytest.raises(ValueError, match="negative buffersize in recvfrom"):
            await s.recvfrom(-1)
        with pytest.raises(ValueError, match="buffer too small"):
            await s.recv_into(bytearray(2), 5)
        with pytest.raises(ValueError, match="greater than the length"):
            await s.recvfrom_into(bytearray(2), 5)
        with pytest.raises(ValueError, match="negative buffer size in recvmsg"):
            await s.recvmsg(-1)


async def test_recv_of_zero_bytes_neither_waits_nor_consumes():
    # CPython's sock_recv_guts makes no system call for 0 bytes; recvfrom(0) does (checked
    # with Python 3.11 on Linux 6.18).
    async with lan(1) as (net, a):
        s = udp(a)
        await s.bind(("127.0.0.1", 9000))
        start = trio.current_time()
        assert await s.recv(0) == b""  # on an empty socket: at once
        assert await s.recv_into(bytearray(0)) == 0
        assert trio.current_time() == start
        for data in (b"one", b"two"):
            await udp(a).sendto(data, ("127.0.0.1", 9000))
        assert await s.recv(0) == b""
        assert await s.recv(10) == b"one"
        with trio.fail_after(1):
            assert (await s.recvfrom(0))[0] == b""  # consumed "two"
        assert not s.is_readable()


async def test_getsockopt_with_buflen_returns_bytes():
    async with lan(1) as (net, a):
        s = udp(a)
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE, 4) == \
            socket.SOCK_DGRAM.to_bytes(4, "little")


async def test_a_socket_is_a_context_manager_that_closes():
    async with lan(1) as (net, a):
        with udp(a) as s:
            await s.bind(("", 5000))
        assert s.fileno() == -1
        assert list(a.sockets()) == []


async def test_async_calls_are_checkpoints():
    async with lan(1) as (net, a):
        s = udp(a)
        await s.bind(("127.0.0.1", 9000))
        await s.sendto(b"queued", ("127.0.0.1", 9000))
        await trio.sleep(0)
        with trio.CancelScope() as scope:
            scope.cancel()
            await s.recv(100)  # data is there, but a cancelled scope must still raise
        assert scope.cancelled_caught
        assert await s.recv(100) == b"queued"  # and nothing was consumed

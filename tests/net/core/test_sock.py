"""net/core/sock.py: the socket's wait queue.

Read first: pystack/net/core/sock.py (sock_def_readable, add_wait_queue).
"""

from __future__ import annotations

import socket

import pystack
from pystack.net import socket as sys
from pystack.net.core.sock import add_wait_queue, remove_wait_queue


async def test_wait_queue_entries_run_at_every_wake_up_until_removed() -> None:
    async with pystack.Network(seed=1) as net:
        a = net.add_host("a")
        async with a.process("p") as task:
            rx = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
            await rx.bind(("127.0.0.1", 7))
            tx = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sk = sys.sockfd_lookup(task, rx.fileno())[1].sk
            woken = []
            entry = woken.append
            add_wait_queue(sk, entry)
            await tx.sendto(b"one", ("127.0.0.1", 7))   # loopback: delivered inline
            await tx.sendto(b"two", ("127.0.0.1", 7))
            assert woken == [sk, sk]
            remove_wait_queue(sk, entry)
            remove_wait_queue(sk, entry)  # removing an entry twice is harmless
            await tx.sendto(b"three", ("127.0.0.1", 7))
            assert woken == [sk, sk]
            assert [await rx.recv(10) for _ in range(3)] == [b"one", b"two", b"three"]

"""Waiting in process context: the only async code of net/core.

Read first: include/net/sock.h (sk_wait_event), net/core/sock.c (sk_wait_data),
net/core/datagram.c (__skb_wait_for_more_packets), net/core/stream.c (sk_stream_wait_memory).

Linux sleeps on the socket's wait queue until a wake-up (`sk_data_ready`, `sk_write_space`,
`sk_state_change`, `sk_error_report`) or the timeout; the caller then re-checks its condition.
Here the caller is the syscall layer, which retries the protocol's non-blocking operation after
each wake-up, so one helper serves every kind of wait.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from .sock import Sock


# How many times a task has gone to sleep on a socket: a face compares it before and after a
# call to know whether the call slept (and so already was a schedule point).
sleeps = 0


async def sk_wait_event(sk: "Sock", deadline: float = math.inf) -> bool:
    """Sleep until the socket is woken or `deadline` (trio time) passes.

    Returns False if the deadline passed without a wake-up.
    """
    global sleeps
    sleeps += 1
    lot = sk.wait_queue()
    if deadline == math.inf:
        await lot.park()
        return True
    with trio.move_on_at(deadline):
        await lot.park()
        return True
    return False

"""The default queueing discipline, as net/sched/sch_generic.c and sch_fifo.c.

Read first: net/sched/sch_generic.c (pfifo_fast, qdisc_run), net/sched/sch_fifo.c.

A pfifo bounded by the device's `tx_queue_len` (1000 on Ethernet): a full queue drops the new
packet with QDISC_DROP and returns NET_XMIT_DROP, which UDP turns into ENOBUFS.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from ..core import drop_reason as dr
from ..core.dev import NET_XMIT_DROP, NET_XMIT_SUCCESS
from ..core.drop_reason import kfree_skb

if TYPE_CHECKING:
    from ..core.skbuff import SkBuff


class Pfifo:
    """pfifo: one FIFO with a packet limit."""

    kind = "pfifo"

    def __init__(self, limit: int):
        self.limit = limit
        self.q: deque[SkBuff] = deque()
        self.drops = 0
        self.requeues = 0
        self.backlog_bytes = 0

    def __len__(self) -> int:
        return len(self.q)

    def enqueue(self, skb: "SkBuff") -> int:
        if len(self.q) >= self.limit:
            self.drops += 1
            kfree_skb(skb, dr.QDISC_DROP)
            return NET_XMIT_DROP
        self.q.append(skb)
        self.backlog_bytes += skb.tail - skb.data
        return NET_XMIT_SUCCESS

    def dequeue(self) -> "SkBuff | None":
        if not self.q:
            return None
        skb = self.q.popleft()
        self.backlog_bytes -= skb.tail - skb.data
        return skb

    def requeue(self, skb: "SkBuff") -> None:
        self.requeues += 1
        self.q.appendleft(skb)
        self.backlog_bytes += skb.tail - skb.data

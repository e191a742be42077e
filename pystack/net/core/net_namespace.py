"""The network namespace of one host (`struct net`), as net/core/net_namespace.c.

Read first: include/net/net_namespace.h, include/net/netns/ipv4.h.

Everything per-host that the stack reaches from an skb or a socket hangs here: the devices,
sysctls, counters, drop reasons, routing tables, neighbour table and socket hash tables.
Functions find it as `dev.nd_net` or `sk.sk_net`, as Linux's do.
"""

from __future__ import annotations

import hashlib
import random
from typing import TYPE_CHECKING, Any

from ...kernel.ktime import ktime_get
from ..ipv4.proc import Mib
from ..ipv4.sysctl import Sysctls

if TYPE_CHECKING:
    from ...host import Host
    from ...trace import Tracer
    from ..ipv4.af_inet import Ipv4State
    from .dev import NetDevice


def derive_rng(seed: int, *labels: object) -> random.Random:
    """A generator for one purpose, derived from the network's seed by a stable hash.

    Python's `hash()` of a str changes per process; sha256 does not, so runs replay.
    """
    text = "/".join(str(x) for x in (seed, *labels)).encode()
    return random.Random(int.from_bytes(hashlib.sha256(text).digest()[:8], "big"))


class Net:
    def __init__(self, host: "Host", seed: int, tracer: "Tracer"):
        self.host = host
        self.seed = seed
        self.tracer = tracer
        self.sysctl = Sysctls()
        self.mib = Mib()
        self.drop_reasons: dict[str, int] = {}
        self.dev_base: dict[str, NetDevice] = {}  # by name, in registration order
        self.dev_index: dict[int, NetDevice] = {}  # by ifindex
        self._ifindex = 0
        self.loopback_dev: NetDevice | None = None
        self.ipv4: Ipv4State | None = None  # set by inet_init (af_inet)
        self.follow_next: Any = None  # a PathTrace for the next packet a socket sends
        self.nf_hooks: dict[int, list] = {}  # netfilter hook → [(priority, n, fn)]

    def rng(self, *labels: object) -> random.Random:
        return derive_rng(self.seed, self.host.name, *labels)

    def new_ifindex(self) -> int:
        self._ifindex += 1
        return self._ifindex

    def dev_get_by_name(self, name: str) -> "NetDevice | None":
        return self.dev_base.get(name)

    def now(self) -> float:
        return ktime_get()

"""The neighbour subsystem (NUD state machine), as net/core/neighbour.c.

Read first: net/core/neighbour.c (__neigh_event_send, neigh_timer_handler, neigh_update,
neigh_invalidate, neigh_resolve_output), include/net/neighbour.h, RFC 4861 §7.3.2 (the states;
ARP uses the same machine in Linux), Documentation/networking/ip-sysctl.rst (neigh/*).

States: NONE → INCOMPLETE (solicits every retrans_time, packets wait in `arp_queue`) →
REACHABLE (confirmed) → STALE (after reachable_time without confirmation) → DELAY (used while
stale: wait delay_first_probe_time for a confirmation) → PROBE (unicast probes) → REACHABLE, or
FAILED when probes run out. FAILED drops the queued packets and reports each to its sender
(`error_report`: for ARP, an ICMP host unreachable delivered locally, so a connected socket
sees EHOSTUNREACH).

Timers are kernel timers; everything here runs in softirq or with bottom halves disabled.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Final

import trio

from ...kernel.timer import Timer
from . import drop_reason as dr
from .drop_reason import kfree_skb

if TYPE_CHECKING:
    from .dev import NetDevice
    from .net_namespace import Net
    from .skbuff import SkBuff

NUD_INCOMPLETE: Final = 0x01
NUD_REACHABLE: Final = 0x02
NUD_STALE: Final = 0x04
NUD_DELAY: Final = 0x08
NUD_PROBE: Final = 0x10
NUD_FAILED: Final = 0x20
NUD_NOARP: Final = 0x40
NUD_PERMANENT: Final = 0x80
NUD_NONE: Final = 0x00

NUD_IN_TIMER: Final = NUD_INCOMPLETE | NUD_REACHABLE | NUD_DELAY | NUD_PROBE
NUD_VALID: Final = NUD_PERMANENT | NUD_NOARP | NUD_REACHABLE | NUD_PROBE | NUD_STALE | NUD_DELAY
NUD_CONNECTED: Final = NUD_PERMANENT | NUD_NOARP | NUD_REACHABLE

NUD_NAMES = {NUD_NONE: "NONE", NUD_INCOMPLETE: "INCOMPLETE", NUD_REACHABLE: "REACHABLE",
             NUD_STALE: "STALE", NUD_DELAY: "DELAY", NUD_PROBE: "PROBE",
             NUD_FAILED: "FAILED", NUD_NOARP: "NOARP", NUD_PERMANENT: "PERMANENT"}

# neigh_update flags
NEIGH_UPDATE_F_OVERRIDE: Final = 0x1
NEIGH_UPDATE_F_WEAK_OVERRIDE: Final = 0x2
NEIGH_UPDATE_F_ADMIN: Final = 0x80000000

REACHABLE_TIME_REFRESH = 300.0  # neigh_periodic_work re-randomises reachable_time this often


class NeighOps:
    """`struct neigh_ops`: the protocol's solicit and error report (ARP's, here)."""

    def solicit(self, neigh: "Neighbour", skb: "SkBuff | None") -> None:
        raise NotImplementedError

    def error_report(self, neigh: "Neighbour", skb: "SkBuff") -> None:
        pass


class Neighbour:
    """`struct neighbour`: one IPv4 address on one device and what we know of its MAC."""

    __slots__ = ("tbl", "dev", "primary_key", "ha", "nud_state", "probes", "confirmed",
                 "updated", "used", "timer", "arp_queue", "arp_queue_len_bytes", "dead",
                 "output")

    def __init__(self, tbl: "NeighTable", dev: "NetDevice", key: int, now: float):
        self.tbl = tbl
        self.dev = dev
        self.primary_key = key
        self.ha = b"\0" * 6
        self.nud_state = NUD_NONE
        self.probes = 0
        self.confirmed = now - tbl.base_reachable_time(dev) * 2
        self.updated = now
        self.used = now
        self.timer = Timer(neigh_timer_handler, self)
        self.arp_queue: deque[SkBuff] = deque()
        self.arp_queue_len_bytes = 0
        self.dead = False
        self.output: Callable[["Neighbour", "SkBuff"], int] = neigh_resolve_output

    @property
    def state_name(self) -> str:
        return NUD_NAMES.get(self.nud_state, hex(self.nud_state))

    def __repr__(self) -> str:
        from ...uapi.ethernet import mac_str
        from ...uapi.ip import ip_str
        return (f"<Neighbour {ip_str(self.primary_key)} {mac_str(self.ha)} "
                f"{self.dev.name} {self.state_name}>")


class NeighTable:
    """`struct neigh_table` of one namespace (arp_tbl): entries keyed by (device, address)."""

    def __init__(self, net: "Net", ops: NeighOps, output_connected: Callable[..., int]):
        self.net = net
        self.ops = ops
        self.output_connected = output_connected
        self.entries: dict[tuple[int, int], Neighbour] = {}
        self._rng = net.rng("neigh")
        self._reachable_time = 0.0
        self._reachable_set_at = -1e18

    # parameters (neigh_parms), read from the namespace's sysctls
    def base_reachable_time(self, dev: "NetDevice") -> float:
        return self.net.sysctl.neigh_base_reachable_time

    def reachable_time(self, now: float) -> float:
        """neigh_rand_reach_time: uniform in [base/2, 3*base/2), refreshed every 300 s."""
        if now - self._reachable_set_at >= REACHABLE_TIME_REFRESH or not self._reachable_time:
            base = self.net.sysctl.neigh_base_reachable_time
            self._reachable_time = base / 2 + self._rng.random() * base
            self._reachable_set_at = now
        return self._reachable_time

    def lookup(self, key: int, dev: "NetDevice") -> Neighbour | None:
        return self.entries.get((dev.ifindex, key))

    def create(self, key: int, dev: "NetDevice") -> Neighbour:
        n = self.entries.get((dev.ifindex, key))
        if n is None:
            n = Neighbour(self, dev, key, trio.current_time())
            self.entries[(dev.ifindex, key)] = n
        return n

    def max_probes(self, n: Neighbour) -> int:
        """neigh_max_probes: unicast + app + (mcast, or mcast_resolicit when probing)."""
        s = self.net.sysctl
        return (s.neigh_ucast_solicit + s.neigh_app_solicit
                + (s.neigh_mcast_resolicit if n.nud_state & NUD_PROBE else s.neigh_mcast_solicit))

    def remove(self, n: Neighbour) -> None:
        self.entries.pop((n.dev.ifindex, n.primary_key), None)
        n.dead = True
        _del_timer(n)
        while n.arp_queue:
            kfree_skb(n.arp_queue.popleft(), dr.NEIGH_DEAD)
        n.arp_queue_len_bytes = 0


def _timers(n: Neighbour):
    return n.tbl.net.host.cpus[0].timers


def _add_timer(n: Neighbour, when: float) -> None:
    _timers(n).mod_timer(n.timer, when)


def _del_timer(n: Neighbour) -> None:
    _timers(n).del_timer(n.timer)


def _set_state(n: Neighbour, state: int) -> None:
    if n.nud_state != state:
        net = n.tbl.net
        if net.tracer.active:
            from ...uapi.ip import ip_str
            net.tracer.emit(net, "neigh:neigh_update", addr=ip_str(n.primary_key),
                            dev=n.dev.name, old=NUD_NAMES.get(n.nud_state),
                            new=NUD_NAMES.get(state))
        n.nud_state = state


def neigh_probe(n: Neighbour) -> None:
    skb = n.arp_queue[-1] if n.arp_queue else None
    # Linux solicits, then counts: arp_solicit sees the probes sent before this one.
    n.tbl.ops.solicit(n, skb)
    n.probes += 1


def neigh_suspect(n: Neighbour) -> None:
    """The address may be stale: output goes through resolution (and so DELAY/PROBE)."""
    n.output = neigh_resolve_output


def neigh_connect(n: Neighbour) -> None:
    """The address is confirmed: output goes straight out."""
    n.output = n.tbl.output_connected


def neigh_event_send(n: Neighbour, skb: "SkBuff | None") -> bool:
    """__neigh_event_send: True if `skb` was queued (or dropped) pending resolution,
    False if the caller may send it now."""
    now = trio.current_time()
    n.used = now
    state = n.nud_state
    if state & (NUD_CONNECTED | NUD_DELAY | NUD_PROBE):
        return False
    if n.dead:
        if skb is not None:
            kfree_skb(skb, dr.NEIGH_DEAD)
        return True
    tbl = n.tbl
    s = tbl.net.sysctl
    immediate_probe = False
    if not state & (NUD_STALE | NUD_INCOMPLETE):
        if s.neigh_mcast_solicit + s.neigh_app_solicit:
            n.probes = s.neigh_ucast_solicit
            _set_state(n, NUD_INCOMPLETE)
            n.updated = now
            _add_timer(n, now + max(s.neigh_retrans_time, 0.01))
            immediate_probe = True
        else:
            _set_state(n, NUD_FAILED)
            n.updated = now
            if skb is not None:
                kfree_skb(skb, dr.NEIGH_FAILED)
            return True
    elif n.nud_state & NUD_STALE:
        _set_state(n, NUD_DELAY)
        n.updated = now
        _add_timer(n, now + s.neigh_delay_first_probe_time)
    if n.nud_state == NUD_INCOMPLETE:
        if skb is not None:
            limit = s.neigh_unres_qlen_bytes
            while n.arp_queue and n.arp_queue_len_bytes + skb.truesize > limit:
                old = n.arp_queue.popleft()
                n.arp_queue_len_bytes -= old.truesize
                kfree_skb(old, dr.NEIGH_QUEUEFULL)
            if skb.trace is not None:
                skb.trace.hop(tbl.net, "neigh_event_send: queued (INCOMPLETE)")
            n.arp_queue.append(skb)
            n.arp_queue_len_bytes += skb.truesize
        if immediate_probe:
            neigh_probe(n)
        return True
    return False


def neigh_timer_handler(timer: Timer) -> None:
    n: Neighbour = timer.data
    if n.dead:
        return
    tbl = n.tbl
    s = tbl.net.sysctl
    now = trio.current_time()
    state = n.nud_state
    if not state & NUD_IN_TIMER:
        return
    nxt = now + s.neigh_retrans_time
    if state & NUD_REACHABLE:
        reach = tbl.reachable_time(now)
        if now <= n.confirmed + reach:
            nxt = n.confirmed + reach
        elif now <= n.used + s.neigh_delay_first_probe_time:
            _set_state(n, NUD_DELAY)
            n.updated = now
            neigh_suspect(n)
            nxt = now + s.neigh_delay_first_probe_time
        else:
            _set_state(n, NUD_STALE)
            n.updated = now
            neigh_suspect(n)
    elif state & NUD_DELAY:
        if now <= n.confirmed + s.neigh_delay_first_probe_time:
            _set_state(n, NUD_REACHABLE)
            n.updated = now
            neigh_connect(n)
            nxt = n.confirmed + tbl.reachable_time(now)
        else:
            _set_state(n, NUD_PROBE)
            n.updated = now
            n.probes = 0
            nxt = now + s.neigh_retrans_time
    if n.nud_state & (NUD_INCOMPLETE | NUD_PROBE) and n.probes >= tbl.max_probes(n):
        _set_state(n, NUD_FAILED)
        n.updated = now
        neigh_invalidate(n)
        return
    if n.nud_state & NUD_IN_TIMER:
        _add_timer(n, max(nxt, now + 0.01))
    if n.nud_state & (NUD_INCOMPLETE | NUD_PROBE):
        neigh_probe(n)


def neigh_invalidate(n: Neighbour) -> None:
    """Resolution failed: report each queued packet to its sender, then drop it."""
    ops = n.tbl.ops
    while n.arp_queue:
        skb = n.arp_queue.popleft()
        n.arp_queue_len_bytes -= skb.truesize
        ops.error_report(n, skb)
        kfree_skb(skb, dr.NEIGH_FAILED)
    n.arp_queue_len_bytes = 0


def neigh_update(n: Neighbour, lladdr: bytes | None, new: int, flags: int = 0) -> None:
    """Record what we learned: a new link-layer address and/or state; flush the queue when the
    entry becomes valid."""
    now = trio.current_time()
    old = n.nud_state
    if not flags & NEIGH_UPDATE_F_ADMIN and old & (NUD_NOARP | NUD_PERMANENT):
        return
    if not new & NUD_VALID:
        _del_timer(n)
        if old & NUD_CONNECTED:
            _set_state(n, new)
        else:
            _set_state(n, new)
        if old & NUD_INCOMPLETE and new & NUD_FAILED:
            neigh_invalidate(n)
        return
    if lladdr is None and not old & NUD_VALID:
        return  # an update with no address cannot make an entry valid
    # Linux stamps `confirmed` for a CONNECTED update before deciding below to keep the old
    # state: an ARP request repeating a known address (new == STALE) confirms nothing.
    if new & NUD_CONNECTED:
        n.confirmed = now
    if lladdr is None:
        lladdr = n.ha
    elif old & NUD_VALID and lladdr != n.ha and not flags & NEIGH_UPDATE_F_OVERRIDE:
        # A different address without override: remember it as suspect, do not switch.
        if old & NUD_CONNECTED and flags & NEIGH_UPDATE_F_WEAK_OVERRIDE:
            lladdr = n.ha
            new = NUD_STALE
        else:
            return
    elif old & NUD_VALID and lladdr == n.ha and new == NUD_STALE and not (
            flags & NEIGH_UPDATE_F_ADMIN):
        new = old  # the same address again: keep the better state
    if new != old or lladdr != n.ha:
        # Only an effective update moves `updated`: a no-op must not restart the locktime
        # window in which ARP ignores other addresses.
        n.updated = now
    if new != old:
        _del_timer(n)
        if new & NUD_PROBE:
            n.probes = 0
        if new & NUD_IN_TIMER:
            reach = n.tbl.reachable_time(now) if new & NUD_REACHABLE else 0.0
            _add_timer(n, now + reach)
        _set_state(n, new)
    n.ha = lladdr
    if new & NUD_CONNECTED:
        n.output = n.tbl.output_connected
    else:
        n.output = neigh_resolve_output
    if not old & NUD_VALID and new & NUD_VALID:
        # The queued packets go out now, through the resolved entry.
        while n.arp_queue:
            skb = n.arp_queue.popleft()
            n.arp_queue_len_bytes -= skb.truesize
            n.tbl.output_connected(n, skb)
        n.arp_queue_len_bytes = 0


def neigh_confirm(n: Neighbour) -> None:
    """A higher layer saw proof of two-way traffic (TCP's ACKs): the entry stays reachable."""
    n.confirmed = trio.current_time()


def neigh_resolve_output(n: Neighbour, skb: "SkBuff") -> int:
    """Output through an entry that may need resolving first."""
    if not neigh_event_send(n, skb):
        return n.tbl.output_connected(n, skb)
    return 0


def neigh_output(n: Neighbour, skb: "SkBuff") -> int:
    return n.output(n, skb)


def neigh_entries(tbl: NeighTable) -> list[Neighbour]:
    return list(tbl.entries.values())


__all__ = ["Neighbour", "NeighTable", "NeighOps", "neigh_update", "neigh_event_send",
           "neigh_output", "neigh_confirm", "NUD_NAMES", "NUD_REACHABLE", "NUD_STALE",
           "NUD_FAILED", "NUD_INCOMPLETE", "NUD_DELAY", "NUD_PROBE", "NUD_NOARP",
           "NUD_PERMANENT", "NUD_VALID", "NUD_CONNECTED", "NEIGH_UPDATE_F_OVERRIDE",
           "NEIGH_UPDATE_F_WEAK_OVERRIDE", "Any"]

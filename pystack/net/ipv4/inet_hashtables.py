"""TCP's socket hash tables, as net/ipv4/inet_hashtables.c and inet_connection_sock.c
(port binding).

Read first: net/ipv4/inet_hashtables.c (__inet_lookup_established, __inet_lookup_listener,
__inet_hash_connect), net/ipv4/inet_connection_sock.c (inet_csk_get_port,
inet_csk_bind_conflict), include/net/inet_hashtables.h.

Three tables, as Linux has:
- ehash: the 4-tuple (local addr, local port, remote addr, remote port) → the socket that owns
  the connection: an established TcpSock, a request sock (SYN received) or a TIME_WAIT sock.
  One dict probe per segment, whatever the number of sockets.
- lhash: local port → listening sockets; an exact local address beats a wildcard.
- bhash: local port → every socket holding the port (bound, listening, connected, TIME_WAIT),
  which decides EADDRINUSE. Each bucket is a dict used as an insertion-ordered set, so that
  a socket leaves it in O(1) however many TIME_WAIT sockets share the port (a server's
  listening port collects one per connection it closed first).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Iterator

from .tcp_states import TCP_LISTEN, TCP_TIME_WAIT

if TYPE_CHECKING:
    from ..core.net_namespace import Net


class InetHashinfo:
    def __init__(self) -> None:
        self.ehash: dict[tuple[int, int, int, int], Any] = {}
        self.lhash: dict[int, list[Any]] = {}
        self.bhash: dict[int, dict[Any, None]] = {}  # port → {sock: None}, in bind order

    # -- established ---------------------------------------------------------------------------
    def ehash_insert(self, key: tuple[int, int, int, int], sk: Any) -> bool:
        if key in self.ehash:
            return False
        self.ehash[key] = sk
        return True

    def ehash_remove(self, key: tuple[int, int, int, int], sk: Any) -> None:
        if self.ehash.get(key) is sk:
            del self.ehash[key]

    def lookup_established(self, saddr: int, sport: int, daddr: int, dport: int) -> Any:
        """The socket for a segment from (saddr, sport) to (daddr, dport)."""
        return self.ehash.get((daddr, dport, saddr, sport))

    # -- listeners ------------------------------------------------------------------------------
    def listen_hash(self, sk: Any) -> None:
        self.lhash.setdefault(sk.inet_num, []).append(sk)

    def listen_unhash(self, sk: Any) -> None:
        socks = self.lhash.get(sk.inet_num)
        if socks and sk in socks:
            socks.remove(sk)
            if not socks:
                del self.lhash[sk.inet_num]

    def lookup_listener(self, daddr: int, dport: int, dif: int) -> Any:
        socks = self.lhash.get(dport)
        if not socks:
            return None
        best, best_score = None, -1
        for sk in socks:
            score = 1
            if sk.inet_rcv_saddr:
                if sk.inet_rcv_saddr != daddr:
                    continue
                score += 4
            if sk.sk_bound_dev_if:
                if sk.sk_bound_dev_if != dif:
                    continue
                score += 4
            if score > best_score:
                best, best_score = sk, score
        return best

    # -- ports ----------------------------------------------------------------------------------
    def bind_add(self, port: int, sk: Any) -> None:
        self.bhash.setdefault(port, {})[sk] = None

    def bind_remove(self, port: int, sk: Any) -> None:
        socks = self.bhash.get(port)
        if socks and sk in socks:
            del socks[sk]
            if not socks:
                del self.bhash[port]


def inet_bind_conflict(sk: Any, owners: Iterable[Any], relax: bool = False) -> bool:
    """inet_csk_bind_conflict: may `sk` take a port these sockets hold?"""
    reuse = sk.sk_reuse
    for sk2 in owners:
        if sk2 is sk:
            continue
        if sk.sk_bound_dev_if and sk2.sk_bound_dev_if and sk.sk_bound_dev_if != \
                sk2.sk_bound_dev_if:
            continue
        state2 = sk2.sk_state
        if reuse and sk2.sk_reuse and state2 != TCP_LISTEN:
            continue  # SO_REUSEADDR on both, and the other is not listening
        if (sk.sk_reuseport and sk2.sk_reuseport and state2 != TCP_TIME_WAIT
                and sk2.sk_uid == sk.sk_uid and (state2 == TCP_LISTEN) == (sk.sk_state == TCP_LISTEN)):
            continue
        a1 = sk.inet_rcv_saddr
        a2 = sk2.inet_rcv_saddr
        if a1 and a2 and a1 != a2:
            continue
        return True
    return False


def ephemeral_ports(net: "Net") -> Iterator[int]:
    """Every port of ip_local_port_range once, from a point the namespace's seeded generator
    picks (inet_get_local_port_range plus a random offset)."""
    low, high = net.sysctl.ip_local_port_range
    remaining = high - low + 1
    start = net.ipv4.port_rng.randrange(remaining)
    for i in range(remaining):
        yield low + (start + i) % remaining


def inet_csk_get_port(net: "Net", sk: Any, snum: int) -> bool:
    """Bind `sk` to `snum` (or a free ephemeral port if 0); False on conflict."""
    hashinfo = net.ipv4.tcp.hashinfo
    if not snum:
        for port in ephemeral_ports(net):
            owners = hashinfo.bhash.get(port)
            if not owners or not inet_bind_conflict(sk, owners):
                snum = port
                break
        else:
            return False
    else:
        owners = hashinfo.bhash.get(snum)
        if owners and inet_bind_conflict(sk, owners):
            return False
    sk.inet_num = snum
    hashinfo.bind_add(snum, sk)
    return True


def inet_hash_connect(net: "Net", sk: Any, daddr: int, dport: int) -> bool:
    """__inet_hash_connect: pick a local port whose 4-tuple is free, and hash the socket."""
    hashinfo = net.ipv4.tcp.hashinfo
    saddr = sk.inet_saddr
    if sk.inet_num:
        key = (saddr, sk.inet_num, daddr, dport)
        existing = hashinfo.ehash.get(key)
        if existing is not None and existing is not sk:
            if existing.sk_state != TCP_TIME_WAIT or not _tw_reusable(net, existing):
                return False
            existing.kill()
        hashinfo.ehash[key] = sk
        return True
    for port in ephemeral_ports(net):
        owners = hashinfo.bhash.get(port)
        if owners:
            # A port held by a bind() (or a listener) is not shared with connect().
            if any(getattr(o, "bound_explicitly", False) or o.sk_state == TCP_LISTEN
                   for o in owners):
                continue
        key = (saddr, port, daddr, dport)
        if key in hashinfo.ehash:
            continue
        sk.inet_num = port
        sk.inet_sport = port
        hashinfo.bind_add(port, sk)
        hashinfo.ehash[key] = sk
        return True
    return False


def _tw_reusable(net: "Net", tw: Any) -> bool:
    """tcp_twsk_unique with tcp_tw_reuse=2: only for loopback connections."""
    return False

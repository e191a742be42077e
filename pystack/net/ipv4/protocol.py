"""The inet protocol table, as net/ipv4/protocol.c.

Read first: net/ipv4/protocol.c (inet_add_protocol), include/net/protocol.h (net_protocol).

Protocol number → the receive handler (`udp_rcv`, `icmp_rcv` …) and the ICMP error handler
(`udp_err` …). Global, as in Linux: the handlers are the same for every host.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from ..core.skbuff import SkBuff

inet_protos: dict[int, Callable[["SkBuff"], None]] = {}
inet_err_handlers: dict[int, Callable[["SkBuff", int, int, int], None]] = {}


def inet_add_protocol(proto: int, handler: Callable[["SkBuff"], None],
                      err_handler: Callable[["SkBuff", int, int, int], None] | None) -> None:
    inet_protos[proto] = handler
    if err_handler is not None:
        inet_err_handlers[proto] = err_handler

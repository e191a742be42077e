"""Netfilter hooks, as net/netfilter/core.c and include/linux/netfilter.h.

Read first: include/uapi/linux/netfilter.h (hook numbers, verdicts), net/netfilter/core.c
(nf_hook_slow).

A test registers a plain callable at a hook: `fn(skb, state) -> verdict`, where the verdict is
NF_ACCEPT, NF_DROP or NF_STOLEN (the callable took the skb). The callable may rewrite the skb.
With no hooks registered a hook costs one dict lookup; the per-packet call sites (ip_rcv,
ip_local_deliver, ip_local_out, ip_output) first test `net.nf_hooks` and, when no hook at all
is registered, call the continuation directly — the test Linux's inline `nf_hook` makes
before `nf_hook_slow`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Final

import attrs

from . import drop_reason as dr
from .drop_reason import kfree_skb

if TYPE_CHECKING:
    from .dev import NetDevice
    from .net_namespace import Net
    from .skbuff import SkBuff

NF_INET_PRE_ROUTING: Final = 0
NF_INET_LOCAL_IN: Final = 1
NF_INET_FORWARD: Final = 2
NF_INET_LOCAL_OUT: Final = 3
NF_INET_POST_ROUTING: Final = 4
HOOK_NAMES = ("PRE_ROUTING", "LOCAL_IN", "FORWARD", "LOCAL_OUT", "POST_ROUTING")

NF_DROP: Final = 0
NF_ACCEPT: Final = 1
NF_STOLEN: Final = 2


@attrs.frozen
class NfHookState:
    hook: int
    net: Any
    in_dev: Any
    out_dev: Any


def nf_register_hook(net: "Net", hook: int, fn: Callable[["SkBuff", NfHookState], int],
                     priority: int = 0) -> Callable[[], None]:
    """Register `fn` at `hook`; returns a function that unregisters it."""
    hooks = net.nf_hooks.setdefault(hook, [])
    entry = (priority, len(hooks), fn)
    hooks.append(entry)
    hooks.sort(key=lambda e: (e[0], e[1]))

    def unregister() -> None:
        hooks.remove(entry)
        if not hooks:
            del net.nf_hooks[hook]
    return unregister


def nf_hook(hook: int, net: "Net", skb: "SkBuff", in_dev: "NetDevice | None",
            out_dev: "NetDevice | None", okfn: Callable[["SkBuff"], Any]) -> Any:
    """Run the hooks; call `okfn(skb)` if every one accepts."""
    hooks = net.nf_hooks.get(hook)
    if hooks:
        state = NfHookState(hook, net, in_dev, out_dev)
        for _prio, _n, fn in list(hooks):
            verdict = fn(skb, state)
            if verdict == NF_ACCEPT:
                continue
            if verdict == NF_STOLEN:
                return 0
            kfree_skb(skb, dr.NETFILTER_DROP)
            return 1  # NET_XMIT_DROP for output paths
    return okfn(skb)

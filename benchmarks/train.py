"""``python -m benchmarks.train``: the training run of the profile-guided compiled build.

`make compiled` builds the kernel instrumented, runs this, and builds it again with the
profile it wrote (docs/design.md, "The compiled build"). The profile tells GCC which paths
are hot, which it then lays out together and optimises for speed, and which are cold; paths
this run never reaches are compiled as they would be without a profile.

What it runs is what programs on pystack do most, through the trio face as the benchmark
rows do: UDP datagrams, small TCP messages, TCP connections opened and closed, and bulk TCP
over loopback and over Ethernet through a switch (ARP, the NIC, the switch, segment bursts);
about 3 s in all. It checks nothing and prints one line per workload.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time

import trio
import trio.testing

from . import figures, steady


def _small_loops(n: int) -> None:
    import pystack

    async def main() -> None:
        async with pystack.Network(seed=1) as net:
            a, b, c = net.add_host("a"), net.add_host("b"), net.add_host("c")
            async with trio.open_nursery() as nursery:
                udp = await steady._udp(lambda: a.socket(socket.AF_INET, socket.SOCK_DGRAM))
                await udp(n)
                echo = await steady._echo(b, nursery)
                await echo(n)
                connect_close = await steady._connect_close(c, nursery)
                await connect_close(n // 4)
                nursery.cancel_scope.cancel()
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.train",
                                 description="The profile-guided build's training run.")
    ap.add_argument("--scale", type=float, default=1.0, help="more or less work (default 1)")
    args = ap.parse_args(argv)
    n = max(int(4000 * args.scale), 40)
    bulk = max(int(256 * args.scale), 1) << 20
    runs = [
        ("udp, echo, connect+close", lambda: _small_loops(n)),
        ("bulk over loopback", lambda: figures.tcp_bulk_lo(total=bulk, chunk=65536,
                                                           seconds=60)),
        ("bulk over Ethernet", lambda: figures.tcp_bulk_eth(total=bulk // 4, chunk=65536,
                                                            seconds=60)),
    ]
    for name, run in runs:
        t0 = time.perf_counter()
        run()
        print(f"train: {name}: {time.perf_counter() - t0:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""pystack: the Linux TCP/IP stack, emulated in Python on trio, in virtual time.

    import pystack, socket, trio

    async def main():
        net = pystack.Network(seed=7)
        async with net:
            a, b = net.add_host("a"), net.add_host("b")
            net.add_link(a, b, subnet="10.0.0.0/24")     # a=10.0.0.1, b=10.0.0.2
            print(await a.ping("10.0.0.2"))

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))

The public names are re-exported here explicitly; everything else is internal.
"""

from .host import Host
from .trace import Hop, PathTrace, TraceEvent
from .world import Link, LinkProfile, Network, Switch
from .dropin.asyncio import asyncio_run
from .dropin.runner import run_script
from .programs import Program, ProgramError

__version__ = "0.1.0.dev0"

__all__ = ["Network", "Host", "Link", "LinkProfile", "Switch", "PathTrace", "Hop", "TraceEvent",
           "run_script", "asyncio_run", "Program", "ProgramError", "__version__"]

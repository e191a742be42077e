"""A trio UDP echo server (trio.socket, as trio's docs show socket use), port from argv.
Read first: compat/run.py."""
import sys

import trio


async def main():
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await sock.bind(("", int(sys.argv[1])))
    while True:
        data, addr = await sock.recvfrom(2048)
        print("echoing", data)
        await sock.sendto(data, addr)

trio.run(main)

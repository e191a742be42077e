"""A trio UDP echo client, host and port from argv. Read first: compat/run.py."""
import sys

import trio


async def main():
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await sock.connect((sys.argv[1], int(sys.argv[2])))
    for word in (b"one", b"two", b"three"):
        await sock.send(word)
        with trio.fail_after(5):
            print("got", await sock.recv(2048))
    sock.close()

trio.run(main)

"""The trio tutorial's echo client (open_tcp_stream), host and port from argv, sending three
messages in sequence (the tutorial's loop, bounded). Read first: compat/run.py."""
import sys

import trio

HOST = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 12345


async def sender(client_stream):
    print("sender: started!")
    for i in range(3):
        data = b"async can sometimes be confusing, but I believe in you!"
        print(f"sender: sending {data!r}")
        await client_stream.send_all(data)
        await trio.sleep(1)
    await client_stream.send_eof()


async def receiver(client_stream):
    print("receiver: started!")
    async for data in client_stream:
        print(f"receiver: got data {data!r}")
    print("receiver: connection closed")


async def parent():
    print(f"parent: connecting to {HOST}:{PORT}")
    client_stream = await trio.open_tcp_stream(HOST, PORT)
    async with client_stream:
        async with trio.open_nursery() as nursery:
            print("parent: spawning sender...")
            nursery.start_soon(sender, client_stream)

            print("parent: spawning receiver...")
            nursery.start_soon(receiver, client_stream)

trio.run(parent)

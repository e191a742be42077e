"""TCP echo server using streams, from the asyncio docs (asyncio-stream, "TCP echo server using
streams"), unmodified but for the port read from argv and the listening address 0.0.0.0 for
127.0.0.1 (on pystack the client is another host). Read first: compat/run.py."""
import asyncio
import sys

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 8888


async def handle_echo(reader, writer):
    data = await reader.read(100)
    message = data.decode()
    addr = writer.get_extra_info('peername')

    print(f"Received {message!r} from {addr!r}")

    print(f"Send: {message!r}")
    writer.write(data)
    await writer.drain()

    print("Close the connection")
    writer.close()
    await writer.wait_closed()

async def main():
    server = await asyncio.start_server(
        handle_echo, '0.0.0.0', PORT)

    addrs = ', '.join(str(sock.getsockname()) for sock in server.sockets)
    print(f'Serving on {addrs}')

    async with server:
        await server.serve_forever()

asyncio.run(main())

"""TCP echo client using streams, from the asyncio docs (asyncio-stream, "TCP echo client using
streams"), unmodified but for the server's host and port read from argv.
Read first: compat/run.py."""
import asyncio
import sys

HOST = sys.argv[1] if len(sys.argv) > 1 else '127.0.0.1'
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 8888


async def tcp_echo_client(message):
    reader, writer = await asyncio.open_connection(
        HOST, PORT)

    print(f'Send: {message!r}')
    writer.write(message.encode())
    await writer.drain()

    data = await reader.read(100)
    print(f'Received: {data.decode()!r}')

    print('Close the connection')
    writer.close()
    await writer.wait_closed()

asyncio.run(tcp_echo_client('Hello World!'))

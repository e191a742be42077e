"""TCP Echo Server, from the asyncio docs (asyncio-protocol, "TCP Echo Server": a Protocol and
loop.create_server), unmodified but for the port read from argv and the listening address
0.0.0.0 for 127.0.0.1 (on pystack the client is another host). Read first: compat/run.py."""
import asyncio
import sys

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 8888


class EchoServerProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        peername = transport.get_extra_info('peername')
        print('Connection from {}'.format(peername))
        self.transport = transport

    def data_received(self, data):
        message = data.decode()
        print('Data received: {!r}'.format(message))

        print('Send: {!r}'.format(message))
        self.transport.write(data)

        print('Close the client socket')
        self.transport.close()


async def main():
    # Get a reference to the event loop as we plan to use
    # low-level APIs.
    loop = asyncio.get_running_loop()

    server = await loop.create_server(
        lambda: EchoServerProtocol(),
        '0.0.0.0', PORT)

    async with server:
        await server.serve_forever()


asyncio.run(main())

"""UDP Echo Server, from the asyncio docs (asyncio-protocol, "UDP Echo Server":
loop.create_datagram_endpoint), unmodified but for the port read from argv and the local
address 0.0.0.0 for 127.0.0.1 (on pystack the client is another host).
Read first: compat/run.py."""
import asyncio
import sys

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 9999


class EchoServerProtocol:
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        message = data.decode()
        print('Received %r from %s' % (message, addr))
        print('Send %r to %s' % (message, addr))
        self.transport.sendto(data, addr)


async def main():
    print("Starting UDP server")

    # Get a reference to the event loop as we plan to use
    # low-level APIs.
    loop = asyncio.get_running_loop()

    # One protocol instance will be created to serve all
    # client requests.
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: EchoServerProtocol(),
        local_addr=('0.0.0.0', PORT))

    try:
        await asyncio.sleep(3600)  # Serve for 1 hour.
    finally:
        transport.close()


asyncio.run(main())

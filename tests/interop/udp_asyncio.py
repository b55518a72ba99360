"""Python's asyncio datagram clients against the ioloop UDP echo example.

  udp_asyncio.py SERVER_CMD...   (SERVER_CMD makes it print 'listening on HOST:PORT')

Three clients at once, each on its own port, send datagrams from 1 byte up to the largest
UDP payload (65,507 bytes); each must come back whole to the client that sent it. A lost
datagram is sent again (UDP may drop, though loopback does not in practice). Then a
datagram of 0 bytes must come back as one."""

import asyncio
import socket

from interop import Failure, Server, check, compare, main, payloads

SIZES = [1, 100, 1472, 1473, 9000, 32768, 65507]


class Client(asyncio.DatagramProtocol):
    def __init__(self):
        self.answers = asyncio.Queue()
        self.errors = []

    def datagram_received(self, data, addr):
        self.answers.put_nowait((data, addr))

    def error_received(self, exc):
        self.errors.append(exc)


async def client(host, port, rng, name):
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(Client, remote_addr=(host, port))
    try:
        sizes = SIZES + [rng.randint(0, 8192) for _ in range(40)]
        # A datagram sent again after a timeout may have been answered late the first time:
        # an answer equal to an earlier datagram is that late copy, and is skipped.
        earlier = set()
        for i, datagram in enumerate(payloads(rng, sizes)):
            data = addr = None
            for _attempt in range(5):
                transport.sendto(datagram)
                try:
                    while True:
                        data, addr = await asyncio.wait_for(proto.answers.get(), 1.0)
                        if data == datagram or data not in earlier:
                            break
                    break
                except asyncio.TimeoutError:
                    continue
            else:
                raise Failure(f"{name}: no answer to datagram {i} ({len(datagram)} bytes)")
            check(addr[1] == port, f"{name}: an answer from {addr}, not from the server")
            compare(f"{name}: datagram {i}", datagram, data)
            earlier.add(datagram)
        check(not proto.errors, f"{name}: errors received: {proto.errors}")
        return len(sizes)
    finally:
        transport.close()


async def empty_datagram(host, port):
    """A datagram of 0 bytes is a datagram too. asyncio's transports (before Python 3.13)
    drop it silently, so it goes through a plain socket with loop.sock_sendto."""
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        for _attempt in range(5):
            await loop.sock_sendto(sock, b"", (host, port))
            try:
                data, _ = await asyncio.wait_for(loop.sock_recvfrom(sock, 65536), 1.0)
                check(data == b"", f"an empty datagram came back as {len(data)} bytes")
                return
            except asyncio.TimeoutError:
                continue
    raise Failure("no answer to an empty datagram")


async def test(args, rng):
    check(args, __doc__)
    server = await Server(args).start()
    try:
        counts = await asyncio.gather(*(client(server.host, server.port, rng, f"client {n}")
                                        for n in range(3)))
        await empty_datagram(server.host, server.port)
        await server.stop()
    finally:
        await server.kill()
    print(f"{sum(counts)} datagrams from 3 clients, and an empty one, echoed whole to their senders")


if __name__ == "__main__":
    main(test)

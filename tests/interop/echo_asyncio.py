"""Python's asyncio against the ioloop echo examples (echo_server: callbacks, echo_streams:
coroutines).

  echo_asyncio.py client SERVER_CMD...  asyncio clients against the example run as a server
                                        (SERVER_CMD makes it print 'listening on HOST:PORT')
  echo_asyncio.py server CLIENT_CMD...  the example run as a client (stdin to the server, the
                                        echo to stdout) against an asyncio echo server; "{port}"
                                        in CLIENT_CMD becomes the server's port

Random payloads up to 1 MiB, compared byte for byte."""

import asyncio
import socket
import struct

from interop import STEP_TIMEOUT, Failure, Server, check, compare, main, payloads, standard_sizes


async def echo_once(host, port, payload, name):
    """One connection: send everything (while reading, or a large echo would deadlock),
    half-close, read until the server closes; compare."""
    reader, writer = await asyncio.open_connection(host, port)

    async def send():
        writer.write(payload)
        await writer.drain()
        writer.write_eof()

    sender = asyncio.create_task(send())
    got = await reader.read()  # until EOF
    await sender
    writer.close()
    await writer.wait_closed()
    compare(name, payload, got)


async def ping_pong(host, port, rng):
    """Each message's echo must come back before the next is sent: the server echoes what it
    has, without waiting for EOF or for a full buffer."""
    reader, writer = await asyncio.open_connection(host, port)
    for i, message in enumerate(payloads(rng, [rng.randint(1, 3000) for _ in range(50)])):
        writer.write(message)
        await writer.drain()
        compare(f"ping-pong message {i}", message, await reader.readexactly(len(message)))
    writer.close()
    await writer.wait_closed()


async def reset_midway(host, port, rng):
    """A client that sends part of a large payload and resets the connection (RST): the
    server must survive it."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(rng.randbytes(200_000))
    await reader.read(1000)  # the echo has started
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def test_client(cmd, rng):
    server = await Server(cmd).start()
    try:
        host, port = server.host, server.port
        await ping_pong(host, port, rng)
        sizes = standard_sizes(rng)
        # Every payload on its own connection, all at once.
        await asyncio.gather(*(echo_once(host, port, p, f"concurrent payload of {len(p)} bytes")
                               for p in payloads(rng, sizes)))
        await reset_midway(host, port, rng)
        # Still serving after the reset, and one after another too.
        for p in payloads(rng, [1 << 20, 12345]):
            await echo_once(host, port, p, f"payload of {len(p)} bytes after a reset")
        await server.stop()
    finally:
        await server.kill()
    print(f"{len(sizes) + 3} connections and 50 ping-pong messages echoed byte for byte")


async def test_server(cmd, rng):
    connections = 0

    async def echo(reader, writer):  # asyncio's own echo server
        nonlocal connections
        connections += 1
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    argv = [arg.replace("{port}", str(port)) for arg in cmd]
    sizes = standard_sizes(rng)
    async with server:
        for payload in payloads(rng, sizes):
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            try:
                out, _ = await asyncio.wait_for(proc.communicate(payload), STEP_TIMEOUT)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
                raise Failure(f"{argv[0]} did not finish a {len(payload)}-byte echo in time")
            check(proc.returncode == 0, f"{argv[0]} exited with {proc.returncode}")
            compare(f"payload of {len(payload)} bytes", payload, out)
    check(connections == len(sizes), f"{len(sizes)} clients ran, the server saw {connections}")
    print(f"{len(sizes)} client runs echoed byte for byte by asyncio's server")


async def test(args, rng):
    check(len(args) >= 2 and args[0] in ("client", "server"), __doc__)
    await (test_client if args[0] == "client" else test_server)(args[1:], rng)


if __name__ == "__main__":
    main(test)

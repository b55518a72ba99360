"""Python's asyncio clients in the ioloop chat example.

  chat_asyncio.py SERVER_CMD...   (SERVER_CMD makes it print 'listening on HOST:PORT')

Each line reaches every other client, in order, and never its sender; a line over the
64 KiB limit is refused to its sender alone and the connection goes on; /name is
announced; a last line without "\\n" before EOF is delivered, then the leave; a client that
never reads is disconnected once it is far behind while the others get everything; on
SIGINT every client hears of the shutdown and the server exits 0."""

import asyncio
import re
import socket

from interop import STEP_TIMEOUT, Failure, Server, check, main


class Client:
    @classmethod
    async def connect(cls, host, port, rcvbuf=None):
        self = cls()
        if rcvbuf:  # a small receive buffer: the server's sends back up sooner
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
            self.reader, self.writer = await asyncio.open_connection(sock=sock)
        else:
            self.reader, self.writer = await asyncio.open_connection(host, port, limit=1 << 20)
        welcome = await self.line()
        m = re.match(r"\* welcome, (guest-\d+);", welcome)
        check(m, f"not a welcome: {welcome!r}")
        self.name = m.group(1)
        return self

    async def line(self):
        try:
            data = await asyncio.wait_for(self.reader.readline(), STEP_TIMEOUT)
        except asyncio.TimeoutError:
            raise Failure("no line came in time")
        return data.decode()

    async def expect(self, want, who=""):
        got = await self.line()
        check(got == want, f"{who or getattr(self, 'name', '?')} expected {want!r}, got {got!r}")

    def send(self, text):
        self.writer.write(text.encode())


async def test(args, rng):
    check(args, __doc__)
    server = await Server(args).start()
    try:
        host, port = server.host, server.port
        a = await Client.connect(host, port)
        b = await Client.connect(host, port)
        await a.expect(f"* {b.name} joined\n")
        c = await Client.connect(host, port)
        for x in (a, b):
            await x.expect(f"* {c.name} joined\n")

        # A line reaches the others, not its sender.
        a.send("hello\n")
        for x in (b, c):
            await x.expect(f"{a.name}: hello\n")

        # Many lines at once, of random printable text: all arrive, in order.
        alphabet = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 äöü€"
        lines = ["".join(rng.choices(alphabet, k=rng.randint(1, 2000))) for _ in range(200)]
        b.send("".join(line + "\n" for line in lines))
        for x in (a, c):
            for line in lines:
                await x.expect(f"{b.name}: {line}\n")

        # Over the limit: refused to the sender only; the connection goes on.
        c.send("x" * 70_000 + "\nstill here\n")
        await c.expect("* that line was over 64 KiB, and was dropped\n")
        for x in (a, b):  # the next thing they hear: nothing of the long line
            await x.expect(f"{c.name}: still here\n")

        # /name goes to everyone; a's first line after that is b's, not its own echo.
        a.send("/name ann\n")
        for x in (a, b, c):
            await x.expect(f"* {a.name} is now ann\n")
        a.name = "ann"

        # A last line without "\n", then EOF: delivered, then the leave.
        c.send("tail")
        c.writer.write_eof()
        for x in (a, b):
            await x.expect(f"{c.name}: tail\n")
            await x.expect(f"* {c.name} left\n")

        # A client that never reads: dropped once far behind; the others miss nothing.
        d = await Client.connect(host, port, rcvbuf=4096)
        for x in (a, b):
            await x.expect(f"* {d.name} joined\n")
        chunk = "".join(f"{i:07d} " + "y" * 1000 + "\n" for i in range(256))
        dropped = False
        for n in range(64):  # up to 16 MiB in all; d's kernel buffers hold a few MiB
            b.send(chunk)
            await b.writer.drain()
            for i in range(256):
                got = await a.line()
                if got == f"* {d.name} left\n":
                    dropped = True
                    got = await a.line()
                check(got == f"{b.name}: {i:07d} " + "y" * 1000 + "\n", f"round {n}, line {i}: {got[:40]!r}")
            if dropped:
                break
        check(dropped, f"{d.name} never read and was never disconnected")
        check(b"too far behind" in server.output, "the server did not say why it dropped a client")
        d.writer.close()

        # SIGINT: the clients hear of it, then EOF; the server exits 0.
        await server.stop()
        await a.expect("* the server is shutting down\n")
        await a.expect("", "ann at the end")
    finally:
        await server.kill()
    print("broadcast, ordering, limit, rename, leave, slow-reader drop and shutdown checked")


if __name__ == "__main__":
    main(test)

"""Slow clients against the http_server example: its timeouts, timed from outside.

  http_timeouts.py SERVER_CMD... --timeout T   (SERVER_CMD makes it print 'listening on
  HOST:PORT'; T, in seconds, is read from the command and must be 1 or more)

Run at once, each on its own connection: a client that sends the request line, then header
bytes one at a time, each well within T (a byte every 0.3 s), never finishing the head; a
client that sends a head with Content-Length: 100 and 10 bytes of body, then nothing; a
client that connects and sends nothing. The server must close each (EOF or reset) no sooner
than 0.9 T after the client's first byte (or its connect) and no later than T + 5 s: the
deadline covers the whole request, not one read. Bounds only, never exact durations: the
machine may be loaded. Also at once: a keep-alive connection idle for 0.6 T still serves
its next request, and so does one whose next request, after that idle, is trickled over
another 0.6 T (the request's deadline starts at its first byte; the idle wait before it is
not counted).
Also at once: a client that pipelines requests and never reads the answers is dropped once
the server has waited the timeout for it to read.
Then a plain request on a new connection, and SIGINT: the server must exit 0."""

import asyncio

from interop import STEP_TIMEOUT, Failure, Server, check, main

SLACK = 5.0  # seconds a close may come after its deadline on a loaded machine
TRICKLE = 0.3  # seconds between the bytes of a trickling client


async def watch_close(reader):
    """Reads until the server closes: (bytes received, 'EOF' or 'reset', loop time then)."""
    loop = asyncio.get_running_loop()
    data = bytearray()
    try:
        while chunk := await reader.read(65536):
            data += chunk
        how = "EOF"
    except ConnectionError:  # a reset: the server closed with our late bytes unread
        how = "reset"
    return bytes(data), how, loop.time()


async def expect_closed(name, reader, writer, since, timeout, trickle=b"",
                        since_what="its first byte"):
    """Waits (sending `trickle` a byte at a time meanwhile) until the server closes, then
    checks when: within [0.9 timeout, timeout + SLACK] of `since`. Returns what came."""
    loop = asyncio.get_running_loop()
    closed = asyncio.create_task(watch_close(reader))
    give_up = since + timeout + SLACK
    try:
        for byte in trickle:
            if closed.done() or loop.time() >= give_up:
                break
            writer.write(bytes([byte]))
            await asyncio.wait([closed], timeout=TRICKLE)
        await asyncio.wait([closed], timeout=max(0.0, give_up - loop.time()))
        open_for = loop.time() - since
        check(closed.done(), f"{name}: still open {open_for:.1f} s after {since_what} (timeout {timeout} s)")
        data, how, when = closed.result()
    finally:
        closed.cancel()
        writer.close()
    took = when - since
    check(took >= 0.9 * timeout, f"{name}: closed after {took:.2f} s, before the timeout ({timeout} s)")
    print(f"ok: {name}: closed ({how}) {took:.2f} s after {since_what}; timeout {timeout} s")
    return data


async def trickled_head(host, port, timeout):
    reader, writer = await asyncio.open_connection(host, port)
    since = asyncio.get_running_loop().time()
    writer.write(b"GET / HTTP/1.1\r\nHost: slow\r\n")
    # More bytes than the client can send before its deadline: the head never ends.
    trickle = b"X-Slow: " + b"a" * int((timeout + SLACK) / TRICKLE + 10)
    data = await expect_closed("trickled head", reader, writer, since, timeout, trickle)
    # Our bytes may still be arriving as the server closes, which can turn its close into
    # a reset and lose the answer: a 408 or nothing.
    check(data == b"" or data.startswith(b"HTTP/1.1 408 "), f"trickled head: answered {data[:60]!r}")


async def stalled_body(host, port, timeout):
    reader, writer = await asyncio.open_connection(host, port)
    since = asyncio.get_running_loop().time()
    writer.write(b"POST /echo HTTP/1.1\r\nHost: slow\r\nContent-Length: 100\r\n\r\n" + b"b" * 10)
    data = await expect_closed("stalled body", reader, writer, since, timeout)
    # Nothing of ours is unread when the server gives up: its 408 must arrive.
    check(data.startswith(b"HTTP/1.1 408 "), f"stalled body: answered {data[:60]!r}, not 408")


async def silent(host, port, timeout):
    reader, writer = await asyncio.open_connection(host, port)
    since = asyncio.get_running_loop().time()
    data = await expect_closed("silent connection", reader, writer, since, timeout,
                               since_what="its connect")
    check(data == b"", f"silent connection: answered {data[:60]!r}")


async def non_reader(host, port, timeout, server):
    """Pipelines 1 MiB echo requests and never reads the answers: once the buffers on both
    sides are full, the server waits in drain(). It must drop the connection within the
    timeout (and say so in its log), not hold it with its unsent answers forever; reading
    then ends in EOF or a reset before all the answers have come."""
    loop = asyncio.get_running_loop()
    body = b"e" * (1 << 20)
    request = b"POST /echo HTTP/1.1\r\nHost: deaf\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    count = 48  # more than the kernel buffers on both sides hold, so the server must wait
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for _ in range(count):
            writer.write(request)  # queued by asyncio, sent as the server takes it
        since = loop.time()
        # Filling the buffers takes well under a second on loopback: SLACK covers it.
        give_up = since + timeout + 2 * SLACK
        line = b"not reading its responses, dropped"
        while line not in server.output and loop.time() < give_up:
            await asyncio.sleep(0.1)
        waited = loop.time() - since
        check(line in server.output, f"non-reader: still served {waited:.1f} s after its requests (timeout {timeout} s)")
        data, how, _ = await asyncio.wait_for(watch_close(reader), STEP_TIMEOUT)
        answers = data.count(b"HTTP/1.1 200 OK")
        check(answers < count, f"non-reader: all {count} answers came: it was not dropped")
        print(f"ok: non-reader: dropped ({how}) {waited:.1f} s after its requests, {answers} of {count} answers sent")
    finally:
        writer.close()


async def response(reader, name):
    """One response: (status line, body)."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), STEP_TIMEOUT)
    except (asyncio.IncompleteReadError, ConnectionError) as e:
        raise Failure(f"{name}: no response ({e!r})")
    lines = head.decode().split("\r\n")
    lengths = [int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")]
    length = lengths[0] if lengths else 0
    body = await asyncio.wait_for(reader.readexactly(length), STEP_TIMEOUT)
    return lines[0], body.decode()


async def keep_alive(host, port, timeout, trickled):
    """Two requests on one connection, 0.6 T idle between them; the second sent whole, or
    trickled over another 0.6 T: the idle wait and the request each within the timeout,
    both together not."""
    loop = asyncio.get_running_loop()
    name = "keep-alive, trickled" if trickled else "keep-alive"
    reader, writer = await asyncio.open_connection(host, port)
    try:
        request = b"GET / HTTP/1.1\r\nHost: keep\r\n\r\n"
        for nth in (1, 2):
            parts = [request]
            if nth == 2:
                await asyncio.sleep(0.6 * timeout)
                if trickled:  # its first and last bytes 0.6 T apart
                    parts = [request[i : i + 8] for i in range(0, len(request), 8)]
            start = loop.time()
            for i, part in enumerate(parts):
                if i > 0:
                    await asyncio.sleep(0.6 * timeout / (len(parts) - 1))
                writer.write(part)
            status, body = await response(reader, f"{name}: request {nth}")
            check(status == "HTTP/1.1 200 OK", f"{name}: request {nth}: {status!r}")
            check(f"request {nth} on this connection" in body, f"{name}: request {nth}: {body!r}")
        took = loop.time() - start
        print(f"ok: {name}: request 2 after {0.6 * timeout:.1f} s idle, answered {took:.1f} s after its first byte")
    finally:
        writer.close()


async def plain(host, port):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: plain\r\nConnection: close\r\n\r\n")
        status, body = await response(reader, "plain request")
        ok = status == "HTTP/1.1 200 OK" and "request 1 on this connection" in body
        check(ok, f"plain request: {status!r} {body!r}")
    finally:
        writer.close()
    print("ok: a plain request on a new connection, after the slow clients")


async def test(args, rng):
    check("--timeout" in args[:-1], __doc__)
    timeout = float(args[args.index("--timeout") + 1])
    check(timeout >= 1, "the timeout must be 1 s or more: the trickling client sends a byte every 0.3 s")
    server = await Server(args).start()
    try:
        host, port = server.host, server.port
        # Each check ends by itself (its bound passed): all of them finish before the first
        # failure is raised, as the server is killed then, which would close the others.
        results = await asyncio.gather(
            trickled_head(host, port, timeout),
            stalled_body(host, port, timeout),
            silent(host, port, timeout),
            keep_alive(host, port, timeout, trickled=False),
            keep_alive(host, port, timeout, trickled=True),
            non_reader(host, port, timeout, server),
            return_exceptions=True,
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        for failure in failures[1:]:
            print(f"FAILED: {failure}")
        if failures:
            raise failures[0]
        await plain(host, port)
        await server.stop()
        logged = b'"POST /echo HTTP/1.1" 408' in server.output
        check(logged, "the server did not log the stalled body's 408")
    finally:
        await server.kill()
    print("trickled head, stalled body, idle connection, keep-alive, a non-reader and a plain request checked")


if __name__ == "__main__":
    main(test)

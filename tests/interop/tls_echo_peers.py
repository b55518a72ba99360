"""The tls_echo example against TLS peers nobody here wrote.

  tls_echo_peers.py asyncio_client TLS_ECHO_CMD...  Python asyncio + ssl clients against the
                                                    example run as a server
  tls_echo_peers.py asyncio_server TLS_ECHO_CMD...  the example run as a client against an
                                                    asyncio + ssl echo server
  tls_echo_peers.py openssl_client TLS_ECHO_CMD...  openssl s_client against the server
  tls_echo_peers.py openssl_server TLS_ECHO_CMD...  the client against openssl s_server -rev
  tls_echo_peers.py starttls_asyncio TLS_ECHO_CMD... STARTTLS both ways with asyncio: the
                                                    example's server and client (--starttls)
                                                    against StreamWriter.start_tls

Every peer verifies the other's certificate (a test CA's, made for the run), sends SNI
localhost and offers ALPN "echo". Payloads of random bytes up to 1 MiB, echoed byte for byte
(SHA-256 too), under TLS 1.3 and, forced by the peer, TLS 1.2; each side checks what the
handshake agreed on (the example prints it: version, SNI, ALPN). s_server has no echo: its
-rev mode sends each line back reversed, so the client sends 1 MiB of text lines and gets
each line reversed. The server also survives a client that resets in the middle, one that
is killed without close_notify, and one that speaks no TLS. STARTTLS: a plain "STARTTLS"
line, "OK", then each side's start_tls (the example's writer.start_tls, asyncio's
StreamWriter.start_tls) and a 1 MiB echo over the upgraded connection."""

import asyncio
import hashlib
import re
import socket
import ssl
import struct

from interop import STEP_TIMEOUT, Failure, Server, check, compare, main, payloads, standard_sizes
from tls_interop import OpenSSLServer, expect_in, make_certs, run, text

ALPN = "echo"


def same_hash(name, sent, got):
    compare(name, sent, got)  # the first difference, if any
    check(hashlib.sha256(sent).digest() == hashlib.sha256(got).digest(), f"{name}: SHA-256 differs")


def client_context(certs, version=None):
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    if version:
        ctx.minimum_version = ctx.maximum_version = version
    ctx.set_alpn_protocols([ALPN])
    return ctx


def server_command(tls_echo, certs):
    return [*tls_echo, "--cert", str(certs / "server.pem"), "--key", str(certs / "server.key"),
            "--port", "0", "--alpn", ALPN, "--serve-for", "250"]


def client_command(tls_echo, certs, port):
    return [*tls_echo, "--connect", str(port), "--cafile", str(certs / "ca.pem"),
            "--server-hostname", "localhost", "--alpn", ALPN]


async def wait_output(server, needle, count=1):
    """Until the example's output holds `needle` `count` times (it logs after the peer)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STEP_TIMEOUT
    while server.output.count(needle) < count:
        check(loop.time() < deadline, f"the server never printed {needle!r} {count} times:\n"
                                      f"{server.output.decode(errors='replace')}")
        await asyncio.sleep(0.05)


async def echo_once(host, port, ctx, payload, name):
    """One connection: sends everything while reading the echo (a large echo would deadlock
    otherwise), reads back as many bytes, closes with close_notify. Returns the version."""
    reader, writer = await asyncio.open_connection(host, port, ssl=ctx, server_hostname="localhost")
    ssl_object = writer.get_extra_info("ssl_object")
    check(ssl_object.selected_alpn_protocol() == ALPN,
          f"{name}: ALPN {ssl_object.selected_alpn_protocol()!r}")

    async def send():
        writer.write(payload)
        await writer.drain()

    sender = asyncio.create_task(send())
    got = await reader.readexactly(len(payload))
    await sender
    writer.close()
    await writer.wait_closed()
    same_hash(name, payload, got)
    return ssl_object.version()


async def test_asyncio_client(tls_echo, certs, rng):
    server = await Server(server_command(tls_echo, certs)).start()
    try:
        host, port = server.host, server.port
        ctx = client_context(certs)
        sizes = standard_sizes(rng)
        # Every payload on its own connection, all at once, TLS 1.3.
        versions = await asyncio.gather(*(echo_once(host, port, ctx, p, f"TLS 1.3, {len(p)} bytes")
                                          for p in payloads(rng, sizes)))
        check(set(versions) == {"TLSv1.3"}, f"versions {set(versions)}")
        # TLS 1.2, forced by the client.
        ctx12 = client_context(certs, ssl.TLSVersion.TLSv1_2)
        version = await echo_once(host, port, ctx12, rng.randbytes(1 << 20), "TLS 1.2, 1 MiB")
        check(version == "TLSv1.2", f"a TLS 1.2 client got {version}")
        # A client that resets in the middle of a 1 MiB echo.
        reader, writer = await asyncio.open_connection(host, port, ssl=ctx, server_hostname="localhost")
        writer.write(rng.randbytes(1 << 20))
        await reader.read(1000)  # the echo has started
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        # A client that speaks no TLS: its handshake fails, on the server only.
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        await asyncio.wait_for(reader.read(), STEP_TIMEOUT)  # the server closes it
        writer.close()
        # Still serving.
        await echo_once(host, port, ctx, rng.randbytes(1 << 20), "1 MiB after the bad clients")
        await wait_output(server, b"SNI localhost, ALPN echo", len(sizes) + 3)
        await wait_output(server, b"TLSv1.2 ")
        await server.stop()
    finally:
        await server.kill()
    print(f"ok: {len(sizes) + 2} asyncio + ssl clients echoed byte for byte (TLS 1.3 and 1.2, "
          "SNI and ALPN seen by the server); a reset and a plain-TCP client did not stop it")


async def test_asyncio_server(tls_echo, certs, rng):
    names = []  # the SNI of each handshake
    connections = 0

    async def echo(reader, writer):  # asyncio's own echo server, over TLS
        nonlocal connections
        connections += 1
        while data := await reader.read(65536):  # b"" at close_notify
            writer.write(data)
            await writer.drain()
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass  # the client may be gone already: it had its echo

    sizes = standard_sizes(rng)
    runs = 0
    for version, name in ((ssl.TLSVersion.TLSv1_3, "TLSv1.3"), (ssl.TLSVersion.TLSv1_2, "TLSv1.2")):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certs / "server.pem", certs / "server.key")
        ctx.minimum_version = ctx.maximum_version = version
        ctx.set_alpn_protocols([ALPN])
        ctx.sni_callback = lambda ssl_object, server_name, context: names.append(server_name)
        server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=ctx)
        port = server.sockets[0].getsockname()[1]
        async with server:
            # Every size under TLS 1.3; the largest ones under TLS 1.2.
            for payload in payloads(rng, sizes if name == "TLSv1.3" else [65537, 1 << 20]):
                rc, out, err = await run(client_command(tls_echo, certs, port), stdin=payload)
                runs += 1
                check(rc == 0, f"{name}, {len(payload)} bytes: exit code {rc}: {text(err)}")
                same_hash(f"{name}, {len(payload)} bytes", payload, out)
                expect_in(f"{name}: what the client says it agreed on",
                          f"connected: {name} ", text(err))
                expect_in(f"{name}: ALPN", f"SNI localhost, ALPN {ALPN}", text(err))
    check(connections == runs, f"{runs} client runs, the server saw {connections} connections")
    check(names == ["localhost"] * runs, f"the server saw SNI {set(names)}")
    print(f"ok: {runs} tls_echo client runs echoed byte for byte by asyncio + ssl "
          "(TLS 1.3 and 1.2; SNI localhost, ALPN echo)")


async def test_openssl_client(tls_echo, certs, rng):
    server = await Server(server_command(tls_echo, certs)).start()
    try:
        for option, name in (("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")):
            payload = rng.randbytes(1 << 20)
            client = await asyncio.create_subprocess_exec(
                "openssl", "s_client", "-connect", f"127.0.0.1:{server.port}", "-quiet",
                "-CAfile", str(certs / "ca.pem"), "-verify_return_error", "-servername", "localhost",
                "-alpn", ALPN, "-nocommands", option,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE)
            try:
                client.stdin.write(payload)  # s_client -quiet ignores its stdin's end
                got = await asyncio.wait_for(client.stdout.readexactly(len(payload)), STEP_TIMEOUT)
            except (asyncio.IncompleteReadError, asyncio.TimeoutError) as e:
                client.kill()
                err = await client.stderr.read()
                raise Failure(f"s_client {option}: {e!r}; s_client said {text(err)}")
            client.kill()  # no close_notify: the server must take it as a close
            await client.wait()
            same_hash(f"s_client {option}, 1 MiB", payload, got)
            await wait_output(server, f"connected: {name} ".encode())
        await wait_output(server, f"SNI localhost, ALPN {ALPN}".encode(), 2)
        await wait_output(server, b"echoed 1048576 bytes", 2)
        # A peer gone without close_notify is an end of file, as a clean close (asyncio
        # 3.11+): no error reported (the example prints "tls_echo: PEER: what" for one).
        errors = re.findall(rb"tls_echo: [^ ]+: .*", server.output)
        check(not errors, f"the killed clients' connections ended in errors: {errors}")
        await server.stop()
    finally:
        await server.kill()
    print("ok: openssl s_client (TLS 1.3 and 1.2): 1 MiB each echoed byte for byte, SNI and ALPN "
          "seen by the server, which took each client's kill (no close_notify) as an EOF")


def reversed_lines(rng, size):
    """Text lines (no '\r': -rev drops it) of about `size` bytes, and what -rev sends back."""
    lines, total = [], 0
    while total < size:
        lines.append(bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz")
                           for _ in range(rng.randint(0, 300))))
        total += len(lines[-1]) + 1
    return (b"".join(line + b"\n" for line in lines),
            b"".join(line[::-1] + b"\n" for line in lines))


async def test_openssl_server(tls_echo, certs, rng):
    server_cert = ["-cert", certs / "server.pem", "-key", certs / "server.key"]
    # SNI: the default certificate names other.example; -cert2 (localhost) goes to a client
    # whose SNI says localhost, so the client's verification passes only if it sent SNI.
    # (s_server answers ALPN from its first certificate's context only: ALPN is checked
    # in the two runs before.)
    sni = ["-cert", certs / "wronghost.pem", "-key", certs / "wronghost.key",
           "-servername", "localhost", "-servername_fatal",
           "-cert2", certs / "server.pem", "-key2", certs / "server.key"]
    runs = (("-tls1_3", "TLSv1.3", ["-alpn", ALPN, *server_cert], f"ALPN {ALPN}"),
            ("-tls1_2", "TLSv1.2", ["-alpn", ALPN, *server_cert], f"ALPN {ALPN}"),
            ("-tls1_3", "TLSv1.3", sni, "SNI localhost"))
    for option, name, options, agreed in runs:
        async with OpenSSLServer("-rev", option, *options) as server:
            payload, expected = reversed_lines(rng, 1 << 20)
            rc, out, err = await run(client_command(tls_echo, certs, server.port), stdin=payload)
            check(rc == 0, f"s_server {option}: exit code {rc}: {text(err)}\ns_server: {server.text()}")
            same_hash(f"s_server -rev {option}, {len(payload)} bytes of lines", expected, out)
            expect_in(f"s_server {option}: the version", f"connected: {name} ", text(err))
            expect_in(f"s_server {option}: what the client agreed on", agreed, text(err))
    print("ok: openssl s_server -rev (TLS 1.3 and 1.2): 1 MiB of lines came back reversed, "
          "with ALPN echo; SNI localhost sent (s_server chose its certificate by it)")


async def test_starttls_asyncio(tls_echo, certs, rng):
    # The example's server, asyncio's client.
    server = await Server([*server_command(tls_echo, certs), "--starttls"]).start()
    try:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(b"STARTTLS\n")
        answer = await asyncio.wait_for(reader.readline(), STEP_TIMEOUT)
        check(answer == b"OK\n", f"the server answered STARTTLS with {answer!r}")
        await writer.start_tls(client_context(certs), server_hostname="localhost")
        ssl_object = writer.get_extra_info("ssl_object")
        check(ssl_object.selected_alpn_protocol() == ALPN, "STARTTLS: no ALPN")
        payload = rng.randbytes(1 << 20)
        writer.write(payload)
        got = await asyncio.wait_for(reader.readexactly(len(payload)), STEP_TIMEOUT)
        writer.close()
        await writer.wait_closed()
        same_hash("STARTTLS to the example's server, 1 MiB", payload, got)
        # One that asks nothing is refused in plain text, and the server goes on.
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(b"HELLO\n")
        answer = await asyncio.wait_for(reader.read(), STEP_TIMEOUT)
        check(answer.startswith(b"ERR"), f"a client without STARTTLS got {answer!r}")
        writer.close()
        await wait_output(server, f"SNI localhost, ALPN {ALPN}".encode())
        await wait_output(server, b"echoed 1048576 bytes")
        await server.stop()
    finally:
        await server.kill()

    # asyncio's server, the example's client.
    upgraded = []

    async def serve(reader, writer):
        if await reader.readline() != b"STARTTLS\n":
            writer.close()
            return
        writer.write(b"OK\n")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certs / "server.pem", certs / "server.key")
        ctx.set_alpn_protocols([ALPN])
        await writer.start_tls(ctx)
        upgraded.append(writer.get_extra_info("ssl_object").selected_alpn_protocol())
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass

    plain = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with plain:
        port = plain.sockets[0].getsockname()[1]
        payload = rng.randbytes(1 << 20)
        rc, out, err = await run([*client_command(tls_echo, certs, port), "--starttls"], stdin=payload)
        check(rc == 0, f"the example's STARTTLS client: exit code {rc}: {text(err)}")
        same_hash("STARTTLS to asyncio's server, 1 MiB", payload, out)
        expect_in("STARTTLS client: what it agreed on", f"SNI localhost, ALPN {ALPN}", text(err))
    check(upgraded == [ALPN], f"asyncio's server upgraded {upgraded}")
    print("ok: STARTTLS both ways with asyncio's StreamWriter.start_tls: 1 MiB echoed over the "
          "upgraded connection each way (SNI, ALPN); no STARTTLS, no TLS")


async def test(args, rng):
    modes = {"asyncio_client": test_asyncio_client, "asyncio_server": test_asyncio_server,
             "openssl_client": test_openssl_client, "openssl_server": test_openssl_server,
             "starttls_asyncio": test_starttls_asyncio}
    check(len(args) >= 2 and args[0] in modes, __doc__)
    certs = await make_certs()
    await modes[args[0]](args[1:], certs, rng)


if __name__ == "__main__":
    main(test)

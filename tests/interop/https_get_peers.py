"""The https_get example against HTTPS servers nobody here wrote.

  https_get_peers.py openssl  HTTPS_GET_CMD...   openssl s_server -www / -WWW
  https_get_peers.py asyncio  HTTPS_GET_CMD...   an HTTP server on Python's asyncio + ssl
  https_get_peers.py failures HTTPS_GET_CMD...   s_server with a certificate that must fail

openssl: TLS 1.2 and TLS 1.3, each forced by the server, with ALPN (http/1.1 offered by
https_get, accepted by s_server); a 1 MiB file served by -WWW arrives whole (the body's
length as https_get counts it); SNI: s_server's default certificate names other.example
and its second (-cert2) localhost, given only to a client whose SNI says localhost, so the
GET verifies only if https_get sent it.
asyncio: TLS 1.2 and 1.3; bodies framed by Content-Length (1 MiB), chunked, and by the end
of the connection; a 404 makes https_get exit 1 with the status printed; the server sees
SNI localhost, ALPN http/1.1 and the Host header.
failures: a self-signed certificate, a certificate of an unknown CA (the system's roots
only), one for another host name, an expired one: https_get exits 1, prints no response,
and its message names OpenSSL's reason."""

import asyncio
import re
import ssl

from interop import check, main
from tls_interop import OpenSSLServer, expect_in, make_certs, run, text

BODY = re.compile(r"^\* body: (\d+) bytes$", re.M)


def body_length(out):
    m = BODY.search(out)
    check(m, f"https_get printed no body length:\n{out}")
    return int(m.group(1))


async def get(https_get, port, path="/", *options):
    rc, out, err = await run([*https_get, "localhost", port, path, *options])
    return rc, text(out), text(err)


async def test_openssl(https_get, certs, rng):
    ca = ["--cafile", certs / "ca.pem"]
    server_cert = ["-cert", certs / "server.pem", "-key", certs / "server.key"]
    for version, name in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
        async with OpenSSLServer("-www", version, *server_cert, "-alpn", "http/1.1") as server:
            rc, out, err = await get(https_get, server.port, "/", *ca)
            check(rc == 0, f"{name}: https_get exited with {rc}: {err}{out}\ns_server: {server.text()}")
            expect_in(f"{name}: the status line", "HTTP/1.0 200 ok", out)
            expect_in(f"{name}: the version", f"* {name},", out)
            expect_in(f"{name}: ALPN", "ALPN http/1.1", out)
            check(body_length(out) > 0, f"{name}: s_server's status page arrived empty")
            print(f"ok: s_server -www {version}: 200, {name}, ALPN http/1.1")

    # -WWW serves files from its directory: 1 MiB of random bytes, counted by https_get.
    (certs / "payload.bin").write_bytes(rng.randbytes(1 << 20))
    async with OpenSSLServer("-WWW", *server_cert, cwd=certs) as server:
        rc, out, err = await get(https_get, server.port, "/payload.bin", *ca)
        check(rc == 0, f"-WWW: https_get exited with {rc}: {err}{out}")
        check(body_length(out) == 1 << 20, f"-WWW: {body_length(out)} bytes, not 1 MiB:\n{out}")
        print("ok: s_server -WWW: a 1 MiB file, every byte counted")

    # SNI: only a client that names localhost gets the localhost certificate.
    async with OpenSSLServer("-www", "-cert", certs / "wronghost.pem", "-key", certs / "wronghost.key",
                             "-servername", "localhost", "-servername_fatal",
                             "-cert2", certs / "server.pem", "-key2", certs / "server.key") as server:
        rc, out, err = await get(https_get, server.port, "/", *ca)
        check(rc == 0, f"SNI: https_get exited with {rc} (did it send SNI localhost?): {err}{out}")
        expect_in("SNI: the status line", "HTTP/1.0 200 ok", out)
        print("ok: SNI localhost sent (s_server chose its certificate by it)")


async def test_asyncio(https_get, certs, rng):
    big = rng.randbytes(1 << 20)
    seen = []  # (SNI, ALPN, TLS version, Host header, path) of each request

    async def handle(reader, writer):
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        request_line, *header_lines = head.split("\r\n")
        path = request_line.split(" ")[1]
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines if h)}
        ssl_object = writer.get_extra_info("ssl_object")
        seen.append((names.pop() if names else None, ssl_object.selected_alpn_protocol(),
                     ssl_object.version(), headers.get("host"), path))
        if path == "/big":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(big) + big)
        elif path == "/chunked":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for i in range(0, len(big), 100_000):
                piece = big[i:i + 100_000]
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            writer.write(b"0\r\nX-Trailer: yes\r\n\r\n")
        elif path == "/eof":
            writer.write(b"HTTP/1.0 200 OK\r\nConnection: close\r\n\r\n" + big[:300_000])
        else:
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot here\n")
        await writer.drain()
        writer.close()  # close_notify, then the TCP close
        try:
            await writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass  # https_get may close first: the response is out either way

    names = []
    for version, name in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certs / "server.pem", certs / "server.key")
        ctx.minimum_version = ctx.maximum_version = version
        ctx.set_alpn_protocols(["http/1.1"])
        ctx.sni_callback = lambda ssl_object, server_name, context: names.append(server_name)
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
        port = server.sockets[0].getsockname()[1]
        async with server:
            for path, length in (("/big", 1 << 20), ("/chunked", 1 << 20), ("/eof", 300_000)):
                rc, out, err = await get(https_get, port, path, "--cafile", certs / "ca.pem")
                check(rc == 0, f"{name} {path}: https_get exited with {rc}: {err}{out}")
                expect_in(f"{name} {path}: the version", f"* {name},", out)
                check(body_length(out) == length,
                      f"{name} {path}: {body_length(out)} bytes counted, {length} sent")
                check(seen[-1] == ("localhost", "http/1.1", name, f"localhost:{port}", path),
                      f"{name} {path}: the server saw (SNI, ALPN, version, Host, path) {seen[-1]}")
            rc, out, err = await get(https_get, port, "/missing", "--cafile", certs / "ca.pem")
            check(rc == 1, f"{name}: a 404 gave exit code {rc}")
            expect_in(f"{name}: the 404's status line", "HTTP/1.1 404 Not Found", out)
        print(f"ok: asyncio's ssl server, {name}: Content-Length, chunked and to-EOF bodies whole, "
              "SNI and ALPN and Host as sent, 404 -> exit 1")


async def test_failures(https_get, certs, rng):
    ca = ["--cafile", certs / "ca.pem"]
    cases = (
        ("self-signed", "untrusted", ca, r"self[- ]signed certificate"),
        ("an unknown CA", "server", [], r"unable to get local issuer certificate"),
        ("another host's", "wronghost", ca, r"(?i)hostname mismatch"),
        ("expired", "expired", ca, r"certificate has expired"),
    )
    for what, cert, options, reason in cases:
        async with OpenSSLServer("-www", "-cert", certs / f"{cert}.pem",
                                 "-key", certs / f"{cert}.key") as server:
            rc, out, err = await get(https_get, server.port, "/", *options)
        check(rc == 1, f"{what} certificate: https_get exited with {rc}: {err}{out}")
        check("HTTP/" not in out, f"{what} certificate: a response was printed:\n{out}")
        check(re.search(reason, err), f"{what} certificate: the message does not name the "
                                      f"reason ({reason}): {err!r}")
        print(f"ok: {what} certificate refused: {err.strip()}")


async def test(args, rng):
    modes = {"openssl": test_openssl, "asyncio": test_asyncio, "failures": test_failures}
    check(len(args) >= 2 and args[0] in modes, __doc__)
    certs = await make_certs()
    await modes[args[0]](args[1:], certs, rng)


if __name__ == "__main__":
    main(test)

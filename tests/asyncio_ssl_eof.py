#!/usr/bin/env python3
"""What asyncio (3.11+) shows a TLS client whose peer goes away without close_notify, the
behaviour tests/test_ssl.cpp holds ioloop to. Usage: asyncio_ssl_eof.py CERT_DIR (the
directory tests/make_certs.sh made). Prints one line per case; exits 1 if asyncio does
not do what test_ssl.cpp expects of ioloop (so a Python that changed would be noticed).

The peers are blocking `ssl` sockets on a thread, so that asyncio's client is the only
asyncio in play:
  ragged   the peer writes N bytes, then shuts the TCP connection (FIN) without
           close_notify: asyncio's reader gets the N bytes, then EOF (b""), no error;
  reset    the peer writes N bytes, the client reads them all, then the peer resets the
           connection (SO_LINGER 0): the next read raises ConnectionResetError;
  clean    the peer writes N bytes and closes with close_notify: N bytes, then EOF.
"""
import asyncio
import os
import socket
import ssl
import struct
import sys
import threading

N = 300_000


def server_context(certs):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(certs, "server.pem"), os.path.join(certs, "server.key"))
    return ctx


def client_context(certs):
    ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
    return ctx


def peer(listener, ctx, how, ready_to_reset):
    raw, _ = listener.accept()
    tls = ctx.wrap_socket(raw, server_side=True)
    tls.sendall(b"x" * N)
    if how == "ragged":
        # FIN on the TCP connection, no TLS close_notify before it.
        other = socket.socket(fileno=os.dup(tls.fileno()))
        other.shutdown(socket.SHUT_RDWR)
        other.close()
        tls.close()
    elif how == "reset":
        ready_to_reset.wait(10)
        raw_fd = socket.socket(fileno=os.dup(tls.fileno()))
        raw_fd.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        tls.close()
        raw_fd.close()  # the last descriptor: the kernel sends RST
    else:
        tls.unwrap()  # close_notify, and the peer's
        tls.close()


async def client(certs, how):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    ready_to_reset = threading.Event()
    thread = threading.Thread(
        target=peer, args=(listener, server_context(certs), how, ready_to_reset))
    thread.start()
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=client_context(certs), server_hostname="localhost")
    got = await reader.readexactly(N)
    ready_to_reset.set()
    try:
        rest = await reader.read()
        outcome = f"{len(got)} bytes, then EOF {rest!r}, at_eof={reader.at_eof()}"
    except Exception as e:  # what the reader raises
        outcome = f"{len(got)} bytes, then {type(e).__name__}: {e}"
    writer.close()
    try:
        await writer.wait_closed()
    except Exception as e:
        outcome += f"; wait_closed: {type(e).__name__}"
    thread.join()
    listener.close()
    return outcome


def main():
    certs = sys.argv[1]
    expected = {
        "ragged": f"{N} bytes, then EOF b'', at_eof=True",
        "clean": f"{N} bytes, then EOF b'', at_eof=True",
        "reset": f"{N} bytes, then ConnectionResetError",
    }
    ok = True
    for how in ("ragged", "clean", "reset"):
        outcome = asyncio.run(client(certs, how))
        print(f"{how}: {outcome}")
        if not outcome.startswith(expected[how]):
            print(f"  expected: {expected[how]}")
            ok = False
    print(f"Python {sys.version.split()[0]}, {ssl.OPENSSL_VERSION}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

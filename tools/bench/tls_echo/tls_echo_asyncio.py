"""TLS echo server on Python's asyncio and ssl: the reference the issue names beside asio.

    python3 tls_echo_asyncio.py PORT CERT KEY

A Protocol whose data_received writes back what it is given, served by
loop.create_server(..., ssl=ctx), asyncio's fastest shape (streams add a task and a
buffer per connection). The context is ssl.PROTOCOL_TLS_SERVER with the certificate chain
and key and TLS 1.3 only. Python's ssl module has no call for the TLS 1.3 suites
(set_ciphers covers TLS 1.2 and older); run_tls_echo.sh runs this with OPENSSL_CONF naming
a configuration that allows only TLS_AES_128_GCM_SHA256, and the clients force that suite
and check it was negotiated either way. asyncio sets TCP_NODELAY and SO_REUSEADDR itself;
the backlog is 1024, as the ioloop servers'. SIGINT and SIGTERM close the server; the exit
status is 0."""
import asyncio
import resource
import signal
import ssl
import sys


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def serve(port, cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = await loop.create_server(Echo, "127.0.0.1", port, ssl=ctx, backlog=1024)
    await stop.wait()
    server.close()


def main():
    if len(sys.argv) != 4 or not sys.argv[1].isdigit() or not 1 <= int(sys.argv[1]) <= 65535:
        sys.exit("usage: tls_echo_asyncio.py PORT CERT KEY (TLS on 127.0.0.1:PORT)")
    # As the C++ servers: room for 10,000 connections.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(serve(int(sys.argv[1]), sys.argv[2], sys.argv[3]))


main()

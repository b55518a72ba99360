"""The lan_discovery example against Python's asyncio, over broadcast or multicast on loopback.

  lan_discovery.py broadcast|multicast PROGRAM

Three checks, each with the announcements of the other side counted by name:
- PROGRAM's listener hears Python's announcer (asyncio's create_datagram_endpoint with
  allow_broadcast=True, or with IP_MULTICAST_IF set to the loopback);
- a Python listener (bound to the port, in the group for multicast) hears PROGRAM's announcer;
- the pair: PROGRAM's listener hears PROGRAM's announcer.
Multicast where the system refuses a group on the loopback exits 77 (a skip, with why)."""

import asyncio
import socket
import struct
import sys

from interop import Failure, Server, check, main

GROUP = "239.255.42.77"
PREFIX = b"ioloop-discovery "


class Announcer(asyncio.DatagramProtocol):
    pass


class Listener(asyncio.DatagramProtocol):
    def __init__(self):
        self.heard = asyncio.Queue()

    def datagram_received(self, data, addr):
        if data.startswith(PREFIX):
            self.heard.put_nowait(data[len(PREFIX):].decode())


def multicast_possible():
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", 0))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                     struct.pack("4s4s", socket.inet_aton(GROUP), socket.inet_aton("127.0.0.1")))
        s.close()
        return None
    except OSError as e:
        return str(e)


async def wait_for_exit(proc, what):
    try:
        rc = await asyncio.wait_for(proc.wait(), 30)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise Failure(f"{what} did not end in time")
    return rc


async def program_hears_python(program, mode):
    extra = ["--multicast", GROUP] if mode == "multicast" else []
    listener = await Server([program, "listen", "--port", "0", "--count", "3", *extra]).start()
    loop = asyncio.get_running_loop()
    if mode == "broadcast":
        transport, _ = await loop.create_datagram_endpoint(
            Announcer, local_addr=("127.0.0.1", 0), allow_broadcast=True)
        to = ("127.255.255.255", listener.port)
    else:
        transport, _ = await loop.create_datagram_endpoint(Announcer, local_addr=("127.0.0.1", 0))
        transport.get_extra_info("socket").setsockopt(
            socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
        to = (GROUP, listener.port)
    try:
        # Until it has heard three (a datagram may in principle be lost): at most 50 tries.
        for _ in range(50):
            transport.sendto(PREFIX + b"from-python", to)
            try:
                await asyncio.wait_for(asyncio.shield(listener.proc.wait()), 0.1)
                break
            except asyncio.TimeoutError:
                pass
        rc = await wait_for_exit(listener.proc, "the listener")
        await listener._drain
    finally:
        transport.close()
        await listener.kill()
    out = listener.output.decode(errors="replace")
    check(rc == 0, f"the listener exited with {rc}: {out}")
    check(out.count("found from-python at 127.0.0.1:") == 3,
          f"the listener did not report Python's three announcements: {out}")
    print(f"ok: {mode}: the example's listener heard Python's announcer")


async def python_hears_program(program, mode):
    loop = asyncio.get_running_loop()
    transport, listener = await loop.create_datagram_endpoint(Listener, local_addr=("0.0.0.0", 0))
    port = transport.get_extra_info("sockname")[1]
    extra = []
    if mode == "multicast":
        transport.get_extra_info("socket").setsockopt(
            socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
            struct.pack("4s4s", socket.inet_aton(GROUP), socket.inet_aton("127.0.0.1")))
        extra = ["--multicast", GROUP]
    try:
        proc = await asyncio.create_subprocess_exec(
            program, "announce", "--port", str(port), "--name", "from-ioloop", "--count", "3",
            "--interval", "0.05", *extra, stdout=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        check(proc.returncode == 0, f"the announcer exited with {proc.returncode}: {out!r}")
        names = [await asyncio.wait_for(listener.heard.get(), 10) for _ in range(3)]
        check(names == ["from-ioloop"] * 3, f"Python heard {names}")
    finally:
        transport.close()
    print(f"ok: {mode}: Python's listener heard the example's announcer")


async def the_pair(program, mode):
    extra = ["--multicast", GROUP] if mode == "multicast" else []
    listener = await Server([program, "listen", "--port", "0", "--count", "3", *extra]).start()
    try:
        proc = await asyncio.create_subprocess_exec(
            program, "announce", "--port", str(listener.port), "--name", "the-pair",
            "--count", "3", "--interval", "0.05", *extra, stdout=asyncio.subprocess.DEVNULL)
        check(await wait_for_exit(proc, "the announcer") == 0, "the announcer failed")
        rc = await wait_for_exit(listener.proc, "the listener")
        await listener._drain
    finally:
        await listener.kill()
    out = listener.output.decode(errors="replace")
    check(rc == 0 and out.count("found the-pair at 127.0.0.1:") == 3,
          f"the pair: the listener's output: {out}")
    print(f"ok: {mode}: the example's listener heard the example's announcer")


async def test(args, rng):
    del rng
    mode, program = args
    check(mode in ("broadcast", "multicast"), f"unknown mode {mode}")
    await program_hears_python(program, mode)
    await python_hears_program(program, mode)
    await the_pair(program, mode)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "multicast":
        why = multicast_possible()
        if why:
            print(f"SKIPPED: this system refuses a multicast group on the loopback: {why}")
            sys.exit(77)
    main(test)

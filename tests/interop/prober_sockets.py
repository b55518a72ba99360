"""The port_prober example against ports Python prepares on 127.0.0.1.

  prober_sockets.py PROBER_CMD...

- open: an asyncio server, which must see the prober's connection;
- closed: a socket bound but not listening (the kernel answers RST);
- filtered: a listener with a backlog of 0 whose queue a first connection fills: Linux then
  drops further SYNs, so the prober gets no answer and its wait_for times out.
Then 1,000 more ports at once: every probe ends, and much faster than one by one."""

import asyncio
import re
import socket
import time

from interop import STEP_TIMEOUT, Failure, check, main


async def run_prober(cmd, *args):
    proc = await asyncio.create_subprocess_exec(*cmd, *args, stdout=asyncio.subprocess.PIPE)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), STEP_TIMEOUT)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise Failure(f"{cmd[0]} {' '.join(args)} did not finish in time")
    check(proc.returncode == 0, f"{cmd[0]} exited with {proc.returncode}")
    return out.decode()


def states(output):
    lines = re.finditer(r"^(\d+) (open|closed|filtered|error)\b", output, re.M)
    return {int(m.group(1)): m.group(2) for m in lines}


async def test(cmd, rng):
    check(cmd, __doc__)
    accepted = 0

    def on_connect(reader, writer):
        nonlocal accepted
        accepted += 1
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    open_port = server.sockets[0].getsockname()[1]
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: its port stays ours, and refuses
    closed_port = closed.getsockname()[1]
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    filtered_port = full.getsockname()[1]
    fillers = []
    for _ in range(2):  # the first fills the accept queue; the second is dropped itself
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", filtered_port))
        fillers.append(s)
    await asyncio.sleep(0.2)  # let the handshakes settle
    try:
        async with server:
            ports = f"{open_port},{closed_port},{filtered_port}"
            out = await run_prober(cmd, "127.0.0.1", ports, "--timeout", "400", "--all")
            want = {open_port: "open", closed_port: "closed", filtered_port: "filtered"}
            check(states(out) == want, f"expected {want}, the prober said:\n{out}")
            for _ in range(100):  # the server's callback may still be on its way
                if accepted:
                    break
                await asyncio.sleep(0.02)
            check(accepted == 1, f"the open port saw {accepted} connections, not 1")

            # Many at once: 1,000 ports (whatever they are) and the filtered one; with every
            # probe in flight together the run takes about one timeout, not one per port.
            first = rng.randint(20000, 50000)
            ports = f"{first}-{first + 999},{filtered_port}"
            began = time.monotonic()
            out = await run_prober(cmd, "127.0.0.1", ports, "--timeout", "400", "--at-once", "300")
            took = time.monotonic() - began
            summary = r"^1001 ports in \d+ ms: (\d+) open, (\d+) closed, (\d+) filtered, (\d+) errors"
            m = re.search(summary, out, re.M)
            check(m, f"no summary of 1001 ports:\n{out}")
            check(sum(map(int, m.groups())) == 1001, f"the counts do not add up:\n{out}")
            check(states(out).get(filtered_port) == "filtered", f"{filtered_port} not filtered:\n{out}")
            check(took < 10, f"1001 probes took {took:.1f} s")
    finally:
        for s in [closed, full, *fillers]:
            s.close()
    print(f"open, closed and filtered told apart; 1001 ports probed in {took:.2f} s")


if __name__ == "__main__":
    main(test)

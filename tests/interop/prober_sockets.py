"""The port_prober example against ports Python prepares on 127.0.0.1.

  prober_sockets.py PROBER_CMD...

- open: an asyncio server, which must see the prober's connection;
- closed: a socket bound but not listening (the kernel answers RST);
- filtered: a listener with a backlog of 0 whose queue a first connection fills: Linux then
  drops further SYNs, so the prober gets no answer and its wait_for times out.
Then 501 ports at once (500 bound here, not listening): every probe ends, each is told
right, and the run takes about one timeout, not one per port."""

import asyncio
import re
import select
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
    reserved = []
    for _ in range(2):  # the first fills the accept queue; the second is dropped itself
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", filtered_port))
        fillers.append(s)
    # The first filler's handshake completes into the accept queue (it turns writable);
    # only then is the port full, so wait for that rather than for a while.
    _, writable, _ = await asyncio.to_thread(select.select, [], [fillers[0]], [], 10)
    check(writable == [fillers[0]], "the first connect to the full listener did not complete")
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

            # Many at once: 500 ports bound here and not listening (so no other program's
            # server is probed), and the filtered one. With every probe in flight together
            # the run takes about one timeout, not one per port.
            for _ in range(500):
                s = socket.socket()
                s.bind(("127.0.0.1", 0))
                reserved.append(s)
            ports = ",".join(str(s.getsockname()[1]) for s in reserved) + f",{filtered_port}"
            began = time.monotonic()
            out = await run_prober(cmd, "127.0.0.1", ports, "--timeout", "400", "--at-once", "300")
            took = time.monotonic() - began
            summary = r"^501 ports in \d+ ms: 0 open, 500 closed, 1 filtered, 0 errors$"
            check(re.search(summary, out, re.M), f"not the summary expected:\n{out}")
            check(states(out) == {filtered_port: "filtered"}, f"not just {filtered_port} listed:\n{out}")
            check(took < 10, f"501 probes took {took:.1f} s")
    finally:
        for s in [closed, full, *fillers, *reserved]:
            s.close()
    print(f"open, closed and filtered told apart; 501 ports probed in {took:.2f} s")


if __name__ == "__main__":
    main(test)

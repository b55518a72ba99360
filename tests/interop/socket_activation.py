"""examples/socket_activated under examples/socket_activate.py, systemd's protocol: the
server serves the socket it was given as descriptor 3 (the port the launcher bound), says
so to each client and echoes its lines, and stops cleanly on the SIGTERM the launcher
passes on. Then the same server run alone binds a port itself.

    python3 socket_activation.py LAUNCHER SERVER"""

import os
import re
import signal
import socket
import subprocess
import sys

TIMEOUT = 60.0
LISTENING = re.compile(r"listening on ([^\s:]+):(\d+) \((.*)\)")
BOUND = re.compile(r"bound ([^\s:]+):(\d+)")


def fail(message):
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


def read_until(proc, pattern):
    """The first match of pattern in the process's output, lines echoed as they come."""
    for line in proc.stdout:
        sys.stdout.write("  | " + line)
        m = pattern.search(line)
        if m:
            return m
    fail(f"the output ended before {pattern.pattern!r}")


def talk(port, expect_origin):
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as c:
        f = c.makefile("rwb")
        greeting = f.readline().decode()
        if expect_origin not in greeting:
            fail(f"greeting {greeting!r} does not say {expect_origin!r}")
        for line in (b"ping\n", b"a longer line " * 100 + b"\n"):
            f.write(line)
            f.flush()
            if f.readline() != line:
                fail("the line did not come back")


def stop(proc, how):
    proc.send_signal(how)
    rest = proc.stdout.read()
    sys.stdout.write("".join("  | " + l + "\n" for l in rest.splitlines()))
    code = proc.wait(timeout=TIMEOUT)
    if code != 0:
        fail(f"exit status {code}")
    if "stopped by SIGTERM" not in rest:
        fail("the server did not say it stopped on SIGTERM")


def main():
    launcher, server = sys.argv[1], sys.argv[2]
    # Activated: the launcher binds a free port, the server serves it.
    proc = subprocess.Popen([sys.executable, "-B", launcher, "--port", "0", "--", server,
                             "--serve-for", "250"], stdout=subprocess.PIPE, text=True)
    try:
        bound = int(read_until(proc, BOUND).group(2))
        m = read_until(proc, LISTENING)
        if int(m.group(2)) != bound:
            fail(f"the server listens on {m.group(2)}, not on the port given ({bound})")
        if m.group(3) != "a socket from socket activation":
            fail(f"the server says it serves {m.group(3)!r}")
        talk(bound, "socket activation")
        stop(proc, signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
    # Not activated (LISTEN_PID names another process): it binds a port itself.
    env = dict(os.environ, LISTEN_FDS="1", LISTEN_PID="1")
    proc = subprocess.Popen([server, "--port", "0", "--serve-for", "250"], env=env,
                            stdout=subprocess.PIPE, text=True, pass_fds=())
    try:
        m = read_until(proc, LISTENING)
        if m.group(3) != "its own socket":
            fail(f"not activated, the server says it serves {m.group(3)!r}")
        talk(int(m.group(2)), "its own socket")
        stop(proc, signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
    print("PASS")


if __name__ == "__main__":
    main()

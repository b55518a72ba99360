#!/usr/bin/env python3
"""Starts a server the way systemd's socket activation does, for trying
examples/socket_activated.cpp by hand (or any program that reads LISTEN_FDS):

    python3 examples/socket_activate.py [--host H] [--port P] -- PROGRAM [ARGS...]

binds and listens on H:P (127.0.0.1; port 0: a free one), prints the address, then runs
PROGRAM with the listening socket as descriptor 3 and LISTEN_FDS=1, LISTEN_PID=<its pid>
in its environment. SIGINT and SIGTERM are passed on to it; exits with its status."""

import argparse
import os
import signal
import socket
import sys

LISTEN_FDS_START = 3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8888)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no program to start")

    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.host, args.port))
    listener.listen(100)
    host, port = listener.getsockname()[:2]
    print(f"socket_activate: bound {host}:{port}, starting {command[0]}", flush=True)

    pid = os.fork()
    if pid == 0:
        # The child: the socket at descriptor 3, inherited across exec; LISTEN_PID is the
        # pid the program will have, which exec keeps.
        try:
            if listener.fileno() != LISTEN_FDS_START:
                os.dup2(listener.fileno(), LISTEN_FDS_START)
            else:
                os.set_inheritable(LISTEN_FDS_START, True)
            env = dict(os.environ, LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
            os.execvpe(command[0], command, env)
        except OSError as e:
            print(f"socket_activate: {command[0]}: {e}", file=sys.stderr, flush=True)
            os._exit(127)
    listener.close()  # the child has it

    def forward(signum, _frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    sys.exit(code if code >= 0 else 128 - code)  # killed by signal N: 128 + N, as a shell


if __name__ == "__main__":
    main()
